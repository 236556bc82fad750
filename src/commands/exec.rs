//! `orch exec`: the process-group runner on its own — a tree-safe timeout(1) for any CI step.
//!
//! It keeps timeout(1)'s exit codes (the command's own status, 124 on timeout, 125 when orch
//! failed, 126 when the command cannot run, 127 when it is not found, 128+N when orch was
//! cancelled by signal N or the command died of a signal orch did not send) and its duration
//! syntax, and it never touches the database: no file is created.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use nix::libc;
use serde::Serialize;

use crate::config::KillSignal;
use crate::runner::{self, Echo, Evidence, ExitCodes, Input, RunOutcome, RunResult, RunSpec};
use crate::Context;

/// timeout(1)'s code for a command that ran out of time.
const TIMED_OUT: i32 = 124;
/// timeout(1)'s code for a failure of the wrapper itself.
const ORCH_FAILED: i32 = 125;
/// The command exists but cannot be executed.
const CANNOT_RUN: i32 = 126;
/// The command was not found.
const NOT_FOUND: i32 = 127;

/// The codes orch exec adds to the command's own, with their meanings (the man page's EXIT STATUS).
pub(crate) const EXIT_CODES: [(i32, &str); 4] = [
    (
        TIMED_OUT,
        "the command ran out of time; its whole process tree was killed",
    ),
    (ORCH_FAILED, "orch itself failed"),
    (CANNOT_RUN, "the command was found but cannot be executed"),
    (NOT_FOUND, "the command was not found"),
];

/// Run a command in its own process group with a deadline: a tree-safe timeout(1).
///
/// The whole process tree dies when the command ends — on timeout, on SIGINT/SIGTERM/SIGHUP to
/// orch, and after a normal exit too (processes it left behind are killed). Exit codes are those
/// of timeout(1): the command's own status, 124 on timeout, 125 when orch failed, 126 when the
/// command cannot run, 127 when it is not found, 128+N when orch was cancelled by signal N.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Kill the command's process tree after D (`10`, `1.5`, `10s`, `500ms`, `2m`); 0 or absent:
    /// no deadline.
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,

    /// How long the first signal has before SIGKILL [default: ORCH_KILL_GRACE_S, 20s].
    #[arg(long, value_name = "D")]
    pub grace: Option<String>,

    /// The first signal sent at the deadline, INT or TERM [default: ORCH_KILL_SIGNAL, INT].
    #[arg(long, value_name = "SIG")]
    pub signal: Option<String>,

    /// Also write the command's output to FILE (created or truncated).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// The `--json` document: how the command ended and what orch had to kill.
#[derive(Debug, Serialize)]
struct ExecReport<'a> {
    outcome: &'a str,
    exit_code: i32,
    exit_status: Option<i32>,
    signal: Option<i32>,
    wall_s: f64,
    timeout_s: Option<f64>,
    grace_s: f64,
    kill_signal: &'a str,
    tree_kill: bool,
    evidence: Option<&'a Evidence>,
    reason: Option<&'a str>,
    cancelled_by: Option<i32>,
    /// Processes killed when the command ended: group members still alive, plus descendants that
    /// had escaped the group.
    survivors_swept: u32,
    killed_in_group: u32,
    killed_escaped: u32,
    /// Pids the kernel would not let die within the bound (empty on every ordinary path).
    survivors: &'a [i32],
    command: &'a [String],
}

/// Runs `orch exec`; every failure of orch itself is exit 125, as with timeout(1).
pub(crate) fn run(ctx: &Context, args: ExecArgs) -> Result<i32> {
    match execute(ctx, &args) {
        Ok(code) => Ok(code),
        Err(err) => {
            let message = format!("{err:#}");
            if ctx.ui.json {
                let _ = ctx.ui.json(&serde_json::json!({
                    "error": message,
                    "exit_code": ORCH_FAILED,
                }));
            }
            eprintln!("orch: {message}");
            Ok(ORCH_FAILED)
        }
    }
}

