//! Fast path of a new collection: plain inserts while no one else can know it.
//!
//! An upsert is a delete plus an insert on the server, and every delete record is applied to
//! every later search. A handle that created its collection under a name it chose at random can
//! know which keys are stored — only those it wrote — so rows with other keys go in as plain
//! inserts without ever duplicating a primary key (ARCHITECTURE invariant 8).
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use simile_index::{Embeddings, Result};

/// Largest key set kept for the fast path (a few hundred MB at most).
const PRIVATE_KEYS_MAX: usize = 2_000_000;

/// How rows are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteMode {
    /// Plain inserts: only for keys that cannot be stored yet.
    Insert,
    /// Upserts: replace any stored row of the same key.
    Upsert,
}

impl WriteMode {
    /// The operation's name in errors.
    pub(super) fn op(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Upsert => "upsert",
        }
    }
}

/// The keys a handle may have written to a collection only it can know.
///
/// Invariant: while active, this handle is the only possible writer of its collection (it
/// created it under a name it chose at random, and the name has not left the handle) and the
/// set holds every key it may have written (a key counts as written before its request is
/// sent). So a key outside the set is not stored, and its row can be a plain insert.
///
/// It ends for good, leaving upserts only, when the name leaves the handle ([`Self::end`]), a
/// write fails (the server state of its rows is unknown) or the set grows past
/// `PRIVATE_KEYS_MAX`.
#[derive(Debug)]
pub(super) struct PrivateWrites {
    keys: Mutex<Option<HashSet<String>>>,
}

impl PrivateWrites {
    /// Not active: every write is an upsert.
    pub(super) fn ended() -> Self {
        PrivateWrites {
            keys: Mutex::new(None),
        }
    }

    /// Starts the fast path: call right after creating the collection under a random name.
    pub(super) fn start(&self) {
        *self.lock() = Some(HashSet::new());
    }

    /// Someone else may write to the collection from now on: upserts only.
    pub(super) fn end(&self) {
        self.lock().take();
    }

    pub(super) fn is_active(&self) -> bool {
        self.lock().is_some()
    }

    /// Writes `batch` (no repeated keys) through `send`: rows whose keys were never written
    /// as inserts first, the others as upserts; all as upserts when the fast path is not
    /// active. The lock is held for the whole write, so two calls on this handle cannot both
    /// insert one key.
    pub(super) fn write(
        &self,
        batch: &Embeddings,
        mut send: impl FnMut(&Embeddings, WriteMode) -> Result<()>,
    ) -> Result<()> {
        let mut private = self.lock();
        let Some(written) = private.as_mut() else {
            drop(private);
            return send(batch, WriteMode::Upsert);
        };
        let (new_rows, old_rows): (Vec<usize>, Vec<usize>) =
            (0..batch.len()).partition(|i| !written.contains(&batch.keys()[*i]));
        // Conservative: a key counts as written before its request is sent.
        written.extend(new_rows.iter().map(|i| batch.keys()[*i].clone()));
        let sent = if old_rows.is_empty() {
            send(batch, WriteMode::Insert)
        } else if new_rows.is_empty() {
            send(batch, WriteMode::Upsert)
        } else {
            send(&batch.select_rows(&new_rows), WriteMode::Insert)
                .and_then(|()| send(&batch.select_rows(&old_rows), WriteMode::Upsert))
        };
        if sent.is_err() || written.len() > PRIVATE_KEYS_MAX {
            *private = None;
        }
        sent
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashSet<String>>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use simile_index::Error;

    use super::*;

    fn batch(keys: &[&str]) -> Embeddings {
        let keys: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        Embeddings::new(1, vec![0.0; keys.len()], keys.clone(), keys).unwrap()
    }

    /// The (mode, keys) of each request `write` sends.
    fn sends(p: &PrivateWrites, keys: &[&str]) -> Vec<(WriteMode, Vec<String>)> {
        let mut out = Vec::new();
        p.write(&batch(keys), |b, mode| {
            out.push((mode, b.keys().to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_never_written_are_inserted_the_others_upserted() {
        let p = PrivateWrites::ended();
        assert_eq!(sends(&p, &["a"]), [(WriteMode::Upsert, keys(&["a"]))]);
        p.start();
        assert!(p.is_active());
        assert_eq!(
            sends(&p, &["a", "b"]),
            [(WriteMode::Insert, keys(&["a", "b"]))]
        );
        assert_eq!(sends(&p, &["b"]), [(WriteMode::Upsert, keys(&["b"]))]);
        assert_eq!(
            sends(&p, &["c", "a", "d"]),
            [
                (WriteMode::Insert, keys(&["c", "d"])),
                (WriteMode::Upsert, keys(&["a"]))
            ]
        );
        p.end();
        assert!(!p.is_active());
        assert_eq!(sends(&p, &["e"]), [(WriteMode::Upsert, keys(&["e"]))]);
    }

    #[test]
    fn a_failed_write_ends_the_fast_path() {
        let p = PrivateWrites::ended();
        p.start();
        let failed = p.write(&batch(&["a"]), |_, _| Err(Error::Empty("test failure")));
        assert!(failed.is_err());
        assert!(!p.is_active());
        assert_eq!(sends(&p, &["z"]), [(WriteMode::Upsert, keys(&["z"]))]);
    }
}
