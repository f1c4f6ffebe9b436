//! Near-duplicates on a similarity index: `find_duplicates`, `find_unique`, their results and
//! views — on every backend (the work runs here, exactly, see [`crate::greedy`], on the
//! backend's rows in place where it lends them in walk order, else on a copy read in large
//! batches; see `walk.rs`).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ndarray::ArrayView2;
use simile_index::Metric;

use crate::clustered::{self, Recall};
use crate::greedy::{keep, Rows};
use crate::nearest_kept::nearest_kept;
use crate::thresh_search::search_thresh;
use crate::{Error, PatchesView, Result, SimilarityIndex, View};

/// What `find_duplicates` / `find_unique` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    /// The distance threshold used (a pair at exactly `thresh` is a duplicate).
    pub thresh: f64,
    /// Kept ids (sample ids, or label ids for a patch index), in index-walk order.
    pub unique_ids: Vec<String>,
    /// Duplicate ids, in index-walk order.
    pub duplicate_ids: Vec<String>,
    /// Each unique id that has duplicates → its duplicates with their exact distances, nearest
    /// first (ties in walk order). Empty after `find_unique`, as in FiftyOne.
    pub neighbors_map: BTreeMap<String, Vec<(String, f64)>>,
    /// How the pairs were searched: exactly, or inside clusters (and how much that saw).
    pub method: DuplicatesMethod,
}

/// Indexes of at least this many points are searched by cells when no method is asked for.
pub const CLUSTERED_FROM: usize = 250_000;

/// How `find_duplicates_with` searches for pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicatesSearch {
    /// Exact below [`CLUSTERED_FROM`] points (and always for a fraction or a dotproduct
    /// index), clustered from there.
    #[default]
    Auto,
    /// Every pair: the exact greedy answer, at any size (O(n²) work).
    Exact,
    /// The greedy rule inside k-means cells (about √n of them unless given): every reported
    /// pair is exact and within the threshold, but a pair split across two cells is missed;
    /// [`DuplicatesMethod::Clustered`] reports the share of near pairs the cells saw on a
    /// sample. Cosine and euclidean indexes, with a threshold.
    Clustered {
        /// Number of cells (`None`: about √n).
        cells: Option<usize>,
    },
}

/// How a [`Duplicates`] result was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicatesMethod {
    /// Every pair was considered: the exact greedy answer.
    Exact,
    /// Inside k-means cells (see [`DuplicatesSearch::Clustered`]).
    Clustered {
        /// Cells used.
        cells: usize,
        /// On a sample of points compared with every point: the near pairs, and how many of
        /// them shared a cell.
        recall: Recall,
    },
}

/// How `find_duplicates` picks its threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DuplicatesBy {
    /// Pairs within this distance (inclusive).
    Thresh(f64),
    /// The threshold that marks this fraction of the points as duplicates (0 < f < 1).
    Fraction(f64),
}

impl DuplicatesBy {
    /// The default when neither is given: `thresh = 0.2` under cosine (FiftyOne's
    /// `compute_near_duplicates` default); 1 % of the points under other metrics, whose
    /// distances have no natural scale.
    pub fn default_for(metric: Metric) -> DuplicatesBy {
        match metric {
            Metric::Cosine => DuplicatesBy::Thresh(0.2),
            _ => DuplicatesBy::Fraction(0.01),
        }
    }
}

/// Options of [`SimilarityIndex::duplicates_view`].
#[derive(Debug, Clone, Default)]
pub struct DuplicatesViewOptions {
    /// Write `"nearest"` / `"duplicate"` to this field of each sample.
    pub type_field: Option<String>,
    /// Write the id of each sample's nearest unique sample (its own id for unique ones).
    pub id_field: Option<String>,
    /// Write each duplicate's distance to its unique sample (0 for unique ones).
    pub dist_field: Option<String>,
    /// Order groups by the unique sample's nearest duplicate (default) or by group size.
    pub sort_by_count: bool,
    /// Largest groups / farthest first.
    pub reverse: bool,
}

