//! The merge sub-gate: rebase the task branch onto the target in a worktree of its own, under the
//! repository's merge lock, and re-test the result.
//!
//! Never the agent's checkout: the rebase runs in a fresh detached worktree of orch's own mirror
//! (fetched from the registered URL), removed at the end; the re-test runs in a throwaway clone
//! of the rebased head. The only push is the task branch's, to the registered URL, with
//! `--force-with-lease` on the tip it replaced (INV-4, `crate::git`). The re-test is skipped only when the rebase was a no-op and the
//! head equals `validated_sha`, decided under the lock; any uncertainty runs it. A rebased head
//! equal to the target is red: nothing to merge. A passing verdict is stored with the commits it
//! judged (H and the target tip T), how it was reached and the hash of the command and timeout
//! that produced it, and reused — as it was stored — only while all of them are unchanged.
//! Merge-verify runs the same rebase, publish and re-test under the lock it already holds
//! (`retest_held`).

use anyhow::{bail, Context, Result};

use super::checks;
use super::registry::program_problem;
use super::worktree::{mirror, run_gate_command, with_clone, with_worktree, GateCommand};
use super::{classify_run, GateCx, GateKind, GateResult, InfraKind, Verdict};
use crate::counter::Counter;
use crate::git::{RebaseResult, Repo};
use crate::merge_lock::{self, LockAttempt};
use crate::outcome::{ConfigProblem, VerdictHow};
use crate::routing;
use crate::runner::{self, ExitCodes};

const GATE: GateKind = GateKind::Merge;

fn infra(reason: String) -> GateResult {
    GateResult::new(
        GATE,
        Verdict::Infra {
            kind: InfraKind::Other,
            reason,
        },
    )
}

/// The commits the gate judges: the branch tip before any rebase, and the target.
pub(crate) struct Commits {
    pub base_tip: String,
    pub target: String,
    /// The target's name, for messages.
    pub onto_name: String,
}

/// Fetches the target and the task branch from the registered URL into orch's mirror and
/// resolves both. An error is the gate's infra reason (`gates::run` turns it into an `other`
/// verdict).
pub(crate) fn resolve_commits(cx: &GateCx) -> Result<Commits> {
    let (task, repo) = (&cx.task, &cx.repo);
    let mirror = mirror(cx)?;
    mirror
        .fetch(&repo.url, &task.target)
        .map_err(|e| gone_or(e, cx, &task.target, "the target"))
        .with_context(|| format!("fetching the target `{}` of `{}`", task.target, repo.name))?;
    mirror
        .fetch(&repo.url, &task.branch)
        .map_err(|e| gone_or(e, cx, &task.branch, "the task branch"))
        .with_context(|| {
            format!(
                "fetching the task branch `{}` of `{}`",
                task.branch, repo.name
            )
        })?;
    let Some(base_tip) = mirror.fetched_tip(&task.branch)? else {
        bail!(
            "branch `{}` not found in orch's mirror of `{}`",
            task.branch,
            repo.name
        );
    };
    let Some(target) = mirror.fetched_tip(&task.target)? else {
        bail!(
            "target `{}` not found in orch's mirror of `{}`",
            task.target,
            repo.name
        );
    };
    Ok(Commits {
        base_tip,
        target,
        onto_name: task.target.clone(),
    })
}

/// A fetch that found no such branch on the remote is a problem no retry fixes (`config`);
/// every other git failure stays the gate's infra reason.
fn gone_or(err: anyhow::Error, cx: &GateCx, branch: &str, what: &str) -> anyhow::Error {
    if crate::git::is_missing_remote_ref(&err) {
        anyhow::Error::new(ConfigProblem(branch_gone(cx, branch, what)))
    } else {
        err
    }
}

/// The one line naming a branch that is not on the remote, and the fix.
pub(crate) fn branch_gone(cx: &GateCx, branch: &str, what: &str) -> String {
    format!(
        "{what} `{}` is not on the remote of `{}` ({}) (hint: push it again, then `orch task release {}`; or cancel the task: `orch advance {} --to cancelled`)",
        branch, cx.repo.name, cx.repo.url, cx.task.id, cx.task.id
    )
}

