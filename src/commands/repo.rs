//! `orch repo add|list|show|remove|set|unset`: the operator's registry of repositories.
//!
//! A repository is a logical name (the lease scope and merge-lock key), its canonical remote (a
//! forge URL or a bare repository's path: the only place orch fetches from and pushes to), its
//! target branch and its protected branches. Its gate keys may be set for its own tasks. `repo
//! add` is what creates a new database.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::config::{Config, Source, REPO_KEYS};
use crate::error::{failure, Exit};
use crate::store::{RepoRow, Store};
use crate::{host, names, Context};

#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Register a repository: its name, canonical remote, target and protected branches.
    Add(AddArgs),
    /// List the registered repositories.
    List,
    /// One repository, with every gate key's effective value and its source.
    Show(NameArgs),
    /// Unregister a repository that no task uses.
    Remove(NameArgs),
    /// Set a gate key for this repository's tasks: `KEY=VALUE`.
    Set(SetArgs),
    /// Drop a repository's own value of a gate key (the environment's applies again).
    Unset(UnsetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The logical name, e.g. `app`.
    pub name: String,
    /// The canonical remote: a forge URL or a bare repository's path.
    #[arg(long)]
    pub url: String,
    /// The branch tasks merge into.
    #[arg(long, default_value = "main")]
    pub target: String,
    /// A branch no task may use or move (repeat for more).
    #[arg(long, value_name = "BRANCH")]
    pub protect: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    pub name: String,
    /// `KEY=VALUE`, KEY one of the gate keys (see `orch repo show NAME`).
    pub setting: String,
}

#[derive(Debug, Args)]
pub(crate) struct UnsetArgs {
    pub name: String,
    pub key: String,
}

pub(crate) fn run(ctx: &Context, cmd: RepoCommand) -> Result<Exit> {
    match cmd {
        RepoCommand::Add(args) => add(ctx, args),
        RepoCommand::List => list(ctx),
        RepoCommand::Show(args) => show(ctx, args),
        RepoCommand::Remove(args) => remove(ctx, args),
        RepoCommand::Set(args) => set(ctx, args),
        RepoCommand::Unset(args) => unset(ctx, args),
    }
}

fn usage(message: String) -> anyhow::Error {
    failure(Exit::Usage, message)
}

fn not_registered(name: &str) -> anyhow::Error {
    failure(
        Exit::NotFound,
        format!("repo `{name}` is not registered (hint: `orch repo list`)"),
    )
}

/// The canonical form of a remote, so that one repository is never registered twice under two
/// spellings: a path (or a `file://` URL) becomes the absolute path of the repository git would
/// open (`x`, `x.git`, `x/.git`, in git's order); a network URL is kept, without a trailing `/`.
/// Only https, http, ssh, git and file URLs, scp-style `host:path` and paths are accepted: a
/// `transport::address` (git's `ext::`, `fd::`) never is.
fn canonical_url(raw: &str) -> Result<String> {
    let bad = |why: &str| {
        usage(format!(
            "the remote `{}` {why} (hint: a forge URL such as https://…, ssh://… or git@host:path, or a bare repository's path)",
            raw.escape_debug()
        ))
    };
    if raw.is_empty()
        || raw.starts_with('-')
        || raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || names::is_invisible(c))
    {
        return Err(bad(
            "is empty, starts with `-`, or holds a space or control character",
        ));
    }
    if raw.contains("::") {
        return Err(bad(
            "names a git remote helper transport, which orch never uses",
        ));
    }
    let raw_path = if let Some((scheme, rest)) = raw.split_once("://") {
        match scheme.to_ascii_lowercase().as_str() {
            "file" => rest
                .strip_prefix("localhost")
                .filter(|r| r.starts_with('/'))
                .unwrap_or(rest)
                .to_string(),
            "https" | "http" | "ssh" | "git" => return Ok(raw.trim_end_matches('/').to_string()),
            _ => return Err(bad("has a scheme orch does not fetch from")),
        }
    } else if raw.contains(':') && !raw.starts_with('/') && !raw.starts_with('.') {
        // scp-style `host:path`.
        return Ok(raw.trim_end_matches('/').to_string());
    } else {
        raw.to_string()
    };
    let trimmed = raw_path.trim_end_matches('/');
    let candidates = [
        std::path::PathBuf::from(trimmed),
        std::path::PathBuf::from(format!("{trimmed}.git")),
        std::path::Path::new(trimmed).join(".git"),
    ];
    let found = candidates
        .iter()
        .find(|c| c.join("HEAD").is_file())
        .unwrap_or(&candidates[0]);
    let path = std::fs::canonicalize(found)
        .or_else(|_| std::path::absolute(found))
        .map_err(|e| usage(format!("the remote path `{raw}` cannot be resolved: {e}")))?;
    Ok(path.display().to_string())
}

