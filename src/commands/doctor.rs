//! `orch doctor`: the stage table, the gates, the effective config with each value's source, and
//! the checks: every value parses, the invariants of `Config::invariant_violations` hold, `git` and
//! the program of each configured command are found on PATH, and the database passes
//! `PRAGMA quick_check`. Exits 2 when something is wrong, with a fix for each problem; exits 3
//! when the missing database is the only problem (it still prints everything else and creates
//! nothing: only `orch repo add` creates a database). With `-q` it prints only the problems.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::config::{Config, Entry};
use crate::error::Exit;
use crate::gates::edge_gates;
use crate::stages::{Edge, STAGE_TRANSITIONS};
use crate::store::{Store, SCHEMA_VERSION};
use crate::Context;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {}

#[derive(Serialize)]
struct EdgeView {
    #[serde(flatten)]
    edge: Edge,
    gates: Vec<&'static str>,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    stage_transitions: Vec<EdgeView>,
    config: &'a [Entry],
    programs: Vec<ProgramCheck>,
    problems: Vec<String>,
    /// Worth a look, not wrong: exit 0 all the same.
    warnings: Vec<String>,
    database: DatabaseCheck,
    /// The protection the agent's code gets on this host.
    sandbox: String,
}

/// A program orch runs, and where PATH finds it.
#[derive(Serialize)]
struct ProgramCheck {
    /// `git`, or the key of the command whose first word this is.
    source: &'static str,
    program: String,
    /// Where it was found; `None` when it was not checked or not found.
    path: Option<String>,
    /// `found`, `missing`, or why it was not checked.
    status: String,
}

#[derive(Serialize)]
struct DatabaseCheck {
    path: String,
    state: String,
    schema_version: i64,
}

pub(crate) fn run(ctx: &Context, _args: DoctorArgs) -> Result<Exit> {
    let config = &ctx.config;
    let mut problems: Vec<String> = config
        .problems
        .iter()
        .map(|p| format!("{p} (fix: correct or unset {})", p.key))
        .collect();
    problems.extend(config.unknown.iter().map(|u| {
        format!(
            "{u}: orch ignores it (fix: rename it to the key meant, or unset {})",
            crate::ui::plain(&u.name)
        )
    }));
    problems.extend(config.invariant_violations());
    let programs = check_programs(config, &mut problems);
    let (database, missing) = check_database(ctx, &mut problems);
    let sandbox = check_sandbox(config, &mut problems);
    let mut warnings = check_privacy(config);
    warnings.extend(check_coverage(config));
    let report = Report {
        ok: problems.is_empty(),
        stage_transitions: STAGE_TRANSITIONS
            .iter()
            .map(|&edge| EdgeView {
                edge,
                gates: edge_gates(edge).iter().map(|g| g.name()).collect(),
            })
            .collect(),
        config: &config.entries,
        programs,
        problems,
        warnings,
        database,
        sandbox,
    };
    if ctx.ui.json {
        ctx.ui.json(&report)?;
    } else {
        print_text(ctx, &report);
    }
    // A configuration problem comes first (2); a missing database that is the only problem is
    // "not found" (3), like every other command on it.
    Ok(if report.ok {
        Exit::Ok
    } else if missing && report.problems.len() == 1 {
        Exit::NotFound
    } else {
        Exit::Usage
    })
}

