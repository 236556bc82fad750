//! `.env.example` as data: every key orch reads with its default, comment and section, and the
//! names orch sets for the gate commands it runs.
//!
//! `.env.example` is the one place a key is documented; the man page's ENVIRONMENT section and the
//! README's environment table are generated from it (`scripts/gen-docs`), and tests/cli/docs.rs
//! holds it to the source in both directions.

/// The file, as compiled into this build.
pub const ENV_EXAMPLE: &str = include_str!("../.env.example");

/// Where the README's generated environment table starts and ends.
pub const README_BEGIN: &str =
    "<!-- BEGIN env table: generated from .env.example by scripts/gen-docs -->";
pub const README_END: &str = "<!-- END env table -->";

/// One `KEY=default` line and the comment above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvKey {
    pub key: String,
    /// The value as written; empty means unset.
    pub default: String,
    /// The comment lines right above the key, joined with spaces; empty when there are none.
    pub comment: String,
}

/// What a section holds, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Comment lines not attached to a key (followed by a blank line), joined with spaces.
    Note(String),
    Key(EnvKey),
    /// A `#   NAME   description` line: a name orch sets for its commands and never reads.
    SetForCommands {
        name: String,
        description: String,
    },
}

/// A `# --- Title ---` section and what follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvExample {
    /// The comment before the first section.
    pub intro: Vec<String>,
    pub sections: Vec<Section>,
}

impl EnvExample {
    /// Every key, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &EnvKey> {
        self.sections
            .iter()
            .flat_map(|s| s.items.iter())
            .filter_map(|item| match item {
                Item::Key(key) => Some(key),
                _ => None,
            })
    }

    /// Every name listed as set by orch, with its description.
    pub fn set_for_commands(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sections
            .iter()
            .flat_map(|s| s.items.iter())
            .filter_map(|item| match item {
                Item::SetForCommands { name, description } => {
                    Some((name.as_str(), description.as_str()))
                }
                _ => None,
            })
    }
}

/// The title of a `# --- Title -----` line.
fn section_title(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# --- ")?;
    let title = rest.trim_end_matches('-').trim_end();
    (rest.ends_with("---") && !title.is_empty()).then_some(title)
}

/// Parses `.env.example`. Lines that are neither comments, keys nor blank are ignored here; the
/// canon test in tests/cli/docs.rs refuses them.
pub fn parse(text: &str) -> EnvExample {
    let mut file = EnvExample::default();
    let mut pending: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(title) = section_title(line) {
            flush_note(&mut file, &mut pending);
            file.sections.push(Section {
                title: title.to_string(),
                items: Vec::new(),
            });
        } else if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            match set_name(comment) {
                Some((name, description)) if !file.sections.is_empty() => {
                    flush_note(&mut file, &mut pending);
                    push(&mut file, Item::SetForCommands { name, description });
                }
                _ => pending.push(comment.trim().to_string()),
            }
        } else if line.is_empty() {
            flush_note(&mut file, &mut pending);
        } else if let Some((key, value)) = line.split_once('=') {
            let key = EnvKey {
                key: key.trim().to_string(),
                default: value.to_string(),
                comment: std::mem::take(&mut pending).join(" "),
            };
            push(&mut file, Item::Key(key));
        }
    }
    flush_note(&mut file, &mut pending);
    file
}

fn push(file: &mut EnvExample, item: Item) {
    if file.sections.is_empty() {
        file.sections.push(Section::default());
    }
    file.sections
        .last_mut()
        .expect("a section exists")
        .items
        .push(item);
}

/// `  ORCH_NAME   what it is` (indented inside a comment): a name orch sets.
fn set_name(comment: &str) -> Option<(String, String)> {
    if !comment.starts_with(char::is_whitespace) {
        return None;
    }
    let comment = comment.trim_start();
    let name_len = comment.find(char::is_whitespace).unwrap_or(comment.len());
    let name = &comment[..name_len];
    let is_name = name.starts_with("ORCH_")
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_name.then(|| (name.to_string(), comment[name_len..].trim().to_string()))
}

/// Comment lines not followed by a key belong to the section (or the file), not to a key.
fn flush_note(file: &mut EnvExample, pending: &mut Vec<String>) {
    if pending.is_empty() {
        return;
    }
    if file.sections.is_empty() {
        file.intro.append(pending);
    } else {
        let note = std::mem::take(pending).join(" ");
        push(file, Item::Note(note));
    }
}

/// The first sentence of a comment: up to the first `. ` (or the whole comment).
pub fn first_sentence(comment: &str) -> &str {
    match comment.find(". ") {
        Some(end) => &comment[..=end],
        None => comment,
    }
}

/// The README's environment table: every key with its default and the first sentence of its
/// comment, between the two markers.
pub fn readme_table(file: &EnvExample) -> String {
    let mut out = format!("{README_BEGIN}\n\n| key | default | meaning |\n|---|---|---|\n");
    for key in file.keys() {
        let default = if key.default.is_empty() {
            "unset".to_string()
        } else {
            format!("`{}`", key.default.replace('|', "\\|"))
        };
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            key.key,
            first_sentence(&key.comment).replace('|', "\\|")
        ));
    }
    out.push('\n');
    out.push_str(README_END);
    out
}

/// `readme` with its environment table replaced by `table`; `None` when the markers are missing.
pub fn splice_readme(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(README_BEGIN)?;
    let end = readme[start..].find(README_END)? + start + README_END.len();
    Some(format!("{}{table}{}", &readme[..start], &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Intro line.\n\n# --- Store ---------\n# The file. Long.\nORCH_DB_PATH=\n# Lease.\nORCH_KILL_GRACE_S=60\nORCH_MERGE_CMD=x|y\n# Closing note.\n\n# --- Set by orch, never read ---\n# orch puts these.\n#   ORCH_TASK_ID   the task id\n";

    #[test]
    fn keys_take_the_comment_right_above_them_and_names_set_by_orch_are_apart() {
        let file = parse(SAMPLE);
        assert_eq!(file.intro, ["Intro line."]);
        let keys: Vec<_> = file
            .keys()
            .map(|k| (k.key.as_str(), k.default.as_str(), k.comment.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("ORCH_DB_PATH", "", "The file. Long."),
                ("ORCH_KILL_GRACE_S", "60", "Lease."),
                ("ORCH_MERGE_CMD", "x|y", "")
            ]
        );
        assert_eq!(file.sections[0].title, "Store");
        assert_eq!(
            file.sections[0].items.last(),
            Some(&Item::Note("Closing note.".into()))
        );
        assert_eq!(file.sections[1].title, "Set by orch, never read");
        assert_eq!(
            file.sections[1].items[0],
            Item::Note("orch puts these.".into())
        );
        let set: Vec<_> = file.set_for_commands().collect();
        assert_eq!(set, [("ORCH_TASK_ID", "the task id")]);
    }

    #[test]
    fn the_readme_table_escapes_pipes_and_splices_between_the_markers() {
        let table = readme_table(&parse(SAMPLE));
        assert!(
            table.contains("| `ORCH_DB_PATH` | unset | The file. |"),
            "{table}"
        );
        assert!(
            table.contains("| `ORCH_MERGE_CMD` | `x\\|y` |  |"),
            "{table}"
        );
        let readme = format!("a\n{README_BEGIN}\nold\n{README_END}\nb\n");
        assert_eq!(splice_readme(&readme, "NEW").unwrap(), "a\nNEW\nb\n");
        assert_eq!(splice_readme("no markers", "NEW"), None);
    }
}
