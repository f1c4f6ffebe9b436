//! Index storage directories under the home (`indexes/<dataset id>/<16 hex>`): reserving one for
//! a compute, the lock that says a process is using one, and finding and removing the ones no
//! run references.
//!
//! **The lock.** `<dir>.lock`, beside the directory, is held (an exclusive advisory `flock`) by
//! the compute that reserved the directory from before the directory exists until its run is
//! registered — or, for an index computed without a brain key, as long as the session lives.
//! The holder deletes the file before releasing it. A checker (the doctor, the sweep at the
//! start of a compute) takes the lock without waiting and, only while holding it, reads the
//! registry: if no run references the directory then, no process can still be filling it, so it
//! is provably orphaned. A lock it cannot take means "in use": the directory is left alone.
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rand::Rng;
use simile_runs::{RunRefs, RunRegistry};

use crate::context::Ctx;
use crate::{Error, Result};

/// The folder of index storage inside the home.
pub(crate) const INDEXES: &str = "indexes";
/// Suffix of the lock file beside a storage directory.
const LOCK_SUFFIX: &str = ".lock";
/// Suffix of files written and renamed into place (`vectors.simv.tmp`): a leftover one is the
/// trace of a write that was killed.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An exclusive lock on a storage directory (see the module docs). Dropping it deletes the lock
/// file, then releases the lock.
#[derive(Debug)]
pub(crate) struct StorageLock {
    file: Option<File>,
    path: PathBuf,
    /// Taken on a read-only home: released without deleting the file (it cannot be).
    keep_file: bool,
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(LOCK_SUFFIX);
    dir.with_file_name(name)
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when someone holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` still names the file `file` is open on (a holder deletes its lock file
/// before releasing it, so a lock taken on a file since deleted guards nothing).
#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, _path: &Path) -> bool {
    false
}

/// Without advisory locks, every directory counts as in use: nothing is ever removed.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(false)
}

impl StorageLock {
    /// Locks the storage directory `dir` (absolute) without waiting; `None` when another
    /// process, or another handle of this one, holds the lock.
    ///
    /// On a read-only home (where nothing can be removed anyway) the lock file is only looked
    /// at: none means no compute holds the directory (a compute creates it first), an existing
    /// one is locked through a read-only descriptor, and released without being deleted.
    pub(crate) fn try_acquire(dir: &Path) -> Result<Option<StorageLock>> {
        let path = lock_path(dir);
        let opened = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        let (file, keep_file) = match opened {
            Ok(file) => (file, false),
            Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => match File::open(&path) {
                Ok(file) => (file, true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Some(StorageLock {
                        file: None,
                        path,
                        keep_file: true,
                    }))
                }
                Err(e) => return Err(io_err(&path)(e)),
            },
            Err(e) => return Err(io_err(&path)(e)),
        };
        // Taken on a file its holder deleted meanwhile: that holder is done, but whatever
        // state it left is for the next look (counted as in use now).
        if try_lock(&file).map_err(io_err(&path))? && still_linked(&file, &path) {
            Ok(Some(StorageLock {
                file: Some(file),
                path,
                keep_file,
            }))
        } else {
            Ok(None)
        }
    }

    /// Creates and locks the lock file of a directory that does not exist yet; `None` when the
    /// name is taken.
    fn create_new(dir: &Path) -> Result<Option<StorageLock>> {
        let path = lock_path(dir);
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // A checker may have taken the fresh file for a stale lock and deleted it before this
        // locked it: then another name.
        if !try_lock(&file).map_err(io_err(&path))? || !still_linked(&file, &path) {
            return Ok(None);
        }
        Ok(Some(StorageLock {
            file: Some(file),
            path,
            keep_file: false,
        }))
    }
}

impl StorageLock {
    /// Releases the lock and leaves its file in place.
    fn release_keeping_file(mut self) {
        self.file.take();
    }
}

impl Drop for StorageLock {
    fn drop(&mut self) {
        if self.file.is_none() || self.keep_file {
            return;
        }
        // Deleted while still held: whoever opened it before sees it released only once what it
        // guards is final (registered, or removed), and checks the registry then.
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove a storage lock file");
            }
        }
        drop(self.file.take());
    }
}

/// Reserves a new storage directory for a compute on dataset `ds`: returns its path relative
/// to the home (what the run records) and the lock, held until the run is registered. First
/// removes what crashed computes of the dataset left behind (best effort: a failure is logged).
pub(crate) fn reserve(ctx: &Ctx, ds: i64) -> Result<(String, StorageLock)> {
    ctx.store.check_writable()?;
    let home = ctx.store.home();
    if let Err(e) = sweep(ctx, ds) {
        tracing::warn!(error = %e, "could not remove leftovers of earlier computes");
    }
    let parent = home.join(INDEXES).join(ds.to_string());
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    loop {
        let rel = format!("{INDEXES}/{ds}/{:016x}", rand::rng().random::<u64>());
        let dir = home.join(&rel);
        if dir.exists() {
            continue;
        }
        if let Some(lock) = StorageLock::create_new(&dir)? {
            return Ok((rel, lock));
        }
    }
}

/// Keeps the lock of an index computed without a brain key for the session's life: nothing
/// references its storage, yet this process uses it.
pub(crate) fn hold(ctx: &Ctx, lock: StorageLock) {
    ctx.held_storage
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(lock);
}

/// Removes the storage directories of dataset `ds` that no run references and no process uses.
/// Returns the removed paths (relative to the home).
pub(crate) fn sweep(ctx: &Ctx, ds: i64) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for c in candidates(ctx, Some(ds))? {
        if let Candidate::Free {
            rel, lock: _lock, ..
        } = c
        {
            remove_dir(&ctx.store.home().join(&rel))?;
            tracing::info!(path = %rel, "removed the storage of a compute that did not finish");
            removed.push(rel);
        }
    }
    Ok(removed)
}

/// An unreferenced storage directory.
#[derive(Debug)]
pub(crate) enum Candidate {
    /// Locked by this call and still unreferenced once locked: provably orphaned.
    Free {
        rel: String,
        bytes: u64,
        lock: StorageLock,
    },
    /// Another process (or handle) holds its lock: a compute is running.
    InUse { rel: String, bytes: u64 },
}

/// Every storage run references: the stored text of every run, readable or not.
pub(crate) fn refs(ctx: &Ctx) -> Result<Vec<RunRefs>> {
    Ok(ctx.store.read(RunRegistry::all_refs)?)
}

pub(crate) fn referenced(refs: &[RunRefs], needle: &str) -> bool {
    refs.iter().any(|r| r.mentions(needle))
}

/// Storage directories (relative paths) under `indexes/` (of one dataset, or all).
pub(crate) fn storage_dirs(home: &Path, ds: Option<i64>) -> Result<Vec<String>> {
    let root = home.join(INDEXES);
    let datasets: Vec<String> = match ds {
        Some(ds) => vec![ds.to_string()],
        None => list(&root)?
            .into_iter()
            .filter(|(_, is_dir)| *is_dir)
            .map(|(n, _)| n)
            .collect(),
    };
    let mut out = Vec::new();
    for d in datasets {
        for (name, is_dir) in list(&root.join(&d))? {
            if is_dir {
                out.push(format!("{INDEXES}/{d}/{name}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The unreferenced storage directories (of one dataset, or all), each locked or found in use.
/// References are read after the locks are taken (see the module docs).
pub(crate) fn candidates(ctx: &Ctx, ds: Option<i64>) -> Result<Vec<Candidate>> {
    let home = ctx.store.home();
    let before = refs(ctx)?;
    let mut locked = Vec::new();
    let mut out = Vec::new();
    for rel in storage_dirs(home, ds)? {
        if referenced(&before, &rel) {
            continue;
        }
        let dir = home.join(&rel);
        let bytes = dir_size(&dir);
        match StorageLock::try_acquire(&dir)? {
            Some(lock) => locked.push((rel, bytes, lock)),
            None => out.push(Candidate::InUse { rel, bytes }),
        }
    }
    let after = refs(ctx)?;
    for (rel, bytes, lock) in locked {
        // Registered meanwhile (its compute finished), or removed by another checker.
        if referenced(&after, &rel) || !home.join(&rel).exists() {
            continue;
        }
        out.push(Candidate::Free { rel, bytes, lock });
    }
    Ok(out)
}

/// Lock files whose directory is gone and which nobody holds (a killed compute's, before its
/// directory existed), relative to the home. Removed when `remove`.
pub(crate) fn stale_locks(home: &Path, remove: bool) -> Result<Vec<String>> {
    let root = home.join(INDEXES);
    let mut out = Vec::new();
    for (d, is_dir) in list(&root)? {
        if !is_dir {
            continue;
        }
        for (name, is_dir) in list(&root.join(&d))? {
            let Some(stem) = name.strip_suffix(LOCK_SUFFIX) else {
                continue;
            };
            let dir = root.join(&d).join(stem);
            if is_dir || dir.exists() {
                continue;
            }
            // Taking the lock and dropping it deletes the file.
            if let Some(lock) = StorageLock::try_acquire(&dir)? {
                if !remove {
                    lock.release_keeping_file();
                }
                out.push(format!("{INDEXES}/{d}/{name}"));
            }
        }
    }
    Ok(out)
}

/// Temp files (`*.tmp`) inside the given storage directories: (relative path, bytes).
pub(crate) fn temp_files(home: &Path, dirs: &BTreeSet<String>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for rel in dirs {
        for (name, is_dir) in list(&home.join(rel)).unwrap_or_default() {
            if !is_dir && name.ends_with(TMP_SUFFIX) {
                let path = format!("{rel}/{name}");
                let bytes = fs::metadata(home.join(&path)).map_or(0, |m| m.len());
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Entries of a directory (name, is a directory), sorted; a missing directory has none.
fn list(dir: &Path) -> Result<Vec<(String, bool)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let is_dir = entry.file_type().map_err(io_err(dir))?.is_dir();
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

/// Total size of the files under `dir` (0 when unreadable).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Whether a run's recorded storage directory has the shape simile gives it
/// (`indexes/<dataset id>/<name>`, nothing else): a record is never trusted to name a path
/// outside the home before something is deleted there.
pub(crate) fn is_storage_path(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    parts.len() == 3
        && parts[0] == INDEXES
        && !parts[1].is_empty()
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && !parts[2].is_empty()
        && parts[2]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Deletes a storage directory and everything in it (already gone is fine).
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_its_file_goes_with_it() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("indexes/1/00aa");
        fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let lock = StorageLock::create_new(&dir).unwrap().unwrap();
        assert!(lock_path(&dir).exists());
        assert!(
            StorageLock::create_new(&dir).unwrap().is_none(),
            "name taken"
        );
        assert!(
            StorageLock::try_acquire(&dir).unwrap().is_none(),
            "a second open file description cannot take it"
        );
        drop(lock);
        assert!(!lock_path(&dir).exists());
        let again = StorageLock::try_acquire(&dir).unwrap();
        assert!(again.is_some(), "free once released");
    }

    #[test]
    fn only_simile_shaped_storage_paths_are_trusted() {
        assert!(is_storage_path("indexes/12/00ab34cd00ab34cd"));
        for bad in [
            "indexes/12/../../etc",
            "/etc",
            "indexes/x/00ab",
            "indexes/1",
            "indexes/1/a/b",
            "indexes/1/..",
            "other/1/00ab",
        ] {
            assert!(!is_storage_path(bad), "{bad}");
        }
    }

    #[test]
    fn stale_locks_are_found_only_when_free() {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir_all(home.path().join("indexes/1/live")).unwrap();
        let held = StorageLock::create_new(&home.path().join("indexes/1/held")).unwrap();
        fs::write(home.path().join("indexes/1/dead.lock"), b"").unwrap();
        fs::write(home.path().join("indexes/1/live.lock"), b"").unwrap();
        assert_eq!(
            stale_locks(home.path(), false).unwrap(),
            ["indexes/1/dead.lock"]
        );
        assert!(home.path().join("indexes/1/dead.lock").exists());
        assert_eq!(stale_locks(home.path(), true).unwrap().len(), 1);
        assert!(!home.path().join("indexes/1/dead.lock").exists());
        assert!(home.path().join("indexes/1/live.lock").exists());
        drop(held);
    }
}
