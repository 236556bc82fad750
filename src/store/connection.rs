//! The connection: opening (read-write, read-only, refusing what is not an orch database), the
//! pragmas, and the two kinds of transaction every query runs in.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::counter::Counter;
use crate::error::{failure, Exit};

use super::schema::{self, SCHEMA_VERSION};

/// How long a connection waits for a lock before SQLITE_BUSY.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Opened with `immutable=1` (no `-wal` was there).
    immutable: bool,
}

/// A view of the database inside a read or a write transaction: every query lives on it.
pub struct Db<'a> {
    pub(super) conn: &'a Connection,
}

impl<'a> Db<'a> {
    fn new(conn: &'a Connection) -> Self {
        Db { conn }
    }
}

impl Store {
    /// Opens `path` for writing, creating the file on first use, and migrates it. Its directory
    /// is created only when that directory's own parent exists: a mistyped path never grows a
    /// tree of directories. Every command but `orch repo add` calls `Store::require` first, so
    /// only `repo add` ever creates a database.
    pub fn open(path: &Path) -> Result<Store> {
        check_file(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                let above = dir.parent().filter(|d| !d.as_os_str().is_empty());
                if above.is_some_and(|above| !above.is_dir()) {
                    return Err(failure(
                        Exit::Usage,
                        format!(
                            "cannot create the database `{}`: neither its directory nor that directory's parent exists (hint: fix --db / ORCH_DB_PATH, or create `{}` first)",
                            path.display(),
                            above.unwrap_or(dir).display()
                        ),
                    ));
                }
                // The state directory holds the database and orch's mirrors: private when orch
                // creates it.
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir)
                    .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
                    .map_err(|e| {
                        failure(
                            Exit::Usage,
                            format!(
                                "cannot create the database directory `{}`: {e} (hint: set ORCH_DB_PATH or --db to a writable location)",
                                dir.display()
                            ),
                        )
                    })?;
            }
        }
        let created = !path.exists();
        let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        if created {
            // SQLite gives its -wal and -shm files the database's own mode.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making `{}` private", path.display()))?;
        }
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            immutable: false,
        };
        store.configure().map_err(|e| classify(path, e))?;
        let version = store.user_version().map_err(|e| classify(path, e))?;
        refuse_newer(path, version)?;
        if store.journal_mode()? != "wal" {
            store
                .conn
                .pragma_update(None, "journal_mode", "wal")
                .map_err(|e| classify(path, e.into()))?;
        }
        if version < SCHEMA_VERSION {
            schema::migrate(&mut store.conn).map_err(|e| classify(path, e))?;
        }
        Ok(store)
    }

    /// Opens an existing database for writing; a missing one is "not found" (exit 3) and nothing
    /// is created. Only `orch repo add` creates a database.
    pub fn open_existing(path: &Path) -> Result<Store> {
        Store::require(path)?;
        Store::open(path)
    }

    /// Refuses, before anything is opened or created, a database that is missing (exit 3), a
    /// directory (exit 2) or a file with more than one hard link (exit 2).
    pub fn require(path: &Path) -> Result<()> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(path)),
            _ => check_file(path),
        }
    }

    /// Opens `path` read-only. Never writes and never creates a file; a missing database is
    /// "not found" (exit 3). Works in a read-only location: when no `-wal` file is there, it falls
    /// back to `immutable=1`, which needs no `-shm`.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        Store::require(path)?;
        // With no `-wal` file there is nothing outside the main file to read: `immutable=1` reads
        // it without creating `-wal`/`-shm` (so nothing is written, even in a read-only place).
        // A writer's WAL appears only beside it; `read_only` retries a read that raced a
        // checkpoint. With a `-wal` present, `mode=ro` reads it through the existing `-shm`.
        let store = if wal_path(path).exists() {
            Store::open_uri(path, "mode=ro").map_err(|e| classify(path, e))?
        } else {
            Store::open_uri(path, "immutable=1").map_err(|e| classify(path, e))?
        };
        let version = store.user_version().map_err(|e| classify(path, e))?;
        refuse_newer(path, version)?;
        if version < SCHEMA_VERSION {
            return Err(failure(
                Exit::Usage,
                format!(
                    "database `{}` has schema v{version}, older than this orch's v{SCHEMA_VERSION} (hint: any writing command, e.g. `orch reap`, migrates it)",
                    path.display()
                ),
            ));
        }
        Ok(store)
    }

    /// Opens read-only and runs `f`; a read of an `immutable=1` open that fails on a SQLite error
    /// (a writer checkpointed under it) is retried once through `mode=ro`.
    pub fn read_only<T>(path: &Path, mut f: impl FnMut(&mut Store) -> Result<T>) -> Result<T> {
        let mut store = Store::open_read_only(path)?;
        match f(&mut store) {
            Err(e) if store.immutable && e.downcast_ref::<rusqlite::Error>().is_some() => {
                drop(store);
                let mut store = Store::open_uri(path, "mode=ro").map_err(|e| classify(path, e))?;
                f(&mut store)
            }
            other => other,
        }
    }

    fn open_uri(path: &Path, query: &str) -> Result<Store> {
        let uri = format!("file:{}?{query}", uri_escape(&absolute(path)));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            immutable: query.contains("immutable"),
        };
        store.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Touch the schema now so that a database that cannot be read fails here.
        store.user_version()?;
        store
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    fn user_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn journal_mode(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?
            .to_ascii_lowercase())
    }

    /// Reads outside any explicit transaction (each statement sees a consistent snapshot).
    pub fn read(&self) -> Db<'_> {
        Db::new(&self.conn)
    }

    /// Runs `f` in one consistent read snapshot.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&Db::new(&tx))?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when `f` returns `Ok`.
    ///
    /// Never call a process, git or an alert from inside `f`: a write transaction must not be held
    /// across a side effect.
    pub fn write<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, e.into()))?;
        let value = f(&Db::new(&tx))?;
        tx.commit().map_err(|e| classify(&self.path, e.into()))?;
        Ok(value)
    }

    /// Like `write`, retrying while the database stays busy past `busy_timeout`: for renewals,
    /// where giving up would make a live owner look dead.
    pub fn write_retrying<T>(&mut self, mut f: impl FnMut(&Db) -> Result<T>) -> Result<T> {
        let mut attempts = 0;
        loop {
            match self.write(&mut f) {
                Err(e) if is_busy(&e) && attempts < 5 => attempts += 1,
                other => return other,
            }
        }
    }

    /// `PRAGMA quick_check`: "ok" or the first problems found.
    pub fn quick_check(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Whether an error is SQLITE_BUSY or SQLITE_LOCKED.
pub fn is_busy(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    })
}

