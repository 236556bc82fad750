//! The command gates of `deploy-staging → deploy` besides the merge sub-gate: security (on the
//! branch tip, before the merge lock), coverage (`measure_coverage`, on the rebased head: the
//! re-test's own report, or a command of its own) and image freshness (the staging image must be
//! built from `validated_sha`). A gate whose command is not configured is skipped, and the
//! history says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::merge::{resolve_commits, short};
use super::worktree::{run_gate_command, with_clone, with_empty_dir, GateCommand};
use super::{
    classify_run, exit_said, last_line, CoverageReport, GateCx, GateKind, GateResult, InfraKind,
    Retested, Verdict,
};
use crate::git::Repo;
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

/// `measure_coverage`: the total percent of the rebased head against `ORCH_COVERAGE_MIN`, in
/// order from: a configured `ORCH_COVERAGE_CMD` (its own suite run, writing the report to
/// `$ORCH_COVERAGE_REPORT`); the report this step's re-test wrote there; the coverage a stored
/// verdict of an earlier re-test of exactly this head keeps (this step reused that verdict or
/// skipped the re-test). With none, a minimum above 0 is a configuration problem (HOLD, one
/// alert), never a silent skip; without a minimum the gate is skipped and says why.
pub(crate) fn coverage(cx: &mut GateCx) -> Result<GateResult> {
    if let Some(command) = cx.config.coverage_cmd.clone() {
        return coverage_command(cx, &command);
    }
    let head = match cx.head.clone() {
        Some(head) => head,
        None => branch_tip(cx)?,
    };
    let (percent, run_id, from) = match cx.retested.clone() {
        Some(Retested {
            report: CoverageReport::Percent(p),
            run_id,
        }) => (p, run_id, "from the re-test's report".to_string()),
        Some(Retested {
            report: CoverageReport::Unreadable(why),
            run_id,
        }) => {
            return Ok(unmeasured(
                cx,
                &head,
                &format!("the re-test's coverage report {why}"),
                run_id,
            ))
        }
        Some(Retested {
            report: CoverageReport::Absent,
            run_id,
        }) => {
            let why = "the re-test wrote no coverage report at $ORCH_COVERAGE_REPORT";
            return Ok(unmeasured(cx, &head, why, run_id));
        }
        None => {
            let earlier = cx.store.read().measured_coverage(
                &cx.task.id,
                GateKind::Merge,
                &head,
                &cx.config.retest_hash(),
            )?;
            match earlier {
                Some((p, run_id)) => (
                    p,
                    run_id,
                    format!("from the report of an earlier re-test of {}", short(&head)),
                ),
                None => {
                    let why = format!(
                        "the re-test did not run on this step (a reused verdict or skip-when-current), and no earlier re-test of {} wrote a coverage report",
                        short(&head)
                    );
                    return Ok(unmeasured(cx, &head, &why, None));
                }
            }
        }
    };
    let mut result = judge_coverage(cx, &head, percent, Some(&from))?;
    result.run_id = run_id;
    Ok(result)
}

/// Nothing measured the head's coverage, for `why`: a configuration problem when a minimum is
/// to be judged (no retry writes a report the command does not write), else a skip saying why.
fn unmeasured(cx: &GateCx, head: &str, why: &str, run_id: Option<i64>) -> GateResult {
    let minimum = cx.config.coverage_min;
    let verdict = if minimum > 0.0 {
        Verdict::Config {
            reason: format!(
                "ORCH_COVERAGE_MIN is {minimum}% but nothing measured the coverage of {}: ORCH_COVERAGE_CMD is not set and {why} (hint: have ORCH_MERGE_RETEST_CMD write it, e.g. `{EXAMPLE_RETEST}`, or set ORCH_COVERAGE_CMD to a command that does; then `orch task release {}`)",
                short(head),
                cx.task.id
            ),
        }
    } else {
        Verdict::Skipped {
            why: format!("ORCH_COVERAGE_CMD is not set and {why}; gate skipped"),
        }
    };
    let mut result = GateResult::new(GateKind::Coverage, verdict);
    result.run_id = run_id;
    result
}

/// The re-test the coverage gate's configuration problem suggests: the suite under pytest-cov,
/// writing the JSON report orch reads.
pub(crate) const EXAMPLE_RETEST: &str =
    "python3 -m pytest -q --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\"";

/// Records the measured percent as the repository's latest and judges it against the minimum.
fn judge_coverage(
    cx: &mut GateCx,
    head: &str,
    percent: f64,
    from: Option<&str>,
) -> Result<GateResult> {
    let minimum = cx.config.coverage_min;
    let (task_id, repo) = (cx.task.id.clone(), cx.task.repo.clone());
    cx.store
        .write(|db| db.record_coverage(&repo, &task_id, head, percent, minimum, host::wall_ms()))?;
    let from = from.map_or(String::new(), |f| format!(", {f}"));
    let verdict = if percent + 1e-9 < minimum {
        Verdict::Red {
            reason: format!("coverage {percent:.1}% is below ORCH_COVERAGE_MIN {minimum}%{from}"),
        }
    } else {
        Verdict::Passed {
            detail: format!("coverage {percent:.1}% (minimum {minimum}%){from}"),
        }
    };
    Ok(GateResult::new(GateKind::Coverage, verdict))
}