/// `orch merge-gate retest`, and the merge gate of `deploy-staging → deploy`.
pub(crate) fn retest(cx: &mut GateCx) -> Result<GateResult> {
    let commits = resolve_commits(cx)?;
    cx.note_base_tip(&commits.base_tip);
    // A stored passing verdict for exactly these commits is reused, as it was reached: its
    // `how` and its run stay the verdict's, and nothing new is stored.
    let stored = cx
        .store
        .read()
        .latest_verdict(&cx.task.id, GATE, &cx.config.retest_hash())?;
    if let Some(verdict) =
        stored.filter(|v| v.head == commits.base_tip && v.target == commits.target)
    {
        let how = match (verdict.how, verdict.run_id) {
            (Some(VerdictHow::Skipped), _) => {
                " (its re-test skipped: validated and current)".into()
            }
            (_, Some(run)) => format!(" (tested in run {run})"),
            (_, None) => String::new(),
        };
        let mut result = GateResult::new(
            GATE,
            Verdict::Skipped {
                why: format!(
                    "reused the passing verdict for {} on {}{how}",
                    short(&commits.base_tip),
                    short(&commits.target)
                ),
            },
        );
        result.head = Some(commits.base_tip);
        result.target = Some(commits.target);
        result.how = verdict.how;
        result.run_id = verdict.run_id;
        result.reused = true;
        return Ok(result);
    }
    let repo_name = cx.task.repo.clone();
    match take_merge_lock(cx, &repo_name)? {
        MergeLock::Held => {}
        MergeLock::Busy(holder) => return Ok(lock_busy(GATE, &repo_name, holder)),
    }
    let result = under_lock(cx, &commits);
    merge_lock::release(cx.store, &repo_name, &cx.lease)?;
    result
}

/// The merge sub-gate run again by merge-verify, which already holds the repository's merge
/// lock: fetch, rebase onto the target as it is now, publish, re-test. No stored verdict is
/// reused (merge-verify runs it because the target moved from the verdict's).
pub(crate) fn retest_held(cx: &mut GateCx) -> Result<GateResult> {
    let commits = resolve_commits(cx)?;
    cx.note_base_tip(&commits.base_tip);
    under_lock(cx, &commits)
}

/// Lock-busy: the merge lock of `repo` is held by `holder` (deferred, not failed), as `gate`'s
/// result.
pub(crate) fn lock_busy(gate: GateKind, repo: &str, holder: String) -> GateResult {
    let mut result = GateResult::new(
        gate,
        Verdict::Infra {
            kind: InfraKind::LockBusy,
            reason: format!("the merge lock of `{repo}` is held by {holder}"),
        },
    );
    result.lock_holder = Some(holder);
    result
}

/// The merge lock, as the gate sees it.
pub(crate) enum MergeLock {
    Held,
    /// Lock-busy: the live holder, described in one line.
    Busy(String),
}

/// Takes the repository's merge lock. A dead holder's runs are finished through the one routine
/// that finishes dead runs before its lock is taken.
pub(crate) fn take_merge_lock(cx: &mut GateCx, repo: &str) -> Result<MergeLock> {
    for _ in 0..3 {
        match merge_lock::try_acquire(cx.store, cx.config, repo, &cx.lease, &cx.me)? {
            LockAttempt::Held => return Ok(MergeLock::Held),
            LockAttempt::Busy(holder) => return Ok(MergeLock::Busy(holder)),
            LockAttempt::Reclaim(row) => {
                let why = format!("merge-lock holder {} is dead", row.describe());
                let holder = row.owner_id();
                let done = routing::finish_runs_of_dead_holder(cx.store, cx.config, &holder, &why)?;
                cx.ui.note(format!(
                    "task `{}`: taking over the merge lock of `{repo}` from dead holder {}: {} run(s) finished, {} process(es) killed",
                    cx.task.id,
                    crate::ui::plain(&row.describe()),
                    done.finished,
                    done.killed
                ));
                if !done.all_done {
                    return Ok(MergeLock::Busy(format!(
                        "{} (dead, but its run could not be shown finished)",
                        row.describe()
                    )));
                }
            }
        }
    }
    Ok(MergeLock::Busy(format!(
        "the merge lock of `{repo}` keeps changing hands"
    )))
}

fn under_lock(cx: &mut GateCx, commits: &Commits) -> Result<GateResult> {
    with_worktree(cx, GATE, &commits.base_tip, |cx, worktree| {
        in_worktree(cx, commits, worktree)
    })
}

