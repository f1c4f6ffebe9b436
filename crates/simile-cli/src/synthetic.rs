//! `simile quickstart --synthetic`: the spec's basic recipe on precomputed vectors, no model.
//!
//! It generates a demo dataset with precomputed embeddings (10 classes of clustered vectors
//! plus a few near-duplicates; deterministic), builds an index, queries it by sample id, by
//! several ids, by vector and within a view, maintains it, and cleans up.
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use simile::{FieldValue, NewSample, Query, RunFilter, SimilarityOptions, Simile, SortOptions};

const CLASSES: &[&str] = &[
    "airplane", "bird", "car", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
];

pub fn run(simile: &Simile, args: &crate::quickstart::QuickstartArgs, json: bool) -> Result<()> {
    let name = "quickstart-demo";
    if simile.dataset_exists(name)? {
        let old = simile.load_dataset(name)?;
        for key in old.list_brain_runs(&RunFilter::new())? {
            if let Ok(index) = old.load_brain_results(&key) {
                index.cleanup()?;
            }
        }
        simile.delete_dataset(name)?;
    }
    let mut log = Vec::new();
    let mut say = |line: String| {
        if !json {
            println!("{line}");
        }
        log.push(line);
    };

    // Step 1: a dataset.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(51);
    let centers: Vec<Vec<f32>> = (0..CLASSES.len())
        .map(|_| (0..args.dim).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let mut samples = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let class = i % CLASSES.len();
        let noise = if i % 37 == 5 { 0.01 } else { 0.45 };
        let v: Vec<f32> = centers[class]
            .iter()
            .map(|c| c + rng.random_range(-noise..noise))
            .collect();
        samples.push(
            NewSample::new(format!(
                "{}/quickstart/{:04}_{}.jpg",
                simile.home().display(),
                i,
                CLASSES[class]
            ))
            .with_field("label", json!(CLASSES[class]))
            .with_field("embeddings", FieldValue::Vector(v)),
        );
    }
    let dataset = simile.create_dataset(name)?;
    let ids = dataset.add_samples(samples)?;
    say(format!(
        "Step 1: dataset '{name}' with {} samples ({} classes)",
        ids.len(),
        CLASSES.len()
    ));

    // Steps 2 + 3: an index from the embeddings field, on the embedded default backend.
    let index = dataset.compute_similarity(
        SimilarityOptions::new()
            .brain_key("img_sim")
            .embeddings_field("embeddings"),
    )?;
    say(format!(
        "Steps 2-3: index 'img_sim' on the {} backend ({}), {} vectors",
        index.backend_name(),
        index.metric(),
        index.total_index_size()?
    ));

    // Step 4: queries.
    let first = dataset
        .view()
        .first()?
        .context("the demo dataset is empty")?;
    let first_label = first.get("label").cloned().unwrap_or(Value::Null);
    let view = dataset.sort_by_similarity(
        Query::id(first.id()),
        SortOptions::new().k(10).brain_key("img_sim"),
    )?;
    let labels = view.values("label")?;
    let same = labels
        .iter()
        .filter(|l| l.as_ref() == Some(&first_label))
        .count();
    say(format!(
        "Step 4: the 10 samples most similar to {} ({first_label}):",
        first.id()
    ));
    let (rids, dists) = view
        .similarity()
        .map(|(i, d)| (i.to_vec(), d.to_vec()))
        .unwrap_or_default();
    for ((id, d), l) in rids.iter().zip(&dists).zip(&labels) {
        say(format!(
            "    {id}  distance {d:.4}  {}",
            l.as_ref().and_then(Value::as_str).unwrap_or("?")
        ));
    }
    say(format!("    {same}/10 share the query's class"));

    let two = dataset.sort_by_similarity(
        Query::ids([ids[0].clone(), ids[3].clone()]),
        SortOptions::new().k(5),
    )?;
    say(format!(
        "  by two ids (an airplane and a cat, their mean): {:?}",
        labels_of(&two)?
    ));

    let by_vector =
        dataset.sort_by_similarity(Query::vector(centers[3].clone()), SortOptions::new().k(5))?;
    say(format!(
        "  by vector (the 'cat' centre): {:?}",
        labels_of(&by_vector)?
    ));

    let subset = dataset.take(50, Some(51));
    let near = subset.sort_by_similarity(
        Query::id(first.id()),
        SortOptions::new().k(5).dist_field("dist"),
    )?;
    let subset_ids: std::collections::HashSet<String> = subset.ids()?.into_iter().collect();
    let inside = near
        .ids()?
        .iter()
        .filter(|i| subset_ids.contains(*i))
        .count();
    say(format!(
        "  within a 50-sample view: {} results, {inside} of them from the view",
        near.len()?
    ));

    // Maintenance: remove 10, add 20 (upsert), read back.
    let removed: Vec<String> = dataset.take(10, Some(7)).ids()?;
    index.remove_from_index(&removed, Default::default())?;
    let new_ids = dataset.add_samples(
        (0..20)
            .map(|i| NewSample::new(format!("tmp{i}.jpg")))
            .collect(),
    )?;
    let extra = simile::ndarray::Array2::from_shape_fn((20, args.dim), |(r, c)| {
        centers[r % CLASSES.len()][c]
    });
    index.add_to_index(extra.view(), &new_ids, None, Default::default())?;
    say(format!(
        "  removed 10 and added 20: total_index_size {} (was {})",
        index.total_index_size()?,
        ids.len()
    ));
    let got = index.get_embeddings(&ids[..10], Default::default())?;
    say(format!(
        "  get_embeddings(10 ids): {:?}",
        got.embeddings.shape()
    ));

    // Managing brain runs.
    say(format!(
        "Brain runs: {:?}",
        dataset.list_brain_runs(&RunFilter::similarity())?
    ));
    let info = dataset.get_brain_info("img_sim")?;
    say(format!(
        "  info: backend {}, metric {}",
        info.method,
        info.config
            .get("metric")
            .and_then(Value::as_str)
            .unwrap_or("?")
    ));

    // Step 5: cleanup.
    if args.keep {
        say(format!(
            "Kept dataset '{name}' and index 'img_sim' (--keep)"
        ));
    } else {
        index.cleanup()?;
        dataset.delete_brain_run("img_sim")?;
        simile.delete_dataset(name)?;
        say("Step 5: index data deleted, run record deleted, dataset deleted".to_string());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"log": log, "same_class_in_top10": same}))?
        );
    }
    Ok(())
}

fn labels_of(view: &simile::View) -> Result<Vec<String>> {
    Ok(view
        .values("label")?
        .into_iter()
        .map(|l| {
            l.and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect())
}
