//! The one place orch runs git — only in orch's own mirror of a repository and in worktrees and
//! throwaway clones made from it, never in a checkout the agent can write.
//!
//! Every call runs with hooks and fsmonitor off (`core.hooksPath=/dev/null`,
//! `core.fsmonitor=false`), a scrubbed environment (`PATH`, `HOME`, `TMPDIR`, `SSH_AUTH_SOCK`,
//! `LANG`; `LC_ALL=C`, no terminal prompt), `--end-of-options` before every value that came from
//! a task, and explicit full refspecs into orch's own namespace `refs/orch/heads/*` (never
//! `refs/remotes/*`, never through a symref). The user's global git config still applies: it
//! holds the credentials a push to the forge needs.
//!
//! INV-4: no function here can push the target or a protected branch. The only push orch knows
//! is `Mirror::push_task_branch`: the task branch, with an explicit refspec,
//! `push.default=nothing` and `--force-with-lease` on the tip it replaced, refused outright when
//! the branch's full ref is the target's or a protected one. Every git call goes through
//! `crate::child`: its own process group, a deadline, and the whole group killed on every path.
//!
//! Merge-verify's proof is asked here too (`Repo::landed`): the target holds the tree of the
//! re-tested head right above the tip it was tested on, on its first-parent chain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long one git command may take before it is killed (a fetch from a hung remote).
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The variables of orch's environment a git call keeps; everything else is dropped.
const KEPT_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK", "LANG"];

/// Configuration every git call carries, whatever the repository's own config says.
const SAFE_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "protocol.ext.allow=never",
    "commit.gpgsign=false",
];

/// The namespace orch fetches branches into, in its mirror.
const FETCHED: &str = "refs/orch/heads";

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

impl GitError {
    /// Whether git said the remote has no such ref (`couldn't find remote ref …`): the branch is
    /// not on the remote, a problem no retry fixes. Any other failure (a network, a lock, a
    /// timeout) is not this.
    pub(crate) fn is_missing_remote_ref(&self) -> bool {
        !self.timed_out && self.stderr.contains("couldn't find remote ref")
    }
}

/// Whether `err` is git saying the remote has no such ref.
pub(crate) fn is_missing_remote_ref(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<GitError>())
        .any(GitError::is_missing_remote_ref)
}

/// `git`, scrubbed and hardened, run from `/` unless a directory is given with `-C`.
fn command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    for key in KEPT_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        // No repository discovery from wherever orch was started.
        .env("GIT_CEILING_DIRECTORIES", "/")
        .current_dir("/");
    for c in SAFE_CONFIG {
        cmd.args(["-c", c]);
    }
    cmd
}

