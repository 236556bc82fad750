//! Merge-verify, the gate of `deploy → done`: only proof moves a task to `done`.
//!
//! Proof first: if the re-tested head H is already an ancestor of the target (after a fetch), the
//! merge is done — idempotent after a crash. Otherwise `ORCH_MERGE_CMD` runs with `ORCH_MERGE_HEAD`
//! and must merge exactly H; then the proof again. Success without proof is `no-proof` (exit 12,
//! one alert, HOLD), never a rollback; a timed-out merge command or a failed fetch is infra.

use anyhow::Result;

use super::merge::short;
use super::worktree::{checkout, run_gate_command, worktrees_dir, GateCommand};
use super::{classify_run, last_line, GateCx, GateKind, GateResult, InfraKind, Verdict};
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

/// What the target says about a head.
enum Proof {
    Merged,
    NotMerged,
    /// The proof could not be checked: an infra reason.
    Unknown(String),
}

/// Fetches and checks whether `head` is in the target.
fn proof(cx: &GateCx, head: &str) -> Result<Proof> {
    let repo = checkout(cx)?;
    let task = &cx.task;
    let target_ref = match &task.remote {
        Some(remote) => {
            if let Err(e) = repo.fetch(remote, &task.target, &task.branch) {
                return Ok(Proof::Unknown(format!(
                    "git fetch from `{remote}` failed: {e:#}"
                )));
            }
            format!("refs/remotes/{remote}/{}", task.target)
        }
        None => format!("refs/heads/{}", task.target),
    };
    Ok(match repo.is_ancestor(head, &target_ref) {
        Ok(true) => Proof::Merged,
        Ok(false) => Proof::NotMerged,
        Err(e) => Proof::Unknown(format!("checking the proof of merge failed: {e:#}")),
    })
}

pub(crate) fn verify(cx: &mut GateCx) -> Result<GateResult> {
    let repo = checkout(cx)?;
    let head = match cx
        .store
        .read()
        .latest_verdict(&cx.task.id, GateKind::Merge)?
    {
        Some((head, _)) => head,
        None => {
            let branch_ref = match &cx.task.remote {
                Some(remote) => format!("refs/remotes/{remote}/{}", cx.task.branch),
                None => format!("refs/heads/{}", cx.task.branch),
            };
            match repo.resolve(&branch_ref)? {
                Some(sha) => sha,
                None => return Ok(infra(format!("branch `{}` not found", cx.task.branch))),
            }
        }
    };
    cx.note_base_tip(&head);
    cx.head = Some(head.clone());
    let target = cx.task.target.clone();
    let done = |detail: String| {
        let mut result = GateResult::new(GATE, Verdict::Passed { detail });
        result.head = Some(head.clone());
        result
    };
    match proof(cx, &head)? {
        Proof::Unknown(reason) => return Ok(infra(reason)),
        Proof::Merged => {
            return Ok(done(format!(
                "{} is already in {target}: merged",
                short(&head)
            )))
        }
        Proof::NotMerged => {}
    }
    let Some(command) = cx.config.merge_cmd.clone() else {
        return Ok(GateResult::new(
            GATE,
            Verdict::NoProof {
                reason: format!(
                    "{} is not in {target} and ORCH_MERGE_CMD is not set to merge it",
                    short(&head)
                ),
            },
        ));
    };
    let dir = worktrees_dir(&cx.config.db_path);
    std::fs::create_dir_all(&dir)?;
    let run = run_gate_command(
        cx,
        GateCommand {
            gate: GATE,
            command: &command,
            timeout: cx.config.merge_cmd_timeout,
            cwd: &dir,
            extra_env: vec![("ORCH_MERGE_HEAD".into(), head.clone())],
            exit_codes: ExitCodes::Plain,
            merge_lock: None,
        },
    )?;
    crate::fault::point("merge_verify.after_merge_cmd");
    let verdict = classify_run(&run);
    let mut result = match verdict {
        Verdict::Passed { .. } => match proof(cx, &head)? {
            Proof::Unknown(reason) => infra(reason),
            Proof::Merged => done(format!(
                "merged {} into {target}; proof holds",
                short(&head)
            )),
            Proof::NotMerged => GateResult::new(
                GATE,
                Verdict::NoProof {
                    reason: format!(
                        "ORCH_MERGE_CMD exited 0 but {} is not in {target}",
                        short(&head)
                    ),
                },
            ),
        },
        // A merge command that fails is not a fault of the tested code: infra, re-queued.
        Verdict::Red { .. } => infra(format!(
            "ORCH_MERGE_CMD failed (exit {}): {}",
            run.exit_status.map_or("?".into(), |c| c.to_string()),
            last_line(&run.output)
        )),
        other => GateResult::new(GATE, other),
    };
    result.run_id = run.run_id;
    if let RunOutcome::Timeout { evidence } = &run.outcome {
        result.evidence = serde_json::to_value(evidence).ok();
    }
    Ok(result)
}