/// Which protection gate commands get here, and whether `ORCH_GATE_WRITABLE` would grant the
/// agent's code the state directory (or one above it) or a directory on PATH.
fn check_sandbox(config: &Config, problems: &mut Vec<String>) -> String {
    let state = config.state_dir();
    for path in config.gate_writable_paths() {
        if crate::runner::within(&state, &path) {
            problems.push(format!(
                "ORCH_GATE_WRITABLE grants `{}`, which holds orch's state directory `{}` (fix: list only caches the suites need, e.g. $HOME/.cache)",
                path.display(),
                state.display()
            ));
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(dir) = on_path.iter().find(|d| crate::runner::within(d, &path)) {
            problems.push(format!(
                "ORCH_GATE_WRITABLE grants `{}`, which holds `{}` on PATH: the agent's code could replace a program orch runs (fix: drop it from ORCH_GATE_WRITABLE)",
                path.display(),
                dir.display()
            ));
        }
    }
    match config.gate_sandbox {
        crate::config::GateSandbox::Off => "none (ORCH_GATE_SANDBOX=off)".into(),
        crate::config::GateSandbox::Auto => match crate::runner::landlock_abi() {
            Ok(abi) => format!("landlock ABI {abi}"),
            Err(why) => format!("none ({why})"),
        },
    }
}

/// The state directory and the database should be private: they hold every gate's output.
fn check_privacy(config: &Config) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut warnings = Vec::new();
    for (what, path) in [
        ("state directory", config.state_dir()),
        ("database", config.db_path.clone()),
    ] {
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warnings.push(format!(
                    "the {what} `{}` is accessible to others (mode {mode:o}); it holds every gate's output (fix: chmod go-rwx `{}`)",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    warnings
}

/// A coverage minimum that nothing may measure: no coverage command, and a re-test that never
/// names `$ORCH_COVERAGE_REPORT` (a script may still write it, so this is a warning, not a
/// problem).
fn check_coverage(config: &Config) -> Option<String> {
    let unmeasured = config.coverage_min > 0.0
        && config.coverage_cmd.is_none()
        && !config.merge_retest_cmd.contains("ORCH_COVERAGE_REPORT");
    unmeasured.then(|| {
        format!(
            "ORCH_COVERAGE_MIN is {}% but ORCH_COVERAGE_CMD is unset and ORCH_MERGE_RETEST_CMD never mentions $ORCH_COVERAGE_REPORT: unless the re-test writes its coverage report there, every gated deploy holds (fix: ORCH_MERGE_RETEST_CMD='{}', or set ORCH_COVERAGE_CMD)",
            config.coverage_min,
            crate::gates::checks::EXAMPLE_RETEST
        )
    })
}

/// The shell's own words: a command that starts with one of these runs no program to look for.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for",
    "function", "if", "in", "select", "then", "time", "until", "while", ":", ".", "[", "alias",
    "bg", "break", "cd", "command", "continue", "echo", "eval", "exec", "exit", "export", "false",
    "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "source", "test", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "wait",
];

/// Checks `git` and the first word of every configured command (each runs as `sh -c CMD`).
fn check_programs(config: &Config, problems: &mut Vec<String>) -> Vec<ProgramCheck> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut checks = Vec::new();
    let git = find_on_path("git", &path_var);
    if git.is_none() {
        problems.push(
            "`git` is not on PATH (fix: install git or add its directory to PATH; every gate of \
             deploy-staging → deploy and deploy → done needs it)"
                .to_string(),
        );
    }
    checks.push(ProgramCheck {
        source: "git",
        program: "git".into(),
        status: if git.is_some() { "found" } else { "missing" }.into(),
        path: git.map(|p| p.display().to_string()),
    });
    let commands: [(&'static str, Option<&str>, &str); 6] = [
        (
            "ORCH_MERGE_RETEST_CMD",
            Some(config.merge_retest_cmd.as_str()),
            "",
        ),
        (
            "ORCH_SECURITY_GATE_CMD",
            config.security_cmd.as_deref(),
            "; unset it to skip the gate",
        ),
        (
            "ORCH_COVERAGE_CMD",
            config.coverage_cmd.as_deref(),
            "; unset it to judge the re-test's own report",
        ),
        (
            "ORCH_IMAGE_FRESHNESS_CMD",
            config.image_freshness_cmd.as_deref(),
            "; unset it to skip the gate",
        ),
        (
            "ORCH_MERGE_CMD",
            config.merge_cmd.as_deref(),
            "; unset it to leave merging to the forge",
        ),
        (
            "ORCH_ALERT_CMD",
            config.alert_cmd.as_deref(),
            "; unset it to print alerts on stderr",
        ),
    ];
    for (key, command, skip_hint) in commands {
        let Some(command) = command else { continue };
        let check = match first_program(command) {
            FirstWord::Program(program) => {
                let found = if program.contains('/') {
                    let path = Path::new(&program);
                    if path.is_absolute() {
                        is_executable(path).then(|| path.to_path_buf())
                    } else {
                        checks.push(ProgramCheck {
                            source: key,
                            program,
                            path: None,
                            status: "not checked: a relative path, resolved where the command runs"
                                .into(),
                        });
                        continue;
                    }
                } else {
                    find_on_path(&program, &path_var)
                };
                if found.is_none() {
                    problems.push(format!(
                        "{key} runs `{program}`, which is not {} (fix: install it or add its directory to PATH (cron's is short), or set {key} to a command that exists{skip_hint})",
                        if program.contains('/') { "an executable file" } else { "on PATH" }
                    ));
                }
                ProgramCheck {
                    source: key,
                    status: if found.is_some() { "found" } else { "missing" }.into(),
                    path: found.map(|p| p.display().to_string()),
                    program,
                }
            }
            FirstWord::Shell(word) => ProgramCheck {
                source: key,
                program: word,
                path: None,
                status: "not checked: a shell builtin or keyword".into(),
            },
            FirstWord::Expansion(word) => ProgramCheck {
                source: key,
                program: word,
                path: None,
                status: "not checked: the shell expands it when the command runs".into(),
            },
        };
        checks.push(check);
    }
    checks
}

/// What a command line starts with.
#[derive(Debug, PartialEq, Eq)]
enum FirstWord {
    Program(String),
    Shell(String),
    Expansion(String),
}

/// The first word of `command` as `sh` would run it: leading `NAME=value` assignments skipped,
/// quotes removed.
fn first_program(command: &str) -> FirstWord {
    let mut rest = command.trim_start();
    loop {
        let (word, raw_len, expands) = shell_word(rest);
        let is_assignment = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if is_assignment {
            rest = rest[raw_len..].trim_start();
            if rest.is_empty() {
                // Only assignments: the shell runs no program.
                return FirstWord::Shell(word);
            }
            continue;
        }
        if word.is_empty() || SHELL_WORDS.contains(&word.as_str()) || word.starts_with('(') {
            return FirstWord::Shell(if word.is_empty() {
                rest.chars().take(1).collect()
            } else {
                word
            });
        }
        return if expands {
            FirstWord::Expansion(word)
        } else {
            FirstWord::Program(word)
        };
    }
}

/// The first shell word of `text`: (the word with quotes removed, bytes it spans, whether it holds
/// an expansion).
fn shell_word(text: &str) -> (String, usize, bool) {
    let mut word = String::new();
    let mut expands = false;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() || ";&|<>()".contains(c) => {
                if word.is_empty() && "()".contains(c) {
                    word.push(c);
                    return (word, i + c.len_utf8(), false);
                }
                return (word, i, expands);
            }
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '\\') | (Some('"'), '\\') => {
                if let Some((_, next)) = chars.next() {
                    word.push(next);
                }
            }
            (q, '$') | (q, '`') if q != Some('\'') => {
                expands = true;
                word.push(c);
            }
            (_, c) => word.push(c),
        }
    }
    (word, text.len(), expands)
}

