//! Searches restricted to a view (a key list): small views go into `pk in [...]` filters;
//! large ones first try the over-fetch heuristic (one unfiltered search deep enough to hold
//! about `3k` view members on average, filtered here), then fall back to batched filters.
use std::collections::HashSet;

use simile_index::{Neighbor, Result};

use super::schema::PK;
use super::search::Probe;
use super::{dedup_keys, MilvusIndex, RESTRICT_BATCH};
use crate::config::MAX_K;
use crate::expr::in_filter;

/// Views up to this many keys go straight into filter expressions.
const SMALL_VIEW: usize = 512;

/// How deep an unfiltered search must go to hold about `3k` members of a view of `view_len`
/// keys, on average, in an index of `size` rows; `None` when that is deeper than [`MAX_K`].
fn overfetch_depth(k: usize, size: usize, view_len: usize) -> Option<usize> {
    let needed = (3 * k * size.max(1)).div_ceil(view_len.max(1)) + k;
    (needed <= MAX_K).then_some(needed)
}

impl MilvusIndex {
    /// ANN search restricted to `keys` (see the crate docs for the strategy). The hits are
    /// unsorted and may be more than `k`.
    pub(super) fn search_view(
        &self,
        probe: &Probe,
        k: usize,
        keys: &[String],
    ) -> Result<Vec<Neighbor>> {
        let keys = dedup_keys(keys);
        if keys.len() > SMALL_VIEW {
            // Exact up to the ANN's own approximation: every view member closer than the k-th
            // one found ranks inside the fetched depth too.
            if let Some(depth) = overfetch_depth(k, self.count()?, keys.len()) {
                let allowed: HashSet<&str> = keys.iter().map(String::as_str).collect();
                let hits: Vec<Neighbor> = self
                    .search(probe, depth, None)?
                    .into_iter()
                    .filter(|h| allowed.contains(h.key.as_str()))
                    .collect();
                if hits.len() >= k {
                    return Ok(hits);
                }
            }
        }
        // Filtered searches, at most RESTRICT_BATCH keys per `pk in [...]` expression.
        let mut all = Vec::new();
        for chunk in keys.chunks(RESTRICT_BATCH) {
            let limit = k.min(chunk.len());
            all.extend(self.search(probe, limit, Some(in_filter(PK, chunk)))?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_holds_three_k_view_members_on_average() {
        // A view of a tenth of the index: 30 hits hold ~3 members, so 3k members need 30k + k.
        assert_eq!(overfetch_depth(10, 100_000, 10_000), Some(310));
        assert_eq!(overfetch_depth(1, 1000, 999), Some(5));
        assert_eq!(
            overfetch_depth(100, 1_000_000, 1000),
            None,
            "deeper than MAX_K"
        );
        assert_eq!(overfetch_depth(10, 0, 600), Some(10 + 1));
    }
}
