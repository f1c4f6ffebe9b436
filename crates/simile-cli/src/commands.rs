pub mod doctor;
mod similarity;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use simile::{RunFilter, Simile};

use crate::{BrainCmd, Cli, Command, DatasetCmd};

pub fn run(cli: Cli) -> Result<()> {
    let simile = match &cli.home {
        Some(h) => Simile::open_at(h)?,
        None => Simile::open()?,
    };
    let json = cli.json;
    match cli.command {
        Command::Dataset(c) => dataset(&simile, c, json),
        Command::Similarity(c) => similarity::similarity(&simile, c, json),
        Command::Brain(c) => brain(&simile, c, json),
        Command::Embed {
            name,
            model,
            field,
            skip_existing,
            strict,
            batch_size,
            view,
        } => {
            if batch_size == Some(0) {
                bail!("--batch-size must be at least 1");
            }
            let ds = view.apply(&simile.load_dataset(&name)?)?;
            let m = simile.load_model(&model)?;
            let bar = progress_bar(json, "embedding");
            // How many images this run embeds: with --skip-existing (a resume) only the rest.
            let computed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (seen, b) = (computed.clone(), bar.clone());
            let mut opts = simile::EmbedOptions::new()
                .field(&field)
                .skip_existing(skip_existing)
                .skip_failures(!strict)
                .progress(simile::Progress::new(move |done, total| {
                    seen.fetch_max(total, std::sync::atomic::Ordering::Relaxed);
                    set_progress(&b, done, total);
                }));
            if let Some(b) = batch_size {
                opts = opts.batch_size(b);
            }
            let out = ds.compute_embeddings(m.as_ref(), opts);
            bar.finish_and_clear();
            let out = out?;
            let total = ds.len()?;
            let computed = computed.load(std::sync::atomic::Ordering::Relaxed);
            if json {
                print_json(
                    &json!({"field": field, "embedded": out.sample_ids.len(), "computed": computed, "samples": total, "dim": out.embeddings.ncols()}),
                );
            } else {
                println!(
                    "{} of {total} samples have {}-d embeddings in '{field}' ({} by this run)",
                    out.sample_ids.len(),
                    out.embeddings.ncols(),
                    plural(computed, "image embedded", "images embedded")
                );
            }
            Ok(())
        }
        Command::Quickstart(args) => crate::quickstart::run(&simile, args, json),
        Command::App(args) => crate::app::run(simile, args, json),
        Command::Models => crate::models::run(&simile, json),
        Command::Doctor(args) => doctor::run(&simile, args, json),
    }
}