fn add(ctx: &Context, args: AddArgs) -> Result<Exit> {
    names::identifier(&args.name).map_err(|why| usage(format!("repo `{}` {why}", args.name)))?;
    let url = canonical_url(&args.url)?;
    let branch = |raw: &str, what: &str| {
        names::branch(raw).map_err(|why| usage(format!("{what} `{}` {why}", raw.escape_debug())))
    };
    let target = branch(&args.target, "target")?;
    let mut protect = Vec::new();
    for raw in &args.protect {
        let b = branch(raw, "protected branch")?;
        if b != target && !protect.contains(&b) {
            protect.push(b);
        }
    }
    let new = RepoRow {
        name: args.name.clone(),
        url,
        target,
        protect,
        created_at: host::wall_ms(),
    };
    if ctx.config.db_path_is_default {
        // The default place (`$XDG_STATE_HOME/orch` or `~/.local/state/orch`) is orch's to make
        // on a fresh machine; a path given by --db / ORCH_DB_PATH only grows its last directory.
        if let Some(above) = ctx
            .config
            .db_path
            .parent()
            .and_then(std::path::Path::parent)
        {
            std::fs::create_dir_all(above).map_err(|e| {
                failure(
                    Exit::Usage,
                    format!(
                        "cannot create `{}` for the default database: {e} (hint: set ORCH_DB_PATH or --db to a writable location)",
                        above.display()
                    ),
                )
            })?;
        }
    }
    let mut store = Store::open(&ctx.config.db_path)?;
    let (outcome, repo) = store.write(|db| {
        if let Some(other) = db.repo_by_url(&new.url)?.filter(|r| r.name != new.name) {
            return Err(usage(format!(
                "the remote `{}` is already registered as `{}` (hint: one repository has one name, or two merge locks would guard it)",
                new.url, other.name
            )));
        }
        if let Some(repo) = db.repo(&new.name)? {
            let fields = [
                ("url", &repo.url, &new.url),
                ("target", &repo.target, &new.target),
            ];
            if let Some((field, was, now)) = fields.into_iter().find(|(_, a, b)| a != b) {
                return Err(usage(format!(
                    "repo `{}` is already registered with {field} `{was}`, not `{now}` (hint: `orch repo show {}`)",
                    repo.name, repo.name
                )));
            }
            if repo.protect != new.protect {
                return Err(usage(format!(
                    "repo `{}` is already registered with protected branches {:?}, not {:?} (hint: `orch repo show {}`)",
                    repo.name, repo.protect, new.protect, repo.name
                )));
            }
            return Ok(("already-registered", repo));
        }
        db.insert_repo(&new)?;
        Ok(("added", new.clone()))
    })?;
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "outcome": outcome, "repo": repo }))?;
    } else if outcome == "added" {
        ctx.ui.line(format!(
            "added repo {} ({} → {}{})",
            repo.name,
            repo.url,
            repo.target,
            protected_suffix(&repo)
        ));
    } else {
        ctx.ui.line(format!(
            "repo {} is already registered; nothing changed",
            repo.name
        ));
    }
    Ok(Exit::Ok)
}

fn protected_suffix(repo: &RepoRow) -> String {
    if repo.protect.is_empty() {
        String::new()
    } else {
        format!(", protected: {}", repo.protect.join(", "))
    }
}

