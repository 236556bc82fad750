//! Merge-verify, the gate of `deploy → done`: the target only ever moves to a tree that passed
//! orch's re-test, and only the proof moves a task to `done`.
//!
//! The passing merge verdict names its head H, the target tip T it was re-tested on, and how.
//! Everything here runs under the repository's merge lock (the sub-gate's own routine; renewed
//! with the lease while a command runs), so no other task's merge or re-test lands in between:
//!
//! - The target is fetched (X) and the proof asked first (`git::Repo::landed`: T on X's
//!   first-parent chain, one of the first n commits above it carrying H's tree): it holds → done,
//!   idempotent after a crash. H with no commits over T is red (nothing to merge).
//! - X == T: `ORCH_MERGE_CMD` runs in an empty directory of orch's with `ORCH_MERGE_HEAD=H` and
//!   `ORCH_MERGE_BASE=T`; it must move the target from exactly T. Then the proof again.
//! - X != T: the merge sub-gate runs again under the held lock (rebase onto X, publish, re-test);
//!   its pass is recorded as the merge gate's, with its new verdict, then that head is merged.
//!   Its red rolls back, its infra re-queues this edge: it is routed as the merge gate's result.
//!
//! After the merge command: the proof → done; exit 0 without it → `no-proof` (exit 12, one alert
//! naming what landed, HOLD), never a rollback; a failure while the target is no longer T → the
//! sub-gate re-run, no infra budget spent; the target moving again in the same step → deferred
//! like lock-busy; a failure with the target still T → infra, re-queued.

use anyhow::Result;

use super::merge::{lock_busy, retest_held, short, take_merge_lock, MergeLock};
use super::registry::program_problem;
use super::worktree::{mirror, run_gate_command, with_empty_dir, GateCommand};
use super::{
    classify_run, exit_said, record_pass, GateCx, GateKind, GateResult, InfraKind, Verdict,
};
use crate::git::{MergeProof, Mirror};
use crate::merge_lock;
use crate::outcome::{ConfigProblem, VerdictHow};
use crate::runner::{ExitCodes, RunOutcome};

const GATE: GateKind = GateKind::MergeVerify;

fn infra(reason: String) -> GateResult {
    GateResult::new(
        GATE,
        Verdict::Infra {
            kind: InfraKind::Other,
            reason,
        },
    )
}

/// The verdict being merged: head H, re-tested (or validated) on the target tip T.
struct Tested {
    head: String,
    base: String,
    how: Option<VerdictHow>,
    run_id: Option<i64>,
}

impl Tested {
    /// `H (tested in run N on T)`, for messages.
    fn describe(&self) -> String {
        let how = match (self.how, self.run_id) {
            (Some(VerdictHow::Skipped), _) => "validated by CI".to_string(),
            (_, Some(run)) => format!("tested in run {run}"),
            (_, None) => "tested".to_string(),
        };
        format!("{} ({how} on {})", short(&self.head), short(&self.base))
    }
}

pub(crate) fn verify(cx: &mut GateCx) -> Result<GateResult> {
    // Only a head orch itself re-tested (with today's command and timeout) is ever merged.
    let verdict =
        cx.store
            .read()
            .latest_verdict(&cx.task.id, GateKind::Merge, &cx.config.retest_hash())?;
    let Some(verdict) = verdict else {
        return Ok(GateResult::new(
            GATE,
            Verdict::NoProof {
                reason: format!(
                    "task `{}` has no passing re-test verdict of orch's for its current ORCH_MERGE_RETEST_CMD and timeout, so nothing may be merged (hint: the task must pass `deploy-staging → deploy` through orch)",
                    cx.task.id
                ),
            },
        ));
    };
    let tested = Tested {
        head: verdict.head,
        base: verdict.target,
        how: verdict.how,
        run_id: verdict.run_id,
    };
    cx.note_base_tip(&tested.head);
    cx.head = Some(tested.head.clone());
    let repo = cx.task.repo.clone();
    match take_merge_lock(cx, &repo)? {
        MergeLock::Held => {}
        MergeLock::Busy(holder) => return Ok(lock_busy(GATE, &repo, holder)),
    }
    let result = under_lock(cx, tested);
    merge_lock::release(cx.store, &repo, &cx.lease)?;
    result
}