fn in_worktree(cx: &mut GateCx, commits: &Commits, worktree: &Repo) -> Result<GateResult> {
    cx.ui.note(format!(
        "merge gate: {}: rebasing {} onto {}",
        cx.task.id, cx.task.branch, commits.onto_name
    ));
    let head = match worktree.rebase(&commits.target) {
        Ok(RebaseResult::Done(head)) => head,
        Ok(RebaseResult::Conflict(paths)) => {
            let mut result = GateResult::new(
                GATE,
                Verdict::Red {
                    reason: format!(
                        "rebase onto {} conflicts in {}",
                        commits.onto_name,
                        paths.join(", ")
                    ),
                },
            );
            result.target = Some(commits.target.clone());
            return Ok(result);
        }
        Err(e) => return Ok(infra(format!("rebase failed: {e:#}"))),
    };
    if head == commits.target {
        // Every commit of the branch is already in the target (or it had none): a merge would
        // land nothing, and `done` would prove nothing.
        let mut result = GateResult::new(
            GATE,
            Verdict::Red {
                reason: format!(
                    "nothing to merge: {} has no commits over {} ({})",
                    cx.task.branch,
                    commits.onto_name,
                    short(&commits.target)
                ),
            },
        );
        result.target = Some(commits.target.clone());
        return Ok(result);
    }
    let moved = head != commits.base_tip;
    if moved {
        // Moving the task branch is irreversible: re-check the lease first.
        if !cx.lease.still_held(&cx.store.read())? {
            return Ok(GateResult::new(GATE, Verdict::LeaseLost));
        }
        let published = mirror(cx)?.push_task_branch(
            &cx.repo.url,
            &cx.task.branch,
            &cx.repo.guarded_refs(),
            &head,
            &commits.base_tip,
        );
        if let Err(e) = published {
            return Ok(infra(format!(
                "publishing the rebased branch failed: {e:#}"
            )));
        }
        cx.published = Some(head.clone());
    }
    let mut result = if !moved
        && cx.config.merge_skip_when_current
        && cx.task.validated_sha.as_deref() == Some(head.as_str())
        && !checks::needs_retest_report(cx, &head)?
    {
        cx.store
            .write(|db| db.count(Counter::MergeSkippedCurrent, 1))?;
        let mut skipped = GateResult::new(
            GATE,
            Verdict::Skipped {
                why: format!(
                    "skipped the re-test: {} is already based on {} and equals validated_sha",
                    short(&head),
                    commits.onto_name
                ),
            },
        );
        skipped.how = Some(VerdictHow::Skipped);
        skipped
    } else {
        // Judged here, not at the edge start: a skipped re-test needs no program.
        let command = cx.config.merge_retest_cmd.clone();
        if let Some(reason) = program_problem(cx, "ORCH_MERGE_RETEST_CMD", &command) {
            return Err(ConfigProblem(reason).into());
        }
        let mut tested = with_clone(cx, GATE, &head, run_suite)?;
        if tested.verdict.is_pass() {
            tested.how = Some(VerdictHow::Tested);
        }
        tested
    };
    result.head = Some(head);
    result.target = Some(commits.target.clone());
    Ok(result)
}

/// The re-test: the suite once, in a throwaway clone of the rebased head. It may write a coverage
/// report at `$ORCH_COVERAGE_REPORT` (a place no commit can fill); a passing run's report is read
/// before the clone goes, for the coverage gate and the verdict.
fn run_suite(cx: &mut GateCx, clone: &Repo) -> Result<GateResult> {
    let repo = cx.task.repo.clone();
    let command = cx.config.merge_retest_cmd.clone();
    let report = checks::report_path(clone)?;
    let run = run_gate_command(
        cx,
        GateCommand {
            gate: GATE,
            command: &command,
            timeout: cx.config.merge_retest_timeout,
            cwd: &clone.dir,
            extra_env: vec![("ORCH_COVERAGE_REPORT".into(), report.display().to_string())],
            exit_codes: ExitCodes::Pytest,
            merge_lock: Some(&repo),
        },
    )?;
    crate::fault::point("merge.after_retest");
    let mut result = GateResult::new(GATE, classify_run(&run));
    result.run_id = run.run_id;
    if result.verdict.is_pass() {
        result.report = Some(checks::read_report(&report));
    }
    if let runner::RunOutcome::Timeout { evidence } = &run.outcome {
        result.evidence = serde_json::to_value(evidence).ok();
    }
    Ok(result)
}

/// A commit's short form for messages.
pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}
