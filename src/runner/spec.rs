//! What to run and under which rules: the command, its deadline, how it is killed, where its
//! output goes, how its exit status is read, and whether the run is tracked in `runs`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, KillSignal};

/// Where the command's output is echoed live while it runs (it is captured either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// The command's stdout to orch's stdout, its stderr to orch's stderr.
    Terminal,
    /// Both to orch's stderr: orch's stdout is reserved for one JSON document (`--json`).
    Stderr,
    /// Nowhere (captured and logged only).
    Silent,
    /// For a person watching a long gate: on a terminal, one status line on stderr (the label,
    /// elapsed time against the timeout, the last output line) redrawn in place; without a
    /// terminal, every output line on stderr behind a timestamp and the label.
    Progress,
}

/// The command's stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`: a gate never waits on a terminal.
    Null,
    /// orch's own stdin (`orch exec`, like timeout(1)).
    Inherit,
}

/// How an exit status that orch did not cause is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCodes {
    /// pytest's codes: 0 passed; 1 (tests failed) and 5 (no tests collected) red; 2, 3, 4, 6 and
    /// anything else other — "unknown is other, never red".
    Pytest,
    /// Any command: 0 passed, anything else red.
    Plain,
}

/// A gate run recorded in `runs` and counted against `ORCH_MAX_CONCURRENT_RUNS`.
#[derive(Clone, Debug)]
pub struct Track {
    pub task_id: Option<String>,
    pub gate: String,
    /// Tracked runs alive on this host (for this database) at most, this one included; 0 means
    /// no limit.
    pub max_concurrent: u32,
    /// The edge's budget key, recorded on the run so that a reaper spends the same budget.
    pub budget_tip: Option<String>,
    pub published_tip: Option<String>,
}

impl Track {
    /// A tracked run of `gate` for `task_id`, limited by `ORCH_MAX_CONCURRENT_RUNS`.
    pub fn gate(config: &Config, gate: &str, task_id: Option<&str>) -> Track {
        Track {
            task_id: task_id.map(String::from),
            gate: gate.to_string(),
            max_concurrent: config.max_concurrent_runs,
            budget_tip: None,
            published_tip: None,
        }
    }
}

/// Whether the command's writes are confined (the agent's code is; the operator's merge and
/// alert commands and `orch exec` are not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sandboxing {
    /// Not the agent's code: no confinement, nothing recorded.
    Unconfined,
    /// The agent's code, with the sandbox turned off (`ORCH_GATE_SANDBOX=off`): recorded so.
    Off,
    /// The agent's code: writes granted beneath these paths only (Landlock where the kernel has
    /// it; recorded either way).
    Confine(Vec<PathBuf>),
}

/// One command to run through the process-group runner.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The program and its arguments; a configured command string goes through `RunSpec::shell`.
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Added to (or replacing in) orch's own environment — or, with `clean_env`, the whole
    /// environment.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of orch's (the agent's code gets only `env`).
    pub clean_env: bool,
    pub sandboxing: Sandboxing,
    /// No deadline when `None`; the tree is killed at the end all the same.
    pub timeout: Option<Duration>,
    /// How long the first signal has before SIGKILL.
    pub grace: Duration,
    pub kill_signal: KillSignal,
    /// `ORCH_SUBPROCESS_TREE_KILL_ENABLED`: false is the old behaviour (kill the direct child only).
    pub tree_kill: bool,
    /// Bytes of output kept in the result and the database (head + tail).
    pub output_cap: u64,
    /// A file that receives the whole output, created or truncated.
    pub log: Option<PathBuf>,
    pub echo: Echo,
    /// What `Echo::Progress` calls the run (a gate's name).
    pub label: Option<String>,
    pub stdin: Input,
    pub exit_codes: ExitCodes,
    pub track: Option<Track>,
}

impl RunSpec {
    /// `argv` with the runner keys of `config` (grace, first signal, tree kill, output cap); no
    /// deadline, untracked, output echoed to the terminal, stdin from `/dev/null`, pytest's exit
    /// codes.
    pub fn from_config(config: &Config, argv: Vec<String>) -> RunSpec {
        RunSpec {
            argv,
            cwd: None,
            env: Vec::new(),
            clean_env: false,
            sandboxing: Sandboxing::Unconfined,
            timeout: None,
            grace: config.kill_grace,
            kill_signal: config.kill_signal,
            tree_kill: config.tree_kill_enabled,
            output_cap: config.output_cap_bytes,
            log: None,
            echo: Echo::Terminal,
            label: None,
            stdin: Input::Null,
            exit_codes: ExitCodes::Pytest,
            track: None,
        }
    }

    /// A configured command string (`python3 -m pytest -q`), run as `sh -c CMD`.
    pub fn shell(config: &Config, command: &str) -> RunSpec {
        RunSpec::from_config(config, shell_argv(command))
    }

    /// The command as one line a person can paste into a shell.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `["sh", "-c", command]`.
pub fn shell_argv(command: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), command.into()]
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_displays_as_pasteable_shell() {
        let config = Config::load(&|_| None, None);
        let spec = RunSpec::shell(&config, "python3 -m pytest -q 'a b'");
        assert_eq!(
            spec.display(),
            r#"sh -c 'python3 -m pytest -q '\''a b'\'''"#
        );
        assert_eq!(spec.grace, Duration::from_secs(20));
        assert!(spec.tree_kill);
    }
}
