//! The factory, parameters, capabilities and query validation.

use std::sync::Arc;
use std::thread;

use serde_json::Value;
use simile_index::conformance::{oid, random_vectors};
use simile_index::{BackendFactory, Embeddings, Error, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::{SklearnFactory, SklearnIndex};

use crate::params;

#[test]
fn factory_basics() {
    let f = SklearnFactory;
    assert_eq!(f.name(), "sklearn");
    assert_eq!(f.default_metric(), Metric::Cosine);
    let dir = tempfile::tempdir().unwrap();

    let b = f.create(&params(dir.path(), None)).unwrap();
    assert_eq!(b.name(), "sklearn");
    assert_eq!(b.metric(), Metric::Cosine);
    let caps = b.capabilities();
    assert_eq!(caps.max_k, None);
    assert!(caps.reverse && caps.unbounded_k && caps.enumerate && caps.exact);
    assert!(b.as_any().downcast_ref::<SklearnIndex>().is_some());

    assert!(matches!(
        f.create(&params(dir.path(), Some("l1"))),
        Err(Error::InvalidMetric(m)) if m == "l1"
    ));

    let b = f.create(&params(dir.path(), Some("L2"))).unwrap();
    assert_eq!(b.metric(), Metric::Euclidean);
    let cfg = b.persisted_config();
    assert_eq!(cfg.len(), 1, "only the metric is persisted: {cfg:?}");
    assert_eq!(cfg.get("metric"), Some(&Value::String("euclidean".into())));
    b.upsert(&Embeddings::for_samples(3, vec![1.0, 2.0, 3.0], vec![oid(1, 1)]).unwrap())
        .unwrap();
    b.persist().unwrap();

    // Reopen from the persisted config.
    let mut p = params(dir.path(), None);
    p.params = cfg.clone();
    let again = f.open(&p).unwrap();
    assert_eq!(again.metric(), Metric::Euclidean);
    assert_eq!(again.size().unwrap(), 1);
    // With no metric the file decides.
    assert_eq!(
        f.open(&params(dir.path(), None)).unwrap().metric(),
        Metric::Euclidean
    );
    // A contradicting metric is refused.
    assert!(matches!(
        f.open(&params(dir.path(), Some("cosine"))),
        Err(Error::InvalidParam { param, .. }) if param == "metric"
    ));
    assert!(matches!(
        f.open(&params(&dir.path().join("missing"), None)),
        Err(Error::IndexMissing { .. })
    ));
}

#[test]
fn query_validation() {
    let index = SklearnIndex::in_memory(Metric::Cosine);
    // Empty index, unknown dimension: no hits, whatever the query length.
    assert!(index
        .knn(&KnnQuery::nearest(&[1.0, 2.0], 3))
        .unwrap()
        .is_empty());
    assert_eq!(index.dim().unwrap(), None);
    assert!(matches!(
        index.knn(&KnnQuery::nearest(&[], 3)),
        Err(Error::Empty(_))
    ));
    assert!(matches!(
        index.knn(&KnnQuery::nearest(&[f32::INFINITY, 0.0], 3)),
        Err(Error::NonFinite { .. })
    ));
    index
        .upsert(
            &Embeddings::for_samples(
                4,
                random_vectors(3, 4, 1),
                (0..3).map(|i| oid(2, i)).collect(),
            )
            .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        index.knn(&KnnQuery::nearest(&[1.0; 5], 3)),
        Err(Error::DimensionMismatch {
            expected: 4,
            got: 5
        })
    ));
    // The dimension stays fixed after everything is removed.
    index
        .remove(&(0..3).map(|i| oid(2, i)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(index.size().unwrap(), 0);
    assert_eq!(index.dim().unwrap(), Some(4));
    assert!(index
        .knn(&KnnQuery::nearest(&[1.0; 4], 3))
        .unwrap()
        .is_empty());
    assert!(matches!(
        index.upsert(&Embeddings::for_samples(2, vec![1.0, 1.0], vec![oid(2, 9)]).unwrap()),
        Err(Error::DimensionMismatch {
            expected: 4,
            got: 2
        })
    ));
    // An empty batch is a no-op, whatever its dimension.
    index.upsert(&Embeddings::empty(7)).unwrap();
    assert_eq!(index.dim().unwrap(), Some(4));
}

#[test]
fn zero_query_and_zero_rows_under_cosine() {
    let index = SklearnIndex::in_memory(Metric::Cosine);
    let keys: Vec<String> = (0..5).map(|i| oid(3, i)).collect();
    let mut data = random_vectors(5, 6, 2);
    data[12..18].fill(0.0);
    index
        .upsert(&Embeddings::for_samples(6, data, keys.clone()).unwrap())
        .unwrap();
    // A zero query is at distance 1 from everything: order is by key.
    let hits = index.knn(&KnnQuery::nearest(&[0.0; 6], 5)).unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        hits.iter().map(|h| h.key.clone()).collect::<Vec<_>>(),
        sorted
    );
    assert!(hits.iter().all(|h| h.distance == 1.0));
    // The zero row is at distance 1 from any query.
    let hits = index.knn(&KnnQuery::nearest(&[1.0; 6], 5)).unwrap();
    let zero = hits.iter().find(|h| h.key == keys[2]).unwrap();
    assert_eq!(zero.distance, 1.0);
}

#[test]
fn concurrent_queries_and_writes() {
    let index = Arc::new(SklearnIndex::in_memory(Metric::DotProduct));
    let dim = 32;
    let first: Vec<String> = (0..500).map(|i| oid(4, i)).collect();
    index
        .upsert(&Embeddings::for_samples(dim, random_vectors(500, dim, 3), first).unwrap())
        .unwrap();
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let index = Arc::clone(&index);
            thread::spawn(move || {
                let q = random_vectors(1, dim, 100 + t);
                let mut seen = 0;
                for _ in 0..50 {
                    let hits = index.knn(&KnnQuery::nearest(&q, 7)).unwrap();
                    assert_eq!(hits.len(), 7);
                    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
                    seen += hits.len();
                }
                seen
            })
        })
        .collect();
    for round in 0..20 {
        let keys: Vec<String> = (0..25).map(|i| oid(5, round * 25 + i)).collect();
        index
            .upsert(
                &Embeddings::for_samples(dim, random_vectors(25, dim, round as u64), keys).unwrap(),
            )
            .unwrap();
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), 350);
    }
    assert_eq!(index.size().unwrap(), 1000);
}
