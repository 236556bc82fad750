//! The layer test: CLAUDE.md's ```layers block is the picture of which top-level module may import
//! which, and the source tree is held to it. It fails on a cycle among top-level modules, on an
//! import that points up the picture, and on a top-level module the picture does not place.
//!
//! `analyze` is a pure function over (path, source) pairs and the picture, so the self-check
//! below proves on a small fake tree that the checker can fail, and on what.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::Path;

/// One thing wrong with the tree against the picture.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Problem {
    /// CLAUDE.md holds no ```layers block.
    NoPicture,
    /// A line of the block that is not `LAYER: mod mod …`.
    BadPictureLine { line: String },
    /// A module placed in two layers.
    PlacedTwice {
        module: String,
        first: String,
        second: String,
    },
    /// A top-level module the picture does not place.
    Unplaced { module: String, file: String },
    /// `file:line` of module `from` names module `to`, which sits in a higher layer.
    Upward {
        file: String,
        line: usize,
        from: String,
        from_layer: String,
        to: String,
        to_layer: String,
    },
    /// A path the checker cannot follow, so it could hide an import: a glob import from the
    /// crate root (`use crate::*`) or a re-export at the crate root.
    Hidden {
        file: String,
        line: usize,
        what: String,
    },
    /// Modules importing each other around a cycle: `path` starts and ends with the same module;
    /// `sites[i]` is one `file:line` of the edge `path[i] -> path[i + 1]`.
    Cycle {
        path: Vec<String>,
        sites: Vec<(String, usize)>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoPicture => write!(
                f,
                "CLAUDE.md has no ```layers block (one `LAYER: mod mod …` line per layer, top to bottom)"
            ),
            Problem::BadPictureLine { line } => write!(
                f,
                "CLAUDE.md's layers block: `{line}` is not `LAYER: mod mod …`"
            ),
            Problem::PlacedTwice {
                module,
                first,
                second,
            } => write!(
                f,
                "CLAUDE.md's layers block places {module} twice (layers {first} and {second})"
            ),
            Problem::Unplaced { module, file } => write!(
                f,
                "{file}: module {module} is in no layer of CLAUDE.md's layers block (add it to the layer it belongs to)"
            ),
            Problem::Upward {
                file,
                line,
                from,
                from_layer,
                to,
                to_layer,
            } => write!(
                f,
                "{file}:{line}: {from} (layer {from_layer}) imports {to} (layer {to_layer}), which is above it"
            ),
            Problem::Hidden { file, line, what } => write!(
                f,
                "{file}:{line}: {what} hides which module it names (import each item from its own module)"
            ),
            Problem::Cycle { path, sites } => {
                write!(f, "cycle: {}", path.join(" -> "))?;
                for (pair, (file, line)) in path.windows(2).zip(sites) {
                    write!(f, "\n    {} -> {} at {file}:{line}", pair[0], pair[1])?;
                }
                Ok(())
            }
        }
    }
}

/// The top-level module a source file belongs to: `src/foo.rs` and `src/foo/**` are `foo`;
/// `None` for the crate root and the binary.
fn module_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    if rest == "lib.rs" || rest == "main.rs" {
        return None;
    }
    let first = rest.split('/').next()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// The source with comments and string and char literals blanked out (newlines kept, so byte
