//! Inputs the facade used to crash on or silently accept (issue 12): each is a typed error and
//! changes nothing.
use std::sync::Arc;

use serde_json::json;
use simile::model::{EmbedError, EmbeddingModel, ImageInput, ItemError};
use simile::{
    AddOptions, BrainConfig, DatasetError, Detection, Detections, EmbedOptions, Error, NewSample,
    Query, Settings, SimilarityOptions, Simile, SortOptions,
};
use simile_e2e::{dataset_with, random_array, session};

#[test]
fn add_to_index_refuses_sample_ids_that_are_not_in_the_dataset() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 6, 4);
    let index = dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(emb))
        .unwrap();
    dataset.delete_samples(&ids[5..]).unwrap();
    let before = index.get_all_embeddings().unwrap();
    let absent = "0123456789abcdef01234567".to_string();
    let cases: [(Vec<String>, Vec<&str>); 3] = [
        (vec![ids[0].clone(), "xyz".into()], vec!["xyz"]),
        (vec![absent.clone(), ids[1].clone()], vec![absent.as_str()]),
        (vec![ids[5].clone(), ids[5].clone()], vec![ids[5].as_str()]),
    ];
    for (asked, missing) in cases {
        let rows = random_array(asked.len(), 4, 7);
        let err = index
            .add_to_index(rows.view(), &asked, None, AddOptions::default())
            .unwrap_err();
        match &err {
            Error::UnknownSampleIds {
                dataset,
                count,
                ids,
            } => {
                assert_eq!(dataset, "d");
                assert_eq!(*count, missing.len());
                assert_eq!(ids, &missing);
            }
            other => panic!("{asked:?}: {other:?}"),
        }
        assert!(err.to_string().contains(missing[0]), "{err}");
    }
    assert_eq!(index.get_all_embeddings().unwrap(), before, "nothing added");
}

#[test]
fn add_to_a_patch_index_refuses_labels_of_other_samples() {
    let (_home, simile) = session();
    let ds = simile.create_dataset("p").unwrap();
    let det = |l: &str| Detection::new(l, [0.1, 0.1, 0.2, 0.2]).unwrap();
    let ids = ds
        .add_samples(vec![
            NewSample::new("a.jpg").with_field("gt", Detections::new(vec![det("cat")])),
            NewSample::new("b.jpg").with_field("gt", Detections::new(vec![det("dog")])),
        ])
        .unwrap();
    let labels = ds.view().label_ids("gt").unwrap();
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .patches_field("gt")
                .no_embeddings(),
        )
        .unwrap();
    let rows = random_array(1, 4, 1);
    // The label of sample b given with sample a.
    let err = index
        .add_to_index(
            rows.view(),
            &ids[..1],
            Some(&[labels[1].1.clone()]),
            AddOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownLabelIds { field, ids: l, .. } if field == "gt" && l == &[labels[1].1.clone()]),
        "{err:?}"
    );
    assert_eq!(index.total_index_size().unwrap(), 0);
    index
        .add_to_index(
            rows.view(),
            &ids[..1],
            Some(&[labels[0].1.clone()]),
            AddOptions::default(),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 1);
}

#[test]
fn unknown_backend_parameters_and_a_blank_backend_are_refused() {
    let (_home, simile) = session();
    let (dataset, _ids, emb) = dataset_with(&simile, "d", 4, 4);
    let err = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone())
                .set("bogus_param", 1),
        )
        .unwrap_err();
    match &err {
        Error::UnknownParams {
            backend,
            unknown,
            known,
        } => {
            assert_eq!(backend, "sklearn");
            assert_eq!(unknown, &["bogus_param"]);
            assert_eq!(known, &["metric"]);
        }
        other => panic!("{other:?}"),
    }
    let err = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .backend("milvus")
                .no_embeddings()
                .set("colection_name", "x"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownParams { known, .. } if known.iter().any(|k| k == "collection_name")),
        "{err:?}"
    );
    for blank in ["", "  "] {
        let err = dataset
            .compute_similarity(
                SimilarityOptions::new()
                    .backend(blank)
                    .embeddings(emb.clone()),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownBackend { name, available } if name == blank && available.len() >= 2),
            "{err:?}"
        );
    }
    assert!(dataset
        .list_brain_runs(&simile::RunFilter::new())
        .unwrap()
        .is_empty());
    // Load-time overrides are checked too.
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(emb))
        .unwrap();
    let mut bogus = serde_json::Map::new();
    bogus.insert("bogus_param".into(), json!("1"));
    assert!(matches!(
        dataset.load_brain_results_with("k", &bogus),
        Err(Error::UnknownParams { .. })
    ));
}

