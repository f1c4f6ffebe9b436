//! `knn`: ANN searches (nearest first, or farthest first by searching for `-q`) and exact scans
//! computed here (`k = None`, and farthest-first under euclidean).
use std::collections::HashMap;

use milvus::v2::prelude::{ConsistencyLevel, Ids, SearchRequest, SearchVectors};
use simile_index::{sort_neighbors, Error, KnnQuery, Metric, Neighbor, Result};

use super::call::{malformed, SdkResult};
use super::sample_keys::SampleIds;
use super::schema::{metric_type, SAMPLE_ID, VECTOR};
use super::MilvusIndex;
use crate::config::{IndexKind, MAX_K};
use crate::BACKEND;

/// A Milvus score converted to the contract's distance (smaller is closer).
fn distance_of(metric: Metric, score: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - score,
        Metric::DotProduct => -score,
        Metric::Euclidean => score.max(0.0).sqrt(),
    }
}

/// The vector a search sends, and how its scores become distances to the query.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    vector: Vec<f32>,
    /// The search is for `-q`: its scores are those of `q` negated.
    negated: bool,
}

impl Probe {
    /// Nearest first: a search for `q` itself.
    fn nearest(q: &[f32]) -> Probe {
        Probe {
            vector: q.to_vec(),
            negated: false,
        }
    }

    /// Farthest first, as a search for `-q`: under cosine and dotproduct the farthest from `q`
    /// are the nearest to `-q`, and `score(-q, v) = -score(q, v)`. `None` under euclidean, where
    /// neither holds (farthest first is an exact scan there).
    fn farthest(q: &[f32], metric: Metric) -> Option<Probe> {
        match metric {
            Metric::Cosine | Metric::DotProduct => Some(Probe {
                vector: q.iter().map(|v| -v).collect(),
                negated: true,
            }),
            Metric::Euclidean => None,
        }
    }

    /// The contract distance from `q` of a hit scored `score` by this search.
    fn distance(&self, metric: Metric, score: f32) -> f32 {
        distance_of(metric, if self.negated { -score } else { score })
    }
}

/// What a search request is built from.
struct SearchSpec<'a> {
    collection: &'a str,
    metric: Metric,
    index_kind: IndexKind,
    search_ef: u32,
    level: ConsistencyLevel,
    /// Ask for the `sample_id` field (patch indexes; sample indexes read it from the pk).
    with_sample_id: bool,
}

impl SearchSpec<'_> {
    /// The search request: metric, output `sample_id`, consistency level, and for HNSW the
    /// search parameter `ef` (at least `limit`), sent as the request's `params`.
    fn request(
        &self,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<String>,
    ) -> SdkResult<SearchRequest> {
        let mut b = SearchRequest::builder()
            .collection_name(self.collection)
            .vector_field(VECTOR)
            .vectors(SearchVectors::Float(vec![vector]))
            .limit(limit as i64)
            .metric_type(metric_type(self.metric))
            .consistency_level(self.level);
        if self.with_sample_id {
            b = b.output_fields([SAMPLE_ID]);
        }
        if self.index_kind == IndexKind::Hnsw {
            let ef = (self.search_ef as usize).max(limit);
            b = b.extra_params(HashMap::from([("ef".to_string(), ef.to_string())]));
        }
        if let Some(f) = filter {
            b = b.filter(f);
        }
        b.build()
    }
}