impl SimilarityIndex {
    /// Finds near-duplicates with FiftyOne's greedy rule: walk the index's ids in order (the
    /// dataset's order), keep a point unless an earlier kept point is within the threshold
    /// (inclusive), and map each duplicate to its nearest kept point. Deterministic on every
    /// backend; exact up to [`CLUSTERED_FROM`] points, clustered above (see
    /// [`DuplicatesSearch`]; the result's `method` says which). `None` picks
    /// [`DuplicatesBy::default_for`] the index's metric. The result is returned and kept on the
    /// index for [`SimilarityIndex::duplicates_view`].
    pub fn find_duplicates(&self, by: Option<DuplicatesBy>) -> Result<Arc<Duplicates>> {
        self.find_duplicates_with(by, DuplicatesSearch::Auto)
    }

    /// [`SimilarityIndex::find_duplicates`] with the search method chosen by the caller.
    pub fn find_duplicates_with(
        &self,
        by: Option<DuplicatesBy>,
        search: DuplicatesSearch,
    ) -> Result<Arc<Duplicates>> {
        let by = by.unwrap_or_else(|| DuplicatesBy::default_for(self.metric()));
        match by {
            DuplicatesBy::Thresh(t) if !t.is_finite() => {
                return Err(Error::NotSupported(format!(
                    "thresh must be a finite distance, got {t}"
                )))
            }
            DuplicatesBy::Fraction(f) if !(f > 0.0 && f < 1.0) => {
                return Err(Error::NotSupported(format!(
                    "fraction must be between 0 and 1 (exclusive), got {f}"
                )))
            }
            _ => {}
        }
        let metric = self.metric();
        match (search, by) {
            (DuplicatesSearch::Clustered { .. }, DuplicatesBy::Fraction(_)) => {
                return Err(Error::NotSupported(
                    "a clustered search needs a threshold, not a fraction".into(),
                ))
            }
            (DuplicatesSearch::Clustered { .. }, _) if metric == Metric::DotProduct => {
                return Err(Error::NotSupported(
                    "a clustered search needs a cosine or euclidean index".into(),
                ))
            }
            _ => {}
        }
        let result = self.with_walk(|keys, emb| duplicates_of(keys, emb, metric, by, search))?;
        let result = Arc::new(result);
        *self
            .state
            .duplicates
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
        Ok(result)
    }

    /// The `count` most spread-out points, FiftyOne's meaning: the greedy unique set at the
    /// threshold that keeps `count` points (exactly `count` when a threshold gives it, else the
    /// nearest count a threshold gives). Kept on the index like `find_duplicates`' result.
    pub fn find_unique(&self, count: usize) -> Result<Arc<Duplicates>> {
        let metric = self.metric();
        let result = self.with_walk(|keys, emb| {
            let n = keys.len();
            if count == 0 || count > n {
                return Err(Error::NotSupported(format!(
                    "count must be between 1 and the index size ({n}), got {count}"
                )));
            }
            let (thresh, kept) = search_thresh(&Rows::new(emb, metric), count);
            Ok(build(
                keys,
                &kept,
                thresh,
                Vec::new(),
                DuplicatesMethod::Exact,
            ))
        })??;
        let result = Arc::new(result);
        *self
            .state
            .duplicates
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
        Ok(result)
    }

