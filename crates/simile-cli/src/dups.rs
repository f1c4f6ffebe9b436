//! Near-duplicates, uniqueness and exact duplicates from the shell:
//! `similarity duplicates | unique | plot-distances`, `brain uniqueness`,
//! `dataset exact-duplicates`.
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Map, Value};
use simile::{
    Duplicates, DuplicatesBy, DuplicatesMethod, DuplicatesSearch, Simile, UniquenessSource,
};

use crate::commands::plural;
use crate::KeyArgs;

#[derive(Args, Debug)]
pub struct DuplicatesArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Distance within which a later point is a duplicate of an earlier kept one (inclusive).
    #[arg(long, conflicts_with = "fraction")]
    pub thresh: Option<f64>,
    /// Mark this fraction of the points as duplicates (0 < F < 1); finds the threshold.
    /// Default without either: thresh 0.2 under cosine, fraction 0.01 otherwise.
    #[arg(long)]
    pub fraction: Option<f64>,
    /// Also tag the duplicates with this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// How pairs are searched: exact (every pair), clustered (inside k-means cells: every
    /// reported pair is exact, pairs split across cells can be missed; the recall measured on a
    /// sample is printed), or auto (clustered from 250,000 points).
    #[arg(long, value_enum, default_value_t = Search::Auto)]
    pub search: Search,
    /// Number of cells for --search clustered (default: about the square root of the size).
    #[arg(long, value_name = "N")]
    pub cells: Option<usize>,
}

/// `--search` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Exact below 250,000 points, clustered from there.
    Auto,
    /// Every pair (O(n²) work).
    Exact,
    /// Inside k-means cells.
    Clustered,
}

#[derive(Args, Debug)]
pub struct UniqueArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// How many of the most spread-out points to keep.
    #[arg(long)]
    pub count: usize,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Output file: .png or .svg (the extension picks the format).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of histogram bars.
    #[arg(long, default_value_t = 50)]
    pub bins: usize,
    /// Logarithmic count axis.
    #[arg(long)]
    pub log: bool,
    /// Draw a threshold line at this distance.
    #[arg(long)]
    pub thresh: Option<f64>,
}

#[derive(Args, Debug)]
pub struct UniquenessArgs {
    /// Dataset name.
    pub name: String,
    /// Use the vectors (and metric) of this sample similarity index.
    #[arg(long, group = "source")]
    pub brain_key: Option<String>,
    /// Use this vector field (cosine).
    #[arg(long, group = "source")]
    pub embeddings_field: Option<String>,
    /// Embed the samples with this model (cosine).
    #[arg(long, group = "source")]
    pub model: Option<String>,
    /// Field to write the scores to (also the run's brain key).
    #[arg(long, default_value = "uniqueness")]
    pub field: String,
}

#[derive(Args, Debug)]
pub struct ExactArgs {
    /// Dataset name.
    pub name: String,
}

fn index(simile: &Simile, key: &KeyArgs) -> Result<simile::SimilarityIndex> {
    let ds = simile.load_dataset(&key.name)?;
    let overrides = crate::commands::parse_sets(&key.set)?;
    Ok(ds.load_brain_results_with(&key.brain_key, &overrides)?)
}

fn duplicates_json(d: &Duplicates) -> Value {
    let mut neighbors = Map::new();
    for (u, dups) in &d.neighbors_map {
        neighbors.insert(
            u.clone(),
            dups.iter().map(|(id, x)| json!([id, x])).collect(),
        );
    }
    json!({"thresh": d.thresh, "unique_ids": d.unique_ids, "duplicate_ids": d.duplicate_ids, "neighbors": neighbors, "method": method_json(&d.method)})
}

fn method_json(m: &DuplicatesMethod) -> Value {
    match m {
        DuplicatesMethod::Exact => json!("exact"),
        DuplicatesMethod::Clustered { cells, recall } => json!({"clustered": {
            "cells": cells,
            "sampled_points": recall.sampled_rows,
            "near_pairs": recall.near_pairs,
            "seen_pairs": recall.same_cell,
            "recall": recall.ratio(),
        }}),
    }
}

