//! `simile similarity ...`: build, query and maintain similarity indexes.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use simile::{AddOptions, MissingOptions, Query, SimilarityOptions, Simile, SortOptions};

use super::{bar_progress, parse_sets, plural, print_json, progress_bar};
use crate::{KeyArgs, SimilarityCmd};

fn load_index(
    simile: &Simile,
    key: &KeyArgs,
) -> Result<(simile::Dataset, simile::SimilarityIndex)> {
    let ds = simile.load_dataset(&key.name)?;
    let overrides = parse_sets(&key.set)?;
    let index = ds.load_brain_results_with(&key.brain_key, &overrides)?;
    Ok((ds, index))
}

pub(super) fn similarity(simile: &Simile, cmd: SimilarityCmd, json: bool) -> Result<()> {
    match cmd {
        SimilarityCmd::Compute {
            name,
            brain_key,
            backend,
            embeddings,
            embeddings_field,
            no_embeddings,
            model,
            patches_field,
            metric,
            set,
            view,
        } => {
            let ds = view.apply(&simile.load_dataset(&name)?)?;
            let mut opts = SimilarityOptions::new().brain_key(&brain_key);
            if let Some(b) = backend {
                opts = opts.backend(b.name());
            }
            for (k, v) in parse_sets(&set)? {
                opts = opts.set(k, v);
            }
            if let Some(m) = metric {
                opts = opts.set("metric", m.name());
            }
            if let Some(p) = patches_field {
                opts = opts.patches_field(p);
            }
            let bar = progress_bar(json, "embedding");
            if let Some(m) = model {
                opts = opts.model(m).progress(bar_progress(&bar));
            }
            if let Some(path) = embeddings {
                // Streamed: read in row batches straight into the index, never whole.
                opts = opts.embeddings_npy(path);
            } else if let Some(f) = embeddings_field {
                opts = opts.embeddings_field(f);
            } else if no_embeddings {
                opts = opts.no_embeddings();
            }
            let index = ds.compute_similarity(opts);
            bar.finish_and_clear();
            let index = index?;
            let out = json!({
                "brain_key": brain_key,
                "backend": index.backend_name(),
                "metric": index.metric().as_str(),
                "total_index_size": index.total_index_size()?,
            });
            if json {
                print_json(&out);
            } else {
                println!(
                    "index '{brain_key}' ({} backend, {}) holds {}",
                    index.backend_name(),
                    index.metric(),
                    plural(
                        out["total_index_size"].as_u64().unwrap_or(0) as usize,
                        "vector",
                        "vectors"
                    )
                );
            }
        }
        SimilarityCmd::Sort {
            key,
            ids,
            vector,
            text,
            k,
            reverse,
            dist_field,
            view,
        } => {
            if k == Some(0) {
                bail!("-k must be at least 1 (leave it out to sort every sample)");
            }
            let (ds, index) = load_index(simile, &key)?;
            let ds = view.apply(&ds)?;
            let query = if !ids.is_empty() {
                Query::ids(ids)
            } else if let Some(p) = vector {
                Query::from(simile::npy::read_npy(&p)?)
            } else if let Some(t) = text {
                Query::text(t)
            } else {
                bail!("give a query: --id, --vector or --text");
            };
            let mut opts = SortOptions::new()
                .limit(k)
                .reverse(reverse)
                .brain_key(&key.brain_key);
            if let Some(f) = &dist_field {
                opts = opts.dist_field(f);
            }
            let dist_field = dist_field.as_deref();
            if let Some(field) = index.patches_field() {
                // A patch index: rank patches (one row per label).
                let res = ds
                    .to_patches(field)
                    .sort_by_similarity(query, opts)
                    .map_err(|e| dist_field_error(e, dist_field))?;
                let (ids, dists) = res
                    .similarity()
                    .map(|(i, d)| (i.to_vec(), d.to_vec()))
                    .unwrap_or_default();
                let patches: std::collections::HashMap<String, simile::Patch> = res
                    .patches()?
                    .into_iter()
                    .map(|p| (p.id.clone(), p))
                    .collect();
                let rows: Vec<Value> = ids
                    .iter()
                    .zip(&dists)
                    .filter_map(|(id, d)| {
                        let p = patches.get(id)?;
                        Some(
                            json!({"id": id, "sample_id": p.sample_id, "label": p.detection.label,
                                    "distance": d, "filepath": p.filepath.display().to_string()}),
                        )
                    })
                    .collect();
                if json {
                    print_json(&Value::Array(rows));
                } else {
                    for (i, r) in rows.iter().enumerate() {
                        println!(
                            "{:>4}  {}  {:>10.6}  {} in {}",
                            i + 1,
                            r["id"].as_str().unwrap_or(""),
                            r["distance"].as_f64().unwrap_or(f64::NAN),
                            r["label"].as_str().unwrap_or(""),
                            r["filepath"].as_str().unwrap_or("")
                        );
                    }
                }
                return Ok(());
            }
            let view = index
                .use_view(&ds)
                .sort_by_similarity(query, opts)
                .map_err(|e| dist_field_error(e, dist_field))?;
            let (ids, dists) = view
                .similarity()
                .map(|(i, d)| (i.to_vec(), d.to_vec()))
                .unwrap_or_default();
            let samples = view.samples()?;
            let paths: std::collections::HashMap<&str, String> = samples
                .iter()
                .map(|s| (s.id(), s.filepath().display().to_string()))
                .collect();
            if json {
                let rows: Vec<Value> = ids
                    .iter()
                    .zip(&dists)
                    .map(|(id, d)| json!({"id": id, "distance": d, "filepath": paths.get(id.as_str())}))
                    .collect();
                print_json(&Value::Array(rows));
            } else {
                for (i, (id, d)) in ids.iter().zip(&dists).enumerate() {
                    println!(
                        "{:>4}  {id}  {d:>10.6}  {}",
                        i + 1,
                        paths.get(id.as_str()).map_or("", String::as_str)
                    );
                }
            }
            drop(ds);
        }
        SimilarityCmd::Add {
            key,
            embeddings,
            ids,
            ids_file,
            label_ids_file,
            no_overwrite,
        } => add(
            simile,
            &key,
            &embeddings,
            (ids, ids_file),
            label_ids_file,
            no_overwrite,
            json,
        )?,
        SimilarityCmd::Remove { key, ids, strict } => {
            let (_ds, index) = load_index(simile, &key)?;
            let opts = MissingOptions {
                allow_missing: !strict,
                warn_missing: true,
            };
            let removed = index.remove_from_index(&ids, opts)?;
            let total = index.total_index_size()?;
            if json {
                print_json(&json!({"removed": removed, "total_index_size": total}));
            } else {
                println!(
                    "removed {}; the index holds {total}",
                    plural(removed, "vector", "vectors")
                );
            }
        }
        SimilarityCmd::Get { key, ids, out } => {
            let (_ds, index) = load_index(simile, &key)?;
            let got = if ids.is_empty() {
                index.get_all_embeddings()?
            } else {
                index.get_embeddings(
                    &ids,
                    MissingOptions {
                        allow_missing: true,
                        warn_missing: true,
                    },
                )?
            };
            print_vectors(&got, out.as_deref(), json)?;
        }
        SimilarityCmd::Duplicates(a) => crate::dups::duplicates(simile, a, json)?,
        SimilarityCmd::Unique(a) => crate::dups::unique(simile, a, json)?,
        SimilarityCmd::PlotDistances(a) => crate::dups::plot_distances(simile, a, json)?,
        SimilarityCmd::Size { key } => {
            let (_ds, index) = load_index(simile, &key)?;
            let total = index.total_index_size()?;
            if json {
                print_json(&json!({"total_index_size": total}));
            } else {
                println!("{total}");
            }
        }
    }
    Ok(())
}

