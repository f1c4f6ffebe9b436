//! The rows the near-duplicates passes walk (`find_duplicates`, `find_unique`, the
//! nearest-distance histogram): borrowed from the backend where it lends them
//! ([`SimilarityBackend::with_rows`](simile_index::SimilarityBackend::with_rows)) and they are
//! the walk's rows in the walk's order, copied out in large batches otherwise.
//!
//! The walk order is the dataset's order of the view's keys. An index computed in dataset order
//! (the usual case, e.g. from a `.npy`) holds its rows in that order, so the exact backend's
//! memory-mapped rows are used in place: no second copy of the vectors (2 GB at 1M × 512). A
//! view that is a strict subset, an index in another order, or a backend that does not lend
//! (Milvus) takes the copy; the algorithms see the same rows in the same order either way, so
//! the answers are identical.
use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result, SimilarityIndex};

/// Rows read from the backend per request on the copy path.
const FETCH: usize = 16_384;

/// Which path gave the algorithm its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The backend's own rows, in place.
    Borrowed,
    /// Copied out of the backend.
    Copied,
}

#[cfg(test)]
thread_local! {
    /// Tests: take the copy path even where the backend lends.
    pub(crate) static NEVER_LEND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests: the path the last walk on this thread took.
    pub(crate) static LAST: std::cell::Cell<Option<Source>> = const { std::cell::Cell::new(None) };
}

fn may_lend() -> bool {
    #[cfg(test)]
    return !NEVER_LEND.with(std::cell::Cell::get);
    #[cfg(not(test))]
    true
}

fn took(source: Source) -> Source {
    #[cfg(test)]
    LAST.with(|l| l.set(Some(source)));
    tracing::debug!(?source, "near-duplicates rows");
    source
}

