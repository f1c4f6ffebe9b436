//! The spec's `backend="milvus"` recipes through the facade, against the real Milvus server that
//! `cargo xtask ci` starts (authentication on).
use simile::{
    AddOptions, MilvusIndex, MissingOptions, Query, RunFilter, SimilarityOptions, SortOptions,
};
use simile_e2e::{dataset_with, milvus_params, milvus_session, random_array};

fn exact_ranking(
    emb: &simile::ndarray::Array2<f32>,
    q: &[f32],
    ids: &[String],
    k: usize,
) -> Vec<String> {
    // Dotproduct (Milvus' default metric): largest dot first.
    let mut scored: Vec<(usize, f64)> = emb
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            (
                i,
                -r.iter()
                    .zip(q)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum::<f64>(),
            )
        })
        .collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    scored
        .into_iter()
        .take(k)
        .map(|(i, _)| ids[i].clone())
        .collect()
}

/// Basic recipe with `backend="milvus"`: compute, query by the first id (k=10), cleanup, delete.
#[test]
fn basic_recipe_on_milvus() {
    let (_home, simile) = milvus_session(false);
    let (dataset, ids, emb) = dataset_with(&simile, "quickstart", 200, 32);
    let index = simile::compute_similarity(
        &dataset,
        SimilarityOptions::new()
            .brain_key("milvus_index")
            .backend("milvus")
            .embeddings(emb.clone())
            .set("index_type", "FLAT"),
    )
    .unwrap();
    assert_eq!(index.backend_name(), "milvus");
    assert_eq!(
        index.metric(),
        simile::Metric::DotProduct,
        "the peer's default metric"
    );
    assert_eq!(index.total_index_size().unwrap(), 200);
    let first = dataset.view().first().unwrap().unwrap();
    let view = dataset
        .sort_by_similarity(
            Query::id(first.id()),
            SortOptions::new().brain_key("milvus_index").k(10),
        )
        .unwrap();
    let got = view.ids().unwrap();
    assert_eq!(got.len(), 10);
    // Same neighbours as an exact dot-product ranking (FLAT index), the query itself first.
    assert_eq!(got[0], first.id());
    let mut want = exact_ranking(&emb, emb.row(0).as_slice().unwrap(), &ids, 10);
    want.retain(|w| *w != first.id());
    let mut rest = got[1..].to_vec();
    rest.sort();
    want.truncate(9);
    want.sort();
    assert_eq!(rest, want);

    let milvus = index.backend();
    let m = milvus
        .as_any()
        .downcast_ref::<MilvusIndex>()
        .expect("a Milvus index");
    assert!(
        m.collection_name().starts_with("fiftyone_quickstart"),
        "{}",
        m.collection_name()
    );
    assert!(m.collection_exists().unwrap());
    index.cleanup().unwrap();
    assert!(
        !m.collection_exists().unwrap(),
        "cleanup drops the collection"
    );
    dataset.delete_brain_run("milvus_index").unwrap();
}

