//! The gate registry `QG_CHECKS`: which gates guard which edge, in the order they run; the
//! preflight of an edge; and `run`, past which no gate raises.
//!
//! Gates sit on the side-effectful edges and run in registry order between the lease and the CAS.
//! A gate never panics and never raises past `run`: an error becomes an `other` infra verdict, a
//! `ConfigProblem` a `config` verdict, and a panic is caught and becomes an `other` verdict (the
//! merge lock given back), so the step ends on its normal path.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::merge::branch_gone;
use super::{checks, merge, merge_verify, GateCx, GateResult};
use crate::outcome::{ConfigProblem, GateKind, InfraKind, Verdict};
use crate::stages::{Edge, Stage};

/// `QG_CHECKS`: the gates of each guarded edge, in the order they run.
pub(crate) const QG_CHECKS: &[(Stage, Stage, &[GateKind])] = &[
    (
        Stage::DeployStaging,
        Stage::Deploy,
        &[
            GateKind::Security,
            GateKind::Merge,
            GateKind::Coverage,
            GateKind::ImageFreshness,
        ],
    ),
    (Stage::Deploy, Stage::Done, &[GateKind::MergeVerify]),
];

/// The gates guarding an edge, in order; empty for an unguarded edge.
pub(crate) fn edge_gates(edge: Edge) -> &'static [GateKind] {
    QG_CHECKS
        .iter()
        .find(|(from, to, _)| *from == edge.from && *to == edge.to)
        .map_or(&[], |(_, _, gates)| gates)
}

/// Runs one gate. Never fails and never unwinds: an error becomes an `other` infra verdict (a
/// `ConfigProblem` a `config` one), a panic an `other` verdict naming it.
pub(crate) fn run(gate: GateKind, cx: &mut GateCx) -> GateResult {
    let ran = catch_unwind(AssertUnwindSafe(|| match gate {
        GateKind::Security => checks::security(cx),
        GateKind::Merge => merge::retest(cx),
        GateKind::Coverage => checks::coverage(cx),
        GateKind::ImageFreshness => checks::image_freshness(cx),
        GateKind::MergeVerify => merge_verify::verify(cx),
    }));
    let result = match ran {
        Ok(result) => result,
        Err(payload) => {
            // Whatever the gate held besides the lease (which the edge gives back) goes too, and
            // the run it had open (its tree already killed by the unwinding runner) is finished
            // here, so that this step routes it once and the reaper never again.
            let repo = cx.task.repo.clone();
            let _ = crate::merge_lock::release(cx.store, &repo, &cx.lease);
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let reason = format!("the {gate} gate panicked: {what}");
            let task_id = cx.task.id.clone();
            let finished = cx
                .store
                .write(|db| db.finish_own_open_runs(&task_id, &reason))
                .unwrap_or_default();
            let mut result = GateResult::new(
                gate,
                Verdict::Infra {
                    kind: InfraKind::Other,
                    reason,
                },
            );
            result.run_id = finished.last().copied();
            return result;
        }
    };
    result.unwrap_or_else(|err| {
        let verdict = match err.chain().find_map(|e| e.downcast_ref::<ConfigProblem>()) {
            Some(problem) => Verdict::Config {
                reason: problem.0.clone(),
            },
            None => Verdict::Infra {
                kind: InfraKind::Other,
                reason: format!("{err:#}"),
            },
        };
        GateResult::new(gate, verdict)
    })
}

/// The preflight of a gated edge, before anything is spent: problems no retry fixes, as a
/// `config` result of the gate they stop. The task's branch must be on the remote for the gates
/// that judge it (`deploy-staging → deploy`; merge-verify judges the re-tested head, and a forge
/// may delete a merged branch): a branch gone is the merge gate's (the gate that needs it, always
/// configured), never a skipped gate's. The program each configured command starts must be on
/// the PATH it will get — except the merge gate's re-test and merge-verify's merge command, which
/// a passing verdict or a proof of merge may make unnecessary: those gates judge their program
/// right before it would run (`program_problem`). Anything the preflight cannot judge (a remote
/// that does not answer, shell syntax, a gate environment without PATH) is left to the gate.
pub(crate) fn preflight(gates: &[GateKind], cx: &GateCx) -> Option<GateResult> {
    let judges_branch = [GateKind::Security, GateKind::Merge, GateKind::Coverage];
    let needs_branch = if gates.contains(&GateKind::Merge) {
        Some(GateKind::Merge)
    } else {
        gates.iter().copied().find(|g| judges_branch.contains(g))
    };
    if let Some(gate) = needs_branch {
        let (url, branch) = (&cx.repo.url, &cx.task.branch);
        if let Ok(false) = crate::git::remote_has_branch(url, branch) {
            return Some(GateResult::new(
                gate,
                Verdict::Config {
                    reason: branch_gone(cx, branch, "the task branch"),
                },
            ));
        }
    }
    for &gate in gates {
        if matches!(gate, GateKind::Merge | GateKind::MergeVerify) {
            continue;
        }
        let Some((key, command)) = command_of(gate, cx) else {
            continue;
        };
        if let Some(reason) = program_problem(cx, key, command) {
            return Some(GateResult::new(gate, Verdict::Config { reason }));
        }
    }
    None
}