impl MilvusIndex {
    /// `knn`: checks the query, then an ANN search (restricted to the view, if any) or an
    /// exact scan; hits sorted by distance (ties by key) and cut at `k`.
    pub(super) fn nearest(&self, query: &KnnQuery<'_>) -> Result<Vec<Neighbor>> {
        let q = query.vector;
        if q.is_empty() {
            return Err(Error::Empty("the query vector is empty"));
        }
        if q.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "of the query".into(),
            });
        }
        if let Some(k) = query.k {
            if k > MAX_K {
                return Err(Error::KTooLarge {
                    backend: BACKEND,
                    k,
                    max: MAX_K,
                });
            }
            if k == 0 {
                return Ok(Vec::new());
            }
        }
        let (exists, dim) = {
            let st = self.lock();
            (st.exists, st.dim)
        };
        let Some(dim) = dim.filter(|_| exists) else {
            return Ok(Vec::new());
        };
        if q.len() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: q.len(),
            });
        }
        if matches!(query.restrict, Some(r) if r.is_empty()) {
            return Ok(Vec::new());
        }
        let Some(k) = query.k else {
            return self.exact_scan(q, None, query.reverse, query.restrict);
        };
        let probe = if query.reverse {
            match Probe::farthest(q, self.metric) {
                Some(p) => p,
                None => return self.exact_scan(q, Some(k), true, query.restrict),
            }
        } else {
            Probe::nearest(q)
        };
        let mut hits = match query.restrict {
            Some(keys) => self.search_view(&probe, k, keys)?,
            None => self.search(&probe, k, None)?,
        };
        sort_neighbors(&mut hits, query.reverse);
        hits.truncate(k);
        Ok(hits)
    }

    /// One ANN search of depth `limit`; hits as neighbours with contract distances.
    pub(super) fn search(
        &self,
        probe: &Probe,
        limit: usize,
        filter: Option<String>,
    ) -> Result<Vec<Neighbor>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let source = self.sample_keys.source();
        let build = |level| {
            SearchSpec {
                collection: &self.collection,
                metric: self.metric,
                index_kind: self.cfg.index_kind,
                search_ef: self.cfg.search_ef,
                level,
                with_sample_id: source == SampleIds::FromField,
            }
            .request(probe.vector.clone(), limit, filter)
        };
        let hits = self.read("search", build, |client, req| async move {
            let resp = client.search(req).await?;
            let mut out = Vec::new();
            for one in resp.results().iter() {
                let ids = match one.get_ids() {
                    Ids::VarChar(v) => v.clone(),
                    Ids::Int64(v) => v.iter().map(|i| i.to_string()).collect(),
                    _ => {
                        return Err(milvus::v2::error::Error::MalformedResponse(
                            "unsupported primary key type".into(),
                        ))
                    }
                };
                let scores = one.get_scores().to_vec();
                let sids = match source {
                    SampleIds::FromPk => Some(ids.clone()),
                    SampleIds::FromField => one
                        .get_output_field(SAMPLE_ID)
                        .and_then(|f| f.as_varchar())
                        .map(|v| v.to_vec()),
                };
                out.push((ids, scores, sids));
            }
            Ok(out)
        })?;
        let mut neighbors = Vec::new();
        for (ids, scores, sids) in hits {
            if ids.len() != scores.len() {
                return Err(malformed("search", "ids and scores differ in length"));
            }
            let sids = match sids {
                Some(s) if s.len() == ids.len() => s,
                _ if ids.is_empty() => Vec::new(),
                _ => return Err(malformed("search", "search hits lack sample ids")),
            };
            for ((key, score), sample_id) in ids.into_iter().zip(scores).zip(sids) {
                neighbors.push(Neighbor {
                    key,
                    sample_id,
                    distance: probe.distance(self.metric, score),
                });
            }
        }
        Ok(neighbors)
    }

    /// Exact k-NN computed here over the stored vectors of the view (or of every row).
    fn exact_scan(
        &self,
        q: &[f32],
        k: Option<usize>,
        reverse: bool,
        restrict: Option<&[String]>,
    ) -> Result<Vec<Neighbor>> {
        let rows = match restrict {
            Some(keys) => self.fetch_rows(keys)?,
            None => self.scan_all(true)?,
        };
        let mut hits: Vec<Neighbor> = rows
            .pks
            .into_iter()
            .zip(rows.sample_ids)
            .zip(rows.vectors)
            .map(|((key, sample_id), v)| Neighbor {
                key,
                sample_id,
                distance: self.metric.reference_distance(q, &v) as f32,
            })
            .collect();
        sort_neighbors(&mut hits, reverse);
        if let Some(k) = k {
            hits.truncate(k);
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::schema::metric_of;

    fn spec(index_kind: IndexKind) -> SearchSpec<'static> {
        SearchSpec {
            collection: "c",
            metric: Metric::Cosine,
            index_kind,
            search_ef: 64,
            level: ConsistencyLevel::Session,
            with_sample_id: true,
        }
    }

    #[test]
    fn sample_indexes_search_without_output_fields() {
        let patches = spec(IndexKind::Flat)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert_eq!(patches.output_fields(), [SAMPLE_ID.to_string()]);
        let samples = SearchSpec {
            with_sample_id: false,
            ..spec(IndexKind::Flat)
        }
        .request(vec![0.0; 4], 10, None)
        .unwrap();
        assert!(samples.output_fields().is_empty());
    }

    #[test]
    fn hnsw_searches_send_ef_at_least_k() {
        let req = spec(IndexKind::Hnsw)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert_eq!(req.extra_params().get("ef").map(String::as_str), Some("64"));
        let req = spec(IndexKind::Hnsw)
            .request(vec![0.0; 4], 500, Some("pk in [\"a\"]".into()))
            .unwrap();
        assert_eq!(
            req.extra_params().get("ef").map(String::as_str),
            Some("500")
        );
        assert_eq!(req.filter(), "pk in [\"a\"]");
        let flat = spec(IndexKind::Flat)
            .request(vec![0.0; 4], 10, None)
            .unwrap();
        assert!(flat.extra_params().get("ef").is_none());
    }

    #[test]
    fn scores_become_contract_distances() {
        assert_eq!(distance_of(Metric::Cosine, 0.25), 0.75);
        assert_eq!(distance_of(Metric::DotProduct, 3.0), -3.0);
        assert_eq!(distance_of(Metric::Euclidean, 4.0), 2.0);
        assert_eq!(distance_of(Metric::Euclidean, -1e-7), 0.0);
        assert_eq!(
            metric_of(metric_type(Metric::DotProduct)),
            Some(Metric::DotProduct)
        );
    }

    #[test]
    fn farthest_first_searches_for_the_negated_query() {
        let q = [1.0, -2.0];
        assert!(Probe::farthest(&q, Metric::Euclidean).is_none());
        let near = Probe::nearest(&q);
        assert_eq!(near.vector, q);
        assert_eq!(near.distance(Metric::Cosine, 0.25), 0.75);
        let far = Probe::farthest(&q, Metric::DotProduct).unwrap();
        assert_eq!(far.vector, [-1.0, 2.0]);
        // IP(-q, v) = -(q·v): already the dotproduct distance of v from q.
        assert_eq!(far.distance(Metric::DotProduct, 3.0), 3.0);
        // COSINE(-q, v) = -cos(q, v), so 1 - cos(q, v) = 1 + score.
        let far = Probe::farthest(&q, Metric::Cosine).unwrap();
        assert_eq!(far.distance(Metric::Cosine, 0.25), 1.25);
    }
}