#[test]
fn brain_config_parameters_are_checked_and_config_cls_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let open = |params: serde_json::Value| {
        let mut config = BrainConfig::default();
        config
            .similarity_backends
            .insert("sklearn".into(), params.as_object().unwrap().clone());
        Simile::builder()
            .settings(Settings::for_home(dir.path()))
            .brain_config(config)
            .open()
            .unwrap()
    };
    let fiftyone_style = open(json!({
        "config_cls": "fiftyone.brain.internal.core.sklearn.SklearnSimilarityConfig",
        "metric": "euclidean",
    }));
    let (dataset, _ids, emb) = dataset_with(&fiftyone_style, "d", 4, 4);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .embeddings(emb.clone()),
        )
        .unwrap();
    assert_eq!(index.metric(), simile::Metric::Euclidean);
    let typo = open(json!({"metirc": "euclidean"}));
    let err = typo
        .load_dataset("d")
        .unwrap()
        .compute_similarity(SimilarityOptions::new().brain_key("k2").embeddings(emb))
        .unwrap_err();
    assert!(err.to_string().contains("'metirc'"), "{err}");
}

#[test]
fn a_dist_field_never_clobbers_another_field() {
    let (_home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 5, 4);
    let meta = json!({"width": 640});
    dataset
        .set_values("metadata", vec![(ids[1].clone(), meta.clone().into())])
        .unwrap();
    dataset
        .compute_similarity(SimilarityOptions::new().brain_key("k").embeddings(emb))
        .unwrap();
    let sort = |field: &str| {
        dataset.sort_by_similarity(
            Query::id(&ids[0]),
            SortOptions::new().brain_key("k").dist_field(field),
        )
    };
    let err = sort("metadata").unwrap_err();
    assert!(
        matches!(&err, Error::Dataset(DatasetError::NotADistanceField { field, .. }) if field == "metadata"),
        "{err:?}"
    );
    assert_eq!(
        dataset.sample(&ids[1]).unwrap().get("metadata"),
        Some(&meta)
    );
    assert!(dataset.sample(&ids[0]).unwrap().get("metadata").is_none());
    // A new field, then the same one again.
    sort("dist").unwrap();
    sort("dist").unwrap();
    assert_eq!(
        dataset.sample(&ids[0]).unwrap().get("dist"),
        Some(&json!(0.0))
    );
}

#[test]
fn a_patch_dist_field_never_clobbers_a_label_attribute() {
    let (_home, simile) = session();
    let ds = simile.create_dataset("p").unwrap();
    let dets: Vec<Detection> = (0..3)
        .map(|i| Detection::new("cat", [0.1 * f64::from(i), 0.1, 0.2, 0.2]).unwrap())
        .collect();
    ds.add_samples(vec![
        NewSample::new("a.jpg").with_field("gt", Detections::new(dets))
    ])
    .unwrap();
    let labels = ds.view().label_ids("gt").unwrap();
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("k")
            .patches_field("gt")
            .embeddings(random_array(3, 4, 2)),
    )
    .unwrap();
    let patches = ds.to_patches("gt");
    for own in ["label", "confidence"] {
        let err = patches
            .sort_by_similarity(
                Query::id(&labels[0].1),
                SortOptions::new().brain_key("k").dist_field(own),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Dataset(DatasetError::NotADistanceField { .. })),
            "{own}: {err:?}"
        );
    }
    let before = ds.view().first().unwrap().unwrap();
    assert_eq!(
        before.detections("gt").unwrap().unwrap().detections[0].label,
        "cat"
    );
    patches
        .sort_by_similarity(
            Query::id(&labels[0].1),
            SortOptions::new().brain_key("k").dist_field("dist"),
        )
        .unwrap();
}

#[test]
fn an_npy_header_claiming_a_huge_shape_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npy");
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000, 4000000), }".to_string();
    // Padded like numpy: magic, version, length and header fill whole 64-byte blocks.
    header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&path, bytes).unwrap();
    let err = simile::npy::read_npy(&path).unwrap_err();
    assert!(matches!(err, Error::Npy { .. }), "{err:?}");
    assert!(err.to_string().contains("64000000000000 bytes"), "{err}");
}

/// A model that is never asked to embed anything in these tests.
#[derive(Debug)]
struct Unused;

impl EmbeddingModel for Unused {
    fn name(&self) -> &str {
        "unused"
    }
    fn dim(&self) -> usize {
        2
    }
    fn supports_prompts(&self) -> bool {
        false
    }
    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<Result<Vec<f32>, ItemError>>, EmbedError> {
        Ok(inputs.iter().map(|_| Ok(vec![1.0, 0.0])).collect())
    }
    fn embed_prompts(&self, _prompts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_batch_size_of_zero_is_refused() {
    let (_home, simile) = session();
    let (dataset, _ids, _emb) = dataset_with(&simile, "d", 3, 2);
    let err = dataset
        .compute_embeddings(&Unused, EmbedOptions::new().field("e").batch_size(0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "batch_size",
                ..
            }
        ),
        "{err:?}"
    );
    let err = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .model_instance(Arc::new(Unused))
                .batch_size(0),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    assert!(
        !dataset.schema().unwrap().contains_key("e"),
        "nothing written"
    );
    // Sanity: the same calls work with a batch size of 1.
    dataset
        .compute_embeddings(&Unused, EmbedOptions::new().field("e").batch_size(1))
        .unwrap();
}
