//! Fast path of sample indexes: sample ids read from the primary key.
//!
//! In FiftyOne's schema a sample index keys each row by its sample id, so `pk` and `sample_id`
//! hold the same value. While that is known to hold, reads take sample ids from the primary key:
//! searches ask for no output field (which spares Milvus its second, retrieve phase), queries
//! fetch no `sample_id`, and lookups by sample id filter on the primary key (and its index).
use std::sync::atomic::{AtomicBool, Ordering};

use simile_index::Embeddings;

use super::schema::{PK, SAMPLE_ID};

/// Whether every row's `sample_id` equals its `pk`.
///
/// Invariant: while it holds, no row of the collection has a sample id other than its key. It
/// starts holding for a sample index (patch indexes key rows by label id) and ends for good
/// once this handle is about to write a row whose sample id differs from its key.
#[derive(Debug)]
pub(super) struct SampleKeys(AtomicBool);

/// Where the sample ids of one read come from, decided once per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SampleIds {
    /// From the primary key (the fast path holds).
    FromPk,
    /// From the `sample_id` field.
    FromField,
}

impl SampleKeys {
    /// The fast path holds from the start for a sample index, never for a patch index.
    pub(super) fn new(patches: bool) -> Self {
        SampleKeys(AtomicBool::new(!patches))
    }

    /// Where the next read takes sample ids from.
    pub(super) fn source(&self) -> SampleIds {
        if self.0.load(Ordering::SeqCst) {
            SampleIds::FromPk
        } else {
            SampleIds::FromField
        }
    }

    /// Call before writing `batch`: a row whose sample id differs from its key ends the fast
    /// path for good. Returns whether this call ended it.
    pub(super) fn before_write(&self, batch: &Embeddings) -> bool {
        let differs = || {
            batch
                .keys()
                .iter()
                .zip(batch.sample_ids())
                .any(|(k, s)| k != s)
        };
        self.source() == SampleIds::FromPk && differs() && self.0.swap(false, Ordering::SeqCst)
    }
}

impl SampleIds {
    /// The field that filters by sample id.
    pub(super) fn filter_field(self) -> &'static str {
        match self {
            SampleIds::FromPk => PK,
            SampleIds::FromField => SAMPLE_ID,
        }
    }

    /// The output fields to request for the `wanted` ones: `sample_id` is left out when it is
    /// read from the key.
    pub(super) fn output_fields(self, wanted: &[&str]) -> Vec<String> {
        wanted
            .iter()
            .filter(|f| !(self == SampleIds::FromPk && **f == SAMPLE_ID))
            .map(|s| s.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::schema::VECTOR;

    fn batch(keys: &[&str], sample_ids: &[&str]) -> Embeddings {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Embeddings::new(1, vec![0.0; keys.len()], own(keys), own(sample_ids)).unwrap()
    }

    #[test]
    fn a_row_keyed_by_another_id_ends_the_fast_path_for_good() {
        let keys = SampleKeys::new(false);
        assert_eq!(keys.source(), SampleIds::FromPk);
        assert!(!keys.before_write(&batch(&["a", "b"], &["a", "b"])));
        assert_eq!(keys.source(), SampleIds::FromPk);
        assert!(keys.before_write(&batch(&["a", "l1"], &["a", "a"])));
        assert_eq!(keys.source(), SampleIds::FromField);
        assert!(!keys.before_write(&batch(&["c"], &["c"])));
        assert_eq!(keys.source(), SampleIds::FromField);
    }

    #[test]
    fn patch_indexes_read_the_sample_id_field() {
        let keys = SampleKeys::new(true);
        assert_eq!(keys.source(), SampleIds::FromField);
        let wanted = [PK, SAMPLE_ID, VECTOR];
        assert_eq!(
            SampleIds::FromField.output_fields(&wanted),
            [PK, SAMPLE_ID, VECTOR]
        );
        assert_eq!(SampleIds::FromPk.output_fields(&wanted), [PK, VECTOR]);
        assert_eq!(SampleIds::FromPk.filter_field(), PK);
        assert_eq!(SampleIds::FromField.filter_field(), SAMPLE_ID);
    }
}
