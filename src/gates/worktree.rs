//! Where gates work, and how gate commands run.
//!
//! orch's git steps (the rebase) run in a detached worktree of orch's own mirror, under the state
//! directory; no gate command ever sees it. Every gate command — the agent's code — runs in a
//! throwaway clone of the commit it judges (`with_clone`): its own `.git`, no remote, outside the
//! state directory, removed when the gate ends; nothing the suite writes reaches the mirror. The
//! command runs through the process-group runner with the lease renewed while it runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{GateCx, GateKind, GateResult, InfraKind, Verdict};
use crate::config::Config;
use crate::git::{Mirror, Repo};
use crate::host;
use crate::merge_lock;
use crate::runner::{self, Echo, ExitCodes, RunResult, RunSpec, Sandboxing, Track};

/// Where orch keeps its own gate worktrees: in the state directory, beside the database.
pub(crate) fn worktrees_dir(config: &Config) -> PathBuf {
    config.state_dir().join("worktrees")
}

/// The prefix of a gate's throwaway clone in the temporary directory.
const CLONE_PREFIX: &str = "orch-gate-";

/// The prefix of this database's gate clones in the temporary directory: `orch-gate-<key>-`,
/// the key a hash of the database's place, so that a reaper prunes only the clones of the
/// database it reaps — never another database's (another user's, another test's) that share the
/// temporary directory.
pub(crate) fn clone_prefix(config: &Config) -> String {
    let place = std::fs::canonicalize(&config.db_path).unwrap_or_else(|_| config.db_path.clone());
    let mut hash: u32 = 0x811c_9dc5;
    for byte in place.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{CLONE_PREFIX}{hash:08x}-")
}

/// orch's mirror of the task's repository.
pub(crate) fn mirror(cx: &GateCx) -> Result<Mirror> {
    Mirror::open(&cx.config.state_dir(), &cx.repo.name)
}

/// A task id as a piece of a file name.
fn safe_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A directory name for one gate's working copy: `<task>-<orch pid>-<gate>-<wall ms>` (the
/// reaper reads the pid and time back to find stale ones).
fn work_name(cx: &GateCx, gate: GateKind) -> String {
    format!(
        "{}-{}-{}-{}",
        safe_id(&cx.task.id),
        std::process::id(),
        gate.name(),
        host::wall_ms()
    )
}

fn infra(gate: GateKind, reason: String) -> GateResult {
    GateResult::new(
        gate,
        Verdict::Infra {
            kind: InfraKind::Other,
            reason,
        },
    )
}

/// Runs `f` in a fresh detached worktree of orch's mirror at `commit` (orch's own git steps
/// only); removes it afterwards, whatever happened.
pub(crate) fn with_worktree(
    cx: &mut GateCx,
    gate: GateKind,
    commit: &str,
    f: impl FnOnce(&mut GateCx, &Repo) -> Result<GateResult>,
) -> Result<GateResult> {
    let mirror = mirror(cx)?;
    let dir = worktrees_dir(cx.config);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let path = dir.join(work_name(cx, gate));
    let worktree = match mirror.repo.add_detached_worktree(&path, commit) {
        Ok(w) => w,
        Err(e) => {
            return Ok(infra(
                gate,
                format!("creating the gate worktree failed: {e:#}"),
            ))
        }
    };
    let _removed = Removed::Worktree {
        state_dir: cx.config.state_dir(),
        repo: cx.repo.name.clone(),
        path,
    };
    f(cx, &worktree)
}

/// What a gate made on disk, removed when the gate ends — on every path, a panic included.
enum Removed {
    /// A worktree of orch's mirror, removed through the mirror opened again (whatever ran
    /// meanwhile gets no say in how it is removed).
    Worktree {
        state_dir: PathBuf,
        repo: String,
        path: PathBuf,
    },
    /// A directory of its own (a throwaway clone, an empty directory).
    Dir(PathBuf),
}

