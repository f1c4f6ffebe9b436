//! The consistency level of each read.
//!
//! Reads use the configured level, except after a delete under Session: Milvus 2.3 returns no
//! usable timestamp for deletes, so the SDK's Session guarantee does not cover them (a Session
//! read right after a delete was seen to still return the deleted rows). After a delete sent by
//! this handle, reads are Strong until one of them has succeeded (it waited for a time tick that
//! covers the delete), then Session again.
use std::sync::atomic::{AtomicU64, Ordering};

use milvus::v2::prelude::ConsistencyLevel;

/// Deletes sent by a handle, and the newest of them a Strong read has covered.
#[derive(Debug)]
pub(super) struct ReadConsistency {
    configured: ConsistencyLevel,
    /// Deletes sent so far (a generation counter).
    deletes: AtomicU64,
    /// The newest generation a successful read began after.
    covered: AtomicU64,
}

/// The level one read uses, and the deletes it will cover once it succeeds.
#[derive(Debug, Clone, Copy)]
#[must_use = "hand the ticket back with `done` when the read succeeds"]
pub(super) struct ReadTicket {
    level: ConsistencyLevel,
    generation: u64,
}

impl ReadTicket {
    pub(super) fn level(&self) -> ConsistencyLevel {
        self.level
    }
}

impl ReadConsistency {
    pub(super) fn new(configured: ConsistencyLevel) -> Self {
        ReadConsistency {
            configured,
            deletes: AtomicU64::new(0),
            covered: AtomicU64::new(0),
        }
    }

    /// Notes a delete sent by this handle (call after the server acknowledged it).
    pub(super) fn deleted(&self) {
        self.deletes.fetch_add(1, Ordering::SeqCst);
    }

    /// The ticket of the next read: Strong while a delete is not yet covered under Session.
    pub(super) fn next(&self) -> ReadTicket {
        let generation = self.deletes.load(Ordering::SeqCst);
        let level = if self.configured == ConsistencyLevel::Session
            && self.covered.load(Ordering::SeqCst) < generation
        {
            ConsistencyLevel::Strong
        } else {
            self.configured
        };
        ReadTicket { level, generation }
    }

    /// The read of `ticket` succeeded: it saw every delete sent before it began.
    pub(super) fn done(&self, ticket: ReadTicket) {
        self.covered.fetch_max(ticket.generation, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_reads_are_strong_until_a_read_covers_the_delete() {
        let r = ReadConsistency::new(ConsistencyLevel::Session);
        assert_eq!(r.next().level(), ConsistencyLevel::Session);
        r.deleted();
        let first = r.next();
        assert_eq!(first.level(), ConsistencyLevel::Strong);
        // A failed read (no `done`) leaves the next one Strong too.
        assert_eq!(r.next().level(), ConsistencyLevel::Strong);
        // A delete sent while a read is in flight is not covered by it.
        r.deleted();
        r.done(first);
        assert_eq!(r.next().level(), ConsistencyLevel::Strong);
        r.done(r.next());
        assert_eq!(r.next().level(), ConsistencyLevel::Session);
    }

    #[test]
    fn other_levels_are_kept_after_deletes() {
        for level in [
            ConsistencyLevel::Strong,
            ConsistencyLevel::Bounded,
            ConsistencyLevel::Eventually,
        ] {
            let r = ReadConsistency::new(level);
            r.deleted();
            assert_eq!(r.next().level(), level);
        }
    }
}
