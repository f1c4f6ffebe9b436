//! The conformance suite every similarity backend runs.
//!
//! A backend's integration tests call [`conformance_tests!`](crate::conformance_tests) with an
//! expression of type `impl Fn(Metric) -> Box<dyn SimilarityBackend>` that returns a **new, empty**
//! index each call. Each case below becomes one `#[test]`. Operations a backend declares
//! unsupported in its [`Capabilities`](crate::Capabilities) must fail with
//! [`Error::NotSupported`]; approximate backends (`exact = false`) are held to a recall bound
//! instead of exact order.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use crate::{Embeddings, Error, KnnQuery, Metric, Neighbor, SimilarityBackend};

/// Builds a fresh empty backend for a metric.
pub type Make<'a> = &'a dyn Fn(Metric) -> Box<dyn SimilarityBackend>;

/// Dimension used by the suite.
pub const DIM: usize = 16;

/// A 24-hex id, like a FiftyOne ObjectId, unique per `(prefix, i)`.
pub fn oid(prefix: u8, i: usize) -> String {
    format!(
        "{prefix:02x}{:022x}",
        i as u128 * 2_654_435_761 % (1u128 << 80)
    )
}

/// Deterministic pseudo-random vectors (xorshift), `n × dim`, values in [-1, 1).
pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A sample-index batch of `n` random rows with ids `oid(prefix, 0..n)`.
pub fn sample_batch(n: usize, prefix: u8, seed: u64) -> Embeddings {
    let ids: Vec<String> = (0..n).map(|i| oid(prefix, i)).collect();
    Embeddings::for_samples(DIM, random_vectors(n, DIM, seed), ids).unwrap()
}

/// Exact reference: all keys of `batch` ranked by [`Metric::reference_distance`], ties by key.
pub fn reference_knn(
    batch: &Embeddings,
    metric: Metric,
    q: &[f32],
    reverse: bool,
) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = batch
        .iter()
        .map(|(k, _, v)| (k.to_string(), metric.reference_distance(q, v)))
        .collect();
    all.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        let o = if reverse { o.reverse() } else { o };
        o.then_with(|| a.0.cmp(&b.0))
    });
    all
}

fn keys_of(hits: &[Neighbor]) -> Vec<String> {
    hits.iter().map(|h| h.key.clone()).collect()
}

fn assert_matches_reference(
    backend: &dyn SimilarityBackend,
    hits: &[Neighbor],
    reference: &[(String, f64)],
    k: usize,
) {
    let want: Vec<String> = reference.iter().take(k).map(|r| r.0.clone()).collect();
    assert_eq!(hits.len(), want.len().min(k), "number of hits");
    if backend.capabilities().exact {
        assert_eq!(
            keys_of(hits),
            want,
            "exact backend must return the reference order"
        );
    } else {
        let got: HashSet<String> = keys_of(hits).into_iter().collect();
        let found = want.iter().filter(|w| got.contains(*w)).count();
        assert!(
            found as f64 >= 0.9 * want.len() as f64,
            "recall {found}/{} below 0.9 for an approximate backend",
            want.len()
        );
    }
    // Distances agree with the metric's definition.
    for h in hits {
        let r = reference.iter().find(|r| r.0 == h.key).unwrap();
        let tol = 1e-3 * (1.0 + r.1.abs());
        assert!(
            (f64::from(h.distance) - r.1).abs() <= tol,
            "distance for {} is {} but the {} reference is {}",
            h.key,
            h.distance,
            backend.metric(),
            r.1
        );
    }
    // Ordered by distance.
    for w in hits.windows(2) {
        assert!(
            w[0].distance <= w[1].distance + 1e-5,
            "hits not sorted by distance"
        );
    }
}

/// A new index is empty and answers queries with nothing.
pub fn empty_index(make: Make<'_>) {
    let b = make(Metric::Cosine);
    assert_eq!(b.size().unwrap(), 0);
    let q = random_vectors(1, DIM, 1);
    // An empty index may not know its dimension yet; either no hits or a clean error.
    match b.knn(&KnnQuery::nearest(&q, 5)) {
        Ok(hits) => assert!(hits.is_empty()),
        Err(e) => assert!(
            matches!(e, Error::IndexMissing { .. } | Error::Empty(_)),
            "unexpected error {e:?}"
        ),
    }
    assert_eq!(b.get(&[oid(1, 0)]).unwrap().len(), 0);
}

