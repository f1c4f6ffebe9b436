use simile::{AddOptions, MissingOptions, Query, SimilarityOptions, SortOptions};
use simile_e2e::{cosine_rank, dataset_with, open, random_array, session};

/// "Basic recipe": compute an index (default backend), query by the first sample's id with k=10,
/// clean up, delete the run record.
#[test]
fn basic_recipe() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "quickstart", 200, 64);
    let index = simile::compute_similarity(
        &dataset,
        SimilarityOptions::new()
            .brain_key("milvus_index")
            .embeddings(emb.clone()),
    )
    .unwrap();
    assert_eq!(
        index.backend_name(),
        "sklearn",
        "the embedded default backend"
    );
    assert_eq!(index.total_index_size().unwrap(), 200);

    let query = dataset.view().first().unwrap().unwrap().id().to_string();
    let view = dataset
        .sort_by_similarity(
            Query::id(&query),
            SortOptions::new().brain_key("milvus_index").k(10),
        )
        .unwrap();
    let got = view.ids().unwrap();
    assert_eq!(got.len(), 10);
    let reference: Vec<String> = cosine_rank(&emb, emb.row(0).as_slice().unwrap())
        .into_iter()
        .take(10)
        .map(|(i, _)| ids[i].clone())
        .collect();
    assert_eq!(got, reference, "same order as an exact cosine ranking");
    let (_, dists) = view.similarity().unwrap();
    assert_eq!(
        dists[0], 0.0,
        "the query is its own nearest neighbour at distance 0"
    );

    index.cleanup().unwrap();
    assert_eq!(index.total_index_size().unwrap(), 0);
    dataset.delete_brain_run("milvus_index").unwrap();
    assert!(!dataset.has_brain_run("milvus_index").unwrap());
}

/// "Create a similarity index", options 3 and 4: an array, and a field name.
#[test]
fn index_from_array_and_from_field() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 50, 16);
    let a = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("from_array")
                .embeddings(emb.clone()),
        )
        .unwrap();
    // Store the embeddings in a field, then index by field name.
    dataset
        .set_values(
            "embeddings",
            ids.iter()
                .zip(emb.rows())
                .map(|(id, r)| (id.clone(), simile::FieldValue::Vector(r.to_vec())))
                .collect(),
        )
        .unwrap();
    let b = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("from_field")
                .embeddings_field("embeddings"),
        )
        .unwrap();
    assert_eq!(b.total_index_size().unwrap(), 50);
    assert_eq!(b.info().embeddings_field.as_deref(), Some("embeddings"));
    let q = Query::id(&ids[7]);
    let va = dataset
        .sort_by_similarity(q.clone(), SortOptions::new().k(5).brain_key("from_array"))
        .unwrap();
    let vb = dataset
        .sort_by_similarity(q, SortOptions::new().k(5).brain_key("from_field"))
        .unwrap();
    assert_eq!(va.ids().unwrap(), vb.ids().unwrap());
    assert_eq!(
        a.get_embeddings(&ids[..3], MissingOptions::default())
            .unwrap()
            .embeddings,
        emb.slice(simile::ndarray::s![..3, ..])
    );
}

/// "Add/remove embeddings from an index": 200 → remove 10 → add 20 → 210.
#[test]
fn add_and_remove_embeddings() {
    let (_home, simile) = session();
    let (dataset, _ids, emb) = dataset_with(&simile, "d", 200, 32);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .embeddings(emb),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 200);

    let view = dataset.take(10, None);
    let ids = view.ids().unwrap();
    dataset.delete_samples(&ids).unwrap();
    assert_eq!(
        index
            .remove_from_index(&ids, MissingOptions::default())
            .unwrap(),
        10
    );

    let sample_ids = dataset
        .add_samples(
            (0..20)
                .map(|i| simile::NewSample::new(format!("tmp{i}.jpg")))
                .collect(),
        )
        .unwrap();
    let embeddings = random_array(20, 32, 9);
    index
        .add_to_index(embeddings.view(), &sample_ids, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 210);

    // Durable: a new session sees 210 and the new vectors.
    let again = open(simile.home())
        .load_dataset("d")
        .unwrap()
        .load_brain_results("milvus_index")
        .unwrap();
    assert_eq!(again.total_index_size().unwrap(), 210);
    let got = again
        .get_embeddings(&sample_ids[..2], MissingOptions::default())
        .unwrap();
    assert_eq!(got.embeddings.row(1), embeddings.row(1));
}