/// What merging did, as the step goes on from it.
enum Step {
    /// The step ended: this is the gate's result.
    End(GateResult),
    /// The sub-gate ran again: merge its verdict.
    Retested(Tested),
}

fn under_lock(cx: &mut GateCx, mut tested: Tested) -> Result<GateResult> {
    let target = cx.task.target.clone();
    // The sub-gate runs again at most once per step; the target moving after that defers.
    let mut reran = false;
    loop {
        let landed = match prove(cx, &tested)? {
            Ok(landed) => landed,
            Err(reason) => return Ok(infra(reason)),
        };
        match landed {
            MergeProof::Holds { commit } => {
                return Ok(done(
                    &tested,
                    format!(
                        "{} is in {target} as {}: proof holds (already merged)",
                        tested.describe(),
                        short(&commit)
                    ),
                    None,
                ))
            }
            MergeProof::NothingToMerge => return Ok(nothing_to_merge(cx, &tested)),
            MergeProof::NothingLanded => {}
            MergeProof::NotOnFirstParentChain { .. } | MergeProof::DifferentTree { .. } => {}
        }
        let Some(command) = cx.config.merge_cmd.clone() else {
            return Ok(GateResult::new(
                GATE,
                Verdict::NoProof {
                    reason: format!(
                        "{} is not in {target} ({}) and ORCH_MERGE_CMD is not set to merge it",
                        tested.describe(),
                        what_landed(&target, &tested, &landed)
                    ),
                },
            ));
        };
        // Judged here, not at the edge start: a head already merged needs no merge command.
        if let Some(reason) = program_problem(cx, "ORCH_MERGE_CMD", &command) {
            return Err(ConfigProblem(reason).into());
        }
        if landed != MergeProof::NothingLanded {
            // The target moved from the base H was tested on: rebase and re-test, never merge
            // a tree nobody tested.
            match rerun(cx, &tested, &landed, reran)? {
                Step::End(result) => return Ok(result),
                Step::Retested(new) => {
                    tested = new;
                    reran = true;
                    continue;
                }
            }
        }
        // A re-run after a failed merge command: the loop proves and merges its head.
        match merge(cx, &tested, &command, reran)? {
            Step::End(result) => return Ok(result),
            Step::Retested(new) => {
                tested = new;
                reran = true;
            }
        }
    }
}

