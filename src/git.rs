//! The one place orch runs git.
//!
//! No function here can push the target branch: the only push orch knows is the task branch's,
//! with an explicit refspec and `--force-with-lease` (INV-4).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `git -C dir ARGS…` and returns its trimmed stdout, or an error with its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .context("running git (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether `dir` is inside a git checkout.
pub fn is_checkout(dir: &Path) -> bool {
    git(dir, &["rev-parse", "--git-dir"]).is_ok()
}

/// The names of the checkout's remotes.
pub fn remotes(dir: &Path) -> Result<Vec<String>> {
    Ok(git(dir, &["remote"])?.lines().map(str::to_string).collect())
}
