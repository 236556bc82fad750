//! Docs that cannot drift: the committed man pages, completions and README environment table
//! equal what the code generates, and `.env.example` lists exactly the keys the source reads,
//! each with its code default and a comment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use orch::config::{Config, SET_FOR_COMMANDS};
use orch::env_example::{self, EnvExample};

const REGENERATE: &str = "run `scripts/gen-docs` and commit the result";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.env.example` as it is on disk now.
fn env_example_on_disk() -> (String, EnvExample) {
    let text = std::fs::read_to_string(root().join(".env.example")).expect(".env.example exists");
    let parsed = env_example::parse(&text);
    (text, parsed)
}

/// The first line where two texts differ, for a message a reader can act on.
fn first_difference(committed: &[u8], generated: &[u8]) -> String {
    let committed = String::from_utf8_lossy(committed);
    let generated = String::from_utf8_lossy(generated);
    let mut c = committed.lines();
    let mut g = generated.lines();
    for n in 1.. {
        match (c.next(), g.next()) {
            (None, None) => return "only in line endings".into(),
            (a, b) if a == b => continue,
            (a, b) => {
                return format!(
                    "line {n}: committed {:?}, generated {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                )
            }
        }
    }
    unreachable!()
}

#[test]
fn committed_man_pages_and_completions_are_what_the_code_generates() {
    let generated: Vec<(PathBuf, Vec<u8>)> = orch::manpage::render_all()
        .into_iter()
        .chain(orch::completions::render_all())
        .collect();
    let mut stale = Vec::new();
    for (path, contents) in &generated {
        match std::fs::read(root().join(path)) {
            Err(_) => stale.push(format!("{} is missing", path.display())),
            Ok(committed) if committed != *contents => stale.push(format!(
                "{} differs ({})",
                path.display(),
                first_difference(&committed, contents)
            )),
            Ok(_) => {}
        }
    }
    let wanted: BTreeSet<&Path> = generated.iter().map(|(p, _)| p.as_path()).collect();
    for dir in [orch::manpage::DIR, orch::completions::DIR] {
        for entry in std::fs::read_dir(root().join(dir)).into_iter().flatten() {
            let path = Path::new(dir).join(entry.unwrap().file_name());
            if !wanted.contains(path.as_path()) {
                stale.push(format!("{} is no longer generated", path.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale: {REGENERATE}\n  {}",
        stale.join("\n  ")
    );
    // Every subcommand has its page, and the top page carries the extra sections.
    for page in [
        "orch.1",
        "orch-task-add.1",
        "orch-merge-gate-retest.1",
        "orch-queue.1",
    ] {
        assert!(
            wanted.contains(Path::new("man").join(page).as_path()),
            "{page}"
        );
    }
    let top = String::from_utf8(generated[0].1.clone()).unwrap();
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH \"STAGE TABLE\"",
        ".SH VERSION",
    ] {
        assert!(top.contains(section), "orch.1 has no `{section}`");
    }
    for exit in orch::error::Exit::ALL {
        assert!(
            top.contains(&format!(".TP\n\\fB{}\\fR\n", exit.code())),
            "{exit:?}"
        );
    }
    for code in ["124", "125", "126", "127", "128+"] {
        assert!(top.contains(&format!("\\fB{code}")), "orch exec's {code}");
    }
    for key in env_example_on_disk().1.keys() {
        assert!(top.contains(&format!("\\fB{}\\fR", key.key)), "{}", key.key);
    }
    for name in SET_FOR_COMMANDS {
        assert!(top.contains(&format!("\\fB{name}\\fR")), "{name}");
    }
}

#[test]
fn the_readme_environment_table_agrees_with_env_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, file) = env_example_on_disk();
    let start = readme
        .find(env_example::README_BEGIN)
        .expect("README.md has the environment table's BEGIN marker");
    let end = readme[start..]
        .find(env_example::README_END)
        .expect("README.md has the environment table's END marker")
        + start;
    // Each row: | `KEY` | default | meaning |
    let rows: Vec<(String, String)> = readme[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let key = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
            let default = cells.get(1)?.replace("\\|", "|");
            let default = match default.as_str() {
                "unset" => String::new(),
                d => d.trim_matches('`').to_string(),
            };
            Some((key.to_string(), default))
        })
        .collect();
    let expected: Vec<(String, String)> = file
        .keys()
        .map(|k| (k.key.clone(), k.default.clone()))
        .collect();
    assert_eq!(
        rows, expected,
        "README.md's environment table disagrees with .env.example: {REGENERATE}"
    );
    assert_eq!(
        readme[start..end + env_example::README_END.len()],
        env_example::readme_table(&file),
        "README.md's environment table is not the generated one: {REGENERATE}"
    );
}

