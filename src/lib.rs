//! orch drives software-development tasks through a stage pipeline with quality gates.
//!
//! Each subcommand runs one step and exits; all of them share one SQLite file that holds the
//! durable per-task transition lease and the expected-stage-and-version compare-and-swap. Data
//! flows one way: command → engine (stage table, lease, gates) → store.

mod alerts;
mod cancel;
mod child;
mod cli;
mod commands;
pub mod completions;
pub mod config;
mod counter;
mod demo;
mod engine;
pub mod env_example;
pub mod error;
pub mod fault;
mod gates;
mod git;
pub mod host;
mod lease;
pub mod manpage;
mod merge_lock;
mod metrics;
mod names;
mod outcome;
mod owner;
mod queue;
mod reaper;
mod reclaim;
mod routing;
pub mod runner;
mod stages;
pub mod store;
mod ui;

use clap::Parser;

use crate::cli::Cli;
use crate::config::Config;
use crate::error::{exit_of, Exit};
use crate::ui::Ui;

/// Everything a command needs: the effective config and how to print.
pub struct Context {
    pub config: Config,
    pub ui: Ui,
}

/// Parses `args`, runs one command, prints its result, and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            };
        }
    };
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let config = Config::from_env(cli.db.as_deref());
    for problem in &config.problems {
        eprintln!("orch: warning: {problem}");
    }
    // `doctor` reports the invariants itself; `queue` and `exec` do not depend on them.
    if !matches!(
        cli.command,
        cli::Command::Doctor(_) | cli::Command::Queue(_) | cli::Command::Exec(_)
    ) {
        for violation in config.invariant_violations() {
            eprintln!("orch: warning: {violation}");
        }
    }
    // A step that is interrupted between gate runs stops at its next check (exit 13) instead of
    // dying with its lease held and a git child running.
    if matches!(
        cli.command,
        cli::Command::Advance(_) | cli::Command::MergeGate(_) | cli::Command::Reap(_)
    ) {
        cancel::install();
    }
    let ctx = Context { config, ui };
    // `orch exec` keeps timeout(1)'s codes: a failure of orch itself is 125.
    let own_failure = if matches!(cli.command, cli::Command::Exec(_)) {
        125
    } else {
        Exit::Internal.code()
    };
    let code = match cli::dispatch(&ctx, cli.command) {
        Ok(code) => code,
        Err(err) => {
            let exit = exit_of(&err);
            let message = match exit {
                Exit::Internal => format!("{err:#}"),
                _ => err.to_string(),
            };
            if ui.json {
                // One compact JSON document on stdout and nothing else: a loser of a race prints
                // exactly one line in either mode.
                let doc = serde_json::json!({ "error": message, "exit_code": exit.code() });
                ui.line(doc.to_string());
            } else {
                // A message may embed a reason, a suite's output line or a name: one line, and
                // nothing in it reaches the terminal as a control sequence.
                eprintln!("orch: {}", ui::plain(&message));
            }
            exit.code()
        }
    };
    match ui::write_error() {
        // The output did not reach its reader: never report success then.
        Some(err) if code == 0 => {
            eprintln!("orch: cannot write the output to stdout: {err}");
            own_failure
        }
        _ => code,
    }
}