fn list(ctx: &Context) -> Result<Exit> {
    let repos = Store::read_only(&ctx.config.db_path, |store| store.read().repos())?;
    if ctx.ui.json {
        ctx.ui.json(&repos)?;
        return Ok(Exit::Ok);
    }
    if repos.is_empty() {
        ctx.ui
            .line("no repositories (hint: `orch repo add NAME --url URL`)");
    }
    for repo in &repos {
        ctx.ui.line(format!(
            "{}  {}  → {}{}",
            repo.name,
            repo.url,
            repo.target,
            protected_suffix(repo)
        ));
    }
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct SettingView {
    key: &'static str,
    value: String,
    source: Source,
}

#[derive(Serialize)]
struct RepoView {
    #[serde(flatten)]
    repo: RepoRow,
    tasks: i64,
    settings: Vec<SettingView>,
}

fn show(ctx: &Context, args: NameArgs) -> Result<Exit> {
    let (repo, tasks, settings) = Store::read_only(&ctx.config.db_path, |store| {
        store.snapshot(|db| {
            let repo = db
                .repo(&args.name)?
                .ok_or_else(|| not_registered(&args.name))?;
            Ok((
                repo,
                db.tasks_of_repo(&args.name)?,
                db.repo_settings(&args.name)?,
            ))
        })
    })?;
    let effective = ctx.config.for_repo(&settings);
    let settings: Vec<SettingView> = REPO_KEYS
        .iter()
        .filter_map(|key| effective.entries.iter().find(|e| e.key == *key))
        .map(|e| SettingView {
            key: e.key,
            value: e.value.clone(),
            source: e.source,
        })
        .collect();
    let view = RepoView {
        repo,
        tasks,
        settings,
    };
    if ctx.ui.json {
        ctx.ui.json(&view)?;
        return Ok(Exit::Ok);
    }
    let r = &view.repo;
    ctx.ui.line(format!("repo {}   url {}", r.name, r.url));
    ctx.ui.line(format!(
        "target {}   protected {}   tasks {}",
        r.target,
        if r.protect.is_empty() {
            "-".to_string()
        } else {
            r.protect.join(", ")
        },
        view.tasks
    ));
    let width = REPO_KEYS.iter().map(|k| k.len()).max().unwrap_or(0);
    for s in &view.settings {
        ctx.ui
            .line(format!("  {:<width$}  {}  ({})", s.key, s.value, s.source));
    }
    Ok(Exit::Ok)
}

fn remove(ctx: &Context, args: NameArgs) -> Result<Exit> {
    let mut store = Store::open_existing(&ctx.config.db_path)?;
    store.write(|db| {
        if db.repo(&args.name)?.is_none() {
            return Err(not_registered(&args.name));
        }
        let tasks = db.tasks_of_repo(&args.name)?;
        if tasks > 0 {
            return Err(usage(format!(
                "repo `{}` is used by {tasks} task(s) and stays registered (hint: `orch task list`)",
                args.name
            )));
        }
        db.delete_repo(&args.name)
    })?;
    // Its mirror goes too: a later repository of this name starts from nothing of this one's.
    let mirror = crate::git::Mirror::dir(&ctx.config.state_dir(), &args.name);
    if mirror.exists() {
        std::fs::remove_dir_all(&mirror)
            .map_err(|e| anyhow::anyhow!("removing orch's mirror `{}`: {e}", mirror.display()))?;
    }
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "outcome": "removed", "repo": args.name }))?;
    } else {
        ctx.ui.line(format!("removed repo {}", args.name));
    }
    Ok(Exit::Ok)
}

fn set(ctx: &Context, args: SetArgs) -> Result<Exit> {
    let Some((key, value)) = args.setting.split_once('=') else {
        return Err(usage(format!(
            "`{}` is not KEY=VALUE (hint: `orch repo set {} ORCH_MERGE_RETEST_CMD='python3 -m pytest -q'`)",
            args.setting.escape_debug(),
            args.name
        )));
    };
    let key = key.trim();
    Config::check_repo_setting(key, value).map_err(usage)?;
    let mut store = Store::open_existing(&ctx.config.db_path)?;
    store.write(|db| {
        if db.repo(&args.name)?.is_none() {
            return Err(not_registered(&args.name));
        }
        db.set_repo_setting(&args.name, key, value)
    })?;
    if ctx.ui.json {
        ctx.ui.json(&serde_json::json!({
            "outcome": "set", "repo": args.name, "key": key, "value": value
        }))?;
    } else {
        ctx.ui.line(format!("repo {}: {key} = {value}", args.name));
    }
    Ok(Exit::Ok)
}

fn unset(ctx: &Context, args: UnsetArgs) -> Result<Exit> {
    if !REPO_KEYS.contains(&args.key.as_str()) {
        return Err(usage(format!(
            "`{}` is not a per-repository key (hint: one of {})",
            args.key,
            REPO_KEYS.join(", ")
        )));
    }
    let mut store = Store::open_existing(&ctx.config.db_path)?;
    let removed = store.write(|db| {
        if db.repo(&args.name)?.is_none() {
            return Err(not_registered(&args.name));
        }
        db.unset_repo_setting(&args.name, &args.key)
    })?;
    let outcome = if removed { "unset" } else { "not-set" };
    if ctx.ui.json {
        ctx.ui.json(&serde_json::json!({
            "outcome": outcome, "repo": args.name, "key": args.key
        }))?;
    } else if removed {
        ctx.ui.line(format!(
            "repo {}: {} unset; the environment's value applies",
            args.name, args.key
        ));
    } else {
        ctx.ui.line(format!(
            "repo {}: {} was not set; nothing changed",
            args.name, args.key
        ));
    }
    Ok(Exit::Ok)
}
