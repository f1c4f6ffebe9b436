use simile::{Query, RunFilter, SimilarityOptions, SortOptions};
use simile_e2e::{dataset_with, open, session};

/// "Managing brain runs": list (all, by type, by patches field / prompts), info, load, rename,
/// delete (record only).
#[test]
fn managing_brain_runs() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 30, 8);
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("b_index")
                .embeddings(emb.clone()),
        )
        .unwrap();
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("a_index")
                .embeddings(emb)
                .metric(simile::Metric::Euclidean),
        )
        .unwrap();

    assert_eq!(
        dataset.list_brain_runs(&RunFilter::new()).unwrap(),
        vec!["a_index", "b_index"]
    );
    assert_eq!(
        dataset
            .list_brain_runs(&RunFilter::similarity())
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        dataset
            .list_brain_runs(&RunFilter::new().run_type("uniqueness"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        dataset
            .list_brain_runs(&RunFilter::similarity().method("sklearn"))
            .unwrap()
            .len(),
        2
    );
    assert!(dataset
        .list_brain_runs(
            &RunFilter::similarity()
                .patches_field("ground_truth")
                .supports_prompts(true)
        )
        .unwrap()
        .is_empty());

    let info = dataset.get_brain_info("a_index").unwrap();
    assert_eq!(info.key, "a_index");
    assert_eq!(info.method, "sklearn");
    assert_eq!(
        info.config.get("metric").and_then(|m| m.as_str()),
        Some("euclidean")
    );
    assert_eq!(
        info.config.get("type").and_then(|m| m.as_str()),
        Some("similarity")
    );
    let printed = serde_json::to_value(&info).unwrap();
    assert!(printed.get("timestamp").is_some() && printed.get("version").is_some());

    let index = dataset.load_brain_results("a_index").unwrap();
    assert_eq!(index.metric(), simile::Metric::Euclidean);
    assert_eq!(index.total_index_size().unwrap(), 30);

    dataset.rename_brain_run("a_index", "new_key").unwrap();
    assert_eq!(
        dataset.list_brain_runs(&RunFilter::new()).unwrap(),
        vec!["b_index", "new_key"]
    );
    assert_eq!(
        index.key().as_deref(),
        Some("new_key"),
        "a loaded handle follows the rename"
    );
    let v = dataset
        .sort_by_similarity(
            Query::id(&ids[0]),
            SortOptions::new().k(3).brain_key("new_key"),
        )
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], ids[0]);

    // Delete the record only: the index data remains and the handle keeps working.
    dataset.delete_brain_run("new_key").unwrap();
    assert!(!dataset.has_brain_run("new_key").unwrap());
    assert_eq!(index.total_index_size().unwrap(), 30);
    assert!(index.key().is_none());
    // A second session agrees.
    let other = open(home.path()).load_dataset("d").unwrap();
    assert_eq!(
        other.list_brain_runs(&RunFilter::new()).unwrap(),
        vec!["b_index"]
    );
    // Clean up the data explicitly.
    index.cleanup().unwrap();
    assert_eq!(index.total_index_size().unwrap(), 0);
}

/// Without a brain key, `sort_by_similarity` picks the only run, or the first sorted one of
/// several (with a warning); none is an error.
#[test]
fn default_brain_key() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 20, 8);
    let q = || Query::id(&ids[2]);
    assert!(matches!(
        dataset.sort_by_similarity(q(), SortOptions::new().k(3)),
        Err(simile::Error::NoSimilarityRun { .. })
    ));
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("zz")
                .embeddings(emb.clone()),
        )
        .unwrap();
    assert_eq!(
        dataset
            .sort_by_similarity(q(), SortOptions::new().k(3))
            .unwrap()
            .len()
            .unwrap(),
        3
    );
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("aa")
                .embeddings(emb.clone())
                .metric(simile::Metric::Euclidean),
        )
        .unwrap();
    let v = dataset
        .sort_by_similarity(q(), SortOptions::new().k(3))
        .unwrap();
    // "aa" (euclidean) was used, not "zz" (cosine): the distances are euclidean ones.
    let (got, distances) = v.similarity().unwrap();
    for (id, d) in got.iter().zip(distances) {
        let row = ids.iter().position(|i| i == id).unwrap();
        let want = simile::Metric::Euclidean.reference_distance(
            emb.row(row).as_slice().unwrap(),
            emb.row(2).as_slice().unwrap(),
        );
        assert!((f64::from(*d) - want).abs() < 1e-4, "{id}: {d} vs {want}");
    }
}

/// An index computed on a view is registered on the dataset and holds the view's samples.
#[test]
fn index_of_a_view_is_registered_on_the_dataset() {
    let (_home, simile) = session();
    let (dataset, _ids, emb) = dataset_with(&simile, "d", 20, 4);
    let view = dataset.limit(5);
    let index = view
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("part")
                .embeddings(emb.slice(simile::ndarray::s![..5, ..]).to_owned()),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 5);
    assert!(dataset.has_brain_run("part").unwrap());
    let all = dataset
        .sort_by_similarity(Query::vector(vec![0.1, 0.2, 0.3, 0.4]), SortOptions::new())
        .unwrap();
    assert_eq!(all.len().unwrap(), 5);
}