/// Upsert semantics the peer gets wrong.
#[test]
fn add_to_index_is_an_upsert() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 20, 8);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone()),
        )
        .unwrap();
    let newer = random_array(2, 8, 99);
    let two = vec![ids[0].clone(), ids[1].clone()];
    // overwrite=false really skips.
    let keep = AddOptions {
        overwrite: false,
        ..AddOptions::default()
    };
    index.add_to_index(newer.view(), &two, None, keep).unwrap();
    let got = index
        .get_embeddings(&two, MissingOptions::default())
        .unwrap();
    assert_eq!(got.embeddings.row(0), emb.row(0));
    // default: replaced, size unchanged.
    index
        .add_to_index(newer.view(), &two, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 20);
    assert_eq!(
        index
            .get_embeddings(&two, MissingOptions::default())
            .unwrap()
            .embeddings,
        newer
    );
    // allow_existing=false errors and changes nothing.
    let strict = AddOptions {
        allow_existing: false,
        ..AddOptions::default()
    };
    let err = index
        .add_to_index(emb.slice(simile::ndarray::s![..2, ..]), &two, None, strict)
        .unwrap_err();
    assert!(
        matches!(err, simile::Error::ExistingIds { count: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        index
            .get_embeddings(&two, MissingOptions::default())
            .unwrap()
            .embeddings,
        newer
    );
    // Same id twice in one call: the last row wins.
    let dup = vec![ids[5].clone(), ids[5].clone()];
    index
        .add_to_index(newer.view(), &dup, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 20);
    assert_eq!(
        index
            .get_embeddings(&dup[..1], MissingOptions::default())
            .unwrap()
            .embeddings
            .row(0),
        newer.row(1)
    );
    // remove with allow_missing=false: typed error, nothing removed.
    let missing = vec![ids[3].clone(), "0123456789abcdef01234567".to_string()];
    let strict = MissingOptions {
        allow_missing: false,
        warn_missing: false,
    };
    assert!(matches!(
        index.remove_from_index(&missing, strict),
        Err(simile::Error::MissingIds { count: 1, .. })
    ));
    assert_eq!(index.total_index_size().unwrap(), 20);
}

/// "Retrieve embeddings from an index": all (200, 512), a view of 10 (10, 512).
#[test]
fn get_embeddings() {
    let (_home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 200, 512);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .embeddings(emb),
        )
        .unwrap();
    let ids = dataset.view().ids().unwrap();
    let all = index
        .get_embeddings(&ids, MissingOptions::default())
        .unwrap();
    assert_eq!(all.embeddings.shape(), &[200, 512]);
    assert_eq!(all.sample_ids.len(), 200);
    assert_eq!(all.sample_ids, ids, "in the order asked");
    let ids = dataset.take(10, None).ids().unwrap();
    let some = index
        .get_embeddings(&ids, MissingOptions::default())
        .unwrap();
    assert_eq!(some.embeddings.shape(), &[10, 512]);
    assert_eq!(some.sample_ids, ids);
}

/// "Querying an index": by vector, by sample id, by a list of ids.
#[test]
fn query_kinds() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 100, 32);
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .embeddings(emb.clone()),
        )
        .unwrap();
    let opts = || SortOptions::new().k(10).brain_key("milvus_index");

    let query = random_array(1, 32, 3).row(0).to_vec();
    let v = dataset
        .sort_by_similarity(Query::vector(query.clone()), opts())
        .unwrap();
    let want: Vec<String> = cosine_rank(&emb, &query)
        .into_iter()
        .take(10)
        .map(|(i, _)| ids[i].clone())
        .collect();
    assert_eq!(v.ids().unwrap(), want);

    let first = dataset.view().first().unwrap().unwrap();
    let v = dataset
        .sort_by_similarity(Query::id(first.id()), opts())
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], first.id());

    let last = dataset.view().last().unwrap().unwrap();
    let two = Query::ids([first.id(), last.id()]);
    let v = dataset.sort_by_similarity(two, opts()).unwrap();
    let mean: Vec<f32> = emb
        .row(0)
        .iter()
        .zip(emb.row(99))
        .map(|(a, b)| (a + b) / 2.0)
        .collect();
    let want: Vec<String> = cosine_rank(&emb, &mean)
        .into_iter()
        .take(10)
        .map(|(i, _)| ids[i].clone())
        .collect();
    assert_eq!(
        v.ids().unwrap(),
        want,
        "several ids query their mean vector"
    );

    // k edge cases and reverse.
    let all = dataset
        .sort_by_similarity(
            Query::id(&ids[0]),
            SortOptions::new().brain_key("milvus_index"),
        )
        .unwrap();
    assert_eq!(all.len().unwrap(), 100, "k=None sorts the whole view");
    assert_eq!(
        dataset
            .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().k(0))
            .unwrap()
            .len()
            .unwrap(),
        0
    );
    assert_eq!(
        dataset
            .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().k(1000))
            .unwrap()
            .len()
            .unwrap(),
        100
    );
    let rev = dataset
        .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().k(3).reverse(true))
        .unwrap();
    let full = cosine_rank(&emb, emb.row(0).as_slice().unwrap());
    let want: Vec<String> = full
        .iter()
        .rev()
        .take(3)
        .map(|(i, _)| ids[*i].clone())
        .collect();
    assert_eq!(rev.ids().unwrap(), want, "reverse gives the farthest first");
}