/// Why the program `command` (configured as `key`) starts cannot start on the gate's PATH, with
/// the fix; `None` when it can, or when that cannot be judged.
pub(crate) fn program_problem(cx: &GateCx, key: &str, command: &str) -> Option<String> {
    let path = gate_path(cx)?;
    let why = cannot_start(command, &path).or_else(|| {
        let env = crate::config::gate_env(cx.config.gate_env_pass.as_deref());
        runner_module_missing(command, &path, &env)
    })?;
    Some(format!(
        "{why} (the program {key} starts; hint: install it, or set {key} to a program that is, then `orch task release {}`)",
        cx.task.id
    ))
}

/// The configured command of a gate, with its key; `None` when the gate is skipped.
fn command_of<'a>(gate: GateKind, cx: &'a GateCx) -> Option<(&'static str, &'a str)> {
    let c = cx.config;
    match gate {
        GateKind::Security => c
            .security_cmd
            .as_deref()
            .map(|s| ("ORCH_SECURITY_GATE_CMD", s)),
        GateKind::Merge => Some(("ORCH_MERGE_RETEST_CMD", c.merge_retest_cmd.as_str())),
        GateKind::Coverage => c.coverage_cmd.as_deref().map(|s| ("ORCH_COVERAGE_CMD", s)),
        GateKind::ImageFreshness => c
            .image_freshness_cmd
            .as_deref()
            .map(|s| ("ORCH_IMAGE_FRESHNESS_CMD", s)),
        GateKind::MergeVerify => c.merge_cmd.as_deref().map(|s| ("ORCH_MERGE_CMD", s)),
    }
}

/// The PATH a gate command gets (`config::gate_env`; the merge command keeps orch's, which is
/// the same variable). `None` when there is none: `sh` then searches a default path of its own
/// (dash's is not glibc's), which is not orch's to guess, so nothing is judged.
fn gate_path(cx: &GateCx) -> Option<String> {
    crate::config::gate_env(cx.config.gate_env_pass.as_deref())
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v)
}