/// Milvus as the configured default backend; add/remove; get_embeddings; queries; reloading.
#[test]
fn milvus_default_backend_maintenance_and_queries() {
    let (home, simile) = milvus_session(true);
    let (dataset, ids, emb) = dataset_with(&simile, "d", 200, 16);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .embeddings(emb.clone())
                .metric(simile::Metric::Euclidean),
        )
        .unwrap();
    assert_eq!(
        index.backend_name(),
        "milvus",
        "default_similarity_backend from the config"
    );
    // Remove 10, add 20 → 210 (exact after deletes).
    let removed = dataset.take(10, Some(3)).ids().unwrap();
    index
        .remove_from_index(&removed, MissingOptions::default())
        .unwrap();
    let new_ids = dataset
        .add_samples(
            (0..20)
                .map(|i| simile::NewSample::new(format!("tmp{i}.jpg")))
                .collect(),
        )
        .unwrap();
    let extra = random_array(20, 16, 4);
    index
        .add_to_index(extra.view(), &new_ids, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 210);
    // Upsert: re-adding does not duplicate.
    index
        .add_to_index(extra.view(), &new_ids, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 210);
    // get_embeddings in the order asked.
    let some: Vec<String> = ids[100..110].iter().rev().cloned().collect();
    let got = index
        .get_embeddings(&some, MissingOptions::default())
        .unwrap();
    assert_eq!(got.sample_ids, some);
    assert_eq!(got.embeddings.row(0), emb.row(109));
    // Queries: vector, id, list of ids, within a view.
    let v = dataset
        .sort_by_similarity(
            Query::vector(emb.row(50).to_vec()),
            SortOptions::new().k(10),
        )
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], ids[50]);
    let two = dataset
        .sort_by_similarity(
            Query::ids([ids[60].clone(), ids[61].clone()]),
            SortOptions::new().k(10),
        )
        .unwrap();
    assert_eq!(two.len().unwrap(), 10);
    let subset = dataset.take(50, Some(51));
    let in_view: std::collections::HashSet<String> = subset.ids().unwrap().into_iter().collect();
    let near = subset
        .sort_by_similarity(
            Query::id(&ids[0]),
            SortOptions::new().k(5).dist_field("dist"),
        )
        .unwrap();
    assert!(
        near.ids().unwrap().iter().all(|i| in_view.contains(i)),
        "only samples of the view"
    );
    let (_, d) = near.similarity().unwrap();
    assert!(
        d.windows(2).all(|w| w[0] <= w[1]),
        "euclidean distances ascending"
    );

    // A second session loads the run with credentials from its config and sees the same index.
    let again = simile_e2e::open(home.path());
    let err = again
        .load_dataset("d")
        .unwrap()
        .load_brain_results("milvus_index");
    // Without credentials in that session's config the server refuses (auth is on in CI).
    if std::env::var("SIMILE_TEST_MILVUS_PASSWORD").is_ok() {
        let e = err.expect_err("no credentials, auth on");
        assert!(
            matches!(
                e,
                simile::Error::Index(simile::IndexError::Unauthenticated { .. })
            ),
            "{e:?}"
        );
    }
    let loaded = again
        .load_dataset("d")
        .unwrap()
        .load_brain_results_with("milvus_index", &milvus_params())
        .unwrap();
    assert_eq!(loaded.total_index_size().unwrap(), 210);
    assert_eq!(loaded.metric(), simile::Metric::Euclidean);

    // Secrets are not persisted.
    let info = dataset.get_brain_info("milvus_index").unwrap();
    assert!(info.config.get("password").is_none() && info.config.get("uri").is_none());
    assert!(info.config.get("collection_name").is_some());
    let db = std::fs::read(home.path().join("simile.db")).unwrap();
    let wal = std::fs::read(home.path().join("simile.db-wal")).unwrap_or_default();
    if let Ok(pw) = std::env::var("SIMILE_TEST_MILVUS_PASSWORD") {
        let needle = format!("\"{pw}\"");
        for bytes in [&db, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "password stored in the database"
            );
        }
    }
    assert_eq!(
        dataset
            .list_brain_runs(&RunFilter::similarity().method("milvus"))
            .unwrap(),
        vec!["milvus_index"]
    );
    index.cleanup().unwrap();
}

/// "Connect to an existing collection" with `embeddings=False` and a `collection_name`.
#[test]
fn connect_to_an_existing_collection() {
    let (_home, simile) = milvus_session(false);
    let (dataset, ids, emb) = dataset_with(&simile, "d", 40, 8);
    let name = format!("simile_existing_{}", std::process::id());
    let first = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("a")
                .backend("milvus")
                .embeddings(emb)
                .set("collection_name", name.as_str()),
        )
        .unwrap();
    let second = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("b")
                .backend("milvus")
                .no_embeddings()
                .set("collection_name", name.as_str()),
        )
        .unwrap();
    assert_eq!(
        second.total_index_size().unwrap(),
        40,
        "the existing collection's vectors"
    );
    let v = dataset
        .sort_by_similarity(Query::id(&ids[5]), SortOptions::new().k(3).brain_key("b"))
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], ids[5]);
    // A failed compute against an existing collection never drops it.
    let bad = dataset.compute_similarity(
        SimilarityOptions::new()
            .brain_key("c")
            .backend("milvus")
            .embeddings(random_array(40, 9, 1))
            .set("collection_name", name.as_str()),
    );
    assert!(
        matches!(
            bad,
            Err(simile::Error::Index(
                simile::IndexError::DimensionMismatch {
                    expected: 8,
                    got: 9
                }
            ))
        ),
        "{bad:?}"
    );
    assert_eq!(first.total_index_size().unwrap(), 40);
    assert!(!dataset.has_brain_run("c").unwrap());
    first.cleanup().unwrap();
}