/// `program` in the directories of `path_var`, as `execvp` looks it up.
fn find_on_path(program: &str, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(program)
            } else {
                dir.join(program)
            }
        })
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The database's state, and whether it is missing (doctor's exit 3). Opens read-only: creates
/// nothing.
fn check_database(ctx: &Context, problems: &mut Vec<String>) -> (DatabaseCheck, bool) {
    let path = ctx.config.db_path.display().to_string();
    let missing = matches!(
        std::fs::metadata(&ctx.config.db_path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    );
    let state = if missing {
        problems.push(format!(
            "database `{path}` not found (fix: `orch repo add NAME --url URL` creates it, or fix --db / ORCH_DB_PATH)"
        ));
        "missing".to_string()
    } else {
        match Store::open_read_only(&ctx.config.db_path).and_then(|s| s.quick_check()) {
            Ok(lines) if lines == ["ok"] => "ok".to_string(),
            Ok(lines) => {
                problems.push(format!(
                    "database `{path}` fails quick_check: {} (fix: restore it from a backup)",
                    lines.join("; ")
                ));
                "corrupt".to_string()
            }
            Err(err) => {
                problems.push(format!("{err}"));
                "unusable".to_string()
            }
        }
    };
    (
        DatabaseCheck {
            path,
            state,
            schema_version: SCHEMA_VERSION,
        },
        missing,
    )
}

fn print_text(ctx: &Context, report: &Report) {
    let ui = &ctx.ui;
    if ui.quiet {
        // Only what is wrong — the problems, and the warnings on stderr (which `-q` never
        // holds back): nothing at all when everything is fine.
        for p in &report.problems {
            ui.line(format!("problem: {p}"));
        }
        for w in &report.warnings {
            eprintln!("orch: warning: {}", crate::ui::plain(w));
        }
        return;
    }
    ui.line("stage table (STAGE_TRANSITIONS)");
    for e in &report.stage_transitions {
        ui.line(format!(
            "  {:<14} → {:<14} {:<9} gates: {}",
            e.edge.from.as_str(),
            e.edge.to.as_str(),
            format!("{:?}", e.edge.kind).to_lowercase(),
            if e.gates.is_empty() {
                "none".to_string()
            } else {
                e.gates.join(", ")
            }
        ));
    }
    ui.line("config");
    for entry in report.config {
        let source = match &entry.refused {
            // What was set, and what is used instead.
            Some(r) => format!("{}; {:?} from {} {}", entry.source, r.raw, r.from, r.why),
            None => entry.source.to_string(),
        };
        ui.line(format!(
            "  {:<44} {:<24} ({})",
            entry.key,
            entry.value,
            crate::ui::plain(&source)
        ));
    }
    ui.line("programs");
    for p in &report.programs {
        ui.line(format!(
            "  {:<26} {:<16} {}",
            p.source,
            p.program,
            match &p.path {
                Some(path) => format!("{} ({path})", p.status),
                None => p.status.clone(),
            }
        ));
    }
    ui.line(format!(
        "database  {}  {}  (schema v{})",
        report.database.path, report.database.state, report.database.schema_version
    ));
    ui.line(format!("gate sandbox  {}", report.sandbox));
    for w in &report.warnings {
        ui.line(format!("warning: {w}"));
    }
    if report.problems.is_empty() {
        ui.line("no problems found");
    } else {
        ui.line(format!("{} problem(s):", report.problems.len()));
        for p in &report.problems {
            ui.line(format!("  - {p}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(p: &str) -> FirstWord {
        FirstWord::Program(p.into())
    }

    #[test]
    fn the_first_word_skips_assignments_and_quotes() {
        assert_eq!(first_program("python3 -m pytest -q"), program("python3"));
        assert_eq!(
            first_program("  FOO=1 BAR='a b' make check"),
            program("make")
        );
        assert_eq!(
            first_program("'/opt/my tools/scan' --all"),
            program("/opt/my tools/scan")
        );
        assert_eq!(first_program("scan;echo done"), program("scan"));
        assert_eq!(first_program("exit 0"), FirstWord::Shell("exit".into()));
        assert_eq!(first_program("true"), FirstWord::Shell("true".into()));
        assert_eq!(
            first_program("( cd x && make )"),
            FirstWord::Shell("(".into())
        );
        assert_eq!(
            first_program("if true; then :; fi"),
            FirstWord::Shell("if".into())
        );
        assert_eq!(
            first_program("$HOME/bin/scan"),
            FirstWord::Expansion("$HOME/bin/scan".into())
        );
        assert_eq!(first_program("'$literal'"), program("$literal"));
        assert_eq!(first_program("FOO=1"), FirstWord::Shell("FOO=1".into()));
    }
}
