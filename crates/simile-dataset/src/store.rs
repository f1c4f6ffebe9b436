use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Dataset, DatasetError, Result};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "simile.db";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    filepath    TEXT NOT NULL,
    fields      TEXT NOT NULL DEFAULT '{}',
    UNIQUE (dataset_id, id)
);
CREATE INDEX IF NOT EXISTS samples_by_dataset ON samples(dataset_id, seq);
CREATE TABLE IF NOT EXISTS sample_vectors (
    sample_seq  INTEGER NOT NULL REFERENCES samples(seq) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (sample_seq, field)
);
CREATE TABLE IF NOT EXISTS dataset_fields (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
-- Sample counts, kept by the two statements that add and delete samples (`Dataset::add_samples`,
-- `Dataset::delete_samples`; a dataset's deletion cascades), so a count is one row read.
CREATE TABLE IF NOT EXISTS dataset_stats (
    dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    samples     INTEGER NOT NULL
);
-- Databases made before the counts existed: counted once, on the first open that can write.
INSERT INTO dataset_stats(dataset_id, samples)
    SELECT d.id, (SELECT COUNT(*) FROM samples s WHERE s.dataset_id = d.id) FROM datasets d
    WHERE NOT EXISTS (SELECT 1 FROM dataset_stats t WHERE t.dataset_id = d.id);
"#;

/// The embedded store: one SQLite file (`simile.db`, WAL mode) in a data directory.
///
/// Cheap to clone; clones share one connection. Several processes may open the same directory:
/// readers never block writers (WAL) and writers wait for each other (busy timeout + immediate
/// transactions), so "database is locked" does not reach users under normal contention.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    home: PathBuf,
    conn: Mutex<Connection>,
    /// The home cannot be written (a read-only mount or directory): the database is open
    /// read-only and every write is refused naming the home.
    read_only: bool,
    /// Page indexes of views, valid for one database version (see [`crate::page`]).
    pub(crate) pages: crate::page::PageCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("home", &self.inner.home)
            .finish()
    }
}

/// Extra schema a layer above registers (the brain-run registry, for example).
pub type Migration =
    fn(&Connection) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

impl Store {
    /// Opens (creating if needed) the store in `home`.
    pub fn open(home: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(home, &[])
    }

