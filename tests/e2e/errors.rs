//! Bad input gets a typed error naming the problem, and the store is unchanged afterwards.
use simile::{Error, Query, RunFilter, SimilarityOptions, SortOptions};
use simile_e2e::{dataset_with, random_array, session};

fn runs(ds: &simile::Dataset) -> Vec<String> {
    ds.list_brain_runs(&RunFilter::new()).unwrap()
}

#[test]
fn compute_errors_leave_nothing_behind() {
    let (home, simile) = session();
    let (dataset, _ids, emb) = dataset_with(&simile, "d", 10, 4);
    let indexes_dir = home.path().join("indexes");
    let files_before = count_files(&indexes_dir);

    // Invalid key.
    let e = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("bad key")
                .embeddings(emb.clone()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("bad key"), "{e}");
    // Row count mismatch.
    let e = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(random_array(5, 4, 1)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::EmbeddingsCount {
                expected: 10,
                got: 5,
                ..
            }
        ),
        "{e:?}"
    );
    // NaN.
    let mut nan = emb.clone();
    nan[[3, 1]] = f32::NAN;
    let e = dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(nan))
        .unwrap_err();
    assert!(
        matches!(e, Error::Index(simile_index_error::NonFinite { .. })),
        "{e:?}"
    );
    // Unknown backend.
    let e = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone())
                .backend("nope"),
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownBackend { name, available } if name == "nope" && available.contains(&"sklearn".to_string())),
        "{e:?}"
    );
    // Bad metric.
    let e = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone())
                .set("metric", "l1"),
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Index(simile_index_error::InvalidMetric(ref m)) if m == "l1"),
        "{e:?}"
    );
    // No source at all.
    assert!(matches!(
        dataset.compute_similarity(SimilarityOptions::new().brain_key("k")),
        Err(Error::NoEmbeddingsSource)
    ));
    // Unknown field.
    assert!(dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings_field("nope")
        )
        .is_err());
    // Empty dataset.
    let empty = simile.create_dataset("empty").unwrap();
    let e = empty
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(random_array(0, 4, 1)),
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::EmptyCollection(ref n) if n == "empty"),
        "{e:?}"
    );

    assert!(
        runs(&dataset).is_empty(),
        "no run registered by a failed call"
    );
    assert_eq!(
        count_files(&indexes_dir),
        files_before,
        "no index files left behind"
    );

    // Duplicate key.
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone()),
        )
        .unwrap();
    let e = dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(emb))
        .unwrap_err();
    assert!(
        e.to_string().contains("'k'") || e.to_string().contains("k"),
        "{e}"
    );
    assert!(matches!(e, Error::Runs(_)), "{e:?}");
    assert_eq!(runs(&dataset), vec!["k"]);
}

#[test]
fn query_errors() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 10, 4);
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(emb))
        .unwrap();
    let opts = || SortOptions::new().k(3).brain_key("k");
    // Unknown brain key.
    let e = dataset
        .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().brain_key("nope"))
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    // Unknown query id.
    let e = dataset
        .sort_by_similarity(Query::id("0123456789abcdef01234567"), opts())
        .unwrap_err();
    assert!(
        matches!(e, Error::QueryIdsNotFound { ref ids, .. } if ids == &vec!["0123456789abcdef01234567".to_string()]),
        "{e:?}"
    );
    // Dimension mismatch.
    let e = dataset
        .sort_by_similarity(Query::vector(vec![1.0; 7]), opts())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Index(simile_index_error::DimensionMismatch {
                expected: 4,
                got: 7
            })
        ),
        "{e:?}"
    );
    // NaN query.
    let e = dataset
        .sort_by_similarity(Query::vector(vec![f32::NAN; 4]), opts())
        .unwrap_err();
    assert!(
        matches!(e, Error::Index(simile_index_error::NonFinite { .. })),
        "{e:?}"
    );
    // Empty query.
    assert!(matches!(
        dataset.sort_by_similarity(Query::Ids(vec![]), opts()),
        Err(Error::EmptyQuery)
    ));
    // Prompt on an index without a text model.
    let e = dataset
        .sort_by_similarity(Query::text("a photo of a dog"), opts())
        .unwrap_err();
    assert!(matches!(e, Error::PromptsNotSupported { .. }), "{e:?}");
    // Rename / delete unknown keys, rename onto an existing key, invalid new key.
    assert!(dataset.rename_brain_run("nope", "x").is_err());
    assert!(dataset.delete_brain_run("nope").is_err());
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k2").no_embeddings())
        .unwrap();
    assert!(dataset.rename_brain_run("k", "k2").is_err());
    assert!(dataset.rename_brain_run("k", "1x").is_err());
    assert_eq!(runs(&dataset), vec!["k", "k2"]);
    // A dimension mismatch on add changes nothing.
    let index = dataset.load_brain_results("k").unwrap();
    let e = index
        .add_to_index(
            random_array(1, 5, 1).view(),
            &ids[..1],
            None,
            Default::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Index(simile_index_error::DimensionMismatch { .. })
        ),
        "{e:?}"
    );
    assert_eq!(index.total_index_size().unwrap(), 10);
    // Label ids on a sample index.
    assert!(matches!(
        index.add_to_index(
            random_array(1, 4, 1).view(),
            &ids[..1],
            Some(&ids[..1]),
            Default::default()
        ),
        Err(Error::LabelIdsNotSupported)
    ));
}

mod simile_index_error {
    pub use simile::IndexError::*;
}

fn count_files(dir: &std::path::Path) -> usize {
    fn walk(d: &std::path::Path, n: &mut usize) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), n);
                } else {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}
