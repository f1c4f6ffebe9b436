//! The spec's model paths with the committed tiny CLIP. Its weights are RANDOM (no pretrained
//! weights can be had here): the tests check mechanics and consistency, not semantics.
use simile::{EmbedOptions, MissingOptions, NewSample, Query, SimilarityOptions, SortOptions};
use simile_e2e::{clip_session, write_images};

const MODEL: &str = "clip-tiny-random";

#[test]
fn compute_similarity_with_a_model_and_text_prompts() {
    let (home, simile) = clip_session();
    let paths = write_images(&home.path().join("imgs"), 10);
    let ds = simile.create_dataset("d").unwrap();
    let mut samples: Vec<NewSample> = paths.iter().map(NewSample::new).collect();
    samples.push(NewSample::new(home.path().join("missing.png")));
    let ids = ds.add_samples(samples).unwrap();

    // Option 1: a model by name; the missing image is skipped.
    let index = ds
        .compute_similarity(SimilarityOptions::new().brain_key("clip").model(MODEL))
        .unwrap();
    assert_eq!(
        index.total_index_size().unwrap(),
        10,
        "the unreadable sample is skipped"
    );
    assert!(index.supports_prompts());
    assert_eq!(
        ds.get_brain_info("clip")
            .unwrap()
            .config
            .get("model")
            .and_then(|m| m.as_str()),
        Some(MODEL)
    );
    let v = ds
        .sort_by_similarity(Query::text("a photo of a dog"), SortOptions::new().k(5))
        .unwrap();
    assert_eq!(v.len().unwrap(), 5);
    let v = ds
        .sort_by_similarity(Query::id(&ids[2]), SortOptions::new().k(2))
        .unwrap();
    assert_eq!(v.ids().unwrap()[0], ids[2]);

    // Options 3 and 4: compute_embeddings (array, and into a field), then index them.
    let model = simile.load_model(MODEL).unwrap();
    let computed = ds
        .compute_embeddings(model.as_ref(), EmbedOptions::new().field("embeddings"))
        .unwrap();
    assert_eq!(computed.embeddings.nrows(), 10);
    assert_eq!(computed.sample_ids, ids[..10].to_vec());
    let from_model = index
        .get_embeddings(&ids[..10], MissingOptions::default())
        .unwrap();
    for (a, b) in computed.embeddings.iter().zip(from_model.embeddings.iter()) {
        assert!(
            (a - b).abs() < 1e-4,
            "the same model gives the same vectors"
        );
    }
    let by_field = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("by_field")
                .embeddings_field("embeddings"),
        )
        .unwrap();
    assert_eq!(by_field.total_index_size().unwrap(), 10);
    // skip_existing: nothing is recomputed, the stored vectors come back.
    let again = ds
        .compute_embeddings(
            model.as_ref(),
            EmbedOptions::new().field("embeddings").skip_existing(true),
        )
        .unwrap();
    assert_eq!(again.embeddings, computed.embeddings);

    // Prompts work after a reload in a new session (the model is loaded by its stored name).
    let other = simile_e2e::open(home.path());
    let err = other.load_dataset("d").unwrap().sort_by_similarity(
        Query::text("kites"),
        SortOptions::new().k(3).brain_key("clip"),
    );
    // That session has no ONNX Runtime path configured unless the process environment gives one;
    // either it works or the error is typed (never a panic).
    match err {
        Ok(v) => assert_eq!(v.len().unwrap(), 3),
        Err(e) => assert!(matches!(e, simile::Error::Model { .. }), "{e:?}"),
    }
    // A text query on an index without a model is a typed error.
    let e = ds
        .sort_by_similarity(
            Query::text("a dog"),
            SortOptions::new().k(3).brain_key("by_field"),
        )
        .unwrap_err();
    assert!(
        matches!(e, simile::Error::PromptsNotSupported { .. }),
        "{e:?}"
    );
}

#[test]
fn failures_and_index_compute_embeddings() {
    let (home, simile) = clip_session();
    let paths = write_images(&home.path().join("imgs"), 6);
    let ds = simile.create_dataset("d").unwrap();
    let mut samples: Vec<NewSample> = paths.iter().map(NewSample::new).collect();
    let corrupt = home.path().join("corrupt.png");
    std::fs::write(&corrupt, b"not a png").unwrap();
    samples.push(NewSample::new(&corrupt));
    ds.add_samples(samples).unwrap();
    // skip_failures(false): a typed error naming the sample; nothing registered.
    let e = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .model(MODEL)
                .skip_failures(false),
        )
        .unwrap_err();
    assert!(matches!(e, simile::Error::SampleFailed { .. }), "{e:?}");
    assert!(!ds.has_brain_run("k").unwrap());
    // "Advanced usage": an empty index with a model, filled from index.compute_embeddings(view).
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("k")
                .model(MODEL)
                .no_embeddings()
                .metric(simile::Metric::Euclidean),
        )
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 0);
    let view = ds.limit(4);
    let e = index
        .compute_embeddings(&view, EmbedOptions::new())
        .unwrap();
    assert_eq!(e.embeddings.nrows(), 4);
    index
        .add_to_index(e.embeddings.view(), &e.sample_ids, None, Default::default())
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 4);
    // Unknown model names are typed errors that say how to provide a model.
    let e = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("z")
                .model("no-such-model"),
        )
        .unwrap_err();
    assert!(matches!(e, simile::Error::Model { .. }), "{e:?}");
}

#[test]
fn patch_index_from_a_model() {
    let (home, simile) = clip_session();
    let paths = write_images(&home.path().join("imgs"), 4);
    let ds = simile.create_dataset("d").unwrap();
    let samples = paths
        .iter()
        .map(|p| {
            let dets = vec![
                simile::Detection::new("a", [0.0, 0.0, 0.5, 0.5]).unwrap(),
                simile::Detection::new("b", [0.4, 0.3, 0.5, 0.6]).unwrap(),
            ];
            NewSample::new(p).with_field("ground_truth", simile::Detections::new(dets))
        })
        .collect();
    ds.add_samples(samples).unwrap();
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("patches")
                .model(MODEL)
                .patches_field("ground_truth"),
        )
        .unwrap();
    assert_eq!(
        index.total_index_size().unwrap(),
        8,
        "one crop per detection"
    );
    let labels = ds.view().label_ids("ground_truth").unwrap();
    let res = ds
        .to_patches("ground_truth")
        .sort_by_similarity(Query::id(&labels[1].1), SortOptions::new().k(3))
        .unwrap();
    assert_eq!(res.ids().unwrap()[0], labels[1].1);
    let res = ds
        .to_patches("ground_truth")
        .sort_by_similarity(Query::text("a red square"), SortOptions::new().k(3))
        .unwrap();
    assert_eq!(res.len().unwrap(), 3);
}
