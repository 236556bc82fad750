
use builtin;
use str;

set edit:completion:arg-completer[orch] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'orch'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'orch'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand repo 'The operator''s registry of repositories: add, list, show, remove, set, unset'
            cand run 'One gate run: command, outcome, evidence, protection, times, captured output'
            cand task 'Register, inspect, hold and release tasks'
            cand advance 'Move one task along one edge: lease, the edge''s gates, CAS, history (with --goal, on to the goal)'
            cand merge-gate 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`'
            cand queue 'The read-only operator view; never writes'
            cand doctor 'Print the stage table, the gates and the effective config; check invariants'
            cand exec 'Run a command in its own process group with a deadline: a tree-safe timeout(1)'
            cand demo 'A self-contained walk through the pipeline in a temporary directory, incidents included'
            cand reap 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;repo'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Register a repository: its name, canonical remote, target and protected branches'
            cand list 'List the registered repositories'
            cand show 'One repository, with every gate key''s effective value and its source'
            cand remove 'Unregister a repository that no task uses'
            cand set 'Set a gate key for this repository''s tasks: `KEY=VALUE`'
            cand unset 'Drop a repository''s own value of a gate key (the environment''s applies again)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;repo;add'= {
            cand --url 'The canonical remote: a forge URL or a bare repository''s path'
            cand --target 'The branch tasks merge into'
            cand --protect 'A branch no task may use or move (repeat for more)'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;list'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;show'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;remove'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;set'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;unset'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;repo;help'= {
            cand add 'Register a repository: its name, canonical remote, target and protected branches'
            cand list 'List the registered repositories'
            cand show 'One repository, with every gate key''s effective value and its source'
            cand remove 'Unregister a repository that no task uses'
            cand set 'Set a gate key for this repository''s tasks: `KEY=VALUE`'
            cand unset 'Drop a repository''s own value of a gate key (the environment''s applies again)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;repo;help;add'= {
        }
        &'orch;repo;help;list'= {
        }
        &'orch;repo;help;show'= {
        }
        &'orch;repo;help;remove'= {
        }
        &'orch;repo;help;set'= {
        }
        &'orch;repo;help;unset'= {
        }
        &'orch;repo;help;help'= {
        }
        &'orch;run'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'One run: command, outcome, evidence, protection, times and captured output'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;run;show'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;run;help'= {
            cand show 'One run: command, outcome, evidence, protection, times and captured output'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;run;help;show'= {
        }
        &'orch;run;help;help'= {
        }
        &'orch;task'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Register a task (default stage `created`)'
            cand show 'One task with its whole history: transitions, gate events and holds, interleaved'
            cand list 'List tasks'
            cand hold 'Put a task on HOLD: no stage change until a human releases it'
            cand release 'Lift a HOLD; clears the developer retries'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;task;add'= {
            cand --repo 'The registered repository (`orch repo add`): the lease scope and the merge-lock key'
            cand --branch 'The task branch: a valid branch name, never the target or a protected branch'
            cand --stage 'The stage to register it at; anything but `created` skips every gate before it and needs --force and --reason'
            cand --reason 'Why the task skips the stages before --stage'
            cand --actor 'Who registers it [default: $USER]'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --force 'Register at a stage other than `created` (written to the history with its reason)'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;task;show'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;task;list'= {
            cand --stage 'Only tasks at this stage'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;task;hold'= {
            cand --reason 'Why a human must look at it'
            cand --actor 'Who holds it [default: $USER]'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;task;release'= {
            cand --actor 'Who releases it [default: $USER]'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;task;help'= {
            cand add 'Register a task (default stage `created`)'
            cand show 'One task with its whole history: transitions, gate events and holds, interleaved'
            cand list 'List tasks'
            cand hold 'Put a task on HOLD: no stage change until a human releases it'
            cand release 'Lift a HOLD; clears the developer retries'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;task;help;add'= {
        }
        &'orch;task;help;show'= {
        }
        &'orch;task;help;list'= {
        }
        &'orch;task;help;hold'= {
        }
        &'orch;task;help;release'= {
        }
        &'orch;task;help;help'= {
        }
        &'orch;advance'= {
            cand --to 'The stage to move it to'
            cand --goal 'Walk on to this stage: after the move, this process runs the next gated forward edges (deploy-staging → deploy → done) until it is there or a step stops (red, HOLD, infra). Stored on the task: a re-queued edge keeps it and `advance --next` continues to it. A move without --goal clears a stored goal'
            cand --expect 'The stage this actor believes the task is at; the write lands only if it still is'
            cand --actor 'Who is moving it (recorded in the history) [default: $USER; `cron` with --next]'
            cand --event-id 'The id of the event that asked for this move; a repeated id is processed once'
            cand --validated-sha 'The commit the pipeline validated (compared by the merge and image gates)'
            cand --reason 'Why, for the history'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --force 'Run a re-queued edge now, before its due time'
            cand --next 'The cron driver: claim the task whose re-queued edge is due soonest and run that edge, then continue toward the task''s goal'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;merge-gate'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand retest 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;merge-gate;retest'= {
            cand --actor 'Who runs it (recorded in the history) [default: $USER]'
            cand --event-id 'The id of the event that asked for it; a repeated id is processed once'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --force 'Run now even if the edge is re-queued and not due yet'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;merge-gate;help'= {
            cand retest 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;merge-gate;help;retest'= {
        }
        &'orch;merge-gate;help;help'= {
        }
        &'orch;queue'= {
            cand --format 'Output format (`--json` is the same as `--format json`)'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;doctor'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;exec'= {
            cand --timeout 'Kill the command''s process tree after D (`10`, `1.5`, `10s`, `500ms`, `2m`); 0 or absent: no deadline'
            cand --grace 'How long the first signal has before SIGKILL [default: ORCH_KILL_GRACE_S, 20s]'
            cand --signal 'The first signal sent at the deadline, INT or TERM [default: ORCH_KILL_SIGNAL, INT]'
            cand --log 'Also write the command''s output to FILE (created or truncated)'
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;demo'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;reap'= {
            cand --db 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]'
            cand --dry-run 'Print what would be done; write nothing, signal nothing'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -q 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand --quiet 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
            cand -v 'Print more detail'
            cand --verbose 'Print more detail'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'orch;help'= {
            cand repo 'The operator''s registry of repositories: add, list, show, remove, set, unset'
            cand run 'One gate run: command, outcome, evidence, protection, times, captured output'
            cand task 'Register, inspect, hold and release tasks'
            cand advance 'Move one task along one edge: lease, the edge''s gates, CAS, history (with --goal, on to the goal)'
            cand merge-gate 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`'
            cand queue 'The read-only operator view; never writes'
            cand doctor 'Print the stage table, the gates and the effective config; check invariants'
            cand exec 'Run a command in its own process group with a deadline: a tree-safe timeout(1)'
            cand demo 'A self-contained walk through the pipeline in a temporary directory, incidents included'
            cand reap 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'orch;help;repo'= {
            cand add 'Register a repository: its name, canonical remote, target and protected branches'
            cand list 'List the registered repositories'
            cand show 'One repository, with every gate key''s effective value and its source'
            cand remove 'Unregister a repository that no task uses'
            cand set 'Set a gate key for this repository''s tasks: `KEY=VALUE`'
            cand unset 'Drop a repository''s own value of a gate key (the environment''s applies again)'
        }
        &'orch;help;repo;add'= {
        }
        &'orch;help;repo;list'= {
        }
        &'orch;help;repo;show'= {
        }
        &'orch;help;repo;remove'= {
        }
        &'orch;help;repo;set'= {
        }
        &'orch;help;repo;unset'= {
        }
        &'orch;help;run'= {
            cand show 'One run: command, outcome, evidence, protection, times and captured output'
        }
        &'orch;help;run;show'= {
        }
        &'orch;help;task'= {
            cand add 'Register a task (default stage `created`)'
            cand show 'One task with its whole history: transitions, gate events and holds, interleaved'
            cand list 'List tasks'
            cand hold 'Put a task on HOLD: no stage change until a human releases it'
            cand release 'Lift a HOLD; clears the developer retries'
        }
        &'orch;help;task;add'= {
        }
        &'orch;help;task;show'= {
        }
        &'orch;help;task;list'= {
        }
        &'orch;help;task;hold'= {
        }
        &'orch;help;task;release'= {
        }
        &'orch;help;advance'= {
        }
        &'orch;help;merge-gate'= {
            cand retest 'Rebase the task branch onto the target in a worktree of orch''s own and re-test it under the repository''s merge lock; a pass is stored and reused by `advance`'
        }
        &'orch;help;merge-gate;retest'= {
        }
        &'orch;help;queue'= {
        }
        &'orch;help;doctor'= {
        }
        &'orch;help;exec'= {
        }
        &'orch;help;demo'= {
        }
        &'orch;help;reap'= {
        }
        &'orch;help;help'= {
        }
    ]
    $completions[$command]
}
