//! The backend must return exactly what the naive `f64` reference returns: the same keys in the
//! same order, and the reference distances rounded to `f32`, bit for bit.

use simile_index::conformance::{oid, random_vectors, reference_knn};
use simile_index::{Embeddings, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::SklearnIndex;

/// The reference answer, ordered like the backend promises: by the `f32` distance, ties by key.
fn expected(
    batch: &Embeddings,
    metric: Metric,
    q: &[f32],
    k: Option<usize>,
    reverse: bool,
) -> Vec<(String, f32)> {
    let mut all: Vec<(String, f32)> = reference_knn(batch, metric, q, reverse)
        .into_iter()
        .map(|(key, d)| (key, d as f32))
        .collect();
    all.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        let o = if reverse { o.reverse() } else { o };
        o.then_with(|| a.0.cmp(&b.0))
    });
    if let Some(k) = k {
        all.truncate(k);
    }
    all
}

/// Random rows, with a few exact duplicates (ties), a scaled copy and a zero row mixed in.
fn batch(n: usize, dim: usize, seed: u64) -> Embeddings {
    let mut data = random_vectors(n, dim, seed);
    // Rows 1 and 2 duplicate row 0; row 3 is row 0 scaled (a cosine tie); row 4 is zero.
    let row0: Vec<f32> = data[..dim].to_vec();
    data[dim..2 * dim].copy_from_slice(&row0);
    data[2 * dim..3 * dim].copy_from_slice(&row0);
    for (j, v) in row0.iter().enumerate() {
        data[3 * dim + j] = v * 2.0;
        data[4 * dim + j] = 0.0;
    }
    let ids: Vec<String> = (0..n).map(|i| oid(0x42, i)).collect();
    Embeddings::for_samples(dim, data, ids).unwrap()
}

fn check(index: &SklearnIndex, full: &Embeddings, metric: Metric) {
    let n = full.len();
    let dim = full.dim();
    let outside = random_vectors(1, dim, 4242);
    let queries: Vec<Vec<f32>> = vec![
        full.row(0).to_vec(),
        full.row(n / 2).to_vec(),
        full.row(n - 1).to_vec(),
        outside,
    ];
    // A view: every third row, plus a key the index does not hold, plus a repeat.
    let sub_rows: Vec<usize> = (0..n).step_by(3).collect();
    let sub = full.select_rows(&sub_rows);
    let mut view: Vec<String> = sub.keys().to_vec();
    view.push(oid(0x99, 1));
    view.push(sub.keys()[0].clone());

    for q in &queries {
        for reverse in [false, true] {
            for k in [Some(1), Some(10), Some(257), None] {
                let hits = index
                    .knn(&KnnQuery {
                        vector: q,
                        k,
                        reverse,
                        restrict: None,
                        restrict_token: None,
                    })
                    .unwrap();
                let got: Vec<(String, f32)> =
                    hits.iter().map(|h| (h.key.clone(), h.distance)).collect();
                assert_eq!(
                    got,
                    expected(full, metric, q, k, reverse),
                    "{metric} k={k:?} reverse={reverse}"
                );

                let hits = index
                    .knn(&KnnQuery {
                        vector: q,
                        k,
                        reverse,
                        restrict: Some(&view),
                        restrict_token: None,
                    })
                    .unwrap();
                let got: Vec<(String, f32)> =
                    hits.iter().map(|h| (h.key.clone(), h.distance)).collect();
                assert_eq!(
                    got,
                    expected(&sub, metric, q, k, reverse),
                    "{metric} restricted k={k:?} reverse={reverse}"
                );
            }
        }
    }
}

fn run(n: usize, dim: usize) {
    for (i, metric) in Metric::ALL.into_iter().enumerate() {
        let full = batch(n, dim, 17 + i as u64);
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        check(&index, &full, metric);
    }
}

/// Small enough for the single-threaded scan.
#[test]
fn identical_to_reference_small() {
    run(300, 24);
}

/// Large enough (n·dim above the threshold) for the threaded scan.
#[test]
fn identical_to_reference_threaded() {
    run(4100, 320);
}