fn execute(ctx: &Context, args: &ExecArgs) -> Result<i32> {
    let timeout = match &args.timeout {
        None => None,
        Some(raw) => Some(parse_duration(raw).map_err(|why| {
            anyhow!("--timeout {raw:?} {why} (hint: e.g. `10`, `1.5s`, `500ms`, `2m`)")
        })?)
        .filter(|d| !d.is_zero()),
    };
    let grace = match &args.grace {
        None => ctx.config.kill_grace,
        Some(raw) => parse_duration(raw).map_err(|why| {
            anyhow!("--grace {raw:?} {why} (hint: e.g. `10`, `1.5s`, `500ms`, `2m`)")
        })?,
    };
    let kill_signal = match &args.signal {
        None => ctx.config.kill_signal,
        Some(raw) => parse_signal(raw)
            .ok_or_else(|| anyhow!("--signal {raw:?} is not INT or TERM (hint: `--signal INT`)"))?,
    };
    let mut spec = RunSpec::from_config(&ctx.config, args.command.clone());
    spec.timeout = timeout;
    spec.grace = grace;
    spec.kill_signal = kill_signal;
    spec.log = args.log.clone();
    spec.echo = if ctx.ui.json {
        Echo::Stderr
    } else {
        Echo::Terminal
    };
    spec.stdin = Input::Inherit;
    spec.exit_codes = ExitCodes::Plain;

    let result = runner::run(None, &spec, None)?;
    let code = exit_code(&result);
    if ctx.ui.json {
        let (evidence, reason, cancelled_by) = match &result.outcome {
            RunOutcome::Timeout { evidence } => (Some(evidence), None, None),
            RunOutcome::Other { reason } => (None, Some(reason.as_str()), None),
            RunOutcome::Cancelled { signal } => (None, None, Some(*signal)),
            _ => (None, None, None),
        };
        ctx.ui.json(&ExecReport {
            outcome: result.outcome.name(),
            exit_code: code,
            exit_status: result.exit_status,
            signal: result.signal,
            wall_s: result.wall.as_secs_f64(),
            timeout_s: timeout.map(|t| t.as_secs_f64()),
            grace_s: grace.as_secs_f64(),
            kill_signal: signal_word(kill_signal),
            tree_kill: spec.tree_kill,
            evidence,
            reason,
            cancelled_by,
            survivors_swept: result.killed_in_group + result.killed_escaped,
            killed_in_group: result.killed_in_group,
            killed_escaped: result.killed_escaped,
            survivors: &result.survivors,
            command: &spec.argv,
        })?;
    } else {
        narrate(ctx, &spec, &result);
    }
    Ok(code)
}

/// A few lines on stderr for what the exit code alone does not say.
fn narrate(ctx: &Context, spec: &RunSpec, result: &RunResult) {
    // A timeout and a cancellation are failures: their line prints whatever `-q` says (cron
    // mails what a job prints, and `-q` silences success only).
    match &result.outcome {
        RunOutcome::Timeout { evidence } => eprintln!(
            "orch: `{}` timed out after {}; its process tree was killed ({evidence})",
            crate::ui::plain(&spec.display()),
            humantime::format_duration(spec.timeout.unwrap_or_default())
        ),
        RunOutcome::Cancelled { signal } => eprintln!(
            "orch: cancelled by {}; the process tree of `{}` was killed",
            signal_name(*signal),
            crate::ui::plain(&spec.display())
        ),
        // A command that cannot start is reported like timeout(1) does, whatever `-q` says.
        RunOutcome::Other { reason } if result.start_errno.is_some() => eprintln!("orch: {reason}"),
        _ => {}
    }
    let swept = result.killed_in_group + result.killed_escaped;
    if swept > 0 && ctx.ui.verbose > 0 {
        ctx.ui.note(format!(
            "orch: killed {swept} process(es) the command left behind ({} in its group, {} escaped)",
            result.killed_in_group, result.killed_escaped
        ));
    }
    if !result.survivors.is_empty() {
        eprintln!(
            "orch: warning: {} process(es) would not die: {:?} (hint: stuck in the kernel? see `ps -o pid,stat,wchan -p PID`)",
            result.survivors.len(),
            result.survivors
        );
    }
}