pub fn duplicates(simile: &Simile, a: DuplicatesArgs, json: bool) -> Result<()> {
    let by = match (a.thresh, a.fraction) {
        (Some(t), _) => Some(DuplicatesBy::Thresh(t)),
        (None, Some(f)) => Some(DuplicatesBy::Fraction(f)),
        (None, None) => None,
    };
    let search = match (a.search, a.cells) {
        (Search::Clustered, cells) => DuplicatesSearch::Clustered { cells },
        (_, Some(_)) => bail!("--cells goes with --search clustered"),
        (Search::Exact, None) => DuplicatesSearch::Exact,
        (Search::Auto, None) => DuplicatesSearch::Auto,
    };
    if a.cells == Some(0) {
        bail!("--cells must be at least 1");
    }
    let index = index(simile, &a.key)?;
    let d = index.find_duplicates_with(by, search)?;
    if let Some(tag) = &a.tag {
        if index.patches_field().is_some() {
            bail!("--tag tags samples; this index holds patches");
        }
        index
            .dataset()
            .tag_samples(&d.duplicate_ids, std::slice::from_ref(tag))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&duplicates_json(&d))?);
        return Ok(());
    }
    println!(
        "thresh {}: {} kept, {} duplicates in {}",
        d.thresh,
        plural(d.unique_ids.len(), "point", "points"),
        d.duplicate_ids.len(),
        plural(d.neighbors_map.len(), "group", "groups"),
    );
    if let DuplicatesMethod::Clustered { cells, recall } = d.method {
        let seen = match recall.ratio() {
            Some(r) => format!(
                "{:.1} % of the {} near pairs of {} sampled points",
                100.0 * r,
                recall.near_pairs,
                recall.sampled_rows
            ),
            None => format!("no near pair among {} sampled points", recall.sampled_rows),
        };
        println!("searched inside {cells} cells (pairs split across cells can be missed): the cells saw {seen}");
    }
    for (u, dups) in &d.neighbors_map {
        println!("{u}");
        for (id, x) in dups {
            println!("  {id}  {x:.6}");
        }
    }
    if let Some(tag) = &a.tag {
        println!("tagged the duplicates '{tag}'");
    }
    Ok(())
}

pub fn unique(simile: &Simile, a: UniqueArgs, json: bool) -> Result<()> {
    let d = index(simile, &a.key)?.find_unique(a.count)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"thresh": d.thresh, "unique_ids": d.unique_ids}))?
        );
    } else {
        println!(
            "{} (thresh {})",
            plural(d.unique_ids.len(), "unique point", "unique points"),
            d.thresh
        );
        for id in &d.unique_ids {
            println!("{id}");
        }
    }
    Ok(())
}

pub fn plot_distances(simile: &Simile, a: PlotArgs, json: bool) -> Result<()> {
    let index = index(simile, &a.key)?;
    index.plot_distances_at(&a.out, a.bins, a.log, a.thresh)?;
    if json {
        println!("{}", json!({"out": a.out.display().to_string()}));
    } else {
        println!("wrote {}", a.out.display());
    }
    Ok(())
}

pub fn uniqueness(simile: &Simile, a: UniquenessArgs, json: bool) -> Result<()> {
    let source = match (a.brain_key, a.embeddings_field, a.model) {
        (Some(k), _, _) => UniquenessSource::BrainKey(k),
        (_, Some(f), _) => UniquenessSource::EmbeddingsField(f),
        (_, _, Some(m)) => UniquenessSource::Model(m),
        _ => {
            bail!("say where the embeddings come from: --brain-key, --embeddings-field or --model")
        }
    };
    let ds = simile.load_dataset(&a.name)?;
    let n = ds.view().compute_uniqueness(&a.field, source)?;
    if json {
        println!("{}", json!({"field": a.field, "scored": n}));
    } else {
        println!(
            "scored {} into '{}' (brain run '{}')",
            plural(n, "sample", "samples"),
            a.field,
            a.field
        );
    }
    Ok(())
}

pub fn exact_duplicates(simile: &Simile, a: ExactArgs, json: bool) -> Result<()> {
    let ds = simile.load_dataset(&a.name)?;
    let out = ds.view().compute_exact_duplicates()?;
    for (id, why) in &out.failed {
        eprintln!("warning: cannot read sample {id}: {why}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out.groups)?);
    } else if out.groups.is_empty() {
        println!("no two files have the same contents");
    } else {
        for (keep, dups) in &out.groups {
            println!("{keep}: {}", dups.join(" "));
        }
    }
    Ok(())
}