/// Words `sh -c` gives a meaning of its own: a keyword or a builtin is not a program to find.
/// The union of dash's and bash's builtins and reserved words (`compgen -b -k`, and dash's
/// `chdir`), so that the preflight never calls a word missing that either `sh` would run.
const SHELL_WORDS: &[&str] = &[
    "!",
    ".",
    ":",
    "[",
    "[[",
    "]]",
    "{",
    "}",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// Why the first word of `command` (run by `sh -c` with `path`) cannot start, when that can be
/// judged: a plain program name not found on `path`, or an absolute path that is missing or not
/// executable. `None` for anything else (shell syntax, a builtin, a path relative to the working
/// copy, a PATH with a relative entry).
pub(crate) fn cannot_start(command: &str, path: &str) -> Option<String> {
    let word = command.split_whitespace().next()?;
    const SYNTAX: &[char] = &[
        '=', '$', '`', '\'', '"', '\\', '(', ')', '{', '}', ';', '&', '|', '<', '>', '*', '?', '[',
        ']', '~', '#',
    ];
    if word.contains(SYNTAX) || SHELL_WORDS.contains(&word) {
        return None;
    }
    // The word as a message quotes it: a long one is cut (it ends up in a HOLD reason and an
    // alert).
    let shown = if word.chars().count() > 120 {
        format!(
            "{}… ({} bytes)",
            word.chars().take(120).collect::<String>(),
            word.len()
        )
    } else {
        word.to_string()
    };
    if word.contains('/') {
        if !word.starts_with('/') {
            return None;
        }
        return match std::fs::metadata(word) {
            Err(_) => Some(format!("`{shown}` does not exist")),
            Ok(meta) if !is_executable(&meta) => Some(format!("`{shown}` is not executable")),
            Ok(_) => None,
        };
    }
    let dirs: Vec<&str> = path.split(':').collect();
    if dirs.iter().any(|d| !d.starts_with('/')) {
        return None;
    }
    let found = dirs.iter().any(|dir| {
        std::fs::metadata(Path::new(dir).join(word)).is_ok_and(|meta| is_executable(&meta))
    });
    (!found).then(|| format!("`{shown}` is not found on the gate's PATH ({path})"))
}

/// The test runners a repository installs, never ships: `python3 -m pytest` with an interpreter
/// that has no pytest exits 1 like a red suite, and would blame the change.
const RUNNER_MODULES: &[&str] = &["pytest"];

/// Why `command` — `PYTHON -m MODULE …`, MODULE a runner of `RUNNER_MODULES` — cannot start: the
/// interpreter found on `path` cannot find the module with the gate's environment `env`. `None`
/// when it can, or when that cannot be judged (another command, an interpreter that does not
/// answer in time).
fn runner_module_missing(command: &str, path: &str, env: &[(String, String)]) -> Option<String> {
    let mut words = command.split_whitespace();
    let (python, flag, module) = (words.next()?, words.next()?, words.next()?);
    let is_python = python.rsplit('/').next().is_some_and(|name| {
        name.strip_prefix("python")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    });
    if !is_python || flag != "-m" || !RUNNER_MODULES.contains(&module) {
        return None;
    }
    // A relative PYTHONPATH entry means the working copy, which the probe (run from `/`) does
    // not have: not judged.
    let relative_pythonpath = env
        .iter()
        .any(|(k, v)| k == "PYTHONPATH" && v.split(':').any(|entry| !entry.starts_with('/')));
    if relative_pythonpath {
        return None;
    }
    let mut probe = std::process::Command::new(python);
    probe
        .args([
            "-c",
            "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)",
            module,
        ])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", path)
        .current_dir("/");
    let finished = crate::child::run(probe, std::time::Duration::from_secs(20), None).ok()?;
    (finished.status?.code() == Some(3)).then(|| format!("`{python}` has no module `{module}`"))
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::{cannot_start, runner_module_missing};

    /// A relative PYTHONPATH entry is the working copy's, which the probe does not see: never
    /// judged (a false config HOLD otherwise); a long missing program is cut in the message.
    #[test]
    fn the_pytest_probe_never_judges_a_relative_pythonpath() {
        let path = "/usr/local/bin:/usr/bin:/bin";
        for pythonpath in ["vendor", "/opt/x:vendor", ""] {
            let env = vec![("PYTHONPATH".to_string(), pythonpath.to_string())];
            assert_eq!(
                runner_module_missing("python3 -m pytest -q", path, &env),
                None
            );
        }
        let long = format!("/nonexistent/{}", "a".repeat(100_000));
        let why = cannot_start(&long, path).unwrap();
        assert!(why.len() < 300 && why.contains("(100013 bytes)"), "{why}");
    }

    #[test]
    fn the_preflight_judges_only_the_first_word_it_can() {
        let path = "/usr/bin:/bin";
        assert_eq!(cannot_start("sh -c true", path), None);
        assert!(cannot_start("no-such-program-xyz --all", path)
            .unwrap()
            .contains("not found"));
        assert!(cannot_start("/no/such/scanner", path)
            .unwrap()
            .contains("does not exist"));
        let plain_file = tempfile::NamedTempFile::new().unwrap();
        let plain_file = plain_file.path().display().to_string();
        assert!(cannot_start(&plain_file, path)
            .unwrap()
            .contains("not executable"));
        for skipped in [
            "FOO=1 no-such-program-xyz",
            "(no-such-program-xyz)",
            "{ no-such-program-xyz; }",
            "if true; then no-such-program-xyz; fi",
            "cd . && no-such-program-xyz",
            "./relative/scan.sh",
            "$SCANNER",
            "",
        ] {
            assert_eq!(cannot_start(skipped, path), None, "{skipped}");
        }
        assert_eq!(cannot_start("no-such-program-xyz", "bin:/usr/bin"), None);
        for builtin in [
            "chdir .",
            "source ./env",
            "declare -x A=1",
            "let x=1",
            "pushd .",
        ] {
            assert_eq!(cannot_start(builtin, path), None, "{builtin}");
        }
    }
}
