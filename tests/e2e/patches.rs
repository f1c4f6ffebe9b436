//! "Create a patch similarity index" and patch queries, on the embedded default backend.
use simile::ndarray::{s, Array2};
use simile::{
    Detection, Detections, MissingOptions, NewSample, Query, RunFilter, SimilarityOptions,
    SortOptions,
};
use simile_e2e::{random_array, session};

/// 12 samples with 0–3 `ground_truth` detections each; returns (dataset, sample ids, label ids
/// in dataset order with their owners).
fn patch_dataset(simile: &simile::Simile) -> (simile::Dataset, Vec<String>, Vec<(String, String)>) {
    let ds = simile.create_dataset("patches").unwrap();
    let samples = (0..12)
        .map(|i| {
            let dets: Vec<Detection> = (0..(i % 4))
                .map(|j| {
                    Detection::new(
                        if j % 2 == 0 { "cat" } else { "dog" },
                        [0.1 * j as f64, 0.1, 0.2, 0.3],
                    )
                    .unwrap()
                })
                .collect();
            NewSample::new(format!("{i}.jpg")).with_field("ground_truth", Detections::new(dets))
        })
        .collect();
    let ids = ds.add_samples(samples).unwrap();
    let labels = ds.view().label_ids("ground_truth").unwrap();
    (ds, ids, labels)
}

#[test]
fn patch_index_from_a_flat_array_and_queries() {
    let (_home, simile) = session();
    let (ds, ids, labels) = patch_dataset(&simile);
    let n = labels.len();
    assert_eq!(n, 18);
    let emb = random_array(n, 8, 5);
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("milvus_patches")
                .patches_field("ground_truth")
                .embeddings(emb.clone()),
        )
        .unwrap();
    assert_eq!(
        index.total_index_size().unwrap(),
        n,
        "one vector per detection"
    );
    assert_eq!(
        ds.list_brain_runs(&RunFilter::similarity().patches_field("ground_truth"))
            .unwrap(),
        vec!["milvus_patches"]
    );

    // Query by patch id on the patches view.
    let patches = ds.to_patches("ground_truth");
    let res = patches
        .sort_by_similarity(
            Query::id(&labels[4].1),
            SortOptions::new().k(5).dist_field("pdist"),
        )
        .unwrap();
    let got = res.ids().unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], labels[4].1, "the query patch first");
    assert_eq!(res.similarity().unwrap().1[0], 0.0);
    let owner = ds.sample(&labels[4].0).unwrap();
    let det = owner.detections("ground_truth").unwrap().unwrap();
    let d = det.detections.iter().find(|d| d.id == labels[4].1).unwrap();
    assert_eq!(
        d.attributes.get("pdist").and_then(|v| v.as_f64()),
        Some(0.0),
        "dist_field written on the label"
    );

    // A sample-level view with a patch index: samples by best patch, labels filtered to matches.
    let v = ds
        .sort_by_similarity(
            Query::id(&labels[4].1),
            SortOptions::new()
                .k(3)
                .brain_key("milvus_patches")
                .dist_field("sdist"),
        )
        .unwrap();
    let samples = v.samples().unwrap();
    assert!(!samples.is_empty() && samples.len() <= 3);
    assert_eq!(samples[0].id(), labels[4].0);
    let kept: usize = samples
        .iter()
        .map(|s| {
            s.detections("ground_truth")
                .unwrap()
                .unwrap()
                .detections
                .len()
        })
        .sum();
    assert_eq!(kept, 3, "only the 3 matched labels are kept");
    assert_eq!(
        ds.sample(&labels[4].0)
            .unwrap()
            .get("sdist")
            .and_then(|v| v.as_f64()),
        Some(0.0),
        "dist_field on samples works too"
    );

    // get_embeddings by sample ids and by label ids.
    let by_sample = index
        .get_embeddings(&[ids[3].clone()], MissingOptions::default())
        .unwrap();
    assert_eq!(by_sample.embeddings.nrows(), 3, "all patches of the sample");
    assert!(by_sample.sample_ids.iter().all(|s| *s == ids[3]));
    let lab = vec![labels[7].1.clone(), labels[2].1.clone()];
    let by_label = index
        .get_label_embeddings(&lab, MissingOptions::default())
        .unwrap();
    assert_eq!(by_label.label_ids.as_deref(), Some(&lab[..]));
    assert_eq!(by_label.embeddings.row(0), emb.row(7));

    // Removal by label and by sample.
    assert_eq!(
        index
            .remove_labels_from_index(&lab, MissingOptions::default())
            .unwrap(),
        2
    );
    assert_eq!(
        index
            .remove_from_index(&[ids[3].clone()], MissingOptions::default())
            .unwrap(),
        3
    );
    assert_eq!(index.total_index_size().unwrap(), n - 5);
    // A sample id is not a patch query.
    assert!(matches!(
        patches.sort_by_similarity(Query::id(&ids[1]), SortOptions::new().k(2)),
        Err(simile::Error::QueryIdsNotFound { .. })
    ));
}

#[test]
fn patch_index_from_per_sample_arrays_and_filtered_views() {
    let (_home, simile) = session();
    let (ds, ids, labels) = patch_dataset(&simile);
    let flat = random_array(labels.len(), 4, 8);
    let mut per_sample = Vec::new();
    let mut row = 0;
    for id in &ids {
        let k = labels.iter().filter(|(s, _)| s == id).count();
        per_sample.push(flat.slice(s![row..row + k, ..]).to_owned());
        row += k;
    }
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("p")
                .patches_field("ground_truth")
                .patch_embeddings(per_sample),
        )
        .unwrap();
    assert_eq!(
        index
            .get_label_embeddings(&[labels[5].1.clone()], MissingOptions::default())
            .unwrap()
            .embeddings
            .row(0),
        flat.row(5)
    );
    // A label-filtered view restricts the index (index_size counts the view's labels).
    let cats = ds.filter_labels(
        "ground_truth",
        simile::LabelFilter::LabelIn(vec!["cat".into()]),
    );
    let restricted = index.use_view(&cats);
    let cat_count = cats.label_ids("ground_truth").unwrap().len();
    assert_eq!(restricted.index_size().unwrap(), cat_count);
    let res = cats
        .to_patches("ground_truth")
        .sort_by_similarity(Query::vector(flat.row(0).to_vec()), SortOptions::new())
        .unwrap();
    let patches = res.patches().unwrap();
    assert_eq!(patches.len(), cat_count, "k=None: every patch of the view");
    assert!(patches.iter().all(|p| p.detection.label == "cat"));
    // Wrong shapes are typed errors.
    let bad: Vec<Array2<f32>> = vec![Array2::zeros((1, 4)); ids.len()];
    assert!(matches!(
        ds.compute_similarity(
            SimilarityOptions::new()
                .brain_key("q")
                .patches_field("ground_truth")
                .patch_embeddings(bad)
        ),
        Err(simile::Error::EmbeddingsCount { .. })
    ));
    assert!(!ds.has_brain_run("q").unwrap());
}