impl SimilarityIndex {
    /// Runs `f` on the walk: the keys of the current view (the dataset without one) that are in
    /// the index, in the dataset's order, with their rows.
    pub(crate) fn with_walk<T>(
        &self,
        f: impl FnOnce(&[String], ArrayView2<'_, f32>) -> T,
    ) -> Result<T> {
        let view = match &self.view {
            Some(v) => v.clone(),
            None => self.dataset.view(),
        };
        let keys = self.view_keys(&view)?;
        Ok(self.with_rows_of(keys, f)?.0)
    }

    /// Runs `f` on the rows of `keys` that are in the index, in the order of `keys`, with those
    /// keys: the backend's rows in place when they are exactly `keys` in index order, else a
    /// copy.
    pub(crate) fn with_rows_of<T>(
        &self,
        keys: Vec<String>,
        f: impl FnOnce(&[String], ArrayView2<'_, f32>) -> T,
    ) -> Result<(T, Source)> {
        let backend = self.backend();
        let mut f = Some(f);
        let mut out = None;
        if may_lend() {
            backend.with_rows(&mut |rows| {
                let same = rows.len() == keys.len()
                    && keys
                        .iter()
                        .enumerate()
                        .all(|(r, k)| rows.key(r) == Some(k.as_str()));
                if !same {
                    return;
                }
                let view = ArrayView2::from_shape((rows.len(), rows.dim()), rows.data());
                if let Ok(view) = view {
                    if let Some(f) = f.take() {
                        out = Some(f(&keys, view));
                    }
                }
            })?;
        }
        if let Some(t) = out {
            return Ok((t, took(Source::Borrowed)));
        }
        let Some(f) = f else {
            // The backend lent rows that were not the walk's, and `f` went with them: cannot
            // happen (`f` is taken only when it runs), but never a panic.
            return Err(Error::NotSupported("index rows lent but not used".into()));
        };
        let (found, emb) = copy_rows(&*backend, keys)?;
        Ok((f(&found, emb.view()), took(Source::Copied)))
    }

    /// Runs `f` on every row of the index, in index order (what [`get_all`] returns): in place
    /// where the backend lends its rows, else copied.
    ///
    /// [`get_all`]: simile_index::SimilarityBackend::get_all
    pub(crate) fn with_all_rows<T>(&self, f: impl FnOnce(ArrayView2<'_, f32>) -> T) -> Result<T> {
        let backend = self.backend();
        let mut f = Some(f);
        let mut out = None;
        if may_lend() {
            backend.with_rows(&mut |rows| {
                if let Ok(view) = ArrayView2::from_shape((rows.len(), rows.dim()), rows.data()) {
                    if let Some(f) = f.take() {
                        out = Some(f(view));
                    }
                }
            })?;
        }
        if let Some(t) = out {
            took(Source::Borrowed);
            return Ok(t);
        }
        let Some(f) = f else {
            return Err(Error::NotSupported("index rows lent but not used".into()));
        };
        let all = self.get_all_embeddings()?;
        took(Source::Copied);
        Ok(f(all.embeddings.view()))
    }
}

/// The rows of the present `keys`, in their order, copied out `FETCH` at a time.
fn copy_rows(
    backend: &dyn simile_index::SimilarityBackend,
    keys: Vec<String>,
) -> Result<(Vec<String>, Array2<f32>)> {
    let mut found: Vec<String> = Vec::with_capacity(keys.len());
    let mut data: Vec<f32> = Vec::new();
    let mut dim = 0;
    for chunk in keys.chunks(FETCH) {
        let rows = backend.get(chunk)?;
        dim = rows.dim();
        if data.is_empty() {
            data.reserve_exact(keys.len().saturating_mul(dim));
        }
        // Whatever order the backend answers in, keep the order of `keys`.
        let pos: HashMap<&str, usize> = rows
            .keys()
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        for k in chunk {
            if let Some(&i) = pos.get(k.as_str()) {
                found.push(k.clone());
                data.extend_from_slice(rows.row(i));
            }
        }
    }
    let emb = Array2::from_shape_vec((found.len(), dim), data)
        .map_err(|e| Error::NotSupported(format!("index rows do not form a matrix: {e}")))?;
    Ok((found, emb))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use simile_index::Metric;

    use super::{Source, LAST, NEVER_LEND};
    use crate::{
        AddOptions, Dataset, DuplicatesBy, DuplicatesSearch, NewSample, SimilarityIndex,
        SimilarityOptions,
    };

    /// Random rows with planted near-copies and one exact copy.
    fn planted(n: usize, dim: usize) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut m = Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0f32..1.0));
        for i in (10..n).step_by(7) {
            let src = m.row(i % 10).to_owned();
            for (x, s) in m.row_mut(i).iter_mut().zip(src.iter()) {
                *x = s + rng.random_range(-0.03f32..0.03);
            }
        }
        let first = m.row(3).to_owned();
        m.row_mut(n - 1).assign(&first);
        m
    }

    /// `f` on the copy path, then on whatever path the index takes by itself: (copied, own
    /// result, the path the second call took).
    fn both<T>(f: impl Fn() -> T) -> (T, T, Option<Source>) {
        NEVER_LEND.with(|c| c.set(true));
        let copied = f();
        assert_eq!(LAST.with(Cell::get), Some(Source::Copied));
        NEVER_LEND.with(|c| c.set(false));
        LAST.with(|c| c.set(None));
        let own = f();
        (copied, own, LAST.with(Cell::get))
    }