/// After removals and replacements, results still match the reference of the current content.
#[test]
fn identical_to_reference_after_changes() {
    let metric = Metric::Cosine;
    let dim = 40;
    let full = batch(900, dim, 3);
    let index = SklearnIndex::in_memory(metric);
    index.upsert(&full).unwrap();
    let gone: Vec<String> = full.keys().iter().step_by(4).cloned().collect();
    assert_eq!(index.remove(&gone).unwrap(), gone.len());
    let replaced: Vec<String> = full.keys().iter().skip(1).step_by(4).cloned().collect();
    let newer =
        Embeddings::for_samples(dim, random_vectors(replaced.len(), dim, 8), replaced).unwrap();
    index.upsert(&newer).unwrap();
    // The current content, read back, is what the reference ranks.
    let now = index.get_all().unwrap();
    assert_eq!(now.len(), 900 - gone.len());
    assert_eq!(index.get(newer.keys()).unwrap().data(), newer.data());
    check(&index, &now, metric);
}

/// A self match is exactly 0 for Euclidean (and within rounding of 0 for cosine).
#[test]
fn self_match_is_zero() {
    for metric in [Metric::Euclidean, Metric::Cosine] {
        let full = batch(2000, 512, 5);
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        let hits = index.knn(&KnnQuery::nearest(full.row(1234), 3)).unwrap();
        assert_eq!(hits[0].key, full.keys()[1234]);
        if metric == Metric::Euclidean {
            assert_eq!(hits[0].distance, 0.0);
        } else {
            assert!(
                hits[0].distance.abs() < 1e-6,
                "cosine self distance {}",
                hits[0].distance
            );
        }
    }
}

fn view_hits(index: &SklearnIndex, q: &[f32], view: &[String]) -> Vec<(String, f32)> {
    index
        .knn(&KnnQuery {
            vector: q,
            k: Some(25),
            reverse: false,
            restrict: Some(view),
            restrict_token: None,
        })
        .unwrap()
        .into_iter()
        .map(|h| (h.key, h.distance))
        .collect()
}

/// Big views are resolved once and reused while the index and the view stay the same; a changed
/// view or a changed index is resolved again.
#[test]
fn repeated_big_views_stay_exact() {
    let metric = Metric::DotProduct;
    let dim = 16;
    let full = batch(6000, dim, 12);
    let index = SklearnIndex::in_memory(metric);
    index.upsert(&full).unwrap();
    let rows_a: Vec<usize> = (0..6000).step_by(2).collect();
    let rows_b: Vec<usize> = (1..6000).step_by(2).collect();
    let view_a = full.select_rows(&rows_a);
    let view_b = full.select_rows(&rows_b);
    let q = random_vectors(1, dim, 5);
    for _ in 0..2 {
        assert_eq!(
            view_hits(&index, &q, view_a.keys()),
            expected(&view_a, metric, &q, Some(25), false)
        );
        // Same length, other keys.
        assert_eq!(
            view_hits(&index, &q, view_b.keys()),
            expected(&view_b, metric, &q, Some(25), false)
        );
    }
    // Change the index under view A: remove its best hits, replace others.
    let best: Vec<String> = view_hits(&index, &q, view_a.keys())
        .into_iter()
        .take(5)
        .map(|h| h.0)
        .collect();
    index.remove(&best).unwrap();
    let replaced: Vec<String> = view_a.keys()[100..200].to_vec();
    let newer = Embeddings::for_samples(dim, random_vectors(100, dim, 77), replaced).unwrap();
    index.upsert(&newer).unwrap();
    let now = index.get(view_a.keys()).unwrap();
    assert_eq!(now.len(), 3000 - 5);
    assert_eq!(
        view_hits(&index, &q, view_a.keys()),
        expected(&now, metric, &q, Some(25), false)
    );
}

/// Near-duplicates (distances closer than int8 codes can tell apart): the first pass keeps almost
/// everything and the `f32` second pass has to sort it out.
#[test]
fn clustered_rows_stay_exact() {
    let dim = 256;
    let n = 5000;
    let base = random_vectors(1, dim, 31);
    let noise = random_vectors(n, dim, 32);
    let data: Vec<f32> = (0..n * dim)
        .map(|i| base[i % dim] + 1e-3 * noise[i])
        .collect();
    let ids: Vec<String> = (0..n).map(|i| oid(0x51, i)).collect();
    let full = Embeddings::for_samples(dim, data, ids).unwrap();
    for metric in Metric::ALL {
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        let q: Vec<f32> = base
            .iter()
            .zip(random_vectors(1, dim, 33))
            .map(|(b, e)| b + 1e-3 * e)
            .collect();
        for reverse in [false, true] {
            for k in [1, 10, 100] {
                let got: Vec<(String, f32)> = index
                    .knn(&KnnQuery {
                        vector: &q,
                        k: Some(k),
                        reverse,
                        restrict: None,
                        restrict_token: None,
                    })
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.key, h.distance))
                    .collect();
                assert_eq!(
                    got,
                    expected(&full, metric, &q, Some(k), reverse),
                    "{metric} k={k} reverse={reverse}"
                );
            }
        }
    }
}

