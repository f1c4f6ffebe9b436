//! Neighbours agree with a naive exact reference: exactly with a FLAT index, with a stated recall
//! (≥ 0.95 at k = 10) with the default HNSW index.
use serde_json::json;
use simile_index::conformance::{random_vectors, reference_knn};
use simile_index::{Embeddings, KnnQuery, Metric};

use crate::common::{ids, index_with};

const N: usize = 600;
const DIM: usize = 24;
const K: usize = 10;

fn data() -> Embeddings {
    Embeddings::for_samples(DIM, random_vectors(N, DIM, 42), ids("s", N)).unwrap()
}

#[test]
fn flat_index_equals_the_exact_reference() {
    let batch = data();
    for metric in Metric::ALL {
        let b = index_with(metric, json!({"index_type": "FLAT"}));
        assert!(b.capabilities().exact);
        b.upsert(&batch).unwrap();
        for qi in 0..15 {
            let q = random_vectors(1, DIM, 1000 + qi);
            let hits = b.knn(&KnnQuery::nearest(&q, K)).unwrap();
            let reference = reference_knn(&batch, metric, &q, false);
            let want: Vec<&str> = reference.iter().take(K).map(|r| r.0.as_str()).collect();
            let got: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
            assert_eq!(got, want, "{metric} query {qi}");
            for (h, r) in hits.iter().zip(&reference) {
                assert!(
                    (f64::from(h.distance) - r.1).abs() <= 1e-3 * (1.0 + r.1.abs()),
                    "{metric}: {} vs {}",
                    h.distance,
                    r.1
                );
            }
        }
        b.cleanup().unwrap();
    }
}

#[test]
fn hnsw_index_recall_is_at_least_095() {
    let batch = data();
    for metric in Metric::ALL {
        let b = index_with(metric, json!({}));
        assert!(!b.capabilities().exact);
        b.upsert(&batch).unwrap();
        let (mut found, mut total) = (0usize, 0usize);
        for qi in 0..30 {
            let q = random_vectors(1, DIM, 2000 + qi);
            let hits = b.knn(&KnnQuery::nearest(&q, K)).unwrap();
            assert_eq!(hits.len(), K);
            let reference = reference_knn(&batch, metric, &q, false);
            for h in &hits {
                let r = reference.iter().find(|r| r.0 == h.key).unwrap();
                assert!((f64::from(h.distance) - r.1).abs() <= 1e-3 * (1.0 + r.1.abs()));
            }
            let want: std::collections::HashSet<&str> =
                reference.iter().take(K).map(|r| r.0.as_str()).collect();
            found += hits
                .iter()
                .filter(|h| want.contains(h.key.as_str()))
                .count();
            total += K;
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "{metric}: recall {recall}");
        b.cleanup().unwrap();
    }
}
