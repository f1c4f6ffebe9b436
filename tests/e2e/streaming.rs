//! Streaming builds (issue 11): a `.npy` file, an array and a vector field are fed to the
//! backend in batches of at most 16 384 rows; the result equals a one-shot build, and a file
//! that lies about its size or a bad row in a later batch fails with a typed error that leaves
//! no run and no storage.
use std::path::Path;

use simile::ndarray::{s, Array2, ShapeBuilder};
use simile::{
    Error, FieldValue, IndexError, MissingOptions, Query, RunFilter, SimilarityOptions, SortOptions,
};
use simile_e2e::{dataset_with, session};

/// More than one batch (16 384 rows), not a multiple of it.
const N: usize = 20_500;
const DIM: usize = 8;

/// `a` written as a float32 `.npy`.
fn npy_of(dir: &Path, name: &str, a: &Array2<f32>) -> std::path::PathBuf {
    let path = dir.join(name);
    simile::npy::write_npy(&path, a).unwrap();
    path
}

/// Everything under the home's `indexes/` folder (storage directories and their locks).
fn index_storage(home: &Path) -> Vec<std::path::PathBuf> {
    let Ok(datasets) = std::fs::read_dir(home.join("indexes")) else {
        return Vec::new();
    };
    datasets
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect()
}

/// The k nearest (sample id, distance) of `q` in the run `key`.
fn nearest(ds: &simile::Dataset, key: &str, q: &[f32], k: usize) -> Vec<(String, f32)> {
    let view = ds
        .sort_by_similarity(Query::vector(q), SortOptions::new().k(k).brain_key(key))
        .unwrap();
    let (ids, dists) = view.similarity().unwrap();
    ids.iter().cloned().zip(dists.iter().copied()).collect()
}

#[test]
fn a_streamed_npy_an_array_and_a_field_build_the_same_index() {
    let (home, simile) = session();
    let (ds, ids, emb) = dataset_with(&simile, "stream", N, DIM);
    let path = npy_of(home.path(), "emb.npy", &emb);
    let from_npy = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("npy")
                .embeddings_npy(&path),
        )
        .unwrap();
    // A non-standard layout (column-major) is sliced by rows just the same.
    let mut fortran = Array2::zeros((N, DIM).f());
    fortran.assign(&emb);
    assert!(!fortran.is_standard_layout());
    let from_array = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("array")
                .embeddings(fortran),
        )
        .unwrap();
    ds.set_values(
        "emb",
        ids.iter()
            .zip(emb.rows())
            .map(|(id, r)| (id.clone(), FieldValue::Vector(r.to_vec())))
            .collect(),
    )
    .unwrap();
    let from_field = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("field")
                .embeddings_field("emb"),
        )
        .unwrap();
    for index in [&from_npy, &from_array, &from_field] {
        assert_eq!(index.info().metric, simile::Metric::Cosine);
        assert_eq!(index.total_index_size().unwrap(), N);
        let all = index.get_all_embeddings().unwrap();
        assert_eq!(all.sample_ids, ids);
        assert_eq!(all.embeddings, emb);
    }
    // Rows from both sides of the batch boundary, and the last one.
    for q in [0, 16_383, 16_384, N - 1] {
        let v = emb.row(q).to_vec();
        let expected = nearest(&ds, "array", &v, 10);
        assert_eq!(expected[0].0, ids[q]);
        assert_eq!(nearest(&ds, "npy", &v, 10), expected, "query {q}");
        assert_eq!(nearest(&ds, "field", &v, 10), expected, "query {q}");
    }
    let got = from_npy
        .get_embeddings(&ids[16_380..16_390], MissingOptions::default())
        .unwrap();
    assert_eq!(got.embeddings, emb.slice(s![16_380..16_390, ..]));
}

#[test]
fn a_nan_in_a_later_batch_leaves_no_run_and_no_storage() {
    let (home, simile) = session();
    let (ds, ids, mut emb) = dataset_with(&simile, "nan", N, DIM);
    emb[[20_000, 3]] = f32::NAN;
    let path = npy_of(home.path(), "nan.npy", &emb);
    let err = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("nan")
                .embeddings_npy(&path),
        )
        .unwrap_err();
    match &err {
        Error::Index(IndexError::NonFinite { what }) => {
            assert!(what.contains(&ids[20_000]), "{what}")
        }
        other => panic!("{other:?}"),
    }
    // The same from an in-memory array.
    let err = ds
        .compute_similarity(SimilarityOptions::new().brain_key("nan").embeddings(emb))
        .unwrap_err();
    assert!(
        matches!(err, Error::Index(IndexError::NonFinite { .. })),
        "{err:?}"
    );
    assert!(ds.list_brain_runs(&RunFilter::new()).unwrap().is_empty());
    let left = index_storage(home.path());
    assert!(left.is_empty(), "storage left behind: {left:?}");
}

#[test]
fn npy_files_that_do_not_fit_the_dataset_are_typed_errors() {
    let (home, simile) = session();
    let (ds, _ids, emb) = dataset_with(&simile, "bad", 40, DIM);
    let dir = home.path();
    let good = std::fs::read(npy_of(dir, "good.npy", &emb)).unwrap();
    let data_start = (good.len() - 40 * DIM * 4) as u64;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // 41 rows claimed, 40 present: the header's shape patched in place (same length).
    let mut more_rows = good.clone();
    let at = more_rows.windows(7).position(|w| w == b"(40, 8)").unwrap();
    more_rows[at..at + 7].copy_from_slice(b"(41, 8)");
    let cases = [
        (
            "truncated.npy",
            good[..good.len() - 7].to_vec(),
            data_start + 40 * 32,
        ),
        ("more_rows.npy", more_rows, data_start + 41 * 32),
        (
            "trailing.npy",
            [&good[..], b"garbage"].concat(),
            data_start + 40 * 32,
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = write(name, &bytes);
        let err = ds
            .compute_similarity(
                SimilarityOptions::new()
                    .brain_key("x")
                    .embeddings_npy(&path),
            )
            .unwrap_err();
        match err {
            Error::NpySize {
                path: p,
                header,
                expected: e,
                actual,
            } => {
                assert_eq!(header, data_start);
                assert!(p.ends_with(name), "{p}");
                assert_eq!((e, actual), (expected, bytes.len() as u64), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // A valid file with one row too few: the array path's error.
    let short = npy_of(dir, "short.npy", &emb.slice(s![..39, ..]).to_owned());
    let err = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("x")
                .embeddings_npy(&short),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::EmbeddingsCount {
                what: "samples",
                expected: 40,
                got: 39
            }
        ),
        "{err:?}"
    );
    // Two sources at once.
    let err = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("x")
                .embeddings(emb.clone())
                .embeddings_npy(dir.join("good.npy")),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "embeddings",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(ds.list_brain_runs(&RunFilter::new()).unwrap().is_empty());
    let left = index_storage(dir);
    assert!(left.is_empty(), "storage left behind: {left:?}");
    // The good file still works after all that.
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("x")
                .embeddings_npy(dir.join("good.npy")),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 40);
    // ...and its storage is where the checks above looked.
    assert!(!index_storage(dir).is_empty());
}
