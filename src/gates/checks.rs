//! The command gates of `deploy-staging → deploy` besides the merge sub-gate: security (on the
//! branch tip, before the merge lock), coverage (`measure_coverage`, on the rebased head) and image
//! freshness (the staging image must be built from `validated_sha`). A gate whose command is not
//! configured is skipped, and the history says so.

use anyhow::Result;

use super::merge::{resolve_commits, short};
use super::worktree::{run_gate_command, with_clone, with_empty_dir, GateCommand};
use super::{classify_run, exit_said, last_line, GateCx, GateKind, GateResult, InfraKind, Verdict};
use crate::host;
use crate::runner::{ExitCodes, RunOutcome, RunResult};

fn skipped(gate: GateKind, key: &str) -> GateResult {
    GateResult::new(
        gate,
        Verdict::Skipped {
            why: format!("{key} is not set; gate skipped"),
        },
    )
}

fn with_run(gate: GateKind, verdict: Verdict, run: &RunResult) -> GateResult {
    let mut result = GateResult::new(gate, verdict);
    result.run_id = run.run_id;
    if let RunOutcome::Timeout { evidence } = &run.outcome {
        result.evidence = serde_json::to_value(evidence).ok();
    }
    result
}

/// The branch tip, fetched; sets the edge's budget key. An error is the gate's infra reason.
fn branch_tip(cx: &mut GateCx) -> Result<String> {
    if let Some(tip) = &cx.base_tip {
        return Ok(tip.clone());
    }
    let commits = resolve_commits(cx)?;
    cx.note_base_tip(&commits.base_tip);
    Ok(commits.base_tip)
}

/// `ORCH_SECURITY_GATE_CMD` in a throwaway clone of the branch tip: exit 0 passes, another status is red.
pub(crate) fn security(cx: &mut GateCx) -> Result<GateResult> {
    const GATE: GateKind = GateKind::Security;
    let Some(command) = cx.config.security_cmd.clone() else {
        return Ok(skipped(GATE, "ORCH_SECURITY_GATE_CMD"));
    };
    let tip = branch_tip(cx)?;
    with_clone(cx, GATE, &tip.clone(), |cx, worktree| {
        let run = run_gate_command(
            cx,
            GateCommand {
                gate: GATE,
                command: &command,
                timeout: cx.config.security_timeout,
                cwd: &worktree.dir,
                extra_env: Vec::new(),
                exit_codes: ExitCodes::Plain,
                merge_lock: None,
            },
        )?;
        let verdict = match classify_run(&run) {
            Verdict::Red { .. } => Verdict::Red {
                reason: format!(
                    "security scan of {} failed {}",
                    short(&tip),
                    exit_said(run.exit_status, &run.output)
                ),
            },
            other => other,
        };
        Ok(with_run(GATE, verdict, &run))
    })
}

/// `measure_coverage`: `ORCH_COVERAGE_CMD` writes a coverage JSON report (pytest-cov's format) to
/// `$ORCH_COVERAGE_REPORT`; its total percent must reach `ORCH_COVERAGE_MIN`.
pub(crate) fn coverage(cx: &mut GateCx) -> Result<GateResult> {
    const GATE: GateKind = GateKind::Coverage;
    let Some(command) = cx.config.coverage_cmd.clone() else {
        return Ok(skipped(GATE, "ORCH_COVERAGE_CMD"));
    };
    let head = match cx.head.clone() {
        Some(head) => head,
        None => branch_tip(cx)?,
    };
    let result = with_clone(cx, GATE, &head, |cx, worktree| {
        // Inside the working copy: the one place besides its TMPDIR the suite may write.
        let report = worktree.dir.join(".orch-coverage-report.json");
        let run = run_gate_command(
            cx,
            GateCommand {
                gate: GATE,
                command: &command,
                timeout: cx.config.coverage_timeout,
                cwd: &worktree.dir,
                extra_env: vec![("ORCH_COVERAGE_REPORT".into(), report.display().to_string())],
                exit_codes: ExitCodes::Pytest,
                merge_lock: None,
            },
        )?;
        let verdict = classify_run(&run);
        if !matches!(verdict, Verdict::Passed { .. }) {
            return Ok(with_run(GATE, verdict, &run));
        }
        let percent = match read_total_percent(&report) {
            Ok(p) => p,
            Err(why) => {
                return Ok(with_run(
                    GATE,
                    Verdict::Infra {
                        kind: InfraKind::Other,
                        reason: why,
                    },
                    &run,
                ))
            }
        };
        let minimum = cx.config.coverage_min;
        let (task_id, repo) = (cx.task.id.clone(), cx.task.repo.clone());
        cx.store.write(|db| {
            db.record_coverage(&repo, &task_id, &head, percent, minimum, host::wall_ms())
        })?;
        let verdict = if percent + 1e-9 < minimum {
            Verdict::Red {
                reason: format!("coverage {percent:.1}% is below ORCH_COVERAGE_MIN {minimum}%"),
            }
        } else {
            Verdict::Passed {
                detail: format!("coverage {percent:.1}% (minimum {minimum}%)"),
            }
        };
        Ok(with_run(GATE, verdict, &run))
    });
    result
}