impl Drop for Removed {
    fn drop(&mut self) {
        match self {
            Removed::Worktree {
                state_dir,
                repo,
                path,
            } => match Mirror::open(state_dir, repo) {
                Ok(mirror) => {
                    let _ = mirror.repo.remove_worktree(path);
                }
                Err(_) => {
                    let _ = std::fs::remove_dir_all(path);
                }
            },
            Removed::Dir(path) => {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

/// Runs `f` in a throwaway clone of `commit` outside the state directory (what a gate command
/// runs in); removes it afterwards, whatever happened.
pub(crate) fn with_clone(
    cx: &mut GateCx,
    gate: GateKind,
    commit: &str,
    f: impl FnOnce(&mut GateCx, &Repo) -> Result<GateResult>,
) -> Result<GateResult> {
    let mirror = mirror(cx)?;
    let path = std::env::temp_dir().join(format!(
        "{}{}",
        clone_prefix(cx.config),
        work_name(cx, gate)
    ));
    let clone = match mirror.clone_at(&path, commit) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&path);
            return Ok(infra(
                gate,
                format!("cloning {commit} for the gate failed: {e:#}"),
            ));
        }
    };
    let _removed = Removed::Dir(path);
    f(cx, &clone)
}

/// Runs `f` in a fresh empty directory (a command that needs no working copy: the image
/// freshness check; the operator's merge command, under the state directory); removes it
/// afterwards.
pub(crate) fn with_empty_dir(
    cx: &mut GateCx,
    gate: GateKind,
    under_state: bool,
    f: impl FnOnce(&mut GateCx, &Path) -> Result<GateResult>,
) -> Result<GateResult> {
    let parent = if under_state {
        worktrees_dir(cx.config)
    } else {
        std::env::temp_dir()
    };
    let prefix = if under_state {
        String::new()
    } else {
        clone_prefix(cx.config)
    };
    let dir = parent.join(format!("{prefix}{}", work_name(cx, gate)));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let _removed = Removed::Dir(dir.clone());
    f(cx, &dir)
}

/// A gate command to run.
pub(crate) struct GateCommand<'a> {
    pub gate: GateKind,
    pub command: &'a str,
    pub timeout: Duration,
    pub cwd: &'a Path,
    pub extra_env: Vec<(String, String)>,
    pub exit_codes: ExitCodes,
    /// The repository whose merge lock is held and renewed with the lease during the run.
    pub merge_lock: Option<&'a str>,
}

/// Runs a gate command through the process-group runner, tracked in `runs`, the lease (and the
/// merge lock) renewed every `ORCH_TRANSITION_LEASE_RENEW_S`.
pub(crate) fn run_gate_command(cx: &mut GateCx, cmd: GateCommand) -> Result<RunResult> {
    let config = cx.config;
    let mut spec = RunSpec::shell(config, cmd.command);
    spec.cwd = Some(cmd.cwd.to_path_buf());
    spec.timeout = Some(cmd.timeout);
    spec.exit_codes = cmd.exit_codes;
    // Where a person watches, a status line (or timestamped lines in a log); `-q` silences it.
    spec.echo = if cx.ui.quiet {
        Echo::Silent
    } else {
        Echo::Progress
    };
    spec.label = Some(format!("{} {}", cmd.gate.name(), cx.task.id));
    // Every gate but merge-verify runs the agent's code (or judges it): a fresh environment, a
    // TMPDIR of its own, and writes confined to its working copy and that TMPDIR.
    let agent_code = cmd.gate != GateKind::MergeVerify;
    let tmpdir = agent_code
        .then(|| -> Result<PathBuf> {
            let dir = std::env::temp_dir().join(format!(
                "{}{}-{}-{}-tmp-{}",
                clone_prefix(cx.config),
                safe_id(&cx.task.id),
                std::process::id(),
                cmd.gate.name(),
                host::wall_ms()
            ));
            std::fs::create_dir(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
            Ok(dir)
        })
        .transpose()?;
    if let Some(tmp) = &tmpdir {
        spec.clean_env = true;
        spec.env = crate::config::gate_env(config.gate_env_pass.as_deref())
            .into_iter()
            .chain([("TMPDIR".to_string(), tmp.display().to_string())])
            .collect();
        spec.sandboxing = match config.gate_sandbox {
            crate::config::GateSandbox::Off => Sandboxing::Off,
            crate::config::GateSandbox::Auto => {
                let mut writable = vec![cmd.cwd.to_path_buf(), tmp.clone()];
                writable.extend(config.gate_writable_paths());
                writable.extend(runner::device_paths());
                Sandboxing::Confine(writable)
            }
        };
    }
    let mut track = Track::gate(config, cmd.gate.name(), Some(&cx.task.id));
    let budget = cx.budget_key();
    track.budget_tip = cx.base_tip.is_some().then_some(budget.tip);
    track.published_tip = budget.published;
    spec.track = Some(track);
    let task = &cx.task;
    spec.env.extend([
        ("ORCH_TASK_ID".into(), task.id.clone()),
        ("ORCH_BRANCH".into(), task.branch.clone()),
        ("ORCH_TARGET".into(), task.target.clone()),
        ("ORCH_REPO".into(), cx.repo.name.clone()),
        ("ORCH_REPO_URL".into(), cx.repo.url.clone()),
    ]);
    spec.env.extend(cmd.extra_env);
    cx.ui.note(format!(
        "gate {}: {}: running `{}` (timeout {}s)",
        cmd.gate.name(),
        task.id,
        cmd.command,
        cmd.timeout.as_secs()
    ));
    let lease = cx.lease.clone();
    let ttl = config.lease_ttl;
    let lock = cmd.merge_lock.map(str::to_string);
    let mut heartbeat = |store: &mut crate::store::Store| {
        lease.renew(store, ttl).unwrap_or(false)
            && lock
                .as_deref()
                .is_none_or(|repo| merge_lock::renew(store, repo, &lease).unwrap_or(false))
    };
    let result = runner::run(
        Some(&mut *cx.store),
        &spec,
        Some((config.lease_renew, &mut heartbeat)),
    );
    if let Some(tmp) = &tmpdir {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}
