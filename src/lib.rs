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

use clap::{CommandFactory, FromArgMatches};

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
///
/// A panic anywhere below is caught here: it prints one line, `orch: internal error: …`, and
/// exits 1 (125 for `orch exec`). While it unwinds, the runner's guard kills the run's process
/// group, so a panic still ends the step's tree (the release profile unwinds; never set
/// `panic = "abort"`).
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(err) => return clap_exit(err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return clap_exit(err),
    };
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    // `orch exec` keeps timeout(1)'s codes: a failure of orch itself is 125.
    let own_failure = if matches!(cli.command, cli::Command::Exec(_)) {
        125
    } else {
        Exit::Internal.code()
    };
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "orch: internal error: {}{at} (hint: please report it)",
            ui::plain(&what)
        );
    }));
    if ui.quiet && !ui.json {
        ui::hold_until_failure();
    }
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_command(cli, &matches, ui, own_failure)
    })) {
        Ok(code) => code,
        // The hook printed the one line.
        Err(_) => own_failure,
    };
    ui::release(code != 0);
    match ui::write_error() {
        // The output did not reach its reader: never report success then.
        Some(err) if code == 0 => {
            eprintln!("orch: cannot write the output to stdout: {err}");
            own_failure
        }
        _ => code,
    }
}

/// Gives up the leases and merge locks this process holds after a panic (best effort: the
/// process is failing already; a dead holder's rows are taken over anyway).
fn release_after_panic(db_path: &std::path::Path) {
    if !db_path.is_file() {
        return;
    }
    if let Ok(mut store) = store::Store::open_existing(db_path) {
        let _ = store.write(|db| db.release_own_holdings());
    }
}

/// clap's own output: help and version are success, a usage mistake is exit 2.
fn clap_exit(err: clap::Error) -> i32 {
    let _ = err.print();
    if err.use_stderr() {
        Exit::Usage.code()
    } else {
        0
    }
}

/// Loads the config, checks the edge (conflicting flags, the database), dispatches, and maps the
/// result to the exit-code contract.
fn run_command(cli: Cli, matches: &clap::ArgMatches, ui: Ui, own_failure: i32) -> i32 {
    let config = Config::from_env(cli.db.as_deref());
    for problem in &config.problems {
        eprintln!("orch: warning: {problem}");
    }
    // Once per command; `doctor` lists them among its problems instead.
    if !matches!(cli.command, cli::Command::Doctor(_)) {
        for unknown in &config.unknown {
            eprintln!("orch: warning: {unknown}");
        }
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
    let edge = match cli.output_conflict(matches) {
        Some(conflict) => Err(error::failure(Exit::Usage, conflict)),
        // Only `repo add` creates a database: a mistyped path is "not found", and nothing is
        // created (no file, no directory).
        None if cli.command.needs_database() => store::Store::require(&config.db_path),
        None => Ok(()),
    };
    // A step that is interrupted between gate runs stops at its next check (exit 13) instead of
    // dying with its lease held and a git child running.
    if edge.is_ok()
        && matches!(
            cli.command,
            cli::Command::Advance(_) | cli::Command::MergeGate(_) | cli::Command::Reap(_)
        )
    {
        cancel::install();
    }
    let ctx = Context { config, ui };
    let result = edge.and_then(|()| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cli::dispatch(&ctx, cli.command)
        })) {
            Ok(result) => result,
            Err(panic) => {
                // The hook printed the one line and the unwinding runner killed any run's tree;
                // what this process held in the database goes too, so the next step need not
                // wait for a take-over.
                release_after_panic(&ctx.config.db_path);
                std::panic::resume_unwind(panic)
            }
        }
    });
    match result {
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
            if exit == Exit::Internal {
                own_failure
            } else {
                exit.code()
            }
        }
    }
}
