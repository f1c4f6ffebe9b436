//! Near-duplicates, uniqueness and exact duplicates, checked against brute-force references on
//! the exact backend and on the real Milvus server.
use rand::{Rng, SeedableRng};
use simile::ndarray::Array2;
use simile::{
    DuplicatesBy, DuplicatesMethod, DuplicatesSearch, DuplicatesViewOptions, Metric, NewSample,
    SimilarityOptions, Simile, UniquenessSource,
};
use simile_e2e::{milvus_session, session};

/// Random rows with planted near-duplicates (copies + small noise), exact copies, and a pair at
/// an exactly representable euclidean distance.
fn planted(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut m = Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0f32..1.0));
    for i in (10..n).step_by(9) {
        let src = m.row(i % 10).to_owned();
        for (x, s) in m.row_mut(i).iter_mut().zip(src.iter()) {
            *x = s + rng.random_range(-0.03f32..0.03);
        }
    }
    let first = m.row(3).to_owned();
    m.row_mut(n - 1).assign(&first);
    m
}

/// (unique ids, duplicate ids, (duplicate, its unique, distance)).
type Greedy = (Vec<String>, Vec<String>, Vec<(String, String, f64)>);

/// `(duplicate, its unique id, distance)` of every reported pair, by duplicate id.
fn duplicate_pairs(got: &simile::Duplicates) -> Vec<(String, String, f64)> {
    let mut pairs: Vec<(String, String, f64)> = got
        .neighbors_map
        .iter()
        .flat_map(|(u, ds)| ds.iter().map(move |(d, x)| (d.clone(), u.clone(), *x)))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// A dataset `name` of `n` samples (`0.jpg`…) and their ids.
fn dataset_of(simile: &Simile, name: &str, n: usize) -> (simile::Dataset, Vec<String>) {
    let ds = simile.create_dataset(name).unwrap();
    let ids = ds
        .add_samples((0..n).map(|i| NewSample::new(format!("{i}.jpg"))).collect())
        .unwrap();
    (ds, ids)
}

/// The greedy rule the slow obvious way.
fn reference(emb: &Array2<f32>, ids: &[String], metric: Metric, t: f64) -> Greedy {
    let n = emb.nrows();
    let d =
        |i: usize, j: usize| metric.reference_distance(&emb.row(i).to_vec(), &emb.row(j).to_vec());
    let mut kept = vec![false; n];
    for i in 0..n {
        kept[i] = !(0..i).any(|j| kept[j] && d(i, j) <= t);
    }
    let mut map = Vec::new();
    for i in (0..n).filter(|&i| !kept[i]) {
        let mut best: Option<(usize, f64)> = None;
        for j in (0..n).filter(|&j| kept[j]) {
            let e = d(i, j);
            if best.is_none_or(|(_, b)| e < b) {
                best = Some((j, e));
            }
        }
        let (j, e) = best.unwrap();
        map.push((ids[i].clone(), ids[j].clone(), e));
    }
    let pick = |want: bool| {
        (0..n)
            .filter(|&i| kept[i] == want)
            .map(|i| ids[i].clone())
            .collect()
    };
    (pick(true), pick(false), map)
}

fn check_against_reference(simile: &Simile, backend: &str, extra: &[(&str, &str)]) {
    let n = 240;
    let emb = planted(n, 12, 4);
    let (ds, ids) = dataset_of(simile, &format!("dups-{backend}"), n);
    for (metric, thresh) in [(Metric::Cosine, 0.002), (Metric::Euclidean, 0.08)] {
        let key = format!("k_{}", metric.as_str());
        let mut opts = SimilarityOptions::new()
            .brain_key(&key)
            .backend(backend)
            .metric(metric)
            .embeddings(emb.clone());
        for (k, v) in extra {
            opts = opts.set(*k, *v);
        }
        let index = ds.compute_similarity(opts).unwrap();
        let got = index
            .find_duplicates(Some(DuplicatesBy::Thresh(thresh)))
            .unwrap();
        let (unique, dups, map) = reference(&emb, &ids, metric, thresh);
        assert!(
            dups.len() > 20,
            "{backend} {metric:?}: planted duplicates found by the reference"
        );
        assert_eq!(got.unique_ids, unique, "{backend} {metric:?}");
        assert_eq!(got.duplicate_ids, dups, "{backend} {metric:?}");
        let got_map = duplicate_pairs(&got);
        let mut want_map = map.clone();
        want_map.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got_map.len(), want_map.len());
        for (g, w) in got_map.iter().zip(&want_map) {
            assert_eq!(
                (&g.0, &g.1),
                (&w.0, &w.1),
                "{backend} {metric:?}: nearest unique"
            );
            assert!(
                (g.2 - w.2).abs() <= 1e-12,
                "exact distances: {} vs {}",
                g.2,
                w.2
            );
            assert!(g.2 <= thresh, "no reported pair beyond thresh");
        }
        // Every group is nearest first.
        for dups in got.neighbors_map.values() {
            assert!(dups.windows(2).all(|w| w[0].1 <= w[1].1));
        }
        assert_eq!(got.method, DuplicatesMethod::Exact);
        // By cells: one cell is the exact answer; with several, every reported pair is exact
        // and within the threshold, and the method says what the cells saw.
        let by = Some(DuplicatesBy::Thresh(thresh));
        let one = index
            .find_duplicates_with(by, DuplicatesSearch::Clustered { cells: Some(1) })
            .unwrap();
        assert_eq!(
            (&one.unique_ids, &one.duplicate_ids, &one.neighbors_map),
            (&got.unique_ids, &got.duplicate_ids, &got.neighbors_map),
            "{backend} {metric:?}: one cell"
        );
        let cells = index
            .find_duplicates_with(by, DuplicatesSearch::Clustered { cells: Some(6) })
            .unwrap();
        let DuplicatesMethod::Clustered { cells: 6, recall } = cells.method else {
            panic!("{backend} {metric:?}: {:?}", cells.method);
        };
        assert!(recall.near_pairs > 0 && recall.same_cell <= recall.near_pairs);
        let row = |id: &str| ids.iter().position(|x| x == id).unwrap();
        for (u, dups) in &cells.neighbors_map {
            for (d, x) in dups {
                let want =
                    metric.reference_distance(&emb.row(row(u)).to_vec(), &emb.row(row(d)).to_vec());
                assert_eq!(*x, want, "{backend} {metric:?}: exact distance");
                assert!(*x <= thresh);
            }
        }
        let err = index
            .find_duplicates_with(
                Some(DuplicatesBy::Fraction(0.1)),
                DuplicatesSearch::Clustered { cells: None },
            )
            .unwrap_err();
        assert!(err.to_string().contains("needs a threshold"), "{err}");
        // fraction: the threshold that marks that share of the points.
        let f = index
            .find_duplicates(Some(DuplicatesBy::Fraction(0.1)))
            .unwrap();
        assert_eq!(
            f.duplicate_ids.len(),
            24,
            "{backend} {metric:?}: 10 % of 240"
        );
        let (_, dups_at, _) = reference(&emb, &ids, metric, f.thresh);
        assert_eq!(
            f.duplicate_ids, dups_at,
            "fraction result is the greedy result at its thresh"
        );
        // find_unique: the count most spread-out points.
        let u = index.find_unique(40).unwrap();
        assert_eq!(u.unique_ids.len(), 40);
        let (unique_at, _, _) = reference(&emb, &ids, metric, u.thresh);
        assert_eq!(u.unique_ids, unique_at);
        index.cleanup().unwrap();
        ds.delete_brain_run(&key).unwrap();
    }
}

