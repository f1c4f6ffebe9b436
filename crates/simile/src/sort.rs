//! `sort_by_similarity`: resolve the query, search the index within the view, build the result.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use simile_dataset::{FieldValue, LabelFilter, Stage};
use simile_index::{mean_of_rows, KnnQuery, Metric};
use simile_runs::RunRegistry;

use crate::collection::{PatchesView, View};
use crate::context::Ctx;
use crate::restrict::Restriction;
use crate::{Error, Query, Result, SimilarityIndex, SortOptions};

pub(crate) fn sort_by_similarity(view: &View, query: Query, options: SortOptions) -> Result<View> {
    query.check()?;
    let dataset = view.inner.dataset();
    let key = match &options.brain_key {
        Some(k) => k.clone(),
        None => default_key(&view.ctx, dataset, Wanted::Samples, query.is_text())?,
    };
    let index = load_index(&view.ctx, dataset, &key)?;
    sort_with_index(view, &index, query, options)
}

fn load_index(
    ctx: &Arc<Ctx>,
    dataset: &simile_dataset::Dataset,
    key: &str,
) -> Result<SimilarityIndex> {
    let state = crate::brain::load_state(ctx, dataset, key, &Map::new())?;
    Ok(SimilarityIndex::new(ctx.clone(), dataset.clone(), state))
}

/// What a sort without a brain key needs an index of.
enum Wanted<'a> {
    /// Samples: sample-level runs first, patch runs as a fallback.
    Samples,
    /// The patches of this field: runs over that field.
    Patches(&'a str),
}

