//! The one place orch runs git.
//!
//! INV-4: no function here can push the target branch. The only push orch knows is
//! `push_task_branch`: the task branch, with an explicit refspec, `push.default=nothing` and
//! `--force-with-lease` on the tip it replaced, refused outright when the branch is the target.
//! Every git call goes through `crate::child`: its own process group, a deadline, and the whole
//! group killed on every path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long one git command may take before it is killed (a fetch from a hung remote).
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// A git failure, with what git said.
#[derive(Debug)]
pub(crate) struct GitError {
    pub args: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.timed_out {
            write!(f, "git {} timed out", self.args)
        } else {
            write!(f, "git {} failed: {}", self.args, self.stderr)
        }
    }
}

impl std::error::Error for GitError {}

/// A git repository or worktree on disk.
#[derive(Clone, Debug)]
pub(crate) struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub(crate) fn at(dir: impl Into<PathBuf>) -> Repo {
        Repo { dir: dir.into() }
    }

    /// Runs `git -C dir ARGS…`; returns trimmed stdout, or a `GitError`.
    fn git(&self, args: &[&str]) -> Result<String> {
        self.git_with(args, &[])
    }

    fn git_with(&self, args: &[&str], config: &[&str]) -> Result<String> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        for c in config {
            cmd.args(["-c", c]);
        }
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C");
        let finished =
            crate::child::run(cmd, GIT_TIMEOUT, None).context("running git (is it installed?)")?;
        let Some(status) = finished.status else {
            return Err(GitError {
                args: args.join(" "),
                stderr: if finished.cancelled {
                    "cancelled: orch received a signal".into()
                } else {
                    String::new()
                },
                timed_out: true,
            }
            .into());
        };
        if !status.success() {
            return Err(GitError {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&finished.stderr).trim().to_string(),
                timed_out: false,
            }
            .into());
        }
        Ok(String::from_utf8_lossy(&finished.stdout).trim().to_string())
    }

    /// Whether the directory is inside a git checkout.
    pub(crate) fn is_checkout(&self) -> bool {
        self.git(&["rev-parse", "--git-dir"]).is_ok()
    }

    pub(crate) fn remotes(&self) -> Result<Vec<String>> {
        Ok(self.git(&["remote"])?.lines().map(str::to_string).collect())
    }

    /// The commit a ref points at, or `None` when it does not exist.
    pub(crate) fn resolve(&self, rev: &str) -> Result<Option<String>> {
        match self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ]) {
            Ok(sha) => Ok(Some(sha)),
            Err(e) if e.downcast_ref::<GitError>().is_some_and(|g| !g.timed_out) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches the target and the task branch from `remote` into its remote-tracking refs.
    /// A task branch the remote does not have is not an error.
    pub(crate) fn fetch(&self, remote: &str, target: &str, branch: &str) -> Result<()> {
        self.git(&[
            "fetch",
            "--quiet",
            "--no-tags",
            remote,
            &format!("+refs/heads/{target}:refs/remotes/{remote}/{target}"),
        ])?;
        let _ = self.git(&[
            "fetch",
            "--quiet",
            "--no-tags",
            remote,
            &format!("+refs/heads/{branch}:refs/remotes/{remote}/{branch}"),
        ]);
        Ok(())
    }

    /// Adds a detached worktree at `path` checked out at `commit`.
    pub(crate) fn add_detached_worktree(&self, path: &Path, commit: &str) -> Result<Repo> {
        let path_str = path.to_string_lossy();
        self.git(&["worktree", "add", "--detach", "--quiet", &path_str, commit])?;
        Ok(Repo::at(path))
    }

    /// Removes a worktree this repository owns, and prunes stale worktree records.
    pub(crate) fn remove_worktree(&self, path: &Path) -> Result<()> {
        let path_str = path.to_string_lossy();
        let removed = self.git(&["worktree", "remove", "--force", &path_str]);
        if path.exists() {
            std::fs::remove_dir_all(path).ok();
        }
        let _ = self.git(&["worktree", "prune"]);
        removed.map(|_| ())
    }

    /// Prunes worktree records whose directories are gone.
    pub(crate) fn prune_worktrees(&self) -> Result<()> {
        self.git(&["worktree", "prune"]).map(|_| ())
    }

    /// Rebases the checked-out (detached) HEAD onto `onto`.
    pub(crate) fn rebase(&self, onto: &str) -> Result<RebaseResult> {
        let identity = self.git(&["config", "user.email"]).unwrap_or_default();
        let config: &[&str] = if identity.is_empty() {
            &["user.name=orch merge gate", "user.email=orch@localhost"]
        } else {
            &[]
        };
        match self.git_with(&["rebase", "--quiet", onto], config) {
            Ok(_) => Ok(RebaseResult::Done(self.head()?)),
            Err(err) => {
                let conflicts = self
                    .git(&["diff", "--name-only", "--diff-filter=U"])
                    .unwrap_or_default();
                let _ = self.git(&["rebase", "--abort"]);
                if conflicts.is_empty() {
                    Err(err)
                } else {
                    Ok(RebaseResult::Conflict(
                        conflicts.lines().map(str::to_string).collect(),
                    ))
                }
            }
        }
    }

    pub(crate) fn head(&self) -> Result<String> {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Whether `commit` is an ancestor of (or equal to) `of`.
    pub(crate) fn is_ancestor(&self, commit: &str, of: &str) -> Result<bool> {
        match self.git(&["merge-base", "--is-ancestor", commit, of]) {
            Ok(_) => Ok(true),
            Err(e)
                if e.downcast_ref::<GitError>()
                    .is_some_and(|g| !g.timed_out && g.stderr.is_empty()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves the task branch to `new` on `remote`, only if the remote still has `old` there
    /// (`old = None`: only if the branch does not exist yet). INV-4: refuses the target branch.
    pub(crate) fn push_task_branch(
        &self,
        remote: &str,
        branch: &str,
        target: &str,
        new: &str,
        old: Option<&str>,
    ) -> Result<()> {
        if branch == target || branch.is_empty() {
            bail!("refusing to push `{branch}`: orch never pushes the target branch");
        }
        let lease = format!(
            "--force-with-lease=refs/heads/{branch}:{}",
            old.unwrap_or("")
        );
        self.git_with(
            &[
                "push",
                "--quiet",
                &lease,
                remote,
                &format!("{new}:refs/heads/{branch}"),
            ],
            &["push.default=nothing"],
        )
        .map(|_| ())
    }

    /// Moves the local task branch to `new` only if it is still at `old`. Refuses the target.
    pub(crate) fn update_task_branch(
        &self,
        branch: &str,
        target: &str,
        new: &str,
        old: &str,
    ) -> Result<()> {
        if branch == target || branch.is_empty() {
            bail!("refusing to move `{branch}`: orch never moves the target branch");
        }
        self.git(&["update-ref", &format!("refs/heads/{branch}"), new, old])
            .map(|_| ())
    }
}

/// What a rebase did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RebaseResult {
    /// Rebased (or already up to date): the new HEAD.
    Done(String),
    /// Unmerged paths; the rebase was aborted.
    Conflict(Vec<String>),
}

/// Whether `dir` is inside a git checkout.
pub(crate) fn is_checkout(dir: &Path) -> bool {
    Repo::at(dir).is_checkout()
}

/// The names of the checkout's remotes.
pub(crate) fn remotes(dir: &Path) -> Result<Vec<String>> {
    Repo::at(dir).remotes()
}
