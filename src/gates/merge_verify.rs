//! Merge-verify, the gate of `deploy → done`: only proof moves a task to `done`.
//!
//! Proof first: if the re-tested head H is already an ancestor of the target (after a fetch), the
//! merge is done — idempotent after a crash. Otherwise `ORCH_MERGE_CMD` runs with `ORCH_MERGE_HEAD`
//! and must merge exactly H; then the proof again. Success without proof is `no-proof` (exit 12,
//! one alert, HOLD), never a rollback; a timed-out merge command or a failed fetch is infra.

use anyhow::Result;

use super::merge::short;
use super::registry::program_problem;
use super::worktree::{mirror, run_gate_command, worktrees_dir, GateCommand};
use super::{classify_run, exit_said, GateCx, GateKind, GateResult, InfraKind, Verdict};
use crate::git::Mirror;
use crate::outcome::ConfigProblem;
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

/// Fetches the target from the registered URL into orch's mirror and checks whether `head` is
/// in it.
fn proof(cx: &GateCx, head: &str) -> Result<Proof> {
    let mirror = mirror(cx)?;
    let (task, repo) = (&cx.task, &cx.repo);
    if let Err(e) = mirror.fetch(&repo.url, &task.target) {
        return Ok(Proof::Unknown(format!(
            "fetching the target `{}` of `{}` failed: {e:#}",
            task.target, repo.name
        )));
    }
    Ok(
        match mirror
            .repo
            .is_ancestor(head, &Mirror::fetched(&task.target))
        {
            Ok(true) => Proof::Merged,
            Ok(false) => Proof::NotMerged,
            Err(e) => Proof::Unknown(format!("checking the proof of merge failed: {e:#}")),
        },
    )
}

pub(crate) fn verify(cx: &mut GateCx) -> Result<GateResult> {
    // Only a head orch itself re-tested (with today's command and timeout) is ever merged.
    let verdict =
        cx.store
            .read()
            .latest_verdict(&cx.task.id, GateKind::Merge, &cx.config.retest_hash())?;
    let Some(crate::store::VerdictRow { head, .. }) = verdict else {
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
    // Judged here, not at the edge start: a head already merged needs no merge command.
    if let Some(reason) = program_problem(cx, "ORCH_MERGE_CMD", &command) {
        return Err(ConfigProblem(reason).into());
    }
    // An empty directory of orch's, not a checkout of agent content (`python3 -m …` would put
    // that on `sys.path`); the merge command is the operator's and keeps orch's environment.
    let dir = worktrees_dir(cx.config).join(format!(
        "merge-{}-{}",
        std::process::id(),
        crate::host::wall_ms()
    ));
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
    let _ = std::fs::remove_dir_all(&dir);
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
            "ORCH_MERGE_CMD failed {}",
            exit_said(run.exit_status, &run.output)
        )),
        other => GateResult::new(GATE, other),
    };
    result.run_id = run.run_id;
    if let RunOutcome::Timeout { evidence } = &run.outcome {
        result.evidence = serde_json::to_value(evidence).ok();
    }
    Ok(result)
}