/// A missing database: exit 3, one line with the path and both fixes.
fn not_found(path: &Path) -> anyhow::Error {
    failure(
        Exit::NotFound,
        format!(
            "database `{}` not found (hint: `orch repo add NAME --url URL` creates it, or fix --db / ORCH_DB_PATH)",
            path.display()
        ),
    )
}

/// Refuses, without opening it, what cannot be orch's database file: a directory, anything else
/// that is not a regular file (a FIFO, a device), a file with
/// more than one hard link, a file that exists, is not empty and is not SQLite. A missing file
/// passes (the caller decides whether it may be created).
fn check_file(path: &Path) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a symlink to the database is the database.
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(failure(
            Exit::Usage,
            format!(
                "`{}` is a directory, not a database file (hint: point --db / ORCH_DB_PATH at a file inside it, e.g. `{}`)",
                path.display(),
                path.join("orch.db").display()
            ),
        ));
    }
    if !meta.is_file() {
        // A FIFO would block the header read for ever; a device is no database either.
        return Err(failure(
            Exit::Usage,
            format!(
                "`{}` is not a regular file (a pipe, socket or device), not a database file (hint: point --db / ORCH_DB_PATH at a regular file)",
                path.display()
            ),
        ));
    }
    if meta.nlink() > 1 {
        // SQLite names the -wal and -shm files after the path it was given: two hard links would
        // each get their own, and two writers would both win.
        return Err(failure(
            Exit::Usage,
            format!(
                "database `{}` has {} hard links: each path would get its own -wal and -shm and lose the other's writes (hint: use one path for it; remove the extra link, or use a symlink)",
                path.display(),
                meta.nlink()
            ),
        ));
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(_) => break,
        }
    }
    if read == 0 || (read == header.len() && &header == SQLITE_MAGIC) {
        return Ok(());
    }
    Err(not_a_database(path))
}

