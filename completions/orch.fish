# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_orch_global_optspecs
    string join \n db= json q/quiet v/verbose h/help V/version
end

function __fish_orch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_orch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_orch_using_subcommand
    set -l cmd (__fish_orch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c orch -n "__fish_orch_needs_command" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_needs_command" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_needs_command" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_needs_command" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c orch -n "__fish_orch_needs_command" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_needs_command" -f -a "repo" -d 'The operator\'s registry of repositories: add, list, show, remove, set, unset'
complete -c orch -n "__fish_orch_needs_command" -f -a "run" -d 'One gate run: command, outcome, evidence, protection, times, captured output'
complete -c orch -n "__fish_orch_needs_command" -f -a "task" -d 'Register, inspect, hold and release tasks'
complete -c orch -n "__fish_orch_needs_command" -f -a "advance" -d 'Move one task along one edge: lease, the edge\'s gates, CAS, history (with --goal, on to the goal)'
complete -c orch -n "__fish_orch_needs_command" -f -a "merge-gate" -d 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`'
complete -c orch -n "__fish_orch_needs_command" -f -a "queue" -d 'The read-only operator view; never writes'
complete -c orch -n "__fish_orch_needs_command" -f -a "doctor" -d 'Print the stage table, the gates and the effective config; check invariants'
complete -c orch -n "__fish_orch_needs_command" -f -a "exec" -d 'Run a command in its own process group with a deadline: a tree-safe timeout(1)'
complete -c orch -n "__fish_orch_needs_command" -f -a "demo" -d 'A self-contained walk through the pipeline in a temporary directory, incidents included'
complete -c orch -n "__fish_orch_needs_command" -f -a "reap" -d 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows'
complete -c orch -n "__fish_orch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "add" -d 'Register a repository: its name, canonical remote, target and protected branches'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "list" -d 'List the registered repositories'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "show" -d 'One repository, with every gate key\'s effective value and its source'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "remove" -d 'Unregister a repository that no task uses'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "set" -d 'Set a gate key for this repository\'s tasks: `KEY=VALUE`'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "unset" -d 'Drop a repository\'s own value of a gate key (the environment\'s applies again)'
complete -c orch -n "__fish_orch_using_subcommand repo; and not __fish_seen_subcommand_from add list show remove set unset help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -l url -d 'The canonical remote: a forge URL or a bare repository\'s path' -r
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -l target -d 'The branch tasks merge into' -r
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -l protect -d 'A branch no task may use or move (repeat for more)' -r
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from unset" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "add" -d 'Register a repository: its name, canonical remote, target and protected branches'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the registered repositories'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "show" -d 'One repository, with every gate key\'s effective value and its source'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Unregister a repository that no task uses'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a gate key for this repository\'s tasks: `KEY=VALUE`'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "unset" -d 'Drop a repository\'s own value of a gate key (the environment\'s applies again)'
complete -c orch -n "__fish_orch_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'One run: command, outcome, evidence, protection, times and captured output'
complete -c orch -n "__fish_orch_using_subcommand run; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from help" -f -a "show" -d 'One run: command, outcome, evidence, protection, times and captured output'
complete -c orch -n "__fish_orch_using_subcommand run; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "add" -d 'Register a task (default stage `created`)'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "show" -d 'One task with its whole history: transitions, gate events and holds, interleaved'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "list" -d 'List tasks'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "hold" -d 'Put a task on HOLD: no stage change until a human releases it'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "release" -d 'Lift a HOLD; clears the developer retries'
complete -c orch -n "__fish_orch_using_subcommand task; and not __fish_seen_subcommand_from add show list hold release help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l repo -d 'The registered repository (`orch repo add`): the lease scope and the merge-lock key' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l branch -d 'The task branch: a valid branch name, never the target or a protected branch' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l stage -d 'The stage to register it at; anything but `created` skips every gate before it and needs --force and --reason' -r -f -a "created\t''
analysis\t''
architecture\t''
development\t''
review\t''
testing\t''
deploy-staging\t''
deploy\t''
done\t''
cancelled\t''"
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l reason -d 'Why the task skips the stages before --stage' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l actor -d 'Who registers it [default: $USER]' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l force -d 'Register at a stage other than `created` (written to the history with its reason)'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -l stage -d 'Only tasks at this stage' -r -f -a "created\t''
analysis\t''
architecture\t''
development\t''
review\t''
testing\t''
deploy-staging\t''
deploy\t''
done\t''
cancelled\t''"
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -l reason -d 'Why a human must look at it' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -l actor -d 'Who holds it [default: $USER]' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from hold" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -l actor -d 'Who releases it [default: $USER]' -r
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from release" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "add" -d 'Register a task (default stage `created`)'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "show" -d 'One task with its whole history: transitions, gate events and holds, interleaved'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tasks'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "hold" -d 'Put a task on HOLD: no stage change until a human releases it'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "release" -d 'Lift a HOLD; clears the developer retries'
complete -c orch -n "__fish_orch_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand advance" -l to -d 'The stage to move it to' -r -f -a "created\t''
analysis\t''
architecture\t''
development\t''
review\t''
testing\t''
deploy-staging\t''
deploy\t''
done\t''
cancelled\t''"
complete -c orch -n "__fish_orch_using_subcommand advance" -l goal -d 'Walk on to this stage: after the move, this process runs the next gated forward edges (deploy-staging → deploy → done) until it is there or a step stops (red, HOLD, infra). Stored on the task: a re-queued edge keeps it and `advance --next` continues to it. A move without --goal clears a stored goal' -r -f -a "deploy\t''
done\t''"
complete -c orch -n "__fish_orch_using_subcommand advance" -l expect -d 'The stage this actor believes the task is at; the write lands only if it still is' -r -f -a "created\t''
analysis\t''
architecture\t''
development\t''
review\t''
testing\t''
deploy-staging\t''
deploy\t''
done\t''
cancelled\t''"
complete -c orch -n "__fish_orch_using_subcommand advance" -l actor -d 'Who is moving it (recorded in the history) [default: $USER; `cron` with --next]' -r
complete -c orch -n "__fish_orch_using_subcommand advance" -l event-id -d 'The id of the event that asked for this move; a repeated id is processed once' -r
complete -c orch -n "__fish_orch_using_subcommand advance" -l validated-sha -d 'The commit the pipeline validated (compared by the merge and image gates)' -r
complete -c orch -n "__fish_orch_using_subcommand advance" -l reason -d 'Why, for the history' -r
complete -c orch -n "__fish_orch_using_subcommand advance" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand advance" -l force -d 'Run a re-queued edge now, before its due time'
complete -c orch -n "__fish_orch_using_subcommand advance" -l next -d 'The cron driver: claim the task whose re-queued edge is due soonest and run that edge, then continue toward the task\'s goal'
complete -c orch -n "__fish_orch_using_subcommand advance" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand advance" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand advance" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand advance" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand advance" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -f -a "retest" -d 'Rebase the task branch onto the target in a worktree of orch\'s own and re-test it under the repository\'s merge lock; a pass is stored and reused by `advance`'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and not __fish_seen_subcommand_from retest help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -l actor -d 'Who runs it (recorded in the history) [default: $USER]' -r
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -l event-id -d 'The id of the event that asked for it; a repeated id is processed once' -r
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -l force -d 'Run now even if the edge is re-queued and not due yet'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from retest" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from help" -f -a "retest" -d 'Rebase the task branch onto the target in a worktree of orch\'s own and re-test it under the repository\'s merge lock; a pass is stored and reused by `advance`'
complete -c orch -n "__fish_orch_using_subcommand merge-gate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand queue" -l format -d 'Output format (`--json` is the same as `--format json`)' -r -f -a "text\t'Short aligned text'
json\t'One JSON document (the same as `--json`)'
prometheus\t'The Prometheus text format, for node_exporter\'s textfile collector'
openmetrics\t'OpenMetrics text, ending in `# EOF`'"
complete -c orch -n "__fish_orch_using_subcommand queue" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand queue" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand queue" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand queue" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand queue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c orch -n "__fish_orch_using_subcommand queue" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand doctor" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand doctor" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand doctor" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand doctor" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand exec" -l timeout -d 'Kill the command\'s process tree after D (`10`, `1.5`, `10s`, `500ms`, `2m`); 0 or absent: no deadline' -r
complete -c orch -n "__fish_orch_using_subcommand exec" -l grace -d 'How long the first signal has before SIGKILL [default: ORCH_KILL_GRACE_S, 20s]' -r
complete -c orch -n "__fish_orch_using_subcommand exec" -l signal -d 'The first signal sent at the deadline, INT or TERM [default: ORCH_KILL_SIGNAL, INT]' -r
complete -c orch -n "__fish_orch_using_subcommand exec" -l log -d 'Also write the command\'s output to FILE (created or truncated)' -r -F
complete -c orch -n "__fish_orch_using_subcommand exec" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand exec" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand exec" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand exec" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand exec" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand exec" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand demo" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand demo" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand demo" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand demo" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand demo" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand demo" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand reap" -l db -d 'The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db]' -r -F
complete -c orch -n "__fish_orch_using_subcommand reap" -l dry-run -d 'Print what would be done; write nothing, signal nothing'
complete -c orch -n "__fish_orch_using_subcommand reap" -l json -d 'Print one JSON document on stdout instead of text'
complete -c orch -n "__fish_orch_using_subcommand reap" -s q -l quiet -d 'Print nothing when the command succeeds (exit 0); errors, warnings and the output of a command that fails still print. `--json` still prints its document'
complete -c orch -n "__fish_orch_using_subcommand reap" -s v -l verbose -d 'Print more detail'
complete -c orch -n "__fish_orch_using_subcommand reap" -s h -l help -d 'Print help'
complete -c orch -n "__fish_orch_using_subcommand reap" -s V -l version -d 'Print version'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "repo" -d 'The operator\'s registry of repositories: add, list, show, remove, set, unset'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "run" -d 'One gate run: command, outcome, evidence, protection, times, captured output'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "task" -d 'Register, inspect, hold and release tasks'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "advance" -d 'Move one task along one edge: lease, the edge\'s gates, CAS, history (with --goal, on to the goal)'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "merge-gate" -d 'The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "queue" -d 'The read-only operator view; never writes'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "doctor" -d 'Print the stage table, the gates and the effective config; check invariants'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "exec" -d 'Run a command in its own process group with a deadline: a tree-safe timeout(1)'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "demo" -d 'A self-contained walk through the pipeline in a temporary directory, incidents included'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "reap" -d 'The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows'
complete -c orch -n "__fish_orch_using_subcommand help; and not __fish_seen_subcommand_from repo run task advance merge-gate queue doctor exec demo reap help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "add" -d 'Register a repository: its name, canonical remote, target and protected branches'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "list" -d 'List the registered repositories'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "show" -d 'One repository, with every gate key\'s effective value and its source'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "remove" -d 'Unregister a repository that no task uses'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "set" -d 'Set a gate key for this repository\'s tasks: `KEY=VALUE`'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "unset" -d 'Drop a repository\'s own value of a gate key (the environment\'s applies again)'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from run" -f -a "show" -d 'One run: command, outcome, evidence, protection, times and captured output'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "add" -d 'Register a task (default stage `created`)'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "show" -d 'One task with its whole history: transitions, gate events and holds, interleaved'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "list" -d 'List tasks'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "hold" -d 'Put a task on HOLD: no stage change until a human releases it'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "release" -d 'Lift a HOLD; clears the developer retries'
complete -c orch -n "__fish_orch_using_subcommand help; and __fish_seen_subcommand_from merge-gate" -f -a "retest" -d 'Rebase the task branch onto the target in a worktree of orch\'s own and re-test it under the repository\'s merge lock; a pass is stored and reused by `advance`'