    /// Every walk result on `index`, on both paths; returns the paths the index takes itself
    /// (the walk's, the nearest distances').
    fn same_on_both_paths(index: &SimilarityIndex, thresh: f64) -> (Source, Source) {
        let mut path = None;
        let mut check = |p: Option<Source>| {
            assert!(
                p.is_some() && (path.is_none() || path == p),
                "one path per index"
            );
            path = p;
        };
        let by = Some(DuplicatesBy::Thresh(thresh));
        let (a, b, p) = both(|| index.find_duplicates(by).unwrap());
        assert!(!a.duplicate_ids.is_empty(), "planted duplicates found");
        assert_eq!(a, b, "find_duplicates");
        check(p);
        let cells = DuplicatesSearch::Clustered { cells: Some(4) };
        let (a, b, p) = both(|| index.find_duplicates_with(by, cells).unwrap());
        assert_eq!(a, b, "find_duplicates by cells");
        check(p);
        let by = Some(DuplicatesBy::Fraction(0.1));
        let (a, b, p) = both(|| index.find_duplicates(by).unwrap());
        assert_eq!(a, b, "find_duplicates by fraction");
        check(p);
        let (a, b, p) = both(|| index.find_unique(50).unwrap());
        assert_eq!(a.unique_ids.len(), 50);
        assert_eq!(a, b, "find_unique");
        check(p);
        // Nearest distances: without a view, every row of the index in index order (lent in
        // any order); with one, the view's rows like the walk.
        let (a, b, histogram_path) = both(|| index.distance_histogram(20).unwrap());
        assert_eq!(a.counts.iter().sum::<usize>(), index.index_size().unwrap());
        assert_eq!(a, b, "nearest-distance histogram");
        let (a, b, p) = both(|| index.nearest_distances().unwrap());
        assert_eq!(a, b, "nearest distances");
        assert_eq!(p, histogram_path);
        (path.unwrap(), histogram_path.unwrap())
    }

    fn dataset(n: usize) -> (tempfile::TempDir, Dataset, Vec<String>) {
        let home = tempfile::tempdir().unwrap();
        let simile = crate::Simile::builder()
            .settings(crate::Settings::for_home(home.path()))
            .open()
            .unwrap();
        let ds = simile.create_dataset("d").unwrap();
        let ids = ds
            .add_samples((0..n).map(|i| NewSample::new(format!("{i}.jpg"))).collect())
            .unwrap();
        (home, ds, ids)
    }

    /// An index computed in dataset order lends its rows in place; one whose rows are in
    /// another order, and a view that is a strict subset, are copied; every answer is the same
    /// on both paths, and the reordered index answers as the one in dataset order.
    #[test]
    fn borrowed_and_copied_rows_give_the_same_answers() {
        let n = 300;
        let emb = planted(n, 16);
        let (_home, ds, ids) = dataset(n);
        for (metric, thresh) in [(Metric::Cosine, 0.01), (Metric::Euclidean, 0.2)] {
            let opts = |key: &str| SimilarityOptions::new().brain_key(key).metric(metric);
            let key = format!("in_order_{}", metric.as_str());
            let in_order = ds
                .compute_similarity(opts(&key).embeddings(emb.clone()))
                .unwrap();
            let paths = same_on_both_paths(&in_order, thresh);
            assert_eq!(paths, (Source::Borrowed, Source::Borrowed));
            let want = in_order
                .find_duplicates(Some(DuplicatesBy::Thresh(thresh)))
                .unwrap();

            // The same rows added in reverse order: the walk (dataset order) is not the index
            // order, so the rows are copied, with the same answers.
            let key = format!("reversed_{}", metric.as_str());
            let reversed = ds.compute_similarity(opts(&key).no_embeddings()).unwrap();
            let rev: Vec<usize> = (0..n).rev().collect();
            let rows = emb.select(ndarray::Axis(0), &rev);
            let rev_ids: Vec<String> = rev.iter().map(|&i| ids[i].clone()).collect();
            reversed
                .add_to_index(rows.view(), &rev_ids, None, AddOptions::default())
                .unwrap();
            let paths = same_on_both_paths(&reversed, thresh);
            assert_eq!(paths, (Source::Copied, Source::Borrowed));
            let got = reversed
                .find_duplicates(Some(DuplicatesBy::Thresh(thresh)))
                .unwrap();
            assert_eq!(
                got, want,
                "{metric:?}: the index's row order does not matter"
            );

            // A view of every other sample: a strict subset, copied.
            let half: Vec<String> = ids.iter().step_by(2).cloned().collect();
            let view = in_order.use_view(&ds.view().select(&half));
            let paths = same_on_both_paths(&view, thresh);
            assert_eq!(paths, (Source::Copied, Source::Copied));
        }
    }
}