/// "Performing a similarity search on a view will only return results from the view."
#[test]
fn view_restricts_results_and_dist_field_is_written() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 120, 16);
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .embeddings(emb),
        )
        .unwrap();
    let subset = dataset.take(50, Some(51));
    let in_view: std::collections::HashSet<String> = subset.ids().unwrap().into_iter().collect();
    let outside = ids.iter().find(|i| !in_view.contains(*i)).unwrap().clone();
    let near = subset
        .sort_by_similarity(
            Query::id(&outside),
            SortOptions::new().k(5).dist_field("dist"),
        )
        .unwrap();
    let got = near.ids().unwrap();
    assert_eq!(got.len(), 5);
    assert!(
        got.iter().all(|i| in_view.contains(i)),
        "only samples of the view"
    );
    let (_, dists) = near.similarity().unwrap();
    for (id, d) in got.iter().zip(dists) {
        let stored = dataset
            .sample(id)
            .unwrap()
            .get("dist")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((stored - f64::from(*d)).abs() < 1e-6);
    }
    let others = ids.iter().filter(|i| !got.contains(i)).count();
    let unset = ids
        .iter()
        .filter(|i| !got.contains(i) && dataset.sample(i).unwrap().get("dist").is_none())
        .count();
    assert_eq!(
        unset, others,
        "dist_field is written for the returned samples only"
    );
    // index.use_view restricts too.
    let index = dataset
        .load_brain_results("milvus_index")
        .unwrap()
        .use_view(&subset);
    assert_eq!(index.index_size().unwrap(), 50);
    assert_eq!(index.total_index_size().unwrap(), 120);
    let v = index
        .sort_by_similarity(Query::id(&outside), SortOptions::new().k(3))
        .unwrap();
    assert!(v.ids().unwrap().iter().all(|i| in_view.contains(i)));
}

/// "Advanced usage": an empty index (embeddings=False) with euclidean distance, filled with a
/// subset, queried.
#[test]
fn empty_index_then_add_subset() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 40, 8);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_index")
                .no_embeddings()
                .metric(simile::Metric::Euclidean),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 0);
    let view = dataset.take(10, Some(1));
    let vids = view.ids().unwrap();
    let rows: Vec<usize> = vids
        .iter()
        .map(|v| ids.iter().position(|i| i == v).unwrap())
        .collect();
    let sub = emb.select(simile::ndarray::Axis(0), &rows);
    index
        .add_to_index(sub.view(), &vids, None, AddOptions::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 10);
    let res = dataset
        .sort_by_similarity(Query::id(&vids[0]), SortOptions::new().k(20))
        .unwrap();
    assert_eq!(
        res.len().unwrap(),
        10,
        "samples not in the index are never returned"
    );
    let (_, d) = res.similarity().unwrap();
    let want = emb
        .row(rows[0])
        .iter()
        .zip(emb.row(rows[1]))
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let pos = res
        .ids()
        .unwrap()
        .iter()
        .position(|i| *i == vids[1])
        .unwrap();
    assert!(
        (f64::from(d[pos]) - want).abs() < 1e-4,
        "euclidean distance, not squared"
    );
}

