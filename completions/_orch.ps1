
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'orch' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'orch'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'orch' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('repo', 'repo', [CompletionResultType]::ParameterValue, 'The operator''s registry of repositories: add, list, show, remove, set, unset')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'One gate run: command, outcome, evidence, protection, times, captured output')
            [CompletionResult]::new('task', 'task', [CompletionResultType]::ParameterValue, 'Register, inspect, hold and release tasks')
            [CompletionResult]::new('advance', 'advance', [CompletionResultType]::ParameterValue, 'Move one task along one edge: lease, the edge''s gates, CAS, history (with --goal, on to the goal)')
            [CompletionResult]::new('merge-gate', 'merge-gate', [CompletionResultType]::ParameterValue, 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'The read-only operator view; never writes')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Print the stage table, the gates and the effective config; check invariants')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command in its own process group with a deadline: a tree-safe timeout(1)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'A self-contained walk through the pipeline in a temporary directory, incidents included')
            [CompletionResult]::new('reap', 'reap', [CompletionResultType]::ParameterValue, 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;repo' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a repository: its name, canonical remote, target and protected branches')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the registered repositories')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One repository, with every gate key''s effective value and its source')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Unregister a repository that no task uses')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a gate key for this repository''s tasks: `KEY=VALUE`')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Drop a repository''s own value of a gate key (the environment''s applies again)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;repo;add' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The canonical remote: a forge URL or a bare repository''s path')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'The branch tasks merge into')
            [CompletionResult]::new('--protect', '--protect', [CompletionResultType]::ParameterName, 'A branch no task may use or move (repeat for more)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;list' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;show' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;remove' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;set' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;unset' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;repo;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a repository: its name, canonical remote, target and protected branches')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the registered repositories')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One repository, with every gate key''s effective value and its source')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Unregister a repository that no task uses')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a gate key for this repository''s tasks: `KEY=VALUE`')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Drop a repository''s own value of a gate key (the environment''s applies again)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;repo;help;add' {
            break
        }
        'orch;repo;help;list' {
            break
        }
        'orch;repo;help;show' {
            break
        }
        'orch;repo;help;remove' {
            break
        }
        'orch;repo;help;set' {
            break
        }
        'orch;repo;help;unset' {
            break
        }
        'orch;repo;help;help' {
            break
        }
        'orch;run' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One run: command, outcome, evidence, protection, times and captured output')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;run;show' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;run;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One run: command, outcome, evidence, protection, times and captured output')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;run;help;show' {
            break
        }
        'orch;run;help;help' {
            break
        }
        'orch;task' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a task (default stage `created`)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One task with its whole history: transitions, gate events and holds, interleaved')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks')
            [CompletionResult]::new('hold', 'hold', [CompletionResultType]::ParameterValue, 'Put a task on HOLD: no stage change until a human releases it')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Lift a HOLD; clears the developer retries')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;task;add' {
            [CompletionResult]::new('--repo', '--repo', [CompletionResultType]::ParameterName, 'The registered repository (`orch repo add`): the lease scope and the merge-lock key')
            [CompletionResult]::new('--branch', '--branch', [CompletionResultType]::ParameterName, 'The task branch: a valid branch name, never the target or a protected branch')
            [CompletionResult]::new('--stage', '--stage', [CompletionResultType]::ParameterName, 'The stage to register it at; anything but `created` skips every gate before it and needs --force and --reason')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why the task skips the stages before --stage')
            [CompletionResult]::new('--actor', '--actor', [CompletionResultType]::ParameterName, 'Who registers it [default: $USER]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Register at a stage other than `created` (written to the history with its reason)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;task;show' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;task;list' {
            [CompletionResult]::new('--stage', '--stage', [CompletionResultType]::ParameterName, 'Only tasks at this stage')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;task;hold' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why a human must look at it')
            [CompletionResult]::new('--actor', '--actor', [CompletionResultType]::ParameterName, 'Who holds it [default: $USER]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;task;release' {
            [CompletionResult]::new('--actor', '--actor', [CompletionResultType]::ParameterName, 'Who releases it [default: $USER]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;task;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a task (default stage `created`)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One task with its whole history: transitions, gate events and holds, interleaved')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks')
            [CompletionResult]::new('hold', 'hold', [CompletionResultType]::ParameterValue, 'Put a task on HOLD: no stage change until a human releases it')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Lift a HOLD; clears the developer retries')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;task;help;add' {
            break
        }
        'orch;task;help;show' {
            break
        }
        'orch;task;help;list' {
            break
        }
        'orch;task;help;hold' {
            break
        }
        'orch;task;help;release' {
            break
        }
        'orch;task;help;help' {
            break
        }
        'orch;advance' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The stage to move it to')
            [CompletionResult]::new('--goal', '--goal', [CompletionResultType]::ParameterName, 'Walk on to this stage: after the move, this process runs the next gated forward edges (deploy-staging → deploy → done) until it is there or a step stops (red, HOLD, infra). Stored on the task: a re-queued edge keeps it and `advance --next` continues to it. A move without --goal clears a stored goal')
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'The stage this actor believes the task is at; the write lands only if it still is')
            [CompletionResult]::new('--actor', '--actor', [CompletionResultType]::ParameterName, 'Who is moving it (recorded in the history) [default: $USER; `cron` with --next]')
            [CompletionResult]::new('--event-id', '--event-id', [CompletionResultType]::ParameterName, 'The id of the event that asked for this move; a repeated id is processed once')
            [CompletionResult]::new('--validated-sha', '--validated-sha', [CompletionResultType]::ParameterName, 'The commit the pipeline validated (compared by the merge and image gates)')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why, for the history')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Run a re-queued edge now, before its due time')
            [CompletionResult]::new('--next', '--next', [CompletionResultType]::ParameterName, 'The cron driver: claim the task whose re-queued edge is due soonest and run that edge, then continue toward the task''s goal')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;merge-gate' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('retest', 'retest', [CompletionResultType]::ParameterValue, 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;merge-gate;retest' {
            [CompletionResult]::new('--actor', '--actor', [CompletionResultType]::ParameterName, 'Who runs it (recorded in the history) [default: $USER]')
            [CompletionResult]::new('--event-id', '--event-id', [CompletionResultType]::ParameterName, 'The id of the event that asked for it; a repeated id is processed once')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Run now even if the edge is re-queued and not due yet')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;merge-gate;help' {
            [CompletionResult]::new('retest', 'retest', [CompletionResultType]::ParameterValue, 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;merge-gate;help;retest' {
            break
        }
        'orch;merge-gate;help;help' {
            break
        }
        'orch;queue' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format (`--json` is the same as `--format json`)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;doctor' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;exec' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill the command''s process tree after D (`10`, `1.5`, `10s`, `500ms`, `2m`); 0 or absent: no deadline')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'How long the first signal has before SIGKILL [default: ORCH_KILL_GRACE_S, 20s]')
            [CompletionResult]::new('--signal', '--signal', [CompletionResultType]::ParameterName, 'The first signal sent at the deadline, INT or TERM [default: ORCH_KILL_SIGNAL, INT]')
            [CompletionResult]::new('--log', '--log', [CompletionResultType]::ParameterName, 'Also write the command''s output to FILE (created or truncated)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;demo' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;reap' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print what would be done; write nothing, signal nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'orch;help' {
            [CompletionResult]::new('repo', 'repo', [CompletionResultType]::ParameterValue, 'The operator''s registry of repositories: add, list, show, remove, set, unset')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'One gate run: command, outcome, evidence, protection, times, captured output')
            [CompletionResult]::new('task', 'task', [CompletionResultType]::ParameterValue, 'Register, inspect, hold and release tasks')
            [CompletionResult]::new('advance', 'advance', [CompletionResultType]::ParameterValue, 'Move one task along one edge: lease, the edge''s gates, CAS, history (with --goal, on to the goal)')
            [CompletionResult]::new('merge-gate', 'merge-gate', [CompletionResultType]::ParameterValue, 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'The read-only operator view; never writes')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Print the stage table, the gates and the effective config; check invariants')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command in its own process group with a deadline: a tree-safe timeout(1)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'A self-contained walk through the pipeline in a temporary directory, incidents included')
            [CompletionResult]::new('reap', 'reap', [CompletionResultType]::ParameterValue, 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'orch;help;repo' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a repository: its name, canonical remote, target and protected branches')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the registered repositories')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One repository, with every gate key''s effective value and its source')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Unregister a repository that no task uses')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a gate key for this repository''s tasks: `KEY=VALUE`')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Drop a repository''s own value of a gate key (the environment''s applies again)')
            break
        }
        'orch;help;repo;add' {
            break
        }
        'orch;help;repo;list' {
            break
        }
        'orch;help;repo;show' {
            break
        }
        'orch;help;repo;remove' {
            break
        }
        'orch;help;repo;set' {
            break
        }
        'orch;help;repo;unset' {
            break
        }
        'orch;help;run' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One run: command, outcome, evidence, protection, times and captured output')
            break
        }
        'orch;help;run;show' {
            break
        }
        'orch;help;task' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a task (default stage `created`)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'One task with its whole history: transitions, gate events and holds, interleaved')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks')
            [CompletionResult]::new('hold', 'hold', [CompletionResultType]::ParameterValue, 'Put a task on HOLD: no stage change until a human releases it')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Lift a HOLD; clears the developer retries')
            break
        }
        'orch;help;task;add' {
            break
        }
        'orch;help;task;show' {
            break
        }
        'orch;help;task;list' {
            break
        }
        'orch;help;task;hold' {
            break
        }
        'orch;help;task;release' {
            break
        }
        'orch;help;advance' {
            break
        }
        'orch;help;merge-gate' {
            [CompletionResult]::new('retest', 'retest', [CompletionResultType]::ParameterValue, 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`')
            break
        }
        'orch;help;merge-gate;retest' {
            break
        }
        'orch;help;queue' {
            break
        }
        'orch;help;doctor' {
            break
        }
        'orch;help;exec' {
            break
        }
        'orch;help;demo' {
            break
        }
        'orch;help;reap' {
            break
        }
        'orch;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