/// offsets still give line numbers), cut at a `#[cfg(test)]` line followed by `mod tests`.
fn code_of(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let blank = |out: &mut Vec<u8>, b: u8| out.push(if b == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        if b == b'/' && next == Some(b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if b == b'r'
            && matches!(next, Some(b'"') | Some(b'#'))
            && (i == 0 || !is_ident(bytes[i - 1]))
        {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            while bytes.get(j) == Some(&b'#') {
                j += 1;
            }
            if bytes.get(j) != Some(&b'"') {
                out.push(b);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = source[j + 1..]
                .find(std::str::from_utf8(&close).unwrap())
                .map_or(bytes.len(), |k| j + 1 + k + close.len());
            for &c in &bytes[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if b == b'"' {
            blank(&mut out, b);
            i += 1;
            while i < bytes.len() {
                let c = bytes[i];
                if c == b'\\' {
                    blank(&mut out, c);
                    if let Some(&e) = bytes.get(i + 1) {
                        blank(&mut out, e);
                    }
                    i += 2;
                    continue;
                }
                blank(&mut out, c);
                i += 1;
                if c == b'"' {
                    break;
                }
            }
        } else if b == b'\'' {
            // A char literal ('x', '\n', '\''), or else a lifetime: left as it is.
            let len = if next == Some(b'\\') {
                source[i + 2..].find('\'').map(|k| k + 3)
            } else {
                source[i + 1..]
                    .chars()
                    .next()
                    .filter(|c| source[i + 1 + c.len_utf8()..].starts_with('\''))
                    .map(|c| c.len_utf8() + 2)
            };
            let len = len.unwrap_or(1);
            for &c in &bytes[i..i + len] {
                blank(&mut out, c);
            }
            i += len;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let code = String::from_utf8_lossy(&out).into_owned();
    let lines: Vec<&str> = code.split_inclusive('\n').collect();
    let mut kept = String::with_capacity(code.len());
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        if line.trim() == "#[cfg(test)]" {
            let follower = (n + 1..lines.len()).find(|&k| !lines[k].trim().is_empty());
            if let Some(start) =
                follower.filter(|&k| lines[k].trim_start().starts_with("mod tests"))
            {
                // Blank the unit-test module's block, braces balanced (literals are blanked
                // already); whatever follows it is read again.
                let mut depth = 0i64;
                let mut opened = false;
                let mut k = start;
                while k < lines.len() {
                    for c in lines[k].chars() {
                        match c {
                            '{' => {
                                depth += 1;
                                opened = true;
                            }
                            '}' => depth -= 1,
                            _ => {}
                        }
                    }
                    k += 1;
                    if opened && depth <= 0 {
                        break;
                    }
                }
                for blanked in &lines[n..k] {
                    kept.push_str(&"\n".repeat(blanked.matches('\n').count()));
                }
                n = k;
                continue;
            }
        }
        kept.push_str(line);
        n += 1;
    }
    kept
}

/// The module path of a source file below the crate root: `src/a/b.rs` and `src/a/b/mod.rs` are
/// `[a, b]`.
fn module_path(path: &str) -> Vec<String> {
    let rest = path.strip_prefix("src/").unwrap_or(path);
    let rest = rest.strip_suffix(".rs").unwrap_or(rest);
    let mut parts: Vec<String> = rest.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every `super::…::NAME` in `code` whose `super`s climb to the crate root: (offset of NAME,
/// NAME), NAME then being a top-level module (or an item of the root).
fn super_paths(code: &str, depth: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(k) = code[from..].find("super") {
        let at = from + k;
        from = at + 5;
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue;
        }
        // Count `super ::` repetitions.
        let mut climbs = 0;
        let mut pos = at;
        while let Some((start, word)) = ident_at(code, pos) {
            if word != "super" {
                break;
            }
            let after = start + 5;
            let rest = &code[after..];
            let ws = rest.len() - rest.trim_start().len();
            if !rest[ws..].starts_with("::") {
                break;
            }
            climbs += 1;
            pos = after + ws + 2;
        }
        if climbs >= depth && climbs > 0 {
            if let Some((name_at, name)) = ident_at(code, pos) {
                found.push((name_at, name.to_string()));
            }
            from = pos;
        }
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn ident_at(code: &str, at: usize) -> Option<(usize, &str)> {
    let start = at + code[at..].len() - code[at..].trim_start().len();
    let len = code[start..].bytes().take_while(|b| is_ident(*b)).count();
    (len > 0).then(|| (start, &code[start..start + len]))
}

/// Every `crate::NAME` in `code`: (byte offset of NAME, NAME), with each top-level name inside a
/// grouped `crate::{…}`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(k) = code[from..].find("crate") {
        let at = from + k;
        from = at + 5;
        if at > 0 && is_ident(bytes[at - 1]) {
            continue;
        }
        let rest = &code[at + 5..];
        let after_ws = rest.len() - rest.trim_start().len();
        if !rest[after_ws..].starts_with("::") {
            continue;
        }
        let path_at = at + 5 + after_ws + 2;
        let tail = &code[path_at..];
        let brace = tail.len() - tail.trim_start().len();
        if tail[brace..].starts_with('{') {
            let open = path_at + brace;
            let mut depth = 0;
            let mut item_start = open + 1;
            for (j, c) in code[open..].char_indices() {
                let j = open + j;
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        if let Some((pos, name)) = ident_at(code, item_start) {
                            found.push((pos, name.to_string()));
                        }
                        item_start = j + 1;
                        if c == '}' {
                            break;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
        } else if let Some((pos, name)) = ident_at(code, path_at) {
            found.push((pos, name.to_string()));
        }
    }
    found
}

/// Paths the checker cannot follow: `crate::*` anywhere, and `pub use`/`pub(crate) use` at the
/// crate root (a low module could reach a high one through the root's name).
fn hidden(files: &[(String, String)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (path, source) in files {
        let code = code_of(source);
        for (n, line) in code.lines().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("crate::*") {
                problems.push(Problem::Hidden {
                    file: path.clone(),
                    line: n + 1,
                    what: "a glob import from the crate root".into(),
                });
            }
            let is_root = path == "src/lib.rs";
            if is_root && (compact.starts_with("pubuse") || compact.starts_with("pub(crate)use")) {
                problems.push(Problem::Hidden {
                    file: path.clone(),
                    line: n + 1,
                    what: "a re-export at the crate root".into(),
                });
            }
        }
    }
    problems
}

/// The picture: each module's layer name and index (0 is the top).
struct Picture {
    layer_of: BTreeMap<String, (usize, String)>,
}

fn parse_picture(text: &str, problems: &mut Vec<Problem>) -> Option<Picture> {
    let mut lines = text.lines();
    lines.find(|l| {
        l.trim_start()
            .strip_prefix("```")
            .is_some_and(|info| info.trim() == "layers")
    })?;
    let mut layer_of: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (index, line) in lines
        .take_while(|l| !l.trim_start().starts_with("```"))
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let Some((layer, modules)) = line.split_once(':') else {
            problems.push(Problem::BadPictureLine {
                line: line.trim().to_string(),
            });
            continue;
        };
        let layer = layer.trim().to_string();
        for module in modules.split_whitespace() {
            if let Some((_, first)) = layer_of.get(module) {
                problems.push(Problem::PlacedTwice {
                    module: module.to_string(),
                    first: first.clone(),
                    second: layer.clone(),
                });
            } else {
                layer_of.insert(module.to_string(), (index, layer.clone()));
            }
        }
    }
    Some(Picture { layer_of })
}

/// Holds `files` (paths relative to the crate, `src/…`, with their text) to `picture` (the text
/// of CLAUDE.md, or any text holding a ```layers block). Returns every problem, sorted.
pub(crate) fn analyze(files: &[(String, String)], picture: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut first_file: BTreeMap<String, String> = BTreeMap::new();
    for (path, _) in files {
        if let Some(module) = module_of(path) {
            let entry = first_file.entry(module).or_insert_with(|| path.clone());
            if path < entry {
                *entry = path.clone();
            }
        }
    }
    // Every edge between two distinct top-level modules, with each place it happens.
    let mut edges: BTreeMap<(String, String), BTreeSet<(String, usize)>> = BTreeMap::new();
    for (path, source) in files {
        let Some(from) = module_of(path) else {
            continue;
        };
        let code = code_of(source);
        let depth = module_path(path).len();
        let mut names = crate_paths(&code);
        names.extend(super_paths(&code, depth));
        for (pos, name) in names {
            if name == from || !first_file.contains_key(&name) {
                continue;
            }
            let line = code[..pos].matches('\n').count() + 1;
            edges
                .entry((from.clone(), name))
                .or_default()
                .insert((path.clone(), line));
        }
    }

    problems.extend(hidden(files));
    match parse_picture(picture, &mut problems) {
        None => problems.push(Problem::NoPicture),
        Some(picture) => {
            for (module, file) in &first_file {
                if !picture.layer_of.contains_key(module) {
                    problems.push(Problem::Unplaced {
                        module: module.clone(),
                        file: file.clone(),
                    });
                }
            }
            for ((from, to), sites) in &edges {
                let (Some((fi, fl)), Some((ti, tl))) =
                    (picture.layer_of.get(from), picture.layer_of.get(to))
                else {
                    continue;
                };
                if fi > ti {
                    for (file, line) in sites {
                        problems.push(Problem::Upward {
                            file: file.clone(),
                            line: *line,
                            from: from.clone(),
                            from_layer: fl.clone(),
                            to: to.clone(),
                            to_layer: tl.clone(),
                        });
                    }
                }
            }
        }
    }
    problems.extend(cycles(&edges));
    problems.sort();
    problems
}

/// Cycles covering every edge that lies on one: for each such edge `u -> v`, the edge and the
/// shortest way back from `v` to `u`, each cycle written from its smallest module.
fn cycles(edges: &BTreeMap<(String, String), BTreeSet<(String, usize)>>) -> Vec<Problem> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let shortest = |start: &str, goal: &str| -> Option<Vec<String>> {
        let mut came: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(node) = queue.pop_front() {
            if node == goal {
                let mut path = vec![goal.to_string()];
                let mut at = goal;
                while at != start {
                    at = came[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return Some(path);
            }
            for &n in next.get(node).into_iter().flatten() {
                if seen.insert(n) {
                    came.insert(n, node);
                    queue.push_back(n);
                }
            }
        }
        None
    };
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (from, to) in edges.keys() {
        let Some(back) = shortest(to, from) else {
            continue;
        };
        // from -> to -> … -> from, without repeating the closing module.
        let mut ring = vec![from.clone()];
        ring.extend(back.into_iter().take_while(|m| m != from));
        let smallest = (0..ring.len()).min_by_key(|&i| &ring[i]).unwrap();
        ring.rotate_left(smallest);
        ring.push(ring[0].clone());
        found.insert(ring);
    }
    found
        .into_iter()
        .map(|path| {
            let sites = path
                .windows(2)
                .map(|w| {
                    edges[&(w[0].clone(), w[1].clone())]
                        .iter()
                        .next()
                        .cloned()
                        .unwrap()
                })
                .collect();
            Problem::Cycle { path, sites }
        })
        .collect()
}

fn source_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn imports_point_down_the_layers_of_claude_md_and_never_around_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    source_files(root, &root.join("src"), &mut files);
    assert!(
        files.len() > 10,
        "found the source tree: {} files",
        files.len()
    );
    let claude = std::fs::read_to_string(root.join("CLAUDE.md")).expect("CLAUDE.md is readable");
    let problems = analyze(&files, &claude);
    assert!(
        problems.is_empty(),
        "{} layer problem(s) against CLAUDE.md's layers block:\n{}",
        problems.len(),
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_layer_checker_finds_a_cycle_an_upward_import_and_an_unplaced_module_and_nothing_else() {
    let picture = "intro\n\n```layers\ntop: app tool\nmid: a b\nlow: base\n```\n\n```\nnot: the picture\n```\n";
    let file = |path: &str, source: &str| (path.to_string(), source.to_string());
    let files = vec![
        // The crate root is no module: its imports are not edges.
        file("src/lib.rs", "pub mod app;\nuse crate::app::run;\n"),
        // Grouped, over several lines: downward and same-layer, both allowed.
        file(
            "src/app.rs",
            "use crate::{\n    a::Thing,\n    b::{self, other::X},\n    Context,\n};\n",
        ),
        // Same layer, allowed on its own, but a and b import each other.
        file("src/a.rs", "//! a\nuse crate::b::Y;\n"),
        file(
            "src/b/mod.rs",
            "pub mod other;\npub fn f() {\n    let _ = crate::a::Thing { x: 1 };\n}\n",
        ),
        file("src/b/other.rs", "use crate::base::Z; // base is below\n"),
        // base is the bottom: one real upward import, and several that are not imports (each of them
        // would close a cycle through app and b).
        file(
            "src/base.rs",
            concat!(
                "//! crate::app::Doc is prose\n",
                "// use crate::app::Old;\n",
                "/// see crate::app::run\n",
                "/* crate::app::x */\n",
                "const S: &str = \"crate::app::y\";\n",
                "use crate::base::Own;\n",
                "use crate::Context;\n",
                "pub fn g<'a>(c: &'a char) -> bool { *c == '\"' && crate::fault::point(\"x\") }\n",
                "pub fn h() { crate::tool::run(); }\n",
                "\n",
                "#[cfg(test)]\n",
                "\n",
                "mod tests {\n",
                "    use crate::app::Fixture;\n",
                "}\n",
            ),
        ),
        file("src/tool.rs", "pub fn run() {}\n"),
        // A module the picture does not place.
        file("src/stray.rs", "use crate::base::Z;\n"),
    ];
    let problems = analyze(&files, picture);
    let expected = vec![
        Problem::Unplaced {
            module: "stray".into(),
            file: "src/stray.rs".into(),
        },
        Problem::Upward {
            file: "src/base.rs".into(),
            line: 9,
            from: "base".into(),
            from_layer: "low".into(),
            to: "tool".into(),
            to_layer: "top".into(),
        },
        Problem::Cycle {
            path: vec!["a".into(), "b".into(), "a".into()],
            sites: vec![("src/a.rs".into(), 2), ("src/b/mod.rs".into(), 3)],
        },
    ];
    let mut expected = expected;
    expected.sort();
    assert_eq!(
        problems,
        expected,
        "found:\n{}",
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        expected[1].to_string(),
        "src/base.rs:9: base (layer low) imports tool (layer top), which is above it"
    );
    assert_eq!(
        expected[2].to_string(),
        "cycle: a -> b -> a\n    a -> b at src/a.rs:2\n    b -> a at src/b/mod.rs:3"
    );

    // A three-module ring is written in order from its smallest module.
    let ring = vec![
        file("src/x.rs", "use crate::y;\n"),
        file("src/y.rs", "use crate::z;\n"),
        file("src/z.rs", "\n\nuse crate::x;\n"),
    ];
    let problems = analyze(&ring, "```layers\nall: x y z\n```\n");
    assert_eq!(
        problems,
        vec![Problem::Cycle {
            path: vec!["x".into(), "y".into(), "z".into(), "x".into()],
            sites: vec![
                ("src/x.rs".into(), 1),
                ("src/y.rs".into(), 1),
                ("src/z.rs".into(), 3)
            ],
        }]
    );

    // Paths that climb with `super`, code after a unit-test module, a glob import from the root
    // and a re-export at the root: each is seen.
    let sneaky = vec![
        file(
            "src/lib.rs",
            "pub mod top;
pub(crate) use top::run as run_it;
",
        ),
        file(
            "src/top.rs",
            "pub fn run() {}
",
        ),
        file(
            "src/low/mod.rs",
            "pub mod deep;
fn f() { super::top::run(); }
",
        ),
        file(
            "src/low/deep.rs",
            concat!(
                "fn g() { super::super::top::run(); }
",
                "fn h() { super::sibling(); }
",
                "#[cfg(test)]
",
                "mod tests {
",
                "    fn t() { crate::top::run(); }
",
                "}
",
                "fn after() { crate::top::run(); }
",
                "use crate::*;
",
            ),
        ),
    ];
    let problems = analyze(
        &sneaky,
        "```layers
high: top
low: low
```
",
    );
    let upward = |file: &str, line: usize| Problem::Upward {
        file: file.into(),
        line,
        from: "low".into(),
        from_layer: "low".into(),
        to: "top".into(),
        to_layer: "high".into(),
    };
    let mut expected = vec![
        Problem::Hidden {
            file: "src/lib.rs".into(),
            line: 2,
            what: "a re-export at the crate root".into(),
        },
        Problem::Hidden {
            file: "src/low/deep.rs".into(),
            line: 8,
            what: "a glob import from the crate root".into(),
        },
        upward("src/low/deep.rs", 1),
        upward("src/low/deep.rs", 7),
        upward("src/low/mod.rs", 2),
    ];
    expected.sort();
    assert_eq!(
        problems,
        expected,
        "found:\n{}",
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // No picture at all is a problem too, not a pass.
    assert_eq!(
        analyze(&ring[..1], "# no block here\n"),
        vec![Problem::NoPicture]
    );
}