/// Values at the edges of `f32`: huge rows overflow the fast passes, tiny rows underflow them;
/// both must still be ranked exactly.
#[test]
fn extreme_magnitudes_stay_exact() {
    let dim = 64;
    let n = 3000;
    let mut data = random_vectors(n, dim, 41);
    for (r, row) in data.chunks_exact_mut(dim).enumerate() {
        let scale = match r % 10 {
            0 => 1e30,
            1 => 1e-30,
            2 => 1e-40, // subnormal
            3 => 3e38,
            _ => 1.0,
        };
        for v in row.iter_mut() {
            *v *= scale;
        }
    }
    let ids: Vec<String> = (0..n).map(|i| oid(0x52, i)).collect();
    let full = Embeddings::for_samples(dim, data, ids).unwrap();
    let queries = [
        random_vectors(1, dim, 42),
        full.row(1).to_vec(),
        full.row(0).to_vec(),
        full.row(2).to_vec(),
    ];
    for metric in Metric::ALL {
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        for q in &queries {
            for reverse in [false, true] {
                let got: Vec<(String, f32)> = index
                    .knn(&KnnQuery {
                        vector: q,
                        k: Some(20),
                        reverse,
                        restrict: None,
                        restrict_token: None,
                    })
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.key, h.distance))
                    .collect();
                assert_eq!(
                    got,
                    expected(&full, metric, q, Some(20), reverse),
                    "{metric} reverse={reverse}"
                );
            }
        }
    }
}

/// Many small random cases: odd dimensions (SIMD tails), per-row scales over many orders of
/// magnitude, duplicates, every metric, k, direction and restriction.
#[test]
fn random_small_cases_stay_exact() {
    let mut seed = 1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..150 {
        let dim = 1 + (next() % 70) as usize;
        let n = 1 + (next() % 400) as usize;
        let mut data = random_vectors(n, dim, next());
        for row in data.chunks_exact_mut(dim) {
            let scale = 10f32.powi((next() % 13) as i32 - 6);
            row.iter_mut().for_each(|v| *v *= scale);
        }
        if n > 3 {
            let (a, b) = data.split_at_mut(dim);
            b[..dim].copy_from_slice(a);
        }
        let ids: Vec<String> = (0..n).map(|i| oid(0x53, i)).collect();
        let full = Embeddings::for_samples(dim, data, ids).unwrap();
        let metric = Metric::ALL[case % 3];
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        let q = if case % 2 == 0 {
            full.row((next() as usize) % n).to_vec()
        } else {
            random_vectors(1, dim, next())
        };
        let k = match next() % 4 {
            0 => None,
            1 => Some(1),
            _ => Some(1 + (next() as usize) % (n + 3)),
        };
        let reverse = next() % 2 == 0;
        let restricted = next() % 3 == 0;
        let sub_rows: Vec<usize> = (0..n).filter(|i| i % 2 == 1).collect();
        let sub = full.select_rows(&sub_rows);
        let got: Vec<(String, f32)> = index
            .knn(&KnnQuery {
                vector: &q,
                k,
                reverse,
                restrict: restricted.then_some(sub.keys()),
                restrict_token: None,
            })
            .unwrap()
            .into_iter()
            .map(|h| (h.key, h.distance))
            .collect();
        let want = expected(
            if restricted { &sub } else { &full },
            metric,
            &q,
            k,
            reverse,
        );
        assert_eq!(got, want, "case {case}: {metric} n={n} dim={dim} k={k:?} reverse={reverse} restricted={restricted}");
    }
}

/// Ranking a whole big index (k = None): the result is built on several threads.
#[test]
fn rank_everything_in_a_big_index() {
    let full = batch(20_000, 8, 61);
    for metric in Metric::ALL {
        let index = SklearnIndex::in_memory(metric);
        index.upsert(&full).unwrap();
        let q = random_vectors(1, 8, 62);
        for reverse in [false, true] {
            let got: Vec<(String, f32)> = index
                .knn(&KnnQuery {
                    vector: &q,
                    k: None,
                    reverse,
                    restrict: None,
                    restrict_token: None,
                })
                .unwrap()
                .into_iter()
                .map(|h| (h.key, h.distance))
                .collect();
            assert_eq!(got.len(), 20_000);
            assert!(
                got == expected(&full, metric, &q, None, reverse),
                "{metric} reverse={reverse}"
            );
        }
    }
}