/// Adding then re-adding the same keys replaces vectors; the size is unchanged.
pub fn upsert_replaces(make: Make<'_>) {
    let b = make(Metric::Euclidean);
    let batch = sample_batch(20, 1, 7);
    b.upsert(&batch).unwrap();
    assert_eq!(b.size().unwrap(), 20);
    assert_eq!(b.dim().unwrap(), Some(DIM));

    let ids: Vec<String> = batch.keys()[..5].to_vec();
    let newer = Embeddings::for_samples(DIM, random_vectors(5, DIM, 99), ids.clone()).unwrap();
    b.upsert(&newer).unwrap();
    assert_eq!(
        b.size().unwrap(),
        20,
        "re-adding existing ids must not grow the index"
    );
    let got = b.get(&ids).unwrap();
    assert_eq!(got.keys(), newer.keys());
    assert_eq!(
        got.data(),
        newer.data(),
        "re-added ids must hold the new vectors"
    );
    b.cleanup().unwrap();
}

/// The same key twice in one call: the last row wins, one row stored.
pub fn duplicate_keys_in_one_batch(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let v = random_vectors(2, DIM, 3);
    let id = oid(2, 0);
    let batch = Embeddings::for_samples(DIM, v.clone(), vec![id.clone(), id.clone()]).unwrap();
    b.upsert(&batch).unwrap();
    assert_eq!(b.size().unwrap(), 1);
    assert_eq!(b.get(std::slice::from_ref(&id)).unwrap().data(), &v[DIM..]);
    b.cleanup().unwrap();
}

/// Removing present and absent keys: absent ones are ignored and not counted.
pub fn remove_ignores_missing(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let batch = sample_batch(10, 3, 11);
    b.upsert(&batch).unwrap();
    let mut gone: Vec<String> = batch.keys()[..3].to_vec();
    gone.push(oid(9, 1));
    assert_eq!(b.remove(&gone).unwrap(), 3);
    assert_eq!(b.size().unwrap(), 7);
    assert_eq!(b.contains(&gone).unwrap(), vec![false; 4]);
    assert_eq!(b.remove(&gone).unwrap(), 0);
    let hits = b.knn(&KnnQuery::nearest(batch.row(0), 10)).unwrap();
    assert!(
        hits.iter().all(|h| !gone.contains(&h.key)),
        "removed ids must not be returned"
    );
    b.cleanup().unwrap();
}

/// `get` returns rows in the order asked and skips absent keys.
pub fn get_in_order(make: Make<'_>) {
    let b = make(Metric::DotProduct);
    let batch = sample_batch(12, 4, 5);
    b.upsert(&batch).unwrap();
    let ask = vec![
        batch.keys()[7].clone(),
        oid(9, 9),
        batch.keys()[2].clone(),
        batch.keys()[11].clone(),
    ];
    let got = b.get(&ask).unwrap();
    assert_eq!(
        got.keys(),
        &[ask[0].clone(), ask[2].clone(), ask[3].clone()]
    );
    assert_eq!(got.row(0), batch.row(7));
    assert_eq!(got.row(1), batch.row(2));
    assert_eq!(b.contains(&ask).unwrap(), vec![true, false, true, true]);
    if b.capabilities().enumerate {
        assert_eq!(b.get_all().unwrap().len(), 12);
        assert_eq!(b.keys().unwrap().len(), 12);
    } else {
        assert!(matches!(b.get_all(), Err(Error::NotSupported { .. })));
    }
    // Lent rows (where a backend lends them) are `keys()`'s rows, in that order, after a change.
    b.remove(&[batch.keys()[3].clone()]).unwrap();
    let mut lent: Option<(Vec<String>, Vec<f32>, usize)> = None;
    let lends = b
        .with_rows(&mut |rows| {
            let keys = (0..rows.len())
                .filter_map(|r| rows.key(r))
                .map(String::from);
            lent = Some((keys.collect(), rows.data().to_vec(), rows.dim()));
        })
        .unwrap();
    assert_eq!(
        lends,
        lent.is_some(),
        "f is called exactly when rows are lent"
    );
    if let Some((keys, data, dim)) = lent {
        let want: Vec<String> = b.keys().unwrap().into_iter().map(|k| k.0).collect();
        assert_eq!((keys.len(), dim), (11, batch.dim()));
        assert_eq!(keys, want);
        assert_eq!(data, b.get(&want).unwrap().data());
    }
    b.cleanup().unwrap();
}