    /// The last `find_duplicates` / `find_unique` result on this index, if any.
    pub fn duplicates(&self) -> Option<Arc<Duplicates>> {
        self.state
            .duplicates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn require_duplicates(&self) -> Result<Arc<Duplicates>> {
        self.duplicates().ok_or_else(|| {
            Error::NotSupported(
                "no duplicates results yet: call find_duplicates() (or find_unique()) first".into(),
            )
        })
    }

    /// The unique points' samples, in walk order.
    pub fn unique_view(&self) -> Result<View> {
        let d = self.require_duplicates()?;
        if self.patches_field().is_some() {
            return Err(patch_view_error());
        }
        Ok(self.dataset().view().select_ordered(&d.unique_ids))
    }

    /// Each unique sample that has duplicates, followed by its duplicates (nearest first);
    /// groups ordered by their nearest duplicate's distance or, with `sort_by_count`, by size.
    /// Optional fields record each sample's role, its unique sample and its distance.
    pub fn duplicates_view(&self, options: DuplicatesViewOptions) -> Result<View> {
        let d = self.require_duplicates()?;
        if self.patches_field().is_some() {
            return Err(patch_view_error());
        }
        let ids = group_order(&d, &options);
        let ds = self.dataset();
        let mut types = Vec::new();
        let mut nearest = Vec::new();
        let mut dists = Vec::new();
        for (unique, dups) in groups(&d, &ids) {
            types.push((unique.clone(), "nearest".into()));
            nearest.push((unique.clone(), unique.clone()));
            dists.push((unique.clone(), 0.0));
            for (dup, dist) in dups {
                types.push((dup.clone(), "duplicate".into()));
                nearest.push((dup.clone(), unique.clone()));
                dists.push((dup.clone(), *dist));
            }
        }
        let json = |v: Vec<(String, serde_json::Value)>| {
            v.into_iter()
                .map(|(i, x)| (i, simile_dataset::FieldValue::Json(x)))
                .collect::<Vec<_>>()
        };
        if let Some(f) = &options.type_field {
            ds.set_values(
                f,
                json(
                    types
                        .into_iter()
                        .map(|(i, t): (String, String)| (i, t.into()))
                        .collect(),
                ),
            )?;
        }
        if let Some(f) = &options.id_field {
            ds.set_values(
                f,
                json(nearest.into_iter().map(|(i, u)| (i, u.into())).collect()),
            )?;
        }
        if let Some(f) = &options.dist_field {
            ds.set_values(
                f,
                json(dists.into_iter().map(|(i, x)| (i, x.into())).collect()),
            )?;
        }
        Ok(ds.view().select_ordered(&ids))
    }

    /// For a patch index: the patches of each group (unique patch first, then its duplicates).
    pub fn duplicates_patches_view(&self, options: DuplicatesViewOptions) -> Result<PatchesView> {
        let d = self.require_duplicates()?;
        let Some(field) = self.patches_field() else {
            return Err(Error::NotSupported(
                "duplicates_patches_view needs a patch index; use duplicates_view".into(),
            ));
        };
        let ids = group_order(&d, &options);
        let mut dist: HashMap<&str, f32> = HashMap::new();
        for dups in d.neighbors_map.values() {
            for (id, x) in dups {
                dist.insert(id.as_str(), *x as f32);
            }
        }
        let distances = ids
            .iter()
            .map(|i| dist.get(i.as_str()).copied().unwrap_or(0.0))
            .collect();
        let patches = self.dataset().to_patches(field);
        Ok(PatchesView {
            inner: patches.inner.with_similarity(ids, distances),
            ctx: patches.ctx,
        })
    }
}

/// `find_duplicates` on the walk's `keys` and rows.
fn duplicates_of(
    keys: &[String],
    emb: ArrayView2<'_, f32>,
    metric: Metric,
    by: DuplicatesBy,
    search: DuplicatesSearch,
) -> Duplicates {
    let n = keys.len();
    let cells = match (search, by) {
        (DuplicatesSearch::Clustered { cells }, DuplicatesBy::Thresh(_)) => {
            Some(cells.unwrap_or_else(|| clustered::default_cells(n)))
        }
        (DuplicatesSearch::Auto, DuplicatesBy::Thresh(_))
            if n >= CLUSTERED_FROM && metric != Metric::DotProduct =>
        {
            Some(clustered::default_cells(n))
        }
        _ => None,
    };
    match (cells, by) {
        (Some(cells), DuplicatesBy::Thresh(t)) => {
            let c = clustered::greedy(emb, metric, t, cells);
            tracing::info!(
                cells = c.cells,
                recall = ?c.recall.ratio(),
                "near-duplicates by cells: pairs split across cells are missed"
            );
            let method = DuplicatesMethod::Clustered {
                cells: c.cells,
                recall: c.recall,
            };
            build(keys, &c.kept, t, c.pairs, method)
        }
        (_, by) => {
            let rows = match by {
                DuplicatesBy::Thresh(t) => Rows::new_for(emb, metric, Some(t)),
                DuplicatesBy::Fraction(_) => Rows::new(emb, metric),
            };
            let (thresh, kept) = match by {
                DuplicatesBy::Thresh(t) => (t, keep(&rows, t, None).unwrap_or_default()),
                DuplicatesBy::Fraction(f) => {
                    let target_kept = n - ((f * n as f64).round() as usize).min(n);
                    search_thresh(&rows, target_kept.max(1))
                }
            };
            let pairs = nearest_kept(&rows, &kept, thresh);
            build(keys, &kept, thresh, pairs, DuplicatesMethod::Exact)
        }
    }
}

fn patch_view_error() -> Error {
    Error::NotSupported(
        "this is a patch index: use duplicates_patches_view() for its patches".into(),
    )
}

/// Ids in group order: each unique id with duplicates, then its duplicates.
fn group_order(d: &Duplicates, o: &DuplicatesViewOptions) -> Vec<String> {
    let mut groups: Vec<(&String, &Vec<(String, f64)>)> = d.neighbors_map.iter().collect();
    let position: HashMap<&str, usize> = d
        .unique_ids
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let pos = |k: &String| position.get(k.as_str()).copied().unwrap_or(usize::MAX);
    if o.sort_by_count {
        groups.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then(pos(a.0).cmp(&pos(b.0))));
    } else {
        let first = |g: &Vec<(String, f64)>| g.first().map_or(f64::INFINITY, |x| x.1);
        groups.sort_by(|a, b| {
            first(a.1)
                .total_cmp(&first(b.1))
                .then(pos(a.0).cmp(&pos(b.0)))
        });
    }
    if o.reverse {
        groups.reverse();
    }
    groups
        .into_iter()
        .flat_map(|(u, dups)| std::iter::once(u.clone()).chain(dups.iter().map(|x| x.0.clone())))
        .collect()
}

