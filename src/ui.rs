//! How results reach people and scripts: short aligned text, or one JSON document with `--json`.
//!
//! A broken pipe on stdout is not an error: the reader has seen what it wanted. Any other failed
//! write (a full disk, a closed file) is kept and turns the command's exit into an internal error
//! (`write_error`), so a script never mistakes lost output for success.
//!
//! With `-q` (text mode) stdout is held until the command ends and printed only if it failed:
//! cron mails nothing for a step that went well (`hold_until_failure`, `release`).
//!
//! Text output never draws: every value that came from outside (a reason, an actor, a branch, a
//! task id, a suite's output) goes through `plain` before it is printed, so one value is one line
//! and cannot move the cursor, clear the screen or set a title. `--json` is exact (serde escapes).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

/// The output settings of one invocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Ui {
    /// Prints `value` as the command's one JSON document.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        out(&text);
        Ok(())
    }

    /// Prints a line of text to stdout.
    pub fn line(&self, text: impl AsRef<str>) {
        out(text.as_ref());
    }

    /// Prints a progress or narration line to stderr, unless `-q`.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }
}

/// The first error writing stdout that was not a closed pipe, kept until `write_error` takes it.
static WRITE_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Lines held back under `-q`; `None` when output goes straight to stdout.
static HELD: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// From now on stdout is held: `release` prints it only for a command that failed.
pub(crate) fn hold_until_failure() {
    *HELD.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
}

/// Ends holding: the held lines are printed when `failed`, dropped otherwise.
pub(crate) fn release(failed: bool) {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
    if failed {
        for line in held.unwrap_or_default() {
            out(&line);
        }
    }
}

fn out(text: &str) {
    if let Some(held) = HELD.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        held.push(text.to_string());
        return;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match writeln!(lock, "{text}").and_then(|_| lock.flush()) {
        Ok(()) => {}
        // A closed pipe (`orch queue | head`) ends output quietly: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let mut first = WRITE_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// The first failed write to stdout other than a broken pipe, if any: the command's output did
/// not reach its reader, so the command must not report success.
pub(crate) fn write_error() -> Option<String> {
    WRITE_ERROR.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, other C0/C1 and DEL as `\xNN`)
/// and every invisible, bidi or line-separating character as `\u{202e}`: safe to print on one
/// line of a terminal. Borrowed when nothing needed escaping.
pub(crate) fn plain(text: &str) -> Cow<'_, str> {
    if !text.chars().any(draws) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if draws(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A character a terminal acts on or a person cannot see: control (C0, DEL, C1), invisible or
/// bidi, or a line or paragraph separator.
fn draws(c: char) -> bool {
    c.is_control() || crate::names::is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A wall-clock time in ms as RFC 3339 UTC, to the second.
pub(crate) fn timestamp(ms: i64) -> String {
    // RFC 3339 ends at 9999-12-31T23:59:59Z; a later time (a far due time) prints as that.
    const LAST_MS: i64 = 253_402_300_799_000;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.clamp(0, LAST_MS) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration in ms, short and human (`3s`, `4m 2s`, `2h 5m`).
pub(crate) fn age(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A due time past year 9999 (a long backoff) prints, never fails.
    #[test]
    fn a_far_timestamp_prints_as_the_last_rfc3339_second() {
        assert_eq!(timestamp(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(timestamp(-5), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn ages_read_short() {
        assert_eq!(age(3_400), "3s");
        assert_eq!(age(242_000), "4m 2s");
        assert_eq!(age(7_500_000), "2h 5m");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            plain("feat/x — ok ✓"),
            Cow::Borrowed("feat/x — ok ✓")
        ));
    }

    #[test]
    fn plain_escapes_what_a_terminal_acts_on() {
        assert_eq!(
            plain("a\x1b[2Jb\x1b]0;pwned\x07\nc\r\td"),
            r"a\x1b[2Jb\x1b]0;pwned\x07\nc\r\td"
        );
        assert_eq!(plain("\x00\x7f\u{9b}"), r"\x00\x7f\x9b");
        assert_eq!(
            plain("evil\u{202e}txt\u{200b}\u{2028}"),
            r"evil\u{202e}txt\u{200b}\u{2028}"
        );
        assert!(!plain("x\ny").contains('\n'));
    }
}