/// k-NN order and distances agree with the naive reference, for every metric.
pub fn knn_matches_reference(make: Make<'_>) {
    for metric in Metric::ALL {
        let b = make(metric);
        let batch = sample_batch(64, 5, 21);
        b.upsert(&batch).unwrap();
        for qi in [0usize, 17, 63] {
            let q = batch.row(qi).to_vec();
            let hits = b.knn(&KnnQuery::nearest(&q, 10)).unwrap();
            let reference = reference_knn(&batch, metric, &q, false);
            assert_matches_reference(b.as_ref(), &hits, &reference, 10);
            if metric != Metric::DotProduct {
                assert_eq!(
                    hits[0].key,
                    batch.keys()[qi],
                    "{metric}: a stored vector is its own nearest neighbour"
                );
                assert!(
                    hits[0].distance.abs() < 1e-4,
                    "{metric}: self distance {}",
                    hits[0].distance
                );
            }
        }
        // A query vector that is not in the index.
        let q = random_vectors(1, DIM, 777);
        let hits = b.knn(&KnnQuery::nearest(&q, 5)).unwrap();
        assert_matches_reference(
            b.as_ref(),
            &hits,
            &reference_knn(&batch, metric, &q, false),
            5,
        );
        b.cleanup().unwrap();
    }
}

/// Patch rows: keys are label ids, each with its owning sample.
pub fn patch_rows(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let n = 9;
    let keys: Vec<String> = (0..n).map(|i| oid(7, i)).collect();
    let samples: Vec<String> = (0..n).map(|i| oid(6, i / 3)).collect();
    let batch = Embeddings::new(
        DIM,
        random_vectors(n, DIM, 8),
        keys.clone(),
        samples.clone(),
    )
    .unwrap();
    b.upsert(&batch).unwrap();
    assert_eq!(b.size().unwrap(), n);
    let got = b
        .get_by_sample_ids(&[oid(6, 2), oid(6, 0), oid(6, 9)])
        .unwrap();
    let want: HashSet<&String> = keys[6..9].iter().chain(&keys[0..3]).collect();
    assert_eq!(got.len(), 6);
    assert_eq!(got.keys().iter().collect::<HashSet<_>>(), want);
    assert!(
        got.sample_ids()[..3].iter().all(|s| *s == oid(6, 2)),
        "grouped in the order asked"
    );
    let hits = b.knn(&KnnQuery::nearest(batch.row(4), 3)).unwrap();
    assert_eq!(hits[0].key, keys[4]);
    assert_eq!(hits[0].sample_id, samples[4]);
    assert_eq!(b.remove(&keys[..3]).unwrap(), 3);
    assert_eq!(b.get_by_sample_ids(&[oid(6, 0)]).unwrap().len(), 0);
    b.cleanup().unwrap();
}

/// `k = 0`, `k > n`, `k = None`, `k > max_k`.
pub fn k_edge_cases(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let batch = sample_batch(15, 8, 4);
    b.upsert(&batch).unwrap();
    let q = batch.row(3).to_vec();
    assert!(
        b.knn(&KnnQuery::nearest(&q, 0)).unwrap().is_empty(),
        "k=0 gives nothing"
    );
    assert_eq!(
        b.knn(&KnnQuery::nearest(&q, 100)).unwrap().len(),
        15,
        "k>n gives n"
    );
    let all = KnnQuery {
        vector: &q,
        k: None,
        reverse: false,
        restrict: None,
        restrict_token: None,
    };
    let caps = b.capabilities();
    if caps.unbounded_k {
        let hits = b.knn(&all).unwrap();
        assert_eq!(hits.len(), 15);
        assert_matches_reference(
            b.as_ref(),
            &hits,
            &reference_knn(&batch, Metric::Cosine, &q, false),
            15,
        );
    } else {
        assert!(matches!(b.knn(&all), Err(Error::NotSupported { .. })));
    }
    if let Some(max) = caps.max_k {
        assert!(matches!(
            b.knn(&KnnQuery::nearest(&q, max + 1)),
            Err(Error::KTooLarge { k, max: m, .. }) if k == max + 1 && m == max
        ));
    }
    b.cleanup().unwrap();
}