/// Runs `cmd`; returns trimmed stdout, or a `GitError` naming `args`.
fn run(mut cmd: Command, args: &[&str]) -> Result<String> {
    cmd.args(args);
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

/// Whether `name` is a valid branch name by git's own rules (`git check-ref-format --branch`),
/// judged outside any repository.
pub(crate) fn check_ref_format_branch(name: &str) -> bool {
    let mut cmd = command();
    cmd.env("GIT_DIR", "/dev/null");
    run(cmd, &["check-ref-format", "--branch", name]).is_ok()
}

/// Whether the remote at `url` has `branch` (`git ls-remote --exit-code`, which exits 2 for no
/// such ref), asked outside any repository; an error for every other failure (a network, a
/// missing remote).
pub(crate) fn remote_has_branch(url: &str, branch: &str) -> Result<bool> {
    let full = format!("refs/heads/{branch}");
    let mut cmd = command();
    cmd.args([
        "ls-remote",
        "--exit-code",
        "--heads",
        "--end-of-options",
        url,
        &full,
    ]);
    let finished =
        crate::child::run(cmd, GIT_TIMEOUT, None).context("running git (is it installed?)")?;
    match finished.status.map(|s| s.code()) {
        Some(Some(0)) => Ok(true),
        Some(Some(2)) => Ok(false),
        _ => Err(GitError {
            args: format!("ls-remote {url} {full}"),
            stderr: String::from_utf8_lossy(&finished.stderr).trim().to_string(),
            timed_out: finished.status.is_none(),
        }
        .into()),
    }
}

/// A repository or worktree of orch's own on disk.
#[derive(Clone, Debug)]
pub(crate) struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub(crate) fn at(dir: impl Into<PathBuf>) -> Repo {
        Repo { dir: dir.into() }
    }

    /// Runs `git -C dir ARGS…`.
    fn git(&self, args: &[&str]) -> Result<String> {
        self.git_with(args, &[])
    }

    fn git_with(&self, args: &[&str], config: &[&str]) -> Result<String> {
        let mut cmd = command();
        cmd.arg("-C").arg(&self.dir);
        for c in config {
            cmd.args(["-c", c]);
        }
        run(cmd, args)
    }

    /// The commit `rev` names, or `None` when it names none.
    pub(crate) fn resolve(&self, rev: &str) -> Result<Option<String>> {
        match self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ]) {
            Ok(sha) => Ok(Some(sha)),
            Err(e) if e.downcast_ref::<GitError>().is_some_and(|g| !g.timed_out) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds a detached worktree at `path` checked out at `commit`.
    pub(crate) fn add_detached_worktree(&self, path: &Path, commit: &str) -> Result<Repo> {
        let path_str = path.to_string_lossy();
        self.git(&[
            "worktree",
            "add",
            "--detach",
            "--quiet",
            "--end-of-options",
            &path_str,
            commit,
        ])?;
        Ok(Repo::at(path))
    }

    /// Removes a worktree this repository owns, and prunes stale worktree records.
    pub(crate) fn remove_worktree(&self, path: &Path) -> Result<()> {
        let path_str = path.to_string_lossy();
        let removed = self.git(&[
            "worktree",
            "remove",
            "--force",
            "--end-of-options",
            &path_str,
        ]);
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
        match self.git_with(&["rebase", "--quiet", "--no-autostash", onto], config) {
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

    /// The tree of `commit`.
    pub(crate) fn tree_of(&self, commit: &str) -> Result<String> {
        self.git(&[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{commit}^{{tree}}"),
        ])
    }

    /// The proof that the target `target` holds the tree of `head`, re-tested on `base`: `base`
    /// is on the first-parent chain of `target`, and one of the first n commits above it on that
    /// chain (n = `rev-list --count base..head`) has `tree(head)`. All three are commits of this
    /// repository (the target fetched, the verdict's commits).
    pub(crate) fn landed(&self, base: &str, head: &str, target: &str) -> Result<MergeProof> {
        let n: u64 = self
            .git(&[
                "rev-list",
                "--count",
                "--end-of-options",
                &format!("{base}..{head}"),
            ])?
            .parse()
            .context("reading `git rev-list --count`")?;
        if n == 0 {
            return Ok(MergeProof::NothingToMerge);
        }
        let target = self
            .resolve(target)?
            .with_context(|| format!("the target `{target}` names no commit"))?;
        let base = self
            .resolve(base)?
            .with_context(|| format!("the base `{base}` names no commit"))?;
        if target == base {
            return Ok(MergeProof::NothingLanded);
        }
        // The first-parent chain of the target down to the first commit T reaches, oldest first:
        // (commit, tree, first parent). `rev-list --format` heads each entry with a `commit …`
        // line of its own.
        let listed = self.git(&[
            "rev-list",
            "--first-parent",
            "--format=%H %T %P",
            "--end-of-options",
            &format!("{base}..{target}"),
        ])?;
        let chain: Vec<(&str, &str, Option<&str>)> = listed
            .lines()
            .filter(|l| !l.starts_with("commit "))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                Some((words.next()?, words.next()?, words.next()))
            })
            .rev()
            .collect();
        let on_chain = chain
            .first()
            .is_some_and(|(_, _, parent)| *parent == Some(base.as_str()));
        if !on_chain {
            return Ok(MergeProof::NotOnFirstParentChain { target });
        }
        let tree = self.tree_of(head)?;
        let above = &chain[..chain.len().min(usize::try_from(n).unwrap_or(usize::MAX))];
        if let Some((commit, _, _)) = above.iter().find(|(_, t, _)| *t == tree) {
            return Ok(MergeProof::Holds {
                commit: commit.to_string(),
            });
        }
        let (first, first_tree, _) = above[0];
        Ok(MergeProof::DifferentTree {
            target,
            first: first.to_string(),
            tree: first_tree.to_string(),
            n,
        })
    }

    /// Whether `commit` is an ancestor of (or equal to) `of`.
    pub(crate) fn is_ancestor(&self, commit: &str, of: &str) -> Result<bool> {
        match self.git(&[
            "merge-base",
            "--is-ancestor",
            "--end-of-options",
            commit,
            of,
        ]) {
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
}

/// What the target holds for a re-tested head H that was tested on the target tip T: the proof
/// of merge-verify (`Repo::landed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MergeProof {
    /// T is on the target's first-parent chain and `commit`, one of the first n commits above T
    /// on it (n = the commits H has over T), carries H's tree: a fast-forward, a merge commit, a
    /// squash or a rebase-merge of H, possibly with other merges on top since.
    Holds { commit: String },
    /// H has no commits over T: there is nothing to merge.
    NothingToMerge,
    /// The target is still T: nothing landed.
    NothingLanded,
    /// T is not on the first-parent chain of the target, now `target` (it was moved from
    /// another base, or rewound).
    NotOnFirstParentChain { target: String },
    /// T is on the chain, but none of the first `n` commits above it carries H's tree: the target
    /// is now `target` and the first commit above T is `first`, with tree `tree`.
    DifferentTree {
        target: String,
        first: String,
        tree: String,
        n: u64,
    },
}

/// What a rebase did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RebaseResult {
    /// Rebased (or already up to date): the new HEAD.
    Done(String),
    /// Unmerged paths; the rebase was aborted.
    Conflict(Vec<String>),
}