/// `similarity get`: with `--out` the vectors go to a `.npy` and the shape is printed; without,
/// each id and its values are printed (`--json`: `{"ids": [...], "vectors": [[...]]}`).
fn print_vectors(got: &simile::IndexEmbeddings, out: Option<&Path>, json: bool) -> Result<()> {
    let shape = [got.embeddings.nrows(), got.embeddings.ncols()];
    // A patch index is keyed by label id; a sample index by sample id.
    let ids = got.label_ids.as_ref().unwrap_or(&got.sample_ids);
    if let Some(path) = out {
        simile::npy::write_npy(path, &got.embeddings)?;
        if json {
            print_json(&json!({"shape": shape, "sample_ids": got.sample_ids,
                "label_ids": got.label_ids, "out": path.display().to_string()}));
        } else {
            println!(
                "{} of {} dimensions written to {}",
                plural(shape[0], "vector", "vectors"),
                shape[1],
                path.display()
            );
        }
        return Ok(());
    }
    if json {
        let vectors: Vec<Vec<f32>> = got
            .embeddings
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        print_json(&json!({"ids": ids, "vectors": vectors, "shape": shape,
            "sample_ids": got.sample_ids, "label_ids": got.label_ids}));
        return Ok(());
    }
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed pipe (`simile ... | head`) ends the listing quietly.
    for (id, row) in ids.iter().zip(got.embeddings.rows()) {
        let values: Vec<String> = row.iter().map(f32::to_string).collect();
        if writeln!(w, "{id}  {}", values.join(" ")).is_err() {
            return Ok(());
        }
    }
    let _ = w.flush();
    Ok(())
}