/// `reverse = true`: farthest first, where supported.
pub fn reverse_order(make: Make<'_>) {
    let b = make(Metric::Euclidean);
    let batch = sample_batch(30, 9, 6);
    b.upsert(&batch).unwrap();
    let q = batch.row(0).to_vec();
    let query = KnnQuery {
        vector: &q,
        k: Some(5),
        reverse: true,
        restrict: None,
        restrict_token: None,
    };
    if b.capabilities().reverse {
        let hits = b.knn(&query).unwrap();
        let reference = reference_knn(&batch, Metric::Euclidean, &q, true);
        let want: Vec<String> = reference.iter().take(5).map(|r| r.0.clone()).collect();
        assert_eq!(keys_of(&hits), want);
        for w in hits.windows(2) {
            assert!(w[0].distance >= w[1].distance);
        }
    } else {
        assert!(matches!(b.knn(&query), Err(Error::NotSupported { .. })));
    }
    b.cleanup().unwrap();
}

/// A restriction (a view) limits the candidates; keys outside the index are ignored.
pub fn restricted_candidates(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let batch = sample_batch(40, 10, 9);
    b.upsert(&batch).unwrap();
    let mut allowed: Vec<String> = batch.keys().iter().step_by(3).cloned().collect();
    allowed.push(oid(11, 1)); // not in the index
    let q = batch.row(1).to_vec(); // query vector from outside the view
    let query = KnnQuery {
        vector: &q,
        k: Some(5),
        reverse: false,
        restrict: Some(&allowed),
        restrict_token: None,
    };
    let hits = b.knn(&query).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(
        hits.iter().all(|h| allowed.contains(&h.key)),
        "only restricted keys returned"
    );
    let sub_rows: Vec<usize> = (0..40).step_by(3).collect();
    let sub = batch.select_rows(&sub_rows);
    assert_matches_reference(
        b.as_ref(),
        &hits,
        &reference_knn(&sub, Metric::Cosine, &q, false),
        5,
    );
    let none = KnnQuery {
        vector: &q,
        k: Some(5),
        reverse: false,
        restrict: Some(&[]),
        restrict_token: None,
    };
    assert!(
        b.knn(&none).unwrap().is_empty(),
        "an empty view has no results"
    );
    b.cleanup().unwrap();
}