    /// Opens the store and applies extra migrations (idempotent `CREATE ... IF NOT EXISTS`).
    ///
    /// A home that cannot be written (a read-only mount or directory) holding a database is
    /// opened read-only: reads work, writes fail with an error naming the home.
    pub fn open_with(home: impl AsRef<Path>, migrations: &[Migration]) -> Result<Store> {
        let home = home.as_ref().to_path_buf();
        let (conn, read_only) = match open_read_write(&home, migrations) {
            Ok(conn) => (conn, false),
            Err(e) if !writable(&home) => match open_read_only(&home) {
                Some(conn) => {
                    tracing::info!(home = %home.display(), "the home is read-only: the database is open read-only");
                    (conn, true)
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                home,
                conn: Mutex::new(conn),
                read_only,
                pages: crate::page::PageCache::default(),
            }),
        })
    }

    /// Whether the home is read-only (see [`Store::open_with`]).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// [`DatasetError::ReadOnlyHome`] when the home is read-only.
    pub fn check_writable(&self) -> Result<()> {
        if self.inner.read_only {
            return Err(DatasetError::ReadOnlyHome {
                path: self.inner.home.display().to_string(),
            });
        }
        Ok(())
    }

    /// The data directory.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll back
        // on drop), so a poisoned lock is safe to reuse.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view page cache.
    pub(crate) fn pages(&self) -> &crate::page::PageCache {
        &self.inner.pages
    }

    /// Runs read-only work on the connection.
    pub fn read<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.lock();
        f(&conn)
    }

    /// Runs `f` in an immediate write transaction: committed if `f` returns `Ok`, rolled back
    /// otherwise, so a failed call leaves the store unchanged.
    pub fn write<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.inner.read_only {
            return Err(read_only_error(&self.inner.home).into());
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Creates a new, empty dataset.
    pub fn create_dataset(&self, name: &str) -> Result<Dataset> {
        check_dataset_name(name)?;
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let id = self.write(|tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM datasets WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )?;
            if exists {
                return Err(DatasetError::AlreadyExists(name.to_string()));
            }
            tx.execute(
                "INSERT INTO datasets(name, created_at) VALUES (?1, ?2)",
                (name, &created),
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT OR REPLACE INTO dataset_stats(dataset_id, samples) VALUES (?1, 0)",
                [id],
            )?;
            Ok(id)
        })?;
        Ok(Dataset::from_parts(self.clone(), id, name.to_string()))
    }

    /// Loads an existing dataset by name.
    pub fn load_dataset(&self, name: &str) -> Result<Dataset> {
        let id: Option<i64> = self.read(|c| {
            let mut st = c.prepare_cached("SELECT id FROM datasets WHERE name = ?1")?;
            let mut rows = st.query([name])?;
            Ok::<_, DatasetError>(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })?;
        match id {
            Some(id) => Ok(Dataset::from_parts(self.clone(), id, name.to_string())),
            None => Err(DatasetError::NotFound(name.to_string())),
        }
    }

    /// Whether a dataset of that name exists.
    pub fn dataset_exists(&self, name: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM datasets WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )?)
        })
    }

    /// Names of all datasets, sorted.
    pub fn list_datasets(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name FROM datasets ORDER BY name")?;
            let names = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
    }

    /// Deletes a dataset with its samples (and, through cascading deletes, anything keyed on it).
    pub fn delete_dataset(&self, name: &str) -> Result<()> {
        let ds = self.load_dataset(name)?;
        self.write(|tx| Store::delete_dataset_in(tx, &ds))
    }

    /// Deletes a dataset with its samples inside a write transaction the caller holds, so that a
    /// layer above can delete what it keeps about the dataset in the same transaction.
    /// Errors: [`DatasetError::NotFound`] when it was deleted meanwhile.
    pub fn delete_dataset_in(tx: &rusqlite::Transaction<'_>, dataset: &Dataset) -> Result<()> {
        let n = tx.execute("DELETE FROM datasets WHERE id = ?1", [dataset.db_id()])?;
        if n == 0 {
            return Err(DatasetError::NotFound(dataset.name().to_string()));
        }
        Ok(())
    }
}

/// Opens (creating if needed) the database for reading and writing and applies the schema.
fn open_read_write(home: &Path, migrations: &[Migration]) -> Result<Connection> {
    std::fs::create_dir_all(home).map_err(|source| DatasetError::Io {
        path: home.display().to_string(),
        source,
    })?;
    let mut conn = Connection::open_with_flags(
        home.join(DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(60))?;
    // WAL: readers and one writer at a time across processes, crash-safe.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        for m in migrations {
            m(&tx).map_err(DatasetError::Migration)?;
        }
        tx.commit()?;
    }
    Ok(conn)
}

/// Whether a file can be created in `home` (permission bits alone do not say: root ignores
/// them, a read-only mount does not).
fn writable(home: &Path) -> bool {
    let probe = home.join(format!(".simile-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    }
}

/// Opens an existing database read-only: through SQLite's shared memory when it can, else as
/// immutable (no locks, no WAL index: what a read-only directory allows).
fn open_read_only(home: &Path) -> Option<Connection> {
    let path = home.join(DB_FILE);
    if !path.is_file() {
        return None;
    }
    let uri = path
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    for mode in ["mode=ro", "immutable=1"] {
        let Ok(conn) = Connection::open_with_flags(format!("file:{uri}?{mode}"), flags) else {
            continue;
        };
        let usable = conn
            .query_row("SELECT count(*) FROM datasets", [], |r| r.get::<_, i64>(0))
            .is_ok();
        if usable && conn.busy_timeout(Duration::from_secs(60)).is_ok() {
            return Some(conn);
        }
    }
    None
}

/// The error a write on a read-only home fails with: SQLite's own "read-only" error, so that
/// every caller's error type carries it, naming the home.
fn read_only_error(home: &Path) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
        Some(format!(
            "the home {} is read-only: this command changes data and cannot run there (read commands work)",
            home.display()
        )),
    )
}

fn check_dataset_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().any(char::is_control) || name.len() > 200 {
        return Err(DatasetError::InvalidName(name.to_string()));
    }
    Ok(())
}