/// Runs the merge command for `tested` (the target still equals its base), then judges what it
/// did by the proof; `reran` as `rerun` takes it.
fn merge(cx: &mut GateCx, tested: &Tested, command: &str, reran: bool) -> Result<Step> {
    let target = cx.task.target.clone();
    let repo = cx.task.repo.clone();
    // Moving the target is irreversible: the lease and the merge lock must still be this step's.
    if !cx.lease.still_held(&cx.store.read())? {
        return Ok(Step::End(GateResult::new(GATE, Verdict::LeaseLost)));
    }
    if !merge_lock::renew(cx.store, &repo, &cx.lease)? {
        return Ok(Step::End(GateResult::new(
            GATE,
            Verdict::Infra {
                kind: InfraKind::LockBusy,
                reason: format!(
                    "the merge lock of `{repo}` is no longer this step's; nothing merged"
                ),
            },
        )));
    }
    let env = vec![
        ("ORCH_MERGE_HEAD".to_string(), tested.head.clone()),
        ("ORCH_MERGE_BASE".to_string(), tested.base.clone()),
    ];
    // An empty directory of orch's, not a checkout of agent content (`python3 -m …` would put
    // that on `sys.path`); the merge command is the operator's and keeps orch's environment.
    // It runs with the merge lock renewed, so no other task merges or re-tests meanwhile.
    let ran = with_empty_dir(cx, GATE, true, |cx, dir| {
        let run = run_gate_command(
            cx,
            GateCommand {
                gate: GATE,
                command,
                timeout: cx.config.merge_cmd_timeout,
                cwd: dir,
                extra_env: env,
                exit_codes: ExitCodes::Plain,
                merge_lock: Some(&repo),
            },
        )?;
        let verdict = match classify_run(&run) {
            Verdict::Red { .. } => Verdict::Red {
                reason: format!(
                    "ORCH_MERGE_CMD failed {}",
                    exit_said(run.exit_status, &run.output)
                ),
            },
            other => other,
        };
        let mut result = GateResult::new(GATE, verdict);
        result.run_id = run.run_id;
        if let RunOutcome::Timeout { evidence } = &run.outcome {
            result.evidence = serde_json::to_value(evidence).ok();
        }
        Ok(result)
    })?;
    crate::fault::point("merge_verify.after_merge_cmd");
    if matches!(ran.verdict, Verdict::LeaseLost | Verdict::Cancelled { .. }) {
        return Ok(Step::End(ran));
    }
    let with_run = |mut result: GateResult| {
        result.run_id = ran.run_id;
        Step::End(result)
    };
    let no_proof = |reason: String| with_run(GateResult::new(GATE, Verdict::NoProof { reason }));
    let landed = match prove(cx, tested)? {
        Ok(landed) => landed,
        // The merge command said yes and the target is gone: that is what landed, not a fetch
        // to retry.
        Err(reason)
            if matches!(ran.verdict, Verdict::Passed { .. })
                && target_gone(cx).unwrap_or(false) =>
        {
            return Ok(no_proof(format!(
                "ORCH_MERGE_CMD exited 0, but the target `{target}` is gone from the remote ({reason})"
            )));
        }
        Err(reason) => return Ok(with_run(infra(reason))),
    };
    // Under the merge lock nothing but this step's merge command moved the target: the commit
    // that carries the tested tree must be the target itself, not one with more on top.
    if let MergeProof::Holds { commit } = &landed {
        let tip = mirror(cx)?.fetched_tip(&target)?;
        if tip.as_deref() != Some(commit.as_str()) {
            return Ok(no_proof(format!(
                "ORCH_MERGE_CMD landed the tested tree of {} as {}, but {target} is now {}, a commit above it that no re-test of this step ran on",
                tested.describe(),
                short(commit),
                tip.as_deref().map_or("unknown", short)
            )));
        }
    }
    Ok(match (&ran.verdict, &landed) {
        (_, MergeProof::Holds { commit }) => Step::End(done(
            tested,
            format!(
                "merged {} into {target} as {}; proof holds",
                tested.describe(),
                short(commit)
            ),
            ran.run_id,
        )),
        (_, MergeProof::NothingToMerge) => with_run(nothing_to_merge(cx, tested)),
        (Verdict::Passed { .. }, landed) => no_proof(format!(
            "ORCH_MERGE_CMD exited 0, but {} does not hold the tested tree of {}: {}",
            target,
            tested.describe(),
            what_landed(&target, tested, landed)
        )),
        // The command failed while the target still is T: not a fault of the tested code, and
        // the base did not move: infra, re-queued.
        (Verdict::Red { reason }, MergeProof::NothingLanded) => with_run(infra(reason.clone())),
        (_, MergeProof::NothingLanded) => Step::End(ran),
        // It failed because the target moved from T (the forge's compare-and-swap refused):
        // rebase and re-test instead of retrying, without spending the infra budget.
        (_, moved) => {
            let moved = moved.clone();
            rerun(cx, tested, &moved, reran)?
        }
    })
}