/// A refused `--dist-field` names the flag.
fn dist_field_error(e: simile::Error, field: Option<&str>) -> anyhow::Error {
    match (&e, field) {
        (simile::Error::Dataset(simile::DatasetError::NotADistanceField { .. }), Some(f)) => {
            anyhow::Error::new(e).context(format!("--dist-field '{f}' would overwrite other data"))
        }
        _ => e.into(),
    }
}

/// `similarity add`: rows of a .npy aligned with ids from `--id` or `--ids-file` (not both),
/// each id once (label ids, for a patch index, where a sample may repeat).
fn add(
    simile: &Simile,
    key: &KeyArgs,
    embeddings: &Path,
    (ids, ids_file): (Vec<String>, Option<PathBuf>),
    label_ids_file: Option<PathBuf>,
    no_overwrite: bool,
    json: bool,
) -> Result<()> {
    let sample_ids: Vec<(String, String)> = match (ids_file, ids.is_empty()) {
        (Some(_), false) => bail!("give the ids with --id or with --ids-file, not both"),
        (Some(f), true) => read_id_lines(&f)?,
        (None, false) => ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| (format!("--id #{}", i + 1), id))
            .collect(),
        (None, true) => bail!("give the ids of the rows: --id ID... or --ids-file FILE"),
    };
    let label_ids = label_ids_file.map(|f| read_id_lines(&f)).transpose()?;
    match &label_ids {
        Some(labels) => no_repeats(labels)?,
        None => no_repeats(&sample_ids)?,
    }
    let (_ds, index) = load_index(simile, key)?;
    let array = simile::npy::read_npy(embeddings)?;
    let sample_ids: Vec<String> = sample_ids.into_iter().map(|(_, id)| id).collect();
    let label_ids: Option<Vec<String>> =
        label_ids.map(|l| l.into_iter().map(|(_, id)| id).collect());
    let opts = AddOptions {
        overwrite: !no_overwrite,
        ..AddOptions::default()
    };
    let before = index.total_index_size()?;
    index.add_to_index(array.view(), &sample_ids, label_ids.as_deref(), opts)?;
    let total = index.total_index_size()?;
    // Rows whose key was already present were replaced (or, with --no-overwrite, kept).
    let given = label_ids.as_ref().map_or(sample_ids.len(), Vec::len);
    let added = total.saturating_sub(before);
    let present = given.saturating_sub(added);
    let (replaced, kept) = if no_overwrite {
        (0, present)
    } else {
        (present, 0)
    };
    if json {
        print_json(
            &json!({"added": added, "replaced": replaced, "kept": kept, "total_index_size": total}),
        );
    } else {
        let mut line = format!("added {}", plural(added, "vector", "vectors"));
        if replaced > 0 {
            line.push_str(&format!(", replaced {replaced}"));
        }
        if kept > 0 {
            line.push_str(&format!(
                ", left {kept} already present as they were (--no-overwrite)"
            ));
        }
        println!("{line}; the index holds {total}");
    }
    Ok(())
}

/// The non-blank lines of an ids file, trimmed, each with where it is (`line N`).
fn read_id_lines(path: &Path) -> Result<Vec<(String, String)>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| (format!("line {n}"), l.to_string()))
        .collect())
}

/// Refuses an id given twice: its rows would silently replace each other.
fn no_repeats(ids: &[(String, String)]) -> Result<()> {
    let mut first: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (at, id) in ids {
        if let Some(before) = first.insert(id, at) {
            let (before, at) = match (before.strip_prefix("line "), at.strip_prefix("line ")) {
                (Some(a), Some(b)) => (format!("lines {a}"), b.to_string()),
                _ => (before.to_string(), at.clone()),
            };
            bail!("id '{id}' is given twice ({before} and {at}): each row needs its own id");
        }
    }
    Ok(())
}