#[test]
fn duplicates_match_brute_force_on_the_exact_backend() {
    let (_h, simile) = session();
    check_against_reference(&simile, "sklearn", &[]);
}

#[test]
fn duplicates_match_brute_force_on_milvus() {
    let (_h, simile) = milvus_session(false);
    check_against_reference(&simile, "milvus", &[("index_type", "FLAT")]);
}

#[test]
fn boundary_default_views_and_errors() {
    let (_h, simile) = session();
    let ds = simile.create_dataset("b").unwrap();
    let ids = ds
        .add_samples((0..4).map(|i| NewSample::new(format!("{i}.jpg"))).collect())
        .unwrap();
    // 0 — 1 at exactly 5; 2 is 0.5 from 1; 3 far away.
    let emb =
        Array2::from_shape_vec((4, 2), vec![0.0, 0.0, 3.0, 4.0, 3.0, 4.5, 100.0, 100.0]).unwrap();
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("e")
                .metric(Metric::Euclidean)
                .embeddings(emb),
        )
        .unwrap();
    let err = index
        .duplicates_view(DuplicatesViewOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("find_duplicates"), "{err}");
    let d = index
        .find_duplicates(Some(DuplicatesBy::Thresh(5.0)))
        .unwrap();
    assert_eq!(
        d.duplicate_ids,
        vec![ids[1].clone()],
        "a pair at exactly thresh is a duplicate"
    );
    // 2 is within 5 of 0? No (|(3,4.5)| > 5): kept; 1 maps to its nearest kept point, 2.
    assert_eq!(
        d.neighbors_map.get(&ids[2]),
        Some(&vec![(ids[1].clone(), 0.5)])
    );
    let view = index
        .duplicates_view(DuplicatesViewOptions {
            type_field: Some("dup_type".into()),
            dist_field: Some("dup_dist".into()),
            id_field: Some("dup_of".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(view.ids().unwrap(), vec![ids[2].clone(), ids[1].clone()]);
    let s1 = ds.sample(&ids[1]).unwrap();
    assert_eq!(s1.get("dup_type").unwrap(), "duplicate");
    assert_eq!(s1.get("dup_of").unwrap(), ids[2].as_str());
    assert_eq!(s1.get("dup_dist").unwrap().as_f64(), Some(0.5));
    assert_eq!(
        index.unique_view().unwrap().ids().unwrap(),
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    // No argument: a documented default, never an error (euclidean: 1 % of the points).
    assert!(index.find_duplicates(None).is_ok());
    assert!(index
        .find_duplicates(Some(DuplicatesBy::Fraction(1.5)))
        .is_err());
    assert!(index.find_unique(0).is_err());
    // The histogram is an SVG with a bar per bin and the threshold line.
    let out = _h.path().join("d.svg");
    index.plot_distances_at(&out, 7, false, Some(5.0)).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("thresh 5"), "{svg}");
    assert_eq!(svg.matches("<title>").count(), 7);
}

#[test]
fn uniqueness_follows_the_peer_formula_and_is_a_run() {
    let (_h, simile) = session();
    let n = 30;
    let emb = planted(n, 6, 8);
    let (ds, ids) = dataset_of(&simile, "u", n);
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("sim")
            .embeddings(emb.clone()),
    )
    .unwrap();
    let scored = ds
        .view()
        .compute_uniqueness("uniq", UniquenessSource::BrainKey("sim".into()))
        .unwrap();
    assert_eq!(scored, n);
    // Reference: weighted mean of the 3 nearest cosine distances, divided by the largest.
    let raw: Vec<f64> = (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    Metric::Cosine.reference_distance(&emb.row(i).to_vec(), &emb.row(j).to_vec())
                })
                .collect();
            d.sort_by(f64::total_cmp);
            0.6 * d[0] + 0.3 * d[1] + 0.1 * d[2]
        })
        .collect();
    let max = raw.iter().copied().fold(0.0, f64::max);
    for (i, id) in ids.iter().enumerate() {
        let got = ds
            .sample(id)
            .unwrap()
            .get("uniq")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(
            (got - raw[i] / max).abs() < 1e-9,
            "{i}: {got} vs {}",
            raw[i] / max
        );
    }
    let info = ds.get_brain_info("uniq").unwrap();
    assert_eq!(info.run_type, "uniqueness");
    // The exact copy is less unique than the typical sample, and the most unique scores 1.
    let copy = ds
        .sample(&ids[n - 1])
        .unwrap()
        .get("uniq")
        .unwrap()
        .as_f64()
        .unwrap();
    let mean = raw.iter().sum::<f64>() / max / n as f64;
    assert!(copy < mean, "{copy} vs mean {mean}");
    assert!(raw.iter().any(|r| (r / max - 1.0).abs() < 1e-12));
    // A second run replaces the first; a similarity key cannot be taken.
    ds.view()
        .compute_uniqueness("uniq", UniquenessSource::BrainKey("sim".into()))
        .unwrap();
    assert!(ds
        .view()
        .compute_uniqueness("sim", UniquenessSource::BrainKey("sim".into()))
        .is_err());
}