/// The peer's rule for a sort without a brain key: the similarity runs that index what is
/// wanted (prompt queries: only runs that support prompts); several candidates → a warning
/// and the first key in sort order. Unreadable runs are skipped with a warning.
fn default_key(
    ctx: &Ctx,
    dataset: &simile_dataset::Dataset,
    wanted: Wanted<'_>,
    prompts: bool,
) -> Result<String> {
    let filter = simile_runs::RunFilter {
        run_type: Some("similarity".into()),
        supports_prompts: prompts.then_some(true),
        ..Default::default()
    };
    let runs = ctx
        .store
        .read(|c| RunRegistry::list_records(c, dataset.db_id(), &filter))?;
    let patches_of = |r: &simile_runs::RunRecord| {
        r.config
            .get("patches_field")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (candidates, what): (Vec<_>, String) = match wanted {
        Wanted::Samples => {
            let (patches, samples): (Vec<_>, Vec<_>) =
                runs.into_iter().partition(|r| patches_of(r).is_some());
            let what = if prompts {
                "samples that supports text prompts"
            } else {
                "samples"
            };
            let pick = if samples.is_empty() { patches } else { samples };
            (pick, what.into())
        }
        Wanted::Patches(field) => (
            runs.into_iter()
                .filter(|r| patches_of(r).as_deref() == Some(field))
                .collect(),
            format!("patches in '{field}'"),
        ),
    };
    match candidates.as_slice() {
        [] => Err(Error::NoSimilarityRun {
            dataset: dataset.name().to_string(),
            what,
        }),
        [one] => Ok(one.key.clone()),
        [first, ..] => {
            tracing::warn!("multiple similarity runs found; using '{}'", first.key);
            Ok(first.key.clone())
        }
    }
}

/// The query's own row in a single-id query: key and sample id.
type SelfRow = Option<(String, String)>;

/// Resolves a query to one vector (several are averaged). Returns the query's own row for a
/// single-id query (so it gets its exact distance and place, see [`place_self`]).
fn resolve_query(index: &SimilarityIndex, query: Query) -> Result<(Vec<f32>, SelfRow)> {
    query.check()?;
    let backend = index.backend();
    let key = index.key().unwrap_or_default();
    Ok(match query {
        Query::Ids(ids) => {
            let rows = backend.get(&ids)?;
            if rows.len() < ids.len() {
                let found: HashSet<&String> = rows.keys().iter().collect();
                let missing: Vec<String> = ids
                    .iter()
                    .filter(|i| !found.contains(i))
                    .take(5)
                    .cloned()
                    .collect();
                return Err(Error::QueryIdsNotFound { key, ids: missing });
            }
            let self_key = if ids.len() == 1 {
                rows.keys()
                    .first()
                    .cloned()
                    .zip(rows.sample_ids().first().cloned())
            } else {
                None
            };
            (rows.mean()?, self_key)
        }
        Query::Vectors { dim, data } => (mean_of_rows(dim, &data)?, None),
        Query::Text(prompts) => {
            if !index.supports_prompts() {
                return Err(Error::PromptsNotSupported {
                    key,
                    query: prompts.join(" | "),
                });
            }
            let model = crate::model_loader::index_model(index)?;
            let embedded = model.embed_prompts(&prompts).map_err(|e| Error::Model {
                model: model.name().to_string(),
                source: Box::new(e),
            })?;
            let dim = embedded.first().map_or(0, Vec::len);
            let flat: Vec<f32> = embedded.into_iter().flatten().collect();
            (mean_of_rows(dim, &flat)?, None)
        }
    })
}

/// k-NN within the candidates, with the query itself (an id query) at its exact distance.
fn search(
    index: &SimilarityIndex,
    vector: &[f32],
    self_row: Option<&(String, String)>,
    restrict: Option<&Restriction>,
    options: &SortOptions,
) -> Result<Vec<simile_index::Neighbor>> {
    let backend = index.backend();
    let mut hits = backend.knn(&KnnQuery {
        vector,
        k: options.k,
        reverse: options.reverse,
        restrict: restrict.map(Restriction::keys),
        restrict_token: restrict.and_then(Restriction::token),
    })?;
    if let Some(row) = self_row {
        let distance = self_distance(backend.metric(), vector);
        place_self(
            &mut hits,
            row,
            distance,
            backend.metric(),
            restrict,
            options,
        );
    }
    Ok(hits)
}

/// The exact distance of an id query's own row from the query (its own vector): 0 under cosine
/// and euclidean, `−a·a` under dotproduct (ARCHITECTURE.md, invariant 5).
fn self_distance(metric: Metric, vector: &[f32]) -> f32 {
    match metric {
        Metric::DotProduct => metric.reference_distance(vector, vector) as f32,
        Metric::Cosine | Metric::Euclidean => 0.0,
    }
}

/// Gives the query's own row (single-id query) its exact `distance` and the place it earns.
///
/// Under cosine and euclidean that is 0, the exact nearest neighbour: first (last when
/// `reverse`), ahead of exact duplicates and of the rounding of an approximate index. Under
/// dotproduct it is `−a·a`, which another row can beat (`a·b > a·a` when `b` is longer): it
/// goes where that distance ranks it, first among equal distances. An approximate index
/// (Milvus HNSW) can miss the row: a missed row that is a candidate is added where it ranks
/// when that is within `k` (dropping the k-th hit); `reverse` never adds it (the exact scans
/// behind farthest-first do not miss).
fn place_self(
    hits: &mut Vec<simile_index::Neighbor>,
    (key, sample_id): &(String, String),
    distance: f32,
    metric: Metric,
    restrict: Option<&Restriction>,
    options: &SortOptions,
) {
    let mut h = match hits.iter().position(|h| &h.key == key) {
        Some(pos) => hits.remove(pos),
        None => {
            let candidate = restrict.is_none_or(|r| r.contains(key));
            if options.reverse || !candidate || options.k == Some(0) {
                return;
            }
            simile_index::Neighbor {
                key: key.clone(),
                sample_id: sample_id.clone(),
                distance,
            }
        }
    };
    h.distance = distance;
    let pos = match (metric, options.reverse) {
        (Metric::Cosine | Metric::Euclidean, false) => 0,
        (Metric::Cosine | Metric::Euclidean, true) => hits.len(),
        (Metric::DotProduct, false) => hits.partition_point(|x| x.distance < distance),
        (Metric::DotProduct, true) => hits.partition_point(|x| x.distance >= distance),
    };
    hits.insert(pos, h);
    if let Some(k) = options.k {
        hits.truncate(k);
    }
}

pub(crate) fn sort_with_index(
    view: &View,
    index: &SimilarityIndex,
    query: Query,
    options: SortOptions,
) -> Result<View> {
    // A dist field may be created or hold earlier distances; nothing else is overwritten.
    if let Some(field) = &options.dist_field {
        let dataset = view.inner.dataset();
        dataset.check_distance_field(field)?;
        if let Some(pf) = index.patches_field() {
            dataset.check_distance_attribute(pf, field)?;
        }
    }
    let (vector, self_key) = resolve_query(index, query)?;
    let restrict = if view.inner.is_full() {
        None
    } else {
        Some(view_restriction(view, index)?)
    };
    let hits = search(
        index,
        &vector,
        self_key.as_ref(),
        restrict.as_deref(),
        &options,
    )?;

    let dataset = view.inner.dataset();
    let patches_field = index.patches_field().map(str::to_string);
    // Samples in order (best match first) with their best distance.
    let mut ids = Vec::with_capacity(hits.len());
    let mut distances = Vec::with_capacity(hits.len());
    let mut seen = HashSet::new();
    for h in &hits {
        if seen.insert(h.sample_id.clone()) {
            ids.push(h.sample_id.clone());
            distances.push(h.distance);
        }
    }
    if let Some(field) = &options.dist_field {
        let values: Vec<(String, FieldValue)> = ids
            .iter()
            .zip(&distances)
            .map(|(id, d)| (id.clone(), FieldValue::Json(Value::from(f64::from(*d)))))
            .collect();
        dataset.set_values(field, values)?;
        if let Some(pf) = &patches_field {
            let per_label: HashMap<String, Value> = hits
                .iter()
                .map(|h| (h.key.clone(), Value::from(f64::from(h.distance))))
                .collect();
            dataset.set_label_values(pf, field, &per_label)?;
        }
    }
    let stage = Stage::Ranked { ids, distances };
    // The results come from the view already, so unless earlier stages shape the labels the
    // result is just the dataset with this stage: its evaluation fetches only the result rows
    // instead of re-running the view's stages.
    let shapes_labels = view
        .inner
        .stages()
        .iter()
        .any(|s| matches!(s, Stage::FilterLabels { .. }));
    let mut out = if shapes_labels {
        view.with_stage(stage)
    } else {
        view.dataset().view().with_stage(stage)
    };
    if let (Some(pf), Some(_)) = (&patches_field, options.k) {
        let matched: Vec<String> = hits.into_iter().map(|h| h.key).collect();
        out = out.filter_labels(pf, LabelFilter::Ids(matched));
    }
    Ok(out)
}

/// The index keys of a (restricted) view, read from SQL once per database version (see
/// [`crate::restrict`]).
fn view_restriction(view: &View, index: &SimilarityIndex) -> Result<Arc<Restriction>> {
    let dataset = view.inner.dataset();
    view.ctx.restrictions.get_or_load(
        dataset.store(),
        dataset.db_id(),
        index.patches_field(),
        view.inner.stages(),
        || index.view_keys(&view.inner),
    )
}

/// Sorts a patches view: patch results, `dist_field` written on the labels.
pub(crate) fn sort_patches(
    view: &PatchesView,
    query: Query,
    options: SortOptions,
) -> Result<PatchesView> {
    query.check()?;
    let field = view.inner.field().to_string();
    let dataset = view.inner.base().dataset();
    let key = match &options.brain_key {
        Some(k) => k.clone(),
        None => default_key(&view.ctx, dataset, Wanted::Patches(&field), query.is_text())?,
    };
    let index = load_index(&view.ctx, dataset, &key)?;
    if index.patches_field() != Some(field.as_str()) {
        return Err(Error::PatchesFieldMismatch {
            key,
            index: index.patches_field().map(str::to_string),
            view: field,
        });
    }
    if let Some(df) = &options.dist_field {
        dataset.check_distance_attribute(&field, df)?;
    }
    let (vector, self_key) = resolve_query(&index, query)?;
    let restrict = if view.inner.is_full() {
        None
    } else {
        Some(Restriction::once(view.inner.ids()?))
    };
    let hits = search(
        &index,
        &vector,
        self_key.as_ref(),
        restrict.as_ref(),
        &options,
    )?;
    if let Some(df) = &options.dist_field {
        let per_label: HashMap<String, Value> = hits
            .iter()
            .map(|h| (h.key.clone(), Value::from(f64::from(h.distance))))
            .collect();
        dataset.set_label_values(&field, df, &per_label)?;
    }
    let (ids, distances) = hits.into_iter().map(|h| (h.key, h.distance)).unzip();
    Ok(PatchesView {
        inner: view.inner.with_similarity(ids, distances),
        ctx: view.ctx.clone(),
    })
}

#[cfg(test)]
mod tests {
    use simile_index::{Metric, Neighbor};

    use super::*;

    fn hit(key: &str, d: f32) -> Neighbor {
        Neighbor {
            key: key.into(),
            sample_id: format!("s-{key}"),
            distance: d,
        }
    }

    fn keys(hits: &[Neighbor]) -> Vec<&str> {
        hits.iter().map(|h| h.key.as_str()).collect()
    }

    fn row(key: &str) -> (String, String) {
        (key.into(), format!("s-{key}"))
    }

    fn place(
        hits: &mut Vec<Neighbor>,
        metric: Metric,
        restrict: Option<&Restriction>,
        o: SortOptions,
    ) {
        // The query vector [1, 0]: −a·a = −1 under dotproduct.
        let d = self_distance(metric, &[1.0, 0.0]);
        place_self(hits, &row("q"), d, metric, restrict, &o);
    }

    #[test]
    fn a_found_self_moves_first_at_distance_zero_under_cosine_and_euclidean() {
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let mut hits = vec![hit("a", 0.0), hit("q", 0.0001), hit("b", 0.3)];
            place(&mut hits, metric, None, SortOptions::new().k(3));
            assert_eq!(keys(&hits), ["q", "a", "b"], "{metric}");
            assert_eq!(hits[0].distance, 0.0);
            let mut hits = vec![hit("b", 0.3), hit("q", 0.0001), hit("a", 0.1)];
            place(
                &mut hits,
                metric,
                None,
                SortOptions::new().k(3).reverse(true),
            );
            assert_eq!(keys(&hits), ["b", "a", "q"], "{metric} reversed");
            assert_eq!(hits[2].distance, 0.0);
        }
    }

    #[test]
    fn under_dotproduct_the_self_row_has_distance_minus_a_dot_a_and_the_place_it_earns() {
        // A longer vector along the query beats the query itself: −a·b = −2 < −a·a = −1.
        let mut hits = vec![hit("long", -2.0), hit("q", -0.999), hit("b", -0.5)];
        place(&mut hits, Metric::DotProduct, None, SortOptions::new().k(3));
        assert_eq!(keys(&hits), ["long", "q", "b"]);
        assert_eq!(hits[1].distance, -1.0);
        // Equal distances: itself first.
        let mut hits = vec![hit("twin", -1.0), hit("q", -1.0001)];
        place(&mut hits, Metric::DotProduct, None, SortOptions::new());
        assert_eq!(keys(&hits), ["q", "twin"]);
        // Farthest first: it stays where −1 ranks among descending distances.
        let mut hits = vec![hit("b", -0.5), hit("long", -2.0), hit("q", -1.0)];
        place(
            &mut hits,
            Metric::DotProduct,
            None,
            SortOptions::new().reverse(true),
        );
        assert_eq!(keys(&hits), ["b", "q", "long"]);
    }

    #[test]
    fn a_self_missed_by_an_approximate_index_is_added_where_it_ranks() {
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let mut hits = vec![hit("a", 0.1), hit("b", 0.2), hit("c", 0.3)];
            place(&mut hits, metric, None, SortOptions::new().k(3));
            assert_eq!(keys(&hits), ["q", "a", "b"], "{metric}");
            assert_eq!(hits[0].sample_id, "s-q");
            assert_eq!(hits[0].distance, 0.0);
        }
        let mut hits = vec![hit("a", -3.0), hit("b", -0.5), hit("c", -0.2)];
        place(&mut hits, Metric::DotProduct, None, SortOptions::new().k(3));
        assert_eq!(keys(&hits), ["a", "q", "b"]);
        assert_eq!(hits[1].distance, -1.0);
    }

    #[test]
    fn a_missed_self_is_not_added_when_it_is_not_a_candidate_or_does_not_rank() {
        let three = || vec![hit("a", -3.0), hit("b", -2.0), hit("c", -1.5)];
        let view = Restriction::once(vec!["a".to_string(), "b".to_string(), "c".to_string()]);
        let cases: [(Metric, Option<&Restriction>, SortOptions); 3] = [
            (Metric::Cosine, Some(&view), SortOptions::new().k(3)),
            // −a·a = −1 ranks after the k = 3 hits.
            (Metric::DotProduct, None, SortOptions::new().k(3)),
            (Metric::Cosine, None, SortOptions::new().k(3).reverse(true)),
        ];
        for (metric, restrict, options) in cases {
            let mut hits = three();
            place(&mut hits, metric, restrict, options);
            assert_eq!(keys(&hits), ["a", "b", "c"]);
        }
    }
}
