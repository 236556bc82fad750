//! How results reach people and scripts: short aligned text, or one JSON document with `--json`.
//!
//! A broken pipe on stdout is not an error: the reader has seen what it wanted. Any other failed
//! write (a full disk, a closed file) is kept and turns the command's exit into an internal error
//! (`write_error`), so a script never mistakes lost output for success.

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

fn out(text: &str) {
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

/// A wall-clock time in ms as RFC 3339 UTC, to the second.
pub(crate) fn timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
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

    #[test]
    fn ages_read_short() {
        assert_eq!(age(3_400), "3s");
        assert_eq!(age(242_000), "4m 2s");
        assert_eq!(age(7_500_000), "2h 5m");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }
}