/// The merge sub-gate once more under the held lock, because the target moved from the base
/// `tested` was re-tested on; `reran` says whether it already ran in this step (the target then
/// keeps moving: deferred like lock-busy, no infra budget). Its pass is recorded as the merge
/// gate's (gate event and verdict, under the lease re-check); any other result ends the step and
/// is routed as the merge gate's: red rolls back `deploy → development`, infra re-queues this edge.
fn rerun(cx: &mut GateCx, tested: &Tested, landed: &MergeProof, reran: bool) -> Result<Step> {
    let target = cx.task.target.clone();
    if reran {
        return Ok(Step::End(GateResult::new(
            GATE,
            Verdict::Infra {
                kind: InfraKind::LockBusy,
                reason: format!(
                    "the target keeps moving: {} moved again while this step re-tested ({}); deferred",
                    target,
                    what_landed(&target, tested, landed)
                ),
            },
        )));
    }
    cx.ui.note(format!(
        "merge-verify: {}: {}; re-running the merge gate under the merge lock",
        cx.task.id,
        what_landed(&target, tested, landed)
    ));
    let result = retest_held(cx)?;
    if !result.verdict.is_pass() {
        return Ok(Step::End(result));
    }
    if !record_pass(cx, &result)? {
        return Ok(Step::End(GateResult::new(GATE, Verdict::LeaseLost)));
    }
    cx.ui.note(format!(
        "gate {}: {} — {}{}",
        result.gate.name(),
        result.outcome,
        result.verdict.detail(),
        result.run_id.map_or_else(String::new, |id| format!(
            " (run {id}: `orch run show {id}`)"
        ))
    ));
    let (Some(head), Some(base)) = (result.head.clone(), result.target.clone()) else {
        return Ok(Step::End(infra(
            "the merge gate's re-run passed without naming its head and target".into(),
        )));
    };
    cx.head = Some(head.clone());
    Ok(Step::Retested(Tested {
        head,
        base,
        how: result.how,
        run_id: result.run_id,
    }))
}

/// Fetches the target from the registered URL into orch's mirror and asks the proof for
/// `tested`; `Err(reason)` when it cannot be asked (infra).
fn prove(cx: &GateCx, tested: &Tested) -> Result<std::result::Result<MergeProof, String>> {
    let mirror = mirror(cx)?;
    let (task, repo) = (&cx.task, &cx.repo);
    if let Err(e) = mirror.fetch(&repo.url, &task.target) {
        return Ok(Err(format!(
            "fetching the target `{}` of `{}` failed: {e:#}",
            task.target, repo.name
        )));
    }
    Ok(mirror
        .repo
        .landed(&tested.base, &tested.head, &Mirror::fetched(&task.target))
        .map_err(|e| format!("checking the proof of merge failed: {e:#}")))
}

/// Whether the remote no longer has the target branch at all (asked only after a failed fetch).
fn target_gone(cx: &GateCx) -> Result<bool> {
    Ok(!crate::git::remote_has_branch(
        &cx.repo.url,
        &cx.task.target,
    )?)
}

/// The pass: the target holds the tested tree.
fn done(tested: &Tested, detail: String, run_id: Option<i64>) -> GateResult {
    let mut result = GateResult::new(GATE, Verdict::Passed { detail });
    result.head = Some(tested.head.clone());
    result.run_id = run_id;
    result
}

/// H has no commits over T: red, nothing to merge.
fn nothing_to_merge(cx: &GateCx, tested: &Tested) -> GateResult {
    GateResult::new(
        GATE,
        Verdict::Red {
            reason: format!(
                "nothing to merge: {} has no commits over {} ({}), the target it was tested on",
                short(&tested.head),
                cx.task.target,
                short(&tested.base)
            ),
        },
    )
}

/// What the target holds instead of the tested tree, in one clause.
fn what_landed(target: &str, tested: &Tested, landed: &MergeProof) -> String {
    let base = short(&tested.base);
    match landed {
        MergeProof::Holds { commit } => format!("{target} holds it as {}", short(commit)),
        MergeProof::NothingToMerge => format!("{} has no commits over {base}", short(&tested.head)),
        MergeProof::NothingLanded => format!("{target} is still {base}: nothing landed"),
        MergeProof::NotOnFirstParentChain { target: now } => format!(
            "{target} is now {}, and {base} (the base {} was tested on) is not on its first-parent chain",
            short(now),
            short(&tested.head)
        ),
        MergeProof::DifferentTree {
            target: now,
            first,
            tree,
            n,
        } => format!(
            "{target} is now {}: the first commit above {base} is {} with tree {}, and none of the {n} commit(s) above {base} has the tested tree of {}",
            short(now),
            short(first),
            short(tree),
            short(&tested.head)
        ),
    }
}
