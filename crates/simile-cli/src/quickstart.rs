//! `simile quickstart`: the spec's whole recipe on the offline quickstart dataset with the
//! embedded default backend: load → embeddings (CLIP) → index → queries by sample id, patch id,
//! vector and text prompt → print → cleanup.
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use simile::{MissingOptions, Query, RunFilter, SimilarityOptions, Simile, SortOptions};

use crate::commands::{bar_progress, progress_bar};

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Model to embed with. Default: clip-vit-base32-torch when it is available locally
    /// (SIMILE_MODELS_DIR or the model cache), else clip-tiny-random (RANDOM weights).
    #[arg(long)]
    pub model: Option<String>,
    /// Run on generated vectors instead (no model, no images).
    #[arg(long)]
    pub synthetic: bool,
    /// With --synthetic: number of samples.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// With --synthetic: embedding dimension.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Keep the indexes afterwards (default: clean them up at the end).
    #[arg(long)]
    pub keep: bool,
}

const RANDOM_MODEL: &str = "clip-tiny-random";
const REAL_MODEL: &str = "clip-vit-base32-torch";

fn pick_model(simile: &Simile, asked: Option<&str>) -> Result<(String, bool)> {
    if let Some(m) = asked {
        return Ok((m.to_string(), m.contains("random")));
    }
    // Only what is already on disk: the quickstart never waits on a download.
    let s = simile.settings();
    let opts = simile::model::ModelOptions {
        ort_dylib_path: s.ort_dylib_path.clone(),
        models_dir: s.models_dir.clone(),
        cache_dir: s.model_cache_dir.clone(),
        batch_size: 16,
        threads: 0,
        offline: true,
    };
    match simile::model::load_model(REAL_MODEL, &opts) {
        Ok(_) => Ok((REAL_MODEL.to_string(), false)),
        Err(_) => Ok((RANDOM_MODEL.to_string(), true)),
    }
}