/// "1 sample", "2 samples".
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_json(v: &Value) {
    use std::io::Write;
    // A closed pipe (`simile ... | head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// Parses repeated `key=value` flags; values that parse as JSON numbers/booleans stay strings
/// unless quoted JSON is wanted: backends parse their own types.
pub fn parse_sets(sets: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for s in sets {
        let Some((k, v)) = s.split_once('=') else {
            bail!("--set expects key=value, got '{s}'");
        };
        if k.trim().is_empty() {
            bail!("--set expects key=value, got '{s}'");
        }
        m.insert(k.trim().to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

fn dataset(simile: &Simile, cmd: DatasetCmd, json: bool) -> Result<()> {
    match cmd {
        DatasetCmd::Create {
            name,
            from_dir,
            from_paths,
            from_coco,
            images,
            label_field,
            from_fiftyone,
        } => {
            if simile.dataset_exists(&name)? {
                bail!("dataset '{name}' already exists");
            }
            let (ds, report) = if let Some(dir) = from_dir {
                simile.import_image_dir(&name, &dir, &simile::io::ImageDirOptions::default())?
            } else if let Some(json_path) = from_coco {
                let images = images.context("--from-coco needs --images DIR")?;
                simile.import_coco(&name, &json_path, &images, &label_field)?
            } else if let Some(dir) = from_fiftyone {
                simile.import_fiftyone(&name, &dir)?
            } else if let Some(file) = from_paths {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let paths: Vec<PathBuf> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect();
                simile.import_paths(&name, &paths, &file.display().to_string())?
            } else {
                bail!("give --from-dir, --from-paths, --from-coco or --from-fiftyone");
            };
            let n = report.added.len();
            let skipped: Vec<Value> = report
                .skipped
                .iter()
                .map(|s| json!({"path": s.path, "reason": s.reason.to_string()}))
                .collect();
            if json {
                print_json(&json!({"name": name, "samples": n, "skipped": skipped}));
            } else {
                println!(
                    "created dataset '{}' with {}",
                    ds.name(),
                    plural(n, "sample", "samples")
                );
                for s in &report.skipped {
                    eprintln!("  skipped {s}");
                }
            }
        }
        DatasetCmd::Zoo { name } => {
            let ds = simile.load_zoo_dataset(&name)?;
            let n = ds.len()?;
            if json {
                print_json(&json!({"name": ds.name(), "samples": n}));
            } else {
                println!(
                    "dataset '{}' with {}",
                    ds.name(),
                    plural(n, "sample", "samples")
                );
            }
        }
        DatasetCmd::Export {
            name,
            format,
            out,
            label_field,
            view,
        } => {
            let view = view.apply(&simile.load_dataset(&name)?)?;
            let report = match format {
                crate::ExportFormat::Coco => view.export_coco(&label_field, &out)?,
                crate::ExportFormat::Fiftyone => view.export_fiftyone(&out)?,
            };
            if json {
                print_json(
                    &json!({"exported": report.exported, "labels": report.labels, "skipped": report.skipped.len()}),
                );
            } else {
                println!(
                    "exported {} samples ({} labels) to {}",
                    report.exported,
                    report.labels,
                    out.display()
                );
            }
        }
        DatasetCmd::List => {
            let names = simile.list_datasets()?;
            if json {
                print_json(&json!(names));
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        DatasetCmd::Info { name } => {
            let ds = simile.load_dataset(&name)?;
            let fields: Map<String, Value> = ds
                .schema()?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v.as_str().to_string())))
                .collect();
            let runs = ds.list_brain_runs(&RunFilter::new())?;
            let info =
                json!({"name": name, "samples": ds.len()?, "fields": fields, "brain_runs": runs});
            if json {
                print_json(&info);
            } else {
                println!("name:       {name}");
                println!("samples:    {}", ds.len()?);
                println!(
                    "fields:     {}",
                    fields
                        .iter()
                        .map(|(k, v)| format!("{k} ({})", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                println!("brain runs: {}", runs.join(", "));
            }
        }
        DatasetCmd::Head { name, n, view } => {
            let samples = view.apply(&simile.load_dataset(&name)?)?.head(n)?;
            if json {
                print_json(&Value::Array(samples.iter().map(|s| s.to_json()).collect()));
            } else {
                for s in samples {
                    println!("{}  {}", s.id(), s.filepath().display());
                }
            }
        }
        DatasetCmd::ExactDuplicates(a) => crate::dups::exact_duplicates(simile, a, json)?,
        DatasetCmd::Delete { name } => {
            let d = simile.delete_dataset(&name)?;
            if json {
                print_json(
                    &json!({"deleted": name, "runs": d.runs, "removed": d.removed, "kept": d.kept}),
                );
            } else {
                println!(
                    "deleted dataset '{name}', {} and {} of index storage",
                    plural(d.runs, "brain run", "brain runs"),
                    plural(d.removed.len(), "item", "items")
                );
                for k in &d.kept {
                    println!("kept {}: {}", k.what, k.why);
                }
            }
        }
    }
    Ok(())
}

fn brain(simile: &Simile, cmd: BrainCmd, json: bool) -> Result<()> {
    match cmd {
        BrainCmd::List {
            name,
            run_type,
            method,
            patches_field,
            supports_prompts,
        } => {
            let ds = simile.load_dataset(&name)?;
            let mut f = RunFilter::new();
            if let Some(t) = run_type {
                f = f.run_type(t);
            }
            if let Some(m) = method {
                f = f.method(m);
            }
            if let Some(p) = patches_field {
                f = f.patches_field(p);
            }
            if let Some(b) = supports_prompts {
                f = f.supports_prompts(b);
            }
            let keys = ds.list_brain_runs(&f)?;
            if json {
                print_json(&json!(keys));
            } else {
                for k in keys {
                    println!("{k}");
                }
            }
        }
        BrainCmd::Info { name, key } => {
            let ds = simile.load_dataset(&name)?;
            let info = ds.get_brain_info(&key)?;
            let v = serde_json::to_value(&info)?;
            if json {
                print_json(&v);
            } else {
                let text = |k: &str| {
                    v[k].as_str()
                        .map_or_else(|| v[k].to_string(), str::to_string)
                };
                println!(
                    "{} ({} run, {} backend, {})",
                    info.key,
                    info.run_type,
                    info.method,
                    text("state")
                );
                println!(
                    "  registered {} by simile {}",
                    text("timestamp"),
                    info.version
                );
                for (k, v) in &info.config {
                    println!(
                        "  {k}: {}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    );
                }
            }
        }
        BrainCmd::Rename { name, old, new } => {
            let ds = simile.load_dataset(&name)?;
            ds.rename_brain_run(&old, &new)?;
            if json {
                print_json(&json!({"renamed": old, "to": new}));
            } else {
                println!("renamed brain run '{old}' to '{new}'");
            }
        }
        BrainCmd::Uniqueness(a) => crate::dups::uniqueness(simile, a, json)?,
        BrainCmd::Delete { name, key, cleanup } => {
            let ds = simile.load_dataset(&name)?;
            if cleanup {
                // Works on a broken run too: whatever exists of its storage goes.
                ds.delete_brain_run_and_data(&key)?;
            } else {
                ds.delete_brain_run(&key)?;
            }
            if json {
                print_json(&json!({"deleted": key, "cleanup": cleanup}));
            } else {
                println!(
                    "deleted brain run '{key}'{}",
                    if cleanup { " and its index data" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// A progress bar on stderr (hidden with --json); its length is set by the first report.
pub fn progress_bar(json: bool, msg: &'static str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    // No bar until the total is known: indicatif draws a 0-length bar as full ("0/0").
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} …")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.set_message(msg);
    pb
}

/// The bar's look once its total is known.
fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// Feeds a progress bar from simile's `(done, total)` callbacks.
pub fn bar_progress(bar: &indicatif::ProgressBar) -> simile::Progress {
    let bar = bar.clone();
    simile::Progress::new(move |done, total| set_progress(&bar, done, total))
}

/// Moves a bar of [`progress_bar`] to `done` of `total` (drawn as a bar from the first total on).
pub fn set_progress(bar: &indicatif::ProgressBar, done: usize, total: usize) {
    if bar.length() != Some(total as u64) {
        bar.set_style(bar_style());
    }
    bar.set_length(total as u64);
    bar.set_position(done as u64);
}