/// `ORCH_COVERAGE_CMD` on the rebased head: its own suite run, which must write a coverage JSON
/// report (pytest-cov's format) to `$ORCH_COVERAGE_REPORT`.
fn coverage_command(cx: &mut GateCx, command: &str) -> Result<GateResult> {
    const GATE: GateKind = GateKind::Coverage;
    let head = match cx.head.clone() {
        Some(head) => head,
        None => branch_tip(cx)?,
    };
    with_clone(cx, GATE, &head, |cx, worktree| {
        let report = report_path(worktree)?;
        let run = run_gate_command(
            cx,
            GateCommand {
                gate: GATE,
                command,
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
        let percent = match read_report(&report) {
            CoverageReport::Percent(p) => p,
            unusable => {
                let reason = match unusable {
                    CoverageReport::Unreadable(why) => format!("the coverage report {why}"),
                    _ => "the coverage command wrote no report; it must write coverage JSON to $ORCH_COVERAGE_REPORT".into(),
                };
                let verdict = Verdict::Infra {
                    kind: InfraKind::Other,
                    reason,
                };
                return Ok(with_run(GATE, verdict, &run));
            }
        };
        let judged = judge_coverage(cx, &head, percent, None)?;
        Ok(with_run(GATE, judged.verdict, &run))
    })
}

/// Whether the re-test must run to measure `head`'s coverage even when skip-when-current would
/// skip it: a minimum to judge, no coverage command, and no earlier re-test of exactly this head
/// measured it. A skipped re-test measures nothing, and the deploy would hold for want of a
/// report.
pub(crate) fn needs_retest_report(cx: &GateCx, head: &str) -> Result<bool> {
    let config = cx.config;
    if config.coverage_min <= 0.0 || config.coverage_cmd.is_some() {
        return Ok(false);
    }
    let earlier = cx.store.read().measured_coverage(
        &cx.task.id,
        GateKind::Merge,
        head,
        &config.retest_hash(),
    )?;
    Ok(earlier.is_none())
}

/// Where a gate command writes its coverage report (`$ORCH_COVERAGE_REPORT`): in the clone's own
/// `.git`, where no commit of the agent's can put a file (git checks out no `.git` path), which
/// the gate sandbox grants with the working copy and which goes with the clone. Nothing is there
/// before the command runs: whatever is, is removed first.
pub(crate) fn report_path(clone: &Repo) -> Result<PathBuf> {
    let path = clone.dir.join(".git").join("orch-coverage.json");
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
        Err(e) => Err(e).with_context(|| format!("emptying `{}`", path.display())),
    }
}

/// The total percent of the coverage.py JSON report at `report` (`totals.percent_covered`). The
/// agent's code wrote it: only a regular file of a sane size is read, never a fifo or a symlink
/// to a device.
pub(crate) fn read_report(report: &Path) -> CoverageReport {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX_REPORT: u64 = 64 << 20;
    let unreadable = |why: String| CoverageReport::Unreadable(why);
    let not_regular = || unreadable("is not a regular file of at most 64 MiB".into());
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(report)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CoverageReport::Absent,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return not_regular(),
        Err(e) => return unreadable(format!("cannot be read ({e})")),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_REPORT => {}
        Ok(_) => return not_regular(),
        Err(e) => return unreadable(format!("cannot be read ({e})")),
    }
    let mut text = String::new();
    if let Err(e) = file.take(MAX_REPORT).read_to_string(&mut text) {
        return unreadable(format!("cannot be read ({e})"));
    }
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(e) => return unreadable(format!("is not JSON ({e})")),
    };
    match json["totals"]["percent_covered"].as_f64() {
        Some(p) if (0.0..=100.0).contains(&p) => CoverageReport::Percent(p),
        Some(p) => unreadable(format!(
            "has totals.percent_covered {p}, not a percentage between 0 and 100"
        )),
        None => unreadable("has no totals.percent_covered".into()),
    }
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
    use super::{read_report, same_commit, CoverageReport};

    /// The report is the agent's: only a regular JSON file with a percentage in it is judged.
    #[test]
    fn a_report_is_read_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        assert_eq!(read_report(&at("none.json")), CoverageReport::Absent);
        let write = |name: &str, text: &str| {
            std::fs::write(at(name), text).unwrap();
            read_report(&at(name))
        };
        assert_eq!(
            write("ok.json", r#"{"totals": {"percent_covered": 87.5}}"#),
            CoverageReport::Percent(87.5)
        );
        let why = |report: CoverageReport| match report {
            CoverageReport::Unreadable(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(why(write("text.json", "not json")).starts_with("is not JSON"));
        assert_eq!(
            why(write("meta.json", r#"{"meta": {}}"#)),
            "has no totals.percent_covered"
        );
        assert!(
            why(write("big.json", r#"{"totals": {"percent_covered": 1e9}}"#))
                .contains("not a percentage")
        );
        std::os::unix::fs::symlink("/dev/zero", at("link.json")).unwrap();
        assert!(why(read_report(&at("link.json"))).contains("not a regular file"));
        nix::unistd::mkfifo(&at("fifo.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(why(read_report(&at("fifo.json"))).contains("not a regular file"));
        std::fs::create_dir(at("dir.json")).unwrap();
        assert!(matches!(
            read_report(&at("dir.json")),
            CoverageReport::Unreadable(_)
        ));
    }

    #[test]
    fn abbreviations_of_seven_or_more_match() {
        assert!(same_commit("abcdef1234", "abcdef1"));
        assert!(!same_commit("abcdef", "abcdef1234"));
        assert!(!same_commit("deadbeef", "abcdef1234"));
    }
}