/// `(unique, duplicates)` groups in the order of `ids`.
fn groups<'a>(d: &'a Duplicates, ids: &[String]) -> Vec<(&'a String, &'a Vec<(String, f64)>)> {
    ids.iter()
        .filter_map(|i| d.neighbors_map.get_key_value(i))
        .collect()
}

/// Builds the result from the keep flags and `(duplicate, kept, distance)` pairs.
fn build(
    keys: &[String],
    kept: &[bool],
    thresh: f64,
    mut pairs: Vec<(usize, usize, f64)>,
    method: DuplicatesMethod,
) -> Duplicates {
    let mut neighbors_map: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    // Within a group: nearest first, ties in walk order.
    pairs.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)).then(a.0.cmp(&b.0)));
    for (dup, unique, dist) in pairs {
        neighbors_map
            .entry(keys[unique].clone())
            .or_default()
            .push((keys[dup].clone(), dist));
    }
    let (mut unique_ids, mut duplicate_ids) = (Vec::new(), Vec::new());
    for (k, &is_kept) in keys.iter().zip(kept) {
        if is_kept {
            unique_ids.push(k.clone());
        } else {
            duplicate_ids.push(k.clone());
        }
    }
    Duplicates {
        thresh,
        unique_ids,
        duplicate_ids,
        neighbors_map,
        method,
    }
}