/// Connection failures are typed, bounded in time, and register nothing.
#[test]
fn bad_credentials_and_unreachable_server() {
    let (_home, simile) = milvus_session(false);
    let (dataset, _ids, emb) = dataset_with(&simile, "d", 10, 4);
    if std::env::var("SIMILE_TEST_MILVUS_PASSWORD").is_ok() {
        let e = dataset
            .compute_similarity(
                SimilarityOptions::new()
                    .brain_key("k")
                    .backend("milvus")
                    .embeddings(emb.clone())
                    .set("password", "wrong-password"),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                simile::Error::Index(simile::IndexError::Unauthenticated { .. })
            ),
            "{e:?}"
        );
        assert!(
            !format!("{e:?} {e}").contains("wrong-password"),
            "no secret in the error"
        );
    }
    let started = std::time::Instant::now();
    let e = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .backend("milvus")
                .embeddings(emb)
                .set("uri", "http://127.0.0.1:9")
                .set("connect_timeout_s", "2"),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            simile::Error::Index(simile::IndexError::Unavailable { .. })
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(!dataset.has_brain_run("k").unwrap());
}

/// "Create a patch similarity index" on Milvus: label ids as keys, lookups by sample and label.
#[test]
fn patch_index_on_milvus() {
    let (_home, simile) = milvus_session(false);
    let ds = simile.create_dataset("p").unwrap();
    let samples = (0..6)
        .map(|i| {
            let dets = (0..(i % 3 + 1))
                .map(|_| simile::Detection::new("obj", [0.1, 0.1, 0.5, 0.5]).unwrap())
                .collect();
            simile::NewSample::new(format!("{i}.jpg"))
                .with_field("ground_truth", simile::Detections::new(dets))
        })
        .collect();
    let ids = ds.add_samples(samples).unwrap();
    let labels = ds.view().label_ids("ground_truth").unwrap();
    let emb = random_array(labels.len(), 8, 2);
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_patches")
                .backend("milvus")
                .patches_field("ground_truth")
                .embeddings(emb.clone()),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), labels.len());
    let by_sample = index
        .get_embeddings(&[ids[2].clone()], MissingOptions::default())
        .unwrap();
    assert_eq!(
        by_sample.embeddings.nrows(),
        3,
        "lookup by sample id finds its patches (the peer's returns nothing)"
    );
    let by_label = index
        .get_label_embeddings(&[labels[1].1.clone()], MissingOptions::default())
        .unwrap();
    assert_eq!(by_label.embeddings.row(0), emb.row(1));
    let res = ds
        .to_patches("ground_truth")
        .sort_by_similarity(Query::id(&labels[3].1), SortOptions::new().k(4))
        .unwrap();
    assert_eq!(res.ids().unwrap()[0], labels[3].1);
    index.cleanup().unwrap();
}

/// ARCHITECTURE.md, invariant 9: a Milvus-backed call made from inside a caller's current-thread
/// tokio runtime (its only worker) neither panics nor deadlocks, directly or through
/// `spawn_blocking`; the query's own row comes back with its exact dotproduct distance.
#[test]
fn milvus_calls_from_inside_a_current_thread_runtime() {
    let (_home, simile) = milvus_session(false);
    let (dataset, ids, emb) = dataset_with(&simile, "rt", 40, 8);
    let index = simile::compute_similarity(
        &dataset,
        SimilarityOptions::new()
            .brain_key("rt_index")
            .backend("milvus")
            .embeddings(emb.clone())
            .set("index_type", "FLAT"),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let q = ids[3].clone();
    let direct = rt.block_on(async {
        dataset
            .sort_by_similarity(Query::id(&q), SortOptions::new().k(5))
            .unwrap()
    });
    let (got, distances) = direct.similarity().unwrap();
    assert_eq!(got.len(), 5);
    let pos = got
        .iter()
        .position(|g| *g == q)
        .expect("the query's own row");
    let row = emb.row(3);
    let want = simile::Metric::DotProduct
        .reference_distance(row.as_slice().unwrap(), row.as_slice().unwrap());
    assert!((f64::from(distances[pos]) - want).abs() < 1e-4);
    let (ds, q2) = (dataset.clone(), ids[4].clone());
    let blocking = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            ds.sort_by_similarity(Query::id(&q2), SortOptions::new().k(3))
                .unwrap()
                .ids()
                .unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(blocking.len(), 3);
    assert!(blocking.contains(&ids[4]));
    index.cleanup().unwrap();
}