/// A restriction named by a token (`restrict_token`): the same keys under the same token, asked
/// again after the index changed (a key of the view added, one replaced, some removed), give
/// the answer for the index as it is now, the same as without a token.
pub fn restricted_by_token(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let batch = sample_batch(40, 13, 21);
    b.upsert(&batch).unwrap();
    let q = batch.row(1).to_vec(); // outside the view (odd row)
    let late = oid(13, 100); // in the view, added to the index later
    let mut allowed: Vec<String> = batch.keys().iter().step_by(2).cloned().collect();
    allowed.push(late.clone());
    let token = 0x5eed_0001;
    let ask = |token: Option<u64>| {
        b.knn(&KnnQuery {
            vector: &q,
            k: Some(5),
            reverse: false,
            restrict: Some(&allowed),
            restrict_token: token,
        })
        .unwrap()
    };
    // The view's rows as the index holds them now, for the reference.
    let view_rows = |b: &dyn SimilarityBackend| b.get(&allowed).unwrap();
    let check = |b: &dyn SimilarityBackend, step: &str| {
        let hits = ask(Some(token));
        assert!(
            hits.iter().all(|h| allowed.contains(&h.key)),
            "{step}: only restricted keys returned"
        );
        assert_matches_reference(
            b,
            &hits,
            &reference_knn(&view_rows(b), Metric::Cosine, &q, false),
            5,
        );
        if b.capabilities().exact {
            assert_eq!(keys_of(&hits), keys_of(&ask(None)), "{step}: token or not");
        }
        hits
    };
    check(b.as_ref(), "first");
    check(b.as_ref(), "again");
    // A view key added with the query's own vector: now the nearest.
    b.upsert(&Embeddings::for_samples(DIM, q.clone(), vec![late.clone()]).unwrap())
        .unwrap();
    let hits = check(b.as_ref(), "after an add");
    assert_eq!(hits[0].key, late, "the added key is found");
    // The nearest view key replaced by a far vector: it drops out.
    let far: Vec<f32> = q.iter().map(|x| -x).collect();
    b.upsert(&Embeddings::for_samples(DIM, far, vec![late.clone()]).unwrap())
        .unwrap();
    let hits = check(b.as_ref(), "after a replace");
    assert!(
        hits.iter().all(|h| h.key != late),
        "the replaced key moved away"
    );
    // The current best view keys removed: none of them comes back.
    let gone: Vec<String> = hits.iter().take(2).map(|h| h.key.clone()).collect();
    assert_eq!(b.remove(&gone).unwrap(), 2);
    let hits = check(b.as_ref(), "after a remove");
    assert!(
        hits.iter().all(|h| !gone.contains(&h.key)),
        "removed keys are gone"
    );
    // Another key set under another token.
    let other: Vec<String> = batch.keys()[20..30].to_vec();
    let hits = b
        .knn(&KnnQuery {
            vector: &q,
            k: Some(3),
            reverse: false,
            restrict: Some(&other),
            restrict_token: Some(token + 1),
        })
        .unwrap();
    assert!(
        hits.iter().all(|h| other.contains(&h.key)),
        "the other view"
    );
    assert_matches_reference(
        b.as_ref(),
        &hits,
        &reference_knn(&b.get(&other).unwrap(), Metric::Cosine, &q, false),
        3,
    );
    b.cleanup().unwrap();
}

/// Wrong dimensions are typed errors and change nothing.
pub fn dimension_errors(make: Make<'_>) {
    let b = make(Metric::Cosine);
    let batch = sample_batch(5, 12, 2);
    b.upsert(&batch).unwrap();
    let wrong =
        Embeddings::for_samples(DIM + 1, random_vectors(1, DIM + 1, 1), vec![oid(12, 99)]).unwrap();
    assert!(matches!(
        b.upsert(&wrong),
        Err(Error::DimensionMismatch { expected, got }) if expected == DIM && got == DIM + 1
    ));
    assert_eq!(b.size().unwrap(), 5, "a failed upsert changes nothing");
    let q = vec![0.5; DIM - 1];
    assert!(matches!(
        b.knn(&KnnQuery::nearest(&q, 3)),
        Err(Error::DimensionMismatch { expected, got }) if expected == DIM && got == DIM - 1
    ));
    let nan = vec![f32::NAN; DIM];
    assert!(matches!(
        b.knn(&KnnQuery::nearest(&nan, 3)),
        Err(Error::NonFinite { .. })
    ));
    b.cleanup().unwrap();
}

/// After `cleanup()` the index is gone.
pub fn cleanup_removes_data(make: Make<'_>) {
    let b = make(Metric::Cosine);
    b.upsert(&sample_batch(5, 13, 3)).unwrap();
    b.persist().unwrap();
    b.cleanup().unwrap();
    assert_eq!(b.size().unwrap(), 0);
}

/// The persisted config never carries credentials.
pub fn persisted_config_has_no_secrets(make: Make<'_>) {
    let b = make(Metric::Euclidean);
    let cfg = b.persisted_config();
    for k in crate::SECRET_PARAMS {
        assert!(!cfg.contains_key(*k), "persisted config contains '{k}'");
    }
    assert_eq!(
        cfg.get("metric").and_then(|m| m.as_str()),
        Some("euclidean")
    );
    b.cleanup().unwrap();
}

/// Generates one `#[test]` per conformance case.
///
/// ```text
/// simile_index::conformance_tests!(|metric| my_backend(metric));
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            empty_index, upsert_replaces, duplicate_keys_in_one_batch, remove_ignores_missing,
            get_in_order, knn_matches_reference, patch_rows, k_edge_cases, reverse_order,
            restricted_candidates, restricted_by_token, dimension_errors, cleanup_removes_data,
            persisted_config_has_no_secrets);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let make = $make;
                $crate::conformance::$case(&make);
            }
        )*
    };
}