/// Runs survive the process: a second session on the same home sees and queries them, and
/// works while the first keeps writing.
#[test]
fn runs_survive_and_two_sessions_share_a_home() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 300, 16);
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("sim").embeddings(emb))
        .unwrap();
    let other = open(home.path());
    let ds2 = other.load_dataset("d").unwrap();
    assert_eq!(
        ds2.list_brain_runs(&simile::RunFilter::new()).unwrap(),
        vec!["sim"]
    );
    let v = ds2
        .sort_by_similarity(Query::id(&ids[3]), SortOptions::new().k(4))
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], ids[3]);

    let writer_home = home.path().to_path_buf();
    let writer_ids = ids.clone();
    let writer = std::thread::spawn(move || {
        let s = open(&writer_home);
        let idx = s
            .load_dataset("d")
            .unwrap()
            .load_brain_results("sim")
            .unwrap();
        for round in 0..10 {
            let v = random_array(5, 16, round);
            idx.add_to_index(
                v.view(),
                &writer_ids[round as usize * 5..round as usize * 5 + 5],
                None,
                AddOptions::default(),
            )
            .unwrap();
        }
    });
    for _ in 0..20 {
        let v = ds2
            .sort_by_similarity(Query::id(&ids[100]), SortOptions::new().k(3))
            .unwrap();
        assert_eq!(v.ids().unwrap()[0], ids[100]);
    }
    writer.join().unwrap();
    // The reader sees the writer's last vectors after its changes (revision-checked cache).
    let last = random_array(5, 16, 9);
    let got = ds2
        .load_brain_results("sim")
        .unwrap()
        .get_embeddings(&ids[45..50], MissingOptions::default())
        .unwrap();
    assert_eq!(got.embeddings, last);
}

/// The facade works from plain code and from inside an async runtime (via spawn_blocking, and
/// even called directly it does not panic).
#[test]
fn usable_inside_an_async_runtime() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 30, 8);
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("sim").embeddings(emb))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let home = home.path().to_path_buf();
    let q = ids[0].clone();
    let got = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let s = open(&home);
            let v = s
                .load_dataset("d")
                .unwrap()
                .sort_by_similarity(Query::id(&q), SortOptions::new().k(3))
                .unwrap();
            v.ids().unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(got[0], ids[0]);
    let direct = rt.block_on(async {
        dataset
            .sort_by_similarity(Query::id(&ids[1]), SortOptions::new().k(2))
            .unwrap()
            .ids()
            .unwrap()
    });
    assert_eq!(direct[0], ids[1]);
}

/// ARCHITECTURE.md, invariant 5: the query's own row reports its true distance. Under
/// dotproduct that is `−a·a`, and a longer vector along the query is nearer than the query
/// itself; under cosine and euclidean it is 0 and first.
#[test]
fn the_query_row_has_its_true_distance_under_every_metric() {
    let (_home, simile) = session();
    let (dataset, ids, _) = dataset_with(&simile, "d", 4, 2);
    let emb = simile::ndarray::array![[1.0f32, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]];
    for (key, metric) in [
        ("dot", simile::Metric::DotProduct),
        ("cos", simile::Metric::Cosine),
        ("l2", simile::Metric::Euclidean),
    ] {
        dataset
            .compute_similarity(
                SimilarityOptions::new()
                    .brain_key(key)
                    .metric(metric)
                    .embeddings(emb.clone()),
            )
            .unwrap();
        let v = dataset
            .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().brain_key(key))
            .unwrap();
        let (got, d) = v.similarity().unwrap();
        let got: Vec<usize> = got
            .iter()
            .map(|g| ids.iter().position(|i| i == g).unwrap())
            .collect();
        match metric {
            simile::Metric::DotProduct => {
                assert_eq!(got, [1, 0, 2, 3]);
                assert_eq!(d, [-2.0, -1.0, 0.0, 1.0]);
            }
            // [2, 0] points the same way: cosine distance 0 too, but the query comes first.
            simile::Metric::Cosine => {
                assert_eq!(got, [0, 1, 2, 3]);
                assert_eq!(d[0], 0.0);
                for (d, want) in d.iter().zip([0.0, 0.0, 1.0, 2.0]) {
                    assert!((d - want).abs() < 1e-6, "{d} vs {want}");
                }
            }
            simile::Metric::Euclidean => {
                assert_eq!(got[..2], [0, 1]);
                assert_eq!(d[..2], [0.0, 1.0]);
            }
        }
    }
}