pub fn run(simile: &Simile, args: QuickstartArgs, json: bool) -> Result<()> {
    if args.synthetic {
        return crate::synthetic::run(simile, &args, json);
    }
    let mut log: Vec<String> = Vec::new();
    let mut say = |line: String| {
        if !json {
            println!("{line}");
        }
        log.push(line);
    };

    // Step 1: the dataset.
    let dataset = simile.load_zoo_dataset("quickstart")?;
    for key in ["img_sim", "gt_patches"] {
        if dataset.has_brain_run(key)? {
            // A previous run kept its indexes (--keep): start clean.
            dataset.load_brain_results(key)?.cleanup()?;
            dataset.delete_brain_run(key)?;
        }
    }
    say(format!(
        "Step 1: dataset 'quickstart': {} generated images with ground_truth detections (offline)",
        dataset.len()?
    ));

    // Steps 2 + 3: embeddings and an index, on the embedded default backend.
    let (model, random) = pick_model(simile, args.model.as_deref())?;
    if random {
        say(format!(
            "  model {model}: RANDOM WEIGHTS (no pretrained CLIP here) - rankings show the mechanics, not semantics; \
             put clip-vit-base32-torch in SIMILE_MODELS_DIR for real results"
        ));
    }
    let bar = progress_bar(json, "embedding images");
    let index = dataset.compute_similarity(
        SimilarityOptions::new()
            .brain_key("img_sim")
            .model(&model)
            .progress(bar_progress(&bar)),
    );
    bar.finish_and_clear();
    let index = index?;
    say(format!(
        "Steps 2-3: index 'img_sim' ({} backend, {}), {} images, model {model}",
        index.backend_name(),
        index.metric(),
        index.total_index_size()?
    ));

    // Step 4: query by sample id.
    let first = dataset
        .view()
        .first()?
        .context("the quickstart dataset is empty")?;
    let view = dataset.sort_by_similarity(
        Query::id(first.id()),
        SortOptions::new().k(10).brain_key("img_sim"),
    )?;
    say(format!(
        "Step 4: the 10 images most similar to {}:",
        first.id()
    ));
    print_samples(&view, &mut say)?;

    // Near-duplicates find each other.
    let dups = dataset
        .match_field(simile::Filter::Exists("near_duplicate_of".into()))
        .samples()?;
    let mut found = 0;
    for d in &dups {
        let original = d
            .get("near_duplicate_of")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let near = dataset.sort_by_similarity(
            Query::id(d.id()),
            SortOptions::new().k(2).brain_key("img_sim"),
        )?;
        if near.ids()?.get(1) == Some(&original) {
            found += 1;
        }
    }
    say(format!(
        "  near-duplicates: {found}/{} have their original as nearest neighbour",
        dups.len()
    ));

    // By vector: a stored embedding, slightly moved.
    let got = index.get_embeddings(&[first.id().to_string()], MissingOptions::default())?;
    let v: Vec<f32> = got
        .embeddings
        .row(0)
        .iter()
        .map(|x| x * 1.01 + 0.001)
        .collect();
    let by_vec = dataset.sort_by_similarity(
        Query::vector(v),
        SortOptions::new().k(3).brain_key("img_sim"),
    )?;
    say(format!(
        "  by vector (image 1's embedding, nudged): top result {}",
        by_vec.ids()?.first().cloned().unwrap_or_default()
    ));

    // By text prompt.
    let prompt = "a photo of a red circle";
    let by_text = dataset.sort_by_similarity(
        Query::text(prompt),
        SortOptions::new().k(5).brain_key("img_sim"),
    )?;
    say(format!("  by text prompt {prompt:?}:"));
    print_samples(&by_text, &mut say)?;

    // A patch index: one vector per ground_truth detection, queried by patch id.
    let bar = progress_bar(json, "embedding patches");
    let patches_index = dataset.compute_similarity(
        SimilarityOptions::new()
            .brain_key("gt_patches")
            .model(&model)
            .patches_field("ground_truth")
            .progress(bar_progress(&bar)),
    );
    bar.finish_and_clear();
    let patches_index = patches_index?;
    let patches = dataset.to_patches("ground_truth");
    let query_patch = patches.first()?.context("no ground_truth patches")?;
    let res = patches.sort_by_similarity(
        Query::id(&query_patch.id),
        SortOptions::new().k(5).brain_key("gt_patches"),
    )?;
    say(format!(
        "  patch index 'gt_patches': {} patches; the 5 most similar to patch {} ({}):",
        patches_index.total_index_size()?,
        query_patch.id,
        query_patch.detection.label
    ));
    let (ids, dists) = res
        .similarity()
        .map(|(i, d)| (i.to_vec(), d.to_vec()))
        .unwrap_or_default();
    let by_id: std::collections::HashMap<String, simile::Patch> = res
        .patches()?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    for (id, d) in ids.iter().zip(&dists) {
        if let Some(p) = by_id.get(id) {
            say(format!(
                "    {id}  {d:>8.4}  {:<8} in {}",
                p.detection.label,
                p.filepath.display()
            ));
        }
    }

    say(format!(
        "Brain runs: {:?}",
        dataset.list_brain_runs(&RunFilter::similarity())?
    ));
    // Step 5: cleanup.
    if args.keep {
        say("Kept the indexes 'img_sim' and 'gt_patches' (--keep)".into());
    } else {
        index.cleanup()?;
        dataset.delete_brain_run("img_sim")?;
        patches_index.cleanup()?;
        dataset.delete_brain_run("gt_patches")?;
        say("Step 5: index data and run records deleted (the quickstart dataset stays)".into());
    }
    say(format!(
        "Look at it in the App: `simile app --dataset quickstart` (from a checkout: `cargo xtask app --dataset quickstart`), then open http://127.0.0.1:5151/?dataset=quickstart{}",
        if args.keep {
            ""
        } else {
            ". Run the quickstart with --keep to sort by similarity there too"
        }
    ));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"log": log, "model": model, "random_weights": random,
                "near_duplicates_found": found, "near_duplicates": dups.len()})
            )?
        );
    }
    Ok(())
}

fn print_samples(view: &simile::View, say: &mut impl FnMut(String)) -> Result<()> {
    let (ids, dists) = view
        .similarity()
        .map(|(i, d)| (i.to_vec(), d.to_vec()))
        .unwrap_or_default();
    let samples: std::collections::HashMap<String, simile::Sample> = view
        .samples()?
        .into_iter()
        .map(|s| (s.id().to_string(), s))
        .collect();
    for (id, d) in ids.iter().zip(&dists) {
        let Some(s) = samples.get(id) else { continue };
        let labels: Vec<String> = s
            .detections("ground_truth")?
            .map(|d| d.detections.into_iter().map(|x| x.label).collect())
            .unwrap_or_default();
        say(format!(
            "    {id}  {d:>8.4}  {}  [{}]",
            s.filepath()
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            labels.join(", ")
        ));
    }
    Ok(())
}
