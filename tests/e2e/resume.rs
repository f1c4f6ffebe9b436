//! Resumable embedding (issue 12): an embed into a field commits batch by batch; one that stops
//! part-way keeps what it committed and leaves the field marked incomplete until a rerun with
//! `skip_existing` embeds what is missing. Model: the committed tiny CLIP (random weights).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use simile::model::{EmbedError, EmbeddingModel, ImageInput, ItemError};
use simile::{
    EmbedOptions, Error, NewSample, Progress, RunFilter, SimilarityOptions, UniquenessSource,
};
use simile_e2e::{clip_session, write_images};

const MODEL: &str = "clip-tiny-random";

/// The same model under another name.
#[derive(Debug)]
struct Renamed(Arc<dyn EmbeddingModel>, &'static str);

impl EmbeddingModel for Renamed {
    fn name(&self) -> &str {
        self.1
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn supports_prompts(&self) -> bool {
        self.0.supports_prompts()
    }
    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<Result<Vec<f32>, ItemError>>, EmbedError> {
        self.0.embed_images(inputs)
    }
    fn embed_prompts(&self, prompts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.0.embed_prompts(prompts)
    }
}

/// A progress callback that remembers the largest `total` it was given: how many images the
/// call set out to embed (0 when it embedded none).
fn counting() -> (Progress, Arc<AtomicUsize>) {
    let total = Arc::new(AtomicUsize::new(0));
    let seen = total.clone();
    let p = Progress::new(move |_, t| {
        seen.fetch_max(t, Ordering::SeqCst);
    });
    (p, total)
}

#[test]
fn a_failure_mid_embed_keeps_the_committed_batches_and_marks_the_field_incomplete() {
    let (home, simile) = clip_session();
    let paths = write_images(&home.path().join("imgs"), 150);
    let ds = simile.create_dataset("d").unwrap();
    let ids = ds
        .add_samples(paths.iter().map(NewSample::new).collect())
        .unwrap();
    let model = simile.load_model(MODEL).unwrap();
    // With batch_size(1) a batch of commit is 64 images: image 100 is in the second one.
    let kept = home.path().join("kept.png");
    std::fs::rename(&paths[99], &kept).unwrap();
    let opts = || EmbedOptions::new().field("emb").batch_size(1);

    let err = ds
        .compute_embeddings(model.as_ref(), opts().skip_failures(false))
        .unwrap_err();
    assert!(
        matches!(&err, Error::SampleFailed { sample, .. } if sample == &ids[99]),
        "{err}"
    );
    let stored = ds.vectors("emb", &ids).unwrap();
    assert!(
        stored[..64].iter().all(Option::is_some),
        "the first batch is committed"
    );
    assert!(stored[64..].iter().all(Option::is_none), "nothing after it");
    let progress = ds
        .embed_progress("emb")
        .unwrap()
        .expect("marked incomplete");
    assert_eq!(
        (progress.done, progress.total, progress.model.as_str()),
        (64, 150, MODEL)
    );
    assert!(progress.replacing && progress.whole_dataset);
    assert_eq!(ds.unfinished_embeds().unwrap(), vec![progress]);

    // A half-done field is not taken for a complete one.
    let err = ds
        .compute_similarity(SimilarityOptions::new().embeddings_field("emb"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::IncompleteField { field, done: 64, total: 150, .. } if field == "emb"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'emb'") && msg.contains("--skip-existing"),
        "{msg}"
    );
    // Nor for uniqueness, which would score only the 64 samples it holds.
    let err = ds
        .view()
        .compute_uniqueness(
            "uniqueness",
            UniquenessSource::EmbeddingsField("emb".into()),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::IncompleteField { field, done: 64, total: 150, .. } if field == "emb"),
        "{err}"
    );
    assert!(ds.list_brain_runs(&RunFilter::new()).unwrap().is_empty());

    // The file is back: the rerun embeds only the 86 the first run did not commit.
    std::fs::rename(&kept, &paths[99]).unwrap();
    let (p, total) = counting();
    let resumed = ds
        .compute_embeddings(model.as_ref(), opts().skip_existing(true).progress(p))
        .unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 150 - 64);
    assert_eq!(resumed.sample_ids, ids);
    assert_eq!(ds.embed_progress("emb").unwrap(), None, "complete now");

    // The result equals a clean run.
    let clean = ds
        .compute_embeddings(model.as_ref(), EmbedOptions::new())
        .unwrap();
    let stored = ds.vectors("emb", &ids).unwrap();
    for (row, v) in clean.embeddings.rows().into_iter().zip(&stored) {
        let v = v.as_ref().unwrap();
        assert!(row.iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-5));
    }
    let index = ds
        .compute_similarity(SimilarityOptions::new().embeddings_field("emb"))
        .unwrap();
    assert_eq!(index.total_index_size().unwrap(), 150);
}

#[test]
fn compute_similarity_with_a_model_resumes_a_field_and_a_resume_keeps_to_one_model() {
    let (home, simile) = clip_session();
    let paths = write_images(&home.path().join("imgs"), 80);
    let ds = simile.create_dataset("d").unwrap();
    let ids = ds
        .add_samples(paths.iter().map(NewSample::new).collect())
        .unwrap();
    let model = simile.load_model(MODEL).unwrap();
    let kept = home.path().join("kept.png");
    std::fs::rename(&paths[70], &kept).unwrap();
    let err = ds
        .compute_similarity(
            SimilarityOptions::new()
                .model(MODEL)
                .embeddings_field("emb")
                .batch_size(1)
                .skip_failures(false),
        )
        .unwrap_err();
    assert!(matches!(err, Error::SampleFailed { .. }), "{err}");
    assert_eq!(ds.embed_progress("emb").unwrap().unwrap().done, 64);
    assert!(ds.list_brain_runs(&RunFilter::new()).unwrap().is_empty());

    // Resuming with another model would mix two models' vectors in one field.
    let other = Renamed(model.clone(), "another-model");
    let err = ds
        .compute_embeddings(&other, EmbedOptions::new().field("emb").skip_existing(true))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ResumeWithAnotherModel { started_with, .. } if started_with == MODEL),
        "{err}"
    );

    // The same compute again fills only what is missing, then indexes everything.
    std::fs::rename(&kept, &paths[70]).unwrap();
    let (p, total) = counting();
    let index = ds
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("sim")
                .model(MODEL)
                .embeddings_field("emb")
                .batch_size(1)
                .progress(p),
        )
        .unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 80 - 64);
    assert_eq!(index.total_index_size().unwrap(), 80);
    assert_eq!(ds.embed_progress("emb").unwrap(), None);
    assert!(ds.vectors("emb", &ids).unwrap().iter().all(Option::is_some));

    // Deleting the field forgets an unfinished embed into it.
    std::fs::remove_file(&paths[70]).unwrap();
    ds.compute_embeddings(
        model.as_ref(),
        EmbedOptions::new()
            .field("emb2")
            .batch_size(1)
            .skip_failures(false),
    )
    .unwrap_err();
    assert!(ds.embed_progress("emb2").unwrap().is_some());
    ds.delete_field("emb2").unwrap();
    assert!(ds.unfinished_embeds().unwrap().is_empty());
}
