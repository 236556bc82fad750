//! The command line: global flags and the subcommands, as clap definitions.
//!
//! The man pages and shell completions are generated from these definitions.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands::{advance, demo, doctor, exec, merge_gate, queue, reap, repo, run, task};
use crate::Context;

/// Drive coding-agent tasks through a stage pipeline with quality gates.
///
/// Every subcommand runs one step and exits. All of them share one SQLite file that holds a
/// durable per-task transition lease and an expected-stage compare-and-swap, so a cron job, a CI
/// step and an operator racing on one task never contradict each other.
#[derive(Debug, Parser)]
#[command(name = "orch", version, about, long_about, propagate_version = true)]
pub(crate) struct Cli {
    /// The database file [env: ORCH_DB_PATH; default: $XDG_STATE_HOME/orch/orch.db].
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing when the command succeeds (exit 0); errors, warnings and the output of a
    /// command that fails still print. `--json` still prints its document.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The operator's registry of repositories: add, list, show, remove, set, unset.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// One gate run: command, outcome, evidence, protection, times, captured output.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Register, inspect, hold and release tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Move one task along one edge: lease, the edge's gates, CAS, history (with --goal, on to
    /// the goal).
    Advance(advance::AdvanceArgs),
    /// The merge sub-gate on its own (a CI step may run it); its pass is reused by `advance`.
    #[command(subcommand)]
    MergeGate(merge_gate::MergeGateCommand),
    /// The read-only operator view; never writes.
    Queue(queue::QueueArgs),
    /// Print the stage table, the gates and the effective config; check invariants.
    Doctor(doctor::DoctorArgs),
    /// Run a command in its own process group with a deadline: a tree-safe timeout(1).
    Exec(exec::ExecArgs),
    /// A self-contained walk through the pipeline in a temporary directory, incidents included.
    Demo(demo::DemoArgs),
    /// The cron job: finish runs of dead owners, kill orphaned process groups, drop dead leases
    /// and merge locks, re-deliver alerts, remove stale gate worktrees, prune old rows.
    Reap(reap::ReapArgs),
}

impl Command {
    /// Whether the command works on an existing database: every command but `repo add` (the one
    /// that creates it), `exec` and `demo` (which never touch it) and `doctor` (which reports a
    /// missing one among its problems).
    pub(crate) fn needs_database(&self) -> bool {
        !matches!(
            self,
            Command::Repo(repo::RepoCommand::Add(_))
                | Command::Exec(_)
                | Command::Demo(_)
                | Command::Doctor(_)
        )
    }
}

impl Cli {
    /// Two output flags that ask for different things (`--json` with `queue --format
    /// prometheus`): a usage error, never one of them silently. `matches` are the parsed
    /// arguments, to tell a `--format` given from its default.
    pub(crate) fn output_conflict(&self, matches: &clap::ArgMatches) -> Option<String> {
        let given = |sub: &str, arg: &str| {
            matches
                .subcommand_matches(sub)
                .and_then(|m| m.value_source(arg))
                == Some(clap::parser::ValueSource::CommandLine)
        };
        match &self.command {
            Command::Queue(args)
                if self.json && args.format != queue::Format::Json && given("queue", "format") =>
            {
                Some(format!(
                    "--json conflicts with `--format {}` (hint: use one of them; `--json` is `--format json`)",
                    clap::ValueEnum::to_possible_value(&args.format)
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default()
                ))
            }
            _ => None,
        }
    }
}

/// Runs one subcommand; returns the process exit code for outcomes that are not failures.
pub(crate) fn dispatch(ctx: &Context, command: Command) -> Result<i32> {
    match command {
        Command::Task(cmd) => task::run(ctx, cmd).map(|e| e.code()),
        Command::Advance(args) => advance::run(ctx, args).map(|e| e.code()),
        Command::Queue(args) => queue::run(ctx, args).map(|e| e.code()),
        Command::Doctor(args) => doctor::run(ctx, args).map(|e| e.code()),
        Command::MergeGate(cmd) => merge_gate::run(ctx, cmd).map(|e| e.code()),
        Command::Exec(args) => exec::run(ctx, args),
        Command::Demo(args) => demo::run(ctx, args).map(|e| e.code()),
        Command::Reap(args) => reap::run(ctx, args).map(|e| e.code()),
        Command::Repo(cmd) => repo::run(ctx, cmd).map(|e| e.code()),
        Command::Run(cmd) => run::run(ctx, cmd).map(|e| e.code()),
    }
}