/// The total percent of a coverage.py JSON report (`totals.percent_covered`).
fn read_total_percent(report: &std::path::Path) -> std::result::Result<f64, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // The suite wrote it: a regular file of a sane size, never a fifo or a symlink to a device.
    const MAX_REPORT: u64 = 64 << 20;
    let missing = |e: &dyn std::fmt::Display| {
        format!(
            "the coverage command wrote no report at `{}` ({e}); it must write coverage JSON to $ORCH_COVERAGE_REPORT",
            report.display()
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(report)
        .map_err(|e| missing(&e))?;
    let meta = file.metadata().map_err(|e| missing(&e))?;
    if !meta.is_file() || meta.len() > MAX_REPORT {
        return Err(format!(
            "the coverage report at `{}` is not a regular file of at most 64 MiB",
            report.display()
        ));
    }
    let mut text = String::new();
    file.take(MAX_REPORT)
        .read_to_string(&mut text)
        .map_err(|e| missing(&e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the coverage report is not JSON: {e}"))?;
    json["totals"]["percent_covered"]
        .as_f64()
        .ok_or_else(|| "the coverage report has no totals.percent_covered".to_string())
}

/// `ORCH_IMAGE_FRESHNESS_CMD` prints (as its last line) the commit the staging image was built
/// from; it must equal the task's `validated_sha`.
pub(crate) fn image_freshness(cx: &mut GateCx) -> Result<GateResult> {
    const GATE: GateKind = GateKind::ImageFreshness;
    let Some(command) = cx.config.image_freshness_cmd.clone() else {
        return Ok(skipped(GATE, "ORCH_IMAGE_FRESHNESS_CMD"));
    };
    let Some(validated) = cx.task.validated_sha.clone() else {
        return Ok(GateResult::new(
            GATE,
            Verdict::Red {
                reason: "the task has no validated_sha to compare the staging image with (hint: `orch advance … --validated-sha SHA`)".into(),
            },
        ));
    };
    with_empty_dir(cx, GATE, false, |cx, dir| {
        image_freshness_in(cx, &command, &validated, dir)
    })
}

fn image_freshness_in(
    cx: &mut GateCx,
    command: &str,
    validated: &str,
    dir: &std::path::Path,
) -> Result<GateResult> {
    const GATE: GateKind = GateKind::ImageFreshness;
    let run = run_gate_command(
        cx,
        GateCommand {
            gate: GATE,
            command,
            timeout: cx.config.image_freshness_timeout,
            cwd: dir,
            extra_env: Vec::new(),
            exit_codes: ExitCodes::Plain,
            merge_lock: None,
        },
    )?;
    let verdict = match classify_run(&run) {
        Verdict::Passed { .. } => {
            let built = last_line(&run.output);
            if same_commit(&built, validated) {
                Verdict::Passed {
                    detail: format!("the staging image is built from {}", short(validated)),
                }
            } else {
                Verdict::Red {
                    reason: format!(
                        "image stale: the staging image is built from `{built}`, not the validated {}",
                        short(validated)
                    ),
                }
            }
        }
        Verdict::Red { .. } => Verdict::Infra {
            kind: InfraKind::Other,
            reason: format!(
                "the image freshness command failed {}",
                exit_said(run.exit_status, &run.output)
            ),
        },
        other => other,
    };
    Ok(with_run(GATE, verdict, &run))
}

/// Equal commits, allowing an abbreviation of at least 7 hex digits on either side.
fn same_commit(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    short.len() >= 7
        && short.chars().all(|c| c.is_ascii_hexdigit())
        && long.starts_with(short.as_str())
}

#[cfg(test)]
mod tests {
    use super::same_commit;

    #[test]
    fn abbreviations_of_seven_or_more_match() {
        assert!(same_commit("abcdef1234", "abcdef1"));
        assert!(!same_commit("abcdef", "abcdef1234"));
        assert!(!same_commit("deadbeef", "abcdef1234"));
    }
}