/// orch's own bare mirror of a registered repository, under the state directory. Branches are
/// fetched from the registered URL into `refs/orch/heads/*`; nothing else writes to it.
#[derive(Clone, Debug)]
pub(crate) struct Mirror {
    pub repo: Repo,
}

impl Mirror {
    /// Where the mirror of `repo` lives.
    pub(crate) fn dir(state_dir: &Path, repo: &str) -> PathBuf {
        state_dir.join("mirrors").join(format!("{repo}.git"))
    }

    /// Opens the mirror of `repo`, creating it (a bare repository of orch's) on first use.
    pub(crate) fn open(state_dir: &Path, repo: &str) -> Result<Mirror> {
        let dir = Mirror::dir(state_dir, repo);
        if !dir.join("HEAD").exists() {
            let parent = dir.parent().expect("a mirror has a parent");
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating `{}`", parent.display()))?;
            // Made beside its place and renamed into it: two steps opening a new mirror at once
            // (two tasks of a repo walked concurrently) must not run `git init` in one directory,
            // where one fails on the other's config lock. The loser of the rename uses the
            // winner's.
            let fresh = parent.join(format!(
                ".{}.init-{}-{}",
                dir.file_name()
                    .map_or("mirror".into(), |n| n.to_string_lossy()),
                std::process::id(),
                crate::host::wall_ms()
            ));
            let fresh_str = fresh.to_string_lossy();
            let made = run(
                command(),
                &[
                    "init",
                    "--quiet",
                    "--bare",
                    "--template=",
                    "--end-of-options",
                    &fresh_str,
                ],
            );
            let placed = made.and_then(|_| {
                std::fs::rename(&fresh, &dir).or_else(|e| {
                    if dir.join("HEAD").exists() {
                        Ok(())
                    } else {
                        Err(e).with_context(|| format!("creating `{}`", dir.display()))
                    }
                })
            });
            if fresh.exists() {
                let _ = std::fs::remove_dir_all(&fresh);
            }
            placed?;
        }
        Mirror::reset_config(&dir)?;
        Ok(Mirror {
            repo: Repo::at(dir),
        })
    }

    /// The ref a fetched branch lands on.
    pub(crate) fn fetched(branch: &str) -> String {
        format!("{FETCHED}/{branch}")
    }

    /// Fetches `branch` (a validated short name) from `url` into `refs/orch/heads/<branch>`.
    /// Two fetches of one mirror at once (a security gate beside a merge gate) can meet on a ref
    /// lock: that one is tried again. A fetch that fails deletes the tracking ref, so no caller
    /// can judge a stale tip: a git failure is never a pass. `is_missing_remote_ref` on the error
    /// tells a branch gone from the remote from every other failure.
    pub(crate) fn fetch(&self, url: &str, branch: &str) -> Result<()> {
        let fetched = self.fetch_once(url, branch);
        if fetched.is_err() {
            let _ = self
                .repo
                .git(&["update-ref", "-d", &Mirror::fetched(branch)]);
        }
        fetched
    }

