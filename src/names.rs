//! Names that come from outside — branch names (the agent's), repository names, URLs — checked
//! before anything uses them.
//!
//! A ref name is a language: `:` splits refspecs, `+` forces, `HEAD` and `@` are symbolic, a
//! leading `-` is an option, and git accepts invisible characters. A task branch must pass
//! `git check-ref-format --branch`, must not be `HEAD` or `@`, start with `-` or `+`, contain `:`
//! or an invisible or bidi character, and — compared as a full ref — can never be the target or a
//! protected branch of its repository in any spelling.

use crate::git;

/// Characters that draw nothing or reorder text: refused in every name orch registers.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// Why `raw` cannot be registered as a name or stored as text people read: the first control,
/// invisible or bidi character in it, named by its code point.
fn drawing_char(raw: &str) -> Result<(), String> {
    match raw.chars().find(|c| c.is_control() || is_invisible(*c)) {
        Some(c) => Err(format!(
            "contains the character U+{:04X}, a control, invisible or bidi character",
            c as u32
        )),
        None => Ok(()),
    }
}

/// A task id: 1 to 200 bytes, no whitespace, no control, invisible or bidi character.
pub(crate) fn task_id(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > 200 {
        return Err("is longer than 200 bytes".into());
    }
    drawing_char(raw)?;
    if raw.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    Ok(())
}

/// An event id: 1 to 200 bytes, no control, invisible or bidi character. It is scoped to its
/// task: the same id on another task is another event.
pub(crate) fn event_id(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("is empty or only white space (hint: an unset CI variable gives an empty id; pass a real one or leave --event-id out)".into());
    }
    if raw.len() > 200 {
        return Err("is longer than 200 bytes".into());
    }
    drawing_char(raw)
}

/// Free text orch stores and prints (an actor, a reason): no control, invisible or bidi
/// character.
pub(crate) fn text(raw: &str) -> Result<(), String> {
    drawing_char(raw)
}

/// The branch's short name (`refs/heads/` or `heads/` stripped), or why it is refused.
pub(crate) fn branch(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    drawing_char(raw)?;
    if let Some(c) = raw.chars().find(|c| c.is_whitespace()) {
        return Err(format!("contains the white space U+{:04X}", c as u32));
    }
    let short = raw
        .strip_prefix("refs/heads/")
        .or_else(|| raw.strip_prefix("heads/"))
        .unwrap_or(raw);
    if short.is_empty() {
        return Err("names no branch".into());
    }
    if short == "HEAD" || short == "@" || short.starts_with("refs/") {
        return Err("is not a branch name of its own".into());
    }
    if let Some(c) = short.chars().next().filter(|c| matches!(c, '-' | '+')) {
        return Err(format!("starts with `{c}`"));
    }
    if short.contains(':') {
        return Err("contains `:`".into());
    }
    if !git::check_ref_format_branch(short) {
        return Err(
            "is not a valid branch name by git's rules (`git check-ref-format --branch`)".into(),
        );
    }
    Ok(short.to_string())
}

/// The full ref of a branch's short name.
pub(crate) fn full_ref(short: &str) -> String {
    format!("refs/heads/{short}")
}

/// A repository's logical name: a letter or digit, then letters, digits, `.`, `_` or `-`; at most
/// 64 characters.
pub(crate) fn identifier(raw: &str) -> Result<(), String> {
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || raw.len() > 64 || !chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err("is not an identifier (a letter or digit, then letters, digits, `.`, `_` or `-`; at most 64)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_text_that_draw_are_refused() {
        for id in ["", "a b", "a\x1b[2J", "a\u{202e}b", "a\u{200b}", "a\nb"] {
            assert!(task_id(id).is_err(), "task id {id:?} was accepted");
        }
        assert!(task_id(&"x".repeat(201)).is_err());
        assert!(task_id(&"x".repeat(200)).is_ok());
        assert!(task_id("ORCH-7").is_ok());
        assert!(event_id("").is_err());
        assert!(event_id(&"e".repeat(201)).is_err());
        assert!(event_id("ci-42 run 1").is_ok());
        assert!(text("a\x1b]0;pwned\x07").unwrap_err().contains("U+001B"));
        assert!(text("why\nnot").unwrap_err().contains("U+000A"));
        assert!(text("flaky — retried").is_ok());
    }

    #[test]
    fn hostile_branch_names_are_refused() {
        for name in [
            "HEAD",
            "@",
            "a:main",
            "evil:origin/evil:main",
            "+main",
            "-x",
            "--upload-pack=x",
            "a..b",
            "a@{1}",
            "a b",
            "a\u{200B}b",
            "refs/heads/",
            "heads/HEAD",
            "refs/tags/v1",
            "a\nb",
            "x.lock",
            "",
        ] {
            assert!(branch(name).is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn a_branch_is_known_by_its_short_name() {
        assert_eq!(branch("refs/heads/feat/x").unwrap(), "feat/x");
        assert_eq!(branch("heads/feat/x").unwrap(), "feat/x");
        assert_eq!(branch("feat/t-1").unwrap(), "feat/t-1");
    }

    #[test]
    fn identifiers_are_plain() {
        assert!(identifier("app").is_ok());
        assert!(identifier("my.repo_2-x").is_ok());
        for bad in ["", "-x", "a b", "a/b", "a:b", "é"] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
    }
}