/// Every string literal of a Rust source file, with its line, comments skipped. Enough of Rust's
/// lexical grammar for the canon test: line and (nested) block comments, plain, byte and raw
/// strings, char literals and lifetimes.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                let start_line = line;
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        text.push(chars[i]);
                        i += 1;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push((start_line, text));
            }
            'r' | 'b' | 'c' if i == 0 || !ident(chars[i - 1]) => {
                // A raw string `r"…"`, `r#"…"#`, `br#"…"#`; or a byte/C string `b"…"` (its body
                // is read by the `"` arm on the next step).
                let mut j = i + 1;
                if c != 'r' && chars.get(j) == Some(&'r') {
                    j += 1;
                } else if c != 'r' {
                    i += 1;
                    continue;
                }
                let hashes = chars[j..].iter().take_while(|&&h| h == '#').count();
                if chars.get(j + hashes) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let start_line = line;
                let mut k = j + hashes + 1;
                let mut text = String::new();
                loop {
                    if k >= chars.len() {
                        break;
                    }
                    if chars[k] == '"'
                        && chars[k + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == '#')
                            .count()
                            == hashes
                    {
                        k += 1 + hashes;
                        break;
                    }
                    if chars[k] == '\n' {
                        line += 1;
                    }
                    text.push(chars[k]);
                    k += 1;
                }
                out.push((start_line, text));
                i = k;
            }
            '\'' => {
                // A char literal ('x', '\n', '\'', '"') or a lifetime ('a).
                if next == Some('\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ if ident(c) => {
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn is_key(text: &str) -> bool {
    text.strip_prefix("ORCH_").is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit())
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// `ORCH_` followed by name characters and then `{`: a key name built at run time.
fn composes_a_key(text: &str) -> bool {
    text.match_indices("ORCH_").any(|(at, _)| {
        text[at + 5..]
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
            == Some('{')
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_lexer_finds_literals_and_skips_comments_chars_and_lifetimes() {
    let src = "// \"ORCH_IN_COMMENT\"\n/* \"ORCH_BLOCK\" /* nested */ */ let q = '\"'; fn f<'a>(x: &'a str) {}\nlet a = \"ORCH_A\"; let b = r#\"ORCH_\"B\"#; let c = b\"ORCH_C\"; let e = '\\''; let d = \"x\\\"ORCH_D\";";
    let found: Vec<(usize, String)> = string_literals(src);
    assert_eq!(
        found,
        [
            (3, "ORCH_A".to_string()),
            (3, "ORCH_\"B".to_string()),
            (3, "ORCH_C".to_string()),
            (3, "x\\\"ORCH_D".to_string()),
        ]
    );
    assert!(is_key("ORCH_A_B1") && !is_key("ORCH_") && !is_key("ORCH_a") && !is_key("XORCH_A"));
    assert!(composes_a_key("ORCH_{gate}_CMD") && composes_a_key("x ORCH_GATE_{n}"));
    assert!(!composes_a_key("ORCH_KILL_GRACE_S ({}s)"));
}

#[test]
fn env_example_lists_exactly_the_keys_the_source_reads() {
    let (text, file) = env_example_on_disk();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let ok = line.is_empty()
            || line.starts_with('#')
            || line.split_once('=').is_some_and(|(k, _)| is_key(k));
        if !ok {
            problems.push(format!(
                ".env.example:{}: `{line}` is neither a comment, a blank line nor an `ORCH_KEY=default` line",
                n + 1
            ));
        }
    }
    let listed: BTreeSet<String> = file.keys().map(|k| k.key.clone()).collect();
    let set_by_orch: BTreeSet<&str> = SET_FOR_COMMANDS.iter().copied().collect();

    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut read: BTreeMap<String, String> = BTreeMap::new();
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        for (line, literal) in string_literals(&src) {
            if composes_a_key(&literal) {
                problems.push(format!(
                    "{shown}:{line} builds an ORCH_ key name at run time (`{literal}`): write every key as a whole string literal so this test can hold .env.example to it"
                ));
            }
            if is_key(&literal) && !set_by_orch.contains(literal.as_str()) {
                read.entry(literal)
                    .or_insert_with(|| format!("{shown}:{line}"));
            }
        }
    }
    for (key, at) in &read {
        if !listed.contains(key) {
            problems.push(format!(
                "{at} reads `{key}`, which .env.example does not list: add a `{key}=<default>` line with a comment above it to .env.example (or, if orch only sets it for the commands it runs, add it to config::SET_FOR_COMMANDS and to the \"Set by orch, never read\" section)"
            ));
        }
    }
    for key in &listed {
        if !read.contains_key(key) {
            problems.push(format!(
                ".env.example lists `{key}=`, but no file under src/ reads it: remove the line, or read the key in src/config.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn names_orch_sets_are_listed_apart_and_never_as_keys() {
    let (_, file) = env_example_on_disk();
    let listed: BTreeSet<&str> = file.set_for_commands().map(|(name, _)| name).collect();
    let in_code: BTreeSet<&str> = SET_FOR_COMMANDS.iter().copied().collect();
    assert_eq!(
        listed, in_code,
        "the \"Set by orch, never read\" section of .env.example and config::SET_FOR_COMMANDS must name the same variables"
    );
    for (name, description) in file.set_for_commands() {
        assert!(
            !description.is_empty(),
            "{name} has no description in .env.example"
        );
    }
    for key in file.keys() {
        assert!(
            !in_code.contains(key.key.as_str()),
            "{} is set by orch for its commands, so .env.example must not list it as a `{}=` line",
            key.key,
            key.key
        );
    }
}

#[test]
fn env_example_values_are_the_code_defaults_and_every_key_has_a_comment() {
    let (_, file) = env_example_on_disk();
    for key in file.keys() {
        assert!(
            !key.comment.is_empty(),
            "`{}` has no comment in .env.example: add one line above it saying what it does",
            key.key
        );
    }
    let example: BTreeMap<String, String> = file
        .keys()
        .map(|k| (k.key.clone(), k.default.clone()))
        .collect();
    let from_example = Config::load(&|k| example.get(k).cloned(), None);
    let defaults = Config::load(&|_| None, None);
    assert!(
        from_example.problems.is_empty(),
        "a value in .env.example is refused by orch: {:?}",
        from_example.problems
    );
    let config_keys: Vec<&str> = defaults.entries.iter().map(|e| e.key).collect();
    let example_keys: Vec<&str> = file.keys().map(|k| k.key.as_str()).collect();
    assert_eq!(
        config_keys, example_keys,
        "Config::load reads these keys (left) in another order or set than .env.example lists them (right)"
    );
    for (got, default) in from_example.entries.iter().zip(&defaults.entries) {
        assert_eq!(
            got.value, default.value,
            "`{}` in .env.example is not the default orch uses: write `{}={}`",
            got.key, got.key, default.value
        );
    }
}
