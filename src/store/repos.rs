//! Rows of `repos` (the operator's registry: a logical name, the canonical remote, the target and
//! the protected branches) and `repo_settings` (gate keys set per repository).

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;

/// A registered repository.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RepoRow {
    pub name: String,
    /// The canonical remote: a forge URL or a bare repository's path.
    pub url: String,
    pub target: String,
    /// Branches no task may use, besides the target.
    pub protect: Vec<String>,
    pub created_at: i64,
}

impl RepoRow {
    /// The full refs no task branch may be and orch never pushes: the target and the protected
    /// branches.
    pub fn guarded_refs(&self) -> Vec<String> {
        std::iter::once(&self.target)
            .chain(&self.protect)
            .map(|b| format!("refs/heads/{b}"))
            .collect()
    }
}

fn repo_from_row(r: &Row) -> rusqlite::Result<RepoRow> {
    let protect: String = r.get(3)?;
    Ok(RepoRow {
        name: r.get(0)?,
        url: r.get(1)?,
        target: r.get(2)?,
        protect: serde_json::from_str(&protect).unwrap_or_default(),
        created_at: r.get(4)?,
    })
}

impl Db<'_> {
    pub fn insert_repo(&self, repo: &RepoRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO repos (name, url, target, protect, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    repo.name,
                    repo.url,
                    repo.target,
                    serde_json::to_string(&repo.protect)?,
                    repo.created_at
                ],
            )
            .context("registering a repository")?;
        Ok(())
    }

    pub fn repo(&self, name: &str) -> Result<Option<RepoRow>> {
        self.conn
            .query_row(
                "SELECT name, url, target, protect, created_at FROM repos WHERE name = ?1",
                [name],
                repo_from_row,
            )
            .optional()
            .context("reading a repository")
    }

    pub fn repo_by_url(&self, url: &str) -> Result<Option<RepoRow>> {
        self.conn
            .query_row(
                "SELECT name, url, target, protect, created_at FROM repos WHERE url = ?1",
                [url],
                repo_from_row,
            )
            .optional()
            .context("reading a repository")
    }

    pub fn repos(&self) -> Result<Vec<RepoRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, url, target, protect, created_at FROM repos ORDER BY name")?;
        let rows = stmt.query_map([], repo_from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing repositories")
    }

    /// How many tasks use the repository.
    pub fn tasks_of_repo(&self, name: &str) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM tasks WHERE repo = ?1", [name], |r| {
                r.get(0)
            })?)
    }

    /// Removes a repository and its settings.
    pub fn delete_repo(&self, name: &str) -> Result<bool> {
        self.conn
            .execute("DELETE FROM repo_settings WHERE repo = ?1", [name])?;
        Ok(self
            .conn
            .execute("DELETE FROM repos WHERE name = ?1", [name])?
            == 1)
    }

    /// The repository's gate settings, by key.
    pub fn repo_settings(&self, name: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM repo_settings WHERE repo = ?1 ORDER BY key")?;
        let rows = stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading repository settings")
    }

    pub fn set_repo_setting(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO repo_settings (repo, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo, key) DO UPDATE SET value = excluded.value",
            params![name, key, value],
        )?;
        Ok(())
    }

    pub fn unset_repo_setting(&self, name: &str, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM repo_settings WHERE repo = ?1 AND key = ?2",
            params![name, key],
        )? == 1)
    }
}