/// timeout(1)'s exit code for a result.
fn exit_code(result: &RunResult) -> i32 {
    match &result.outcome {
        RunOutcome::Timeout { .. } => TIMED_OUT,
        RunOutcome::Cancelled { signal } => 128 + signal,
        _ => match (result.start_errno, result.exit_status, result.signal) {
            (Some(libc::ENOENT), _, _) => NOT_FOUND,
            (Some(_), _, _) => CANNOT_RUN,
            (None, Some(code), _) => code,
            (None, None, Some(signal)) => 128 + signal,
            (None, None, None) => ORCH_FAILED,
        },
    }
}

/// timeout(1)'s durations — a number of seconds with an optional `s`, `m`, `h` or `d` suffix
/// (`10`, `1.5`, `2m`) — or a humantime value (`500ms`, `1m 30s`); at most
/// `config::MAX_DURATION` (7 days), like every configured duration, so no deadline overflows.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let parsed = parse_unbounded(raw)?;
    if parsed > crate::config::MAX_DURATION {
        return Err("is longer than the maximum 7 days (604800 s)".into());
    }
    Ok(parsed)
}

fn parse_unbounded(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.char_indices().last() {
        Some((i, 's')) => (&raw[..i], 1.0),
        Some((i, 'm')) => (&raw[..i], 60.0),
        Some((i, 'h')) => (&raw[..i], 3600.0),
        Some((i, 'd')) => (&raw[..i], 86400.0),
        _ => (raw, 1.0),
    };
    if let Ok(value) = number.parse::<f64>() {
        if !value.is_finite() || value < 0.0 {
            return Err("is not a non-negative duration".into());
        }
        return Duration::try_from_secs_f64(value * unit).map_err(|_| "is too large".into());
    }
    humantime::parse_duration(raw).map_err(|_| "is not a duration".into())
}

fn parse_signal(raw: &str) -> Option<KillSignal> {
    let upper = raw.trim().to_ascii_uppercase();
    match upper.trim_start_matches("SIG") {
        "INT" | "2" => Some(KillSignal::Int),
        "TERM" | "15" => Some(KillSignal::Term),
        _ => None,
    }
}

fn signal_word(signal: KillSignal) -> &'static str {
    match signal {
        KillSignal::Int => "INT",
        KillSignal::Term => "TERM",
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_timeout_and_humantime() {
        let secs = |raw: &str| parse_duration(raw).map(|d| d.as_secs_f64());
        assert_eq!(secs("10"), Ok(10.0));
        assert_eq!(secs("10s"), Ok(10.0));
        assert_eq!(secs("1.5"), Ok(1.5));
        assert_eq!(secs("1.5s"), Ok(1.5));
        assert_eq!(secs("2m"), Ok(120.0));
        assert_eq!(secs("0.5h"), Ok(1800.0));
        assert_eq!(secs("500ms"), Ok(0.5));
        assert_eq!(secs("1m 30s"), Ok(90.0));
        assert_eq!(secs("0"), Ok(0.0));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(secs("7d"), Ok(604_800.0));
        for huge in [
            "7.01d",
            "10000000000000000000",
            "1e19",
            "inf",
            "nan",
            "8d",
            "1000000h",
        ] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn signals_accept_names_with_or_without_sig_and_numbers() {
        assert_eq!(parse_signal("int"), Some(KillSignal::Int));
        assert_eq!(parse_signal("SIGTERM"), Some(KillSignal::Term));
        assert_eq!(parse_signal("15"), Some(KillSignal::Term));
        assert_eq!(parse_signal("KILL"), None);
    }
}