#[test]
fn exact_duplicates_group_identical_files_and_report_missing_ones() {
    let (h, simile) = session();
    let dir = h.path().join("imgs");
    let paths = simile_e2e::write_images(&dir, 4);
    let copy = dir.join("copy.png");
    std::fs::copy(&paths[1], &copy).unwrap();
    let ds = simile.create_dataset("x").unwrap();
    let mut samples: Vec<NewSample> = paths.iter().map(NewSample::new).collect();
    samples.push(NewSample::new(&copy));
    samples.push(NewSample::new(h.path().join("missing.png")));
    let ids = ds.add_samples(samples).unwrap();
    let out = ds.view().compute_exact_duplicates().unwrap();
    assert_eq!(out.groups.len(), 1);
    assert_eq!(out.groups.get(&ids[1]), Some(&vec![ids[4].clone()]));
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].0, ids[5]);
}

/// From 1024 rows and 64 dimensions the exact search starts with its int8 first pass on a
/// column subset chosen for the threshold: the answers are still the brute-force ones.
#[test]
fn duplicates_through_the_int8_first_pass_match_brute_force() {
    let (_h, simile) = session();
    // 192 columns: the subset is chosen among 64 and 96 of them.
    let n = 1100;
    let emb = planted(n, 192, 6);
    let (ds, ids) = dataset_of(&simile, "dups-first-pass", n);
    for (metric, thresh) in [
        (Metric::Cosine, 0.0007),
        (Metric::Cosine, 0.2),
        (Metric::Euclidean, 0.3),
    ] {
        let key = format!("fp_{}_{}", metric.as_str(), (thresh * 1e4) as u32);
        let index = ds
            .compute_similarity(
                SimilarityOptions::new()
                    .brain_key(&key)
                    .metric(metric)
                    .embeddings(emb.clone()),
            )
            .unwrap();
        let got = index
            .find_duplicates(Some(DuplicatesBy::Thresh(thresh)))
            .unwrap();
        let (unique, dups, map) = reference(&emb, &ids, metric, thresh);
        assert!(
            dups.len() > 20 && unique.len() > 900,
            "{metric:?} {thresh}: {} duplicates",
            dups.len()
        );
        assert_eq!(got.unique_ids, unique, "{metric:?} {thresh}");
        assert_eq!(got.duplicate_ids, dups, "{metric:?} {thresh}");
        let got_map = duplicate_pairs(&got);
        let mut want_map = map;
        want_map.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got_map, want_map,
            "{metric:?} {thresh}: nearest unique, exact"
        );
    }
}