fn not_a_database(path: &Path) -> anyhow::Error {
    failure(
        Exit::Usage,
        format!(
            "`{}` is not an orch database (hint: point --db / ORCH_DB_PATH at another path; the file was left untouched)",
            path.display()
        ),
    )
}

fn refuse_newer(path: &Path, version: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(failure(
            Exit::Usage,
            format!(
                "database `{}` has schema v{version}, newer than this orch's v{SCHEMA_VERSION} (hint: upgrade orch; the file was left untouched)",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn open_error(path: &Path, err: rusqlite::Error) -> anyhow::Error {
    classify(path, err.into())
}

/// Turns the SQLite errors a user can fix into one-line failures with the contract's code.
fn classify(path: &Path, err: anyhow::Error) -> anyhow::Error {
    if err.downcast_ref::<crate::error::Failure>().is_some() {
        return err;
    }
    let code = err
        .chain()
        .find_map(|c| match c.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(e, _)) => Some(e.code),
            _ => None,
        });
    match code {
        Some(ErrorCode::NotADatabase) => not_a_database(path),
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => failure(
            Exit::Usage,
            format!(
                "cannot write the database `{}`: its location is read-only or missing (hint: point --db / ORCH_DB_PATH at a writable location)",
                path.display()
            ),
        ),
        _ => err.context(format!("database `{}`", path.display())),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Percent-escapes what a SQLite URI path may not hold literally.
fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'?' | b'#' | b'%' | b' ' => out.push_str(&format!("%{byte:02X}")),
            b => out.push(*b as char),
        }
    }
    out
}

impl Db<'_> {
    /// Adds `by` to a durable counter, in the caller's transaction.
    pub fn count(&self, counter: Counter, by: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO counters(name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                rusqlite::params![counter.name(), by],
            )
            .context("counting")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escaping_keeps_ordinary_paths_and_escapes_query_characters() {
        assert_eq!(uri_escape(Path::new("/a/b.db")), "/a/b.db");
        assert_eq!(uri_escape(Path::new("/a?b#c%d e")), "/a%3Fb%23c%25d%20e");
    }

    #[test]
    fn a_text_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello, this is not sqlite").unwrap();
        let err = Store::open(&path).err().unwrap();
        assert_eq!(crate::error::exit_of(&err), Exit::Usage);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "hello, this is not sqlite"
        );
    }

    #[test]
    fn a_new_database_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/orch.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_two_directories_down_is_refused_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("a/b/orch.db")).err().unwrap();
        assert_eq!(crate::error::exit_of(&err), Exit::Usage);
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn a_hard_linked_database_is_refused_and_a_symlinked_one_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orch.db");
        drop(Store::open(&path).unwrap());
        std::os::unix::fs::symlink(&path, dir.path().join("via-symlink.db")).unwrap();
        drop(Store::open(&dir.path().join("via-symlink.db")).unwrap());
        std::fs::hard_link(&path, dir.path().join("hard.db")).unwrap();
        for p in [path.clone(), dir.path().join("hard.db")] {
            let err = Store::open(&p).err().unwrap();
            assert_eq!(crate::error::exit_of(&err), Exit::Usage);
            assert!(err.to_string().contains("hard links"), "{err}");
        }
    }
}