    fn fetch_once(&self, url: &str, branch: &str) -> Result<()> {
        let refspec = format!("+refs/heads/{branch}:{}", Mirror::fetched(branch));
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            "--end-of-options",
            url,
            refspec.as_str(),
        ];
        let mut attempt = 0;
        loop {
            match self.repo.git(&args) {
                Err(e)
                    if attempt < 3
                        && e.downcast_ref::<GitError>()
                            .is_some_and(|g| g.stderr.contains("lock")) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// The commit a fetched branch points at, if it was fetched.
    pub(crate) fn fetched_tip(&self, branch: &str) -> Result<Option<String>> {
        self.repo.resolve(&Mirror::fetched(branch))
    }

    /// Moves the task branch on `url` to `new`, only if the remote still has `old` there.
    /// INV-4: refuses a branch whose full ref is in `guarded` (the target and the protected
    /// branches).
    pub(crate) fn push_task_branch(
        &self,
        url: &str,
        branch: &str,
        guarded: &[String],
        new: &str,
        old: &str,
    ) -> Result<()> {
        let full = format!("refs/heads/{branch}");
        if branch.is_empty() || guarded.contains(&full) {
            bail!("refusing to push `{full}`: orch never pushes the target or a protected branch");
        }
        let lease = format!("--force-with-lease={full}:{old}");
        self.repo
            .git_with(
                &[
                    "push",
                    "--quiet",
                    "--no-verify",
                    &lease,
                    "--end-of-options",
                    url,
                    &format!("{new}:{full}"),
                ],
                &["push.default=nothing"],
            )
            .map(|_| ())
    }

    /// A throwaway copy of `commit` (and its history) at `dest`, with its own `.git`, no remote
    /// and no link back: what a gate command (the agent's code) works in. It is fetched, not
    /// cloned with `--shared`, so no `objects/info/alternates` names the mirror; nothing the suite
    /// writes reaches it.
    pub(crate) fn clone_at(&self, dest: &Path, commit: &str) -> Result<Repo> {
        let dest_str = dest.to_string_lossy();
        run(
            command(),
            &[
                "init",
                "--quiet",
                "--template=",
                "--end-of-options",
                &dest_str,
            ],
        )?;
        let copy = Repo::at(dest);
        let src = self.repo.dir.to_string_lossy();
        copy.git(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--end-of-options",
            &src,
            commit,
        ])?;
        copy.git(&["checkout", "--quiet", "--detach", commit])?;
        Ok(copy)
    }

    /// Puts back the mirror's own configuration and drops what git would read from it besides
    /// (alternates, attributes): orch owns the mirror, and a `url.*.insteadOf` or an alternate
    /// planted there must not steer its next fetch or push.
    fn reset_config(dir: &Path) -> Result<()> {
        let config = dir.join("config");
        let fresh = dir.join(format!("config.orch-{}", std::process::id()));
        std::fs::write(
            &fresh,
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
        )
        .with_context(|| format!("writing `{}`", fresh.display()))?;
        std::fs::rename(&fresh, &config)
            .with_context(|| format!("resetting `{}`", config.display()))?;
        for planted in [
            "objects/info/alternates",
            "objects/info/http-alternates",
            "info/attributes",
        ] {
            let path = dir.join(planted);
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing `{}`", path.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_in(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    /// Runs git in `dir` and returns its trimmed stdout.
    fn out(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A repository whose `main` is T; `h` is H, two commits over T. Returns (dir, T, H).
    fn proof_repo(tmp: &Path) -> (PathBuf, String, String) {
        let dir = tmp.join("r");
        git_in(
            tmp,
            &["init", "--quiet", "-b", "main", dir.to_str().unwrap()],
        );
        std::fs::write(dir.join("a"), "a\n").unwrap();
        git_in(&dir, &["add", "."]);
        git_in(&dir, &["commit", "--quiet", "-m", "T"]);
        let base = out(&dir, &["rev-parse", "HEAD"]);
        git_in(&dir, &["checkout", "--quiet", "-b", "h"]);
        for (file, text) in [("h1", "1\n"), ("h2", "2\n")] {
            std::fs::write(dir.join(file), text).unwrap();
            git_in(&dir, &["add", "."]);
            git_in(&dir, &["commit", "--quiet", "-m", file]);
        }
        let head = out(&dir, &["rev-parse", "HEAD"]);
        git_in(&dir, &["checkout", "--quiet", "main"]);
        (dir, base, head)
    }

    /// Makes a commit of `tree` with `parents` and points `main` at it.
    fn land(dir: &Path, tree: &str, parents: &[&str], message: &str) -> String {
        let mut args = vec!["commit-tree", tree, "-m", message];
        for p in parents {
            args.extend(["-p", p]);
        }
        let commit = out(dir, &args);
        git_in(dir, &["update-ref", "refs/heads/main", &commit]);
        commit
    }

    #[test]
    fn the_proof_accepts_every_way_a_tested_tree_lands_and_names_what_did_not() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, base, head) = proof_repo(tmp.path());
        let repo = Repo::at(&dir);
        let tree = repo.tree_of(&head).unwrap();
        let landed = |repo: &Repo| repo.landed(&base, &head, "refs/heads/main").unwrap();
        let reset = || git_in(&dir, &["update-ref", "refs/heads/main", &base]);

        // Nothing landed yet; and a head with no commits over the target has nothing to merge.
        assert_eq!(landed(&repo), MergeProof::NothingLanded);
        assert_eq!(
            repo.landed(&base, &base, "refs/heads/main").unwrap(),
            MergeProof::NothingToMerge
        );
        assert_eq!(
            repo.landed(&head, &base, &head).unwrap(),
            MergeProof::NothingToMerge
        );

        // A fast-forward: H itself.
        git_in(&dir, &["update-ref", "refs/heads/main", &head]);
        assert_eq!(
            landed(&repo),
            MergeProof::Holds {
                commit: head.clone()
            }
        );

        // A merge commit of T and H with H's tree.
        reset();
        let merge = land(&dir, &tree, &[&base, &head], "merge");
        assert_eq!(
            landed(&repo),
            MergeProof::Holds {
                commit: merge.clone()
            }
        );

        // A squash: one commit on T with H's tree.
        reset();
        let squash = land(&dir, &tree, &[&base], "squash");
        assert_eq!(
            landed(&repo),
            MergeProof::Holds {
                commit: squash.clone()
            }
        );

        // A rebase-merge: H's commits recreated on T (new ids, same trees).
        reset();
        let h1_tree = repo.tree_of(&format!("{head}^")).unwrap();
        let r1 = land(&dir, &h1_tree, &[&base], "h1 again");
        let r2 = land(&dir, &tree, &[&r1], "h2 again");
        assert_ne!(r2, head);
        assert_eq!(landed(&repo), MergeProof::Holds { commit: r2.clone() });

        // Another task merged on top since: still proven, by the same commit.
        let base_tree = repo.tree_of(&base).unwrap();
        land(&dir, &base_tree, &[&r2], "another task");
        assert_eq!(landed(&repo), MergeProof::Holds { commit: r2.clone() });

        // A different tree on T: what landed is named.
        reset();
        let wrong = land(&dir, &base_tree, &[&base], "a tree nobody tested");
        assert_eq!(
            landed(&repo),
            MergeProof::DifferentTree {
                target: wrong.clone(),
                first: wrong.clone(),
                tree: base_tree.clone(),
                n: 2,
            }
        );

        // H's tree, but more than n commits above T (merged onto a moved target, then another
        // commit and H's tree again): refused, the first commit above T named.
        reset();
        let moved = land(&dir, &base_tree, &[&base], "moved 1");
        let moved2 = land(&dir, &base_tree, &[&moved], "moved 2");
        let late = land(&dir, &tree, &[&moved2, &head], "merged onto a moved target");
        assert_eq!(
            landed(&repo),
            MergeProof::DifferentTree {
                target: late,
                first: moved.clone(),
                tree: base_tree.clone(),
                n: 2,
            }
        );

        // T off the first-parent chain: the target was moved from another base (H merged as the
        // first parent of a merge with some other history), or rewound.
        reset();
        let side = land(&dir, &base_tree, &[], "unrelated root");
        let off = land(&dir, &tree, &[&side, &head], "H on another base");
        assert_eq!(
            landed(&repo),
            MergeProof::NotOnFirstParentChain {
                target: off.clone()
            }
        );
        git_in(&dir, &["update-ref", "refs/heads/main", &side]);
        assert_eq!(
            landed(&repo),
            MergeProof::NotOnFirstParentChain { target: side }
        );
    }

    #[test]
    fn a_branch_gone_from_the_remote_is_told_apart_and_its_stale_ref_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("remote");
        git_in(
            tmp.path(),
            &["init", "--quiet", "-b", "main", remote.to_str().unwrap()],
        );
        git_in(&remote, &["commit", "--quiet", "--allow-empty", "-m", "a"]);
        git_in(&remote, &["branch", "feat/x"]);
        let mirror = Mirror::open(&tmp.path().join("state"), "app").unwrap();
        let url = remote.to_str().unwrap();
        mirror.fetch(url, "feat/x").unwrap();
        assert!(mirror.fetched_tip("feat/x").unwrap().is_some());

        git_in(&remote, &["branch", "--quiet", "-D", "feat/x"]);
        assert!(!remote_has_branch(url, "feat/x").unwrap());
        assert!(remote_has_branch(url, "main").unwrap());
        let err = mirror.fetch(url, "feat/x").unwrap_err();
        assert!(is_missing_remote_ref(&err), "{err:#}");
        assert_eq!(mirror.fetched_tip("feat/x").unwrap(), None, "no stale tip");

        let gone = tmp.path().join("no-such-remote");
        let err = mirror.fetch(gone.to_str().unwrap(), "main").unwrap_err();
        assert!(!is_missing_remote_ref(&err), "{err:#}");
        assert!(remote_has_branch(gone.to_str().unwrap(), "main").is_err());
    }
}
