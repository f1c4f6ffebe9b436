//! `simile`: datasets, similarity indexes and brain runs from the shell. Every command takes
//! `--json` for scripts; errors go to stderr with a non-zero exit and change nothing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod commands;
mod dups;
mod errors;
mod models;
mod quickstart;
mod synthetic;
mod view_args;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use view_args::ViewArgs;

#[derive(Parser, Debug)]
#[command(
    name = "simile",
    version,
    about = "Similarity search for computer-vision datasets"
)]
pub struct Cli {
    /// Data directory (default: $SIMILE_HOME, else ~/.simile).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, inspect and delete datasets.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Build, query and maintain similarity indexes.
    #[command(subcommand)]
    Similarity(SimilarityCmd),
    /// List, inspect, rename and delete brain runs.
    #[command(subcommand)]
    Brain(BrainCmd),
    /// Compute embeddings with a model and store them in a vector field.
    Embed {
        /// Dataset name.
        name: String,
        /// Model name (e.g. clip-vit-base32-torch).
        #[arg(long)]
        model: String,
        /// Vector field to write.
        #[arg(long, default_value = "embeddings")]
        field: String,
        /// Keep vectors already in the field.
        #[arg(long)]
        skip_existing: bool,
        /// Fail on the first unreadable image instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Images per batch (default 16).
        #[arg(long)]
        batch_size: Option<usize>,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// The whole workflow on a generated demo dataset with the embedded default backend.
    Quickstart(quickstart::QuickstartArgs),
    /// The embedding models simile knows: which are random-weight test exports, where each is
    /// looked for on disk and whether it is there.
    Models,
    /// Browse datasets and query them by point-and-click in a browser (a local web server).
    App(app::AppArgs),
    /// Check that brain runs and index storage agree (orphan storage, temp files, broken runs,
    /// size mismatches, orphan Milvus collections); --repair removes what is provably orphaned.
    Doctor(commands::doctor::DoctorArgs),
}

#[derive(Subcommand, Debug)]
pub enum DatasetCmd {
    /// Groups of samples whose files have identical contents.
    ExactDuplicates(dups::ExactArgs),
    /// Create a dataset from a folder of images, a list of paths, COCO JSON, or a FiftyOne export.
    Create {
        /// Name of the new dataset.
        name: String,
        /// Folder to scan recursively for images (unreadable files are reported, not fatal).
        #[arg(long, group = "source")]
        from_dir: Option<PathBuf>,
        /// Text file with one image path per line.
        #[arg(long, group = "source")]
        from_paths: Option<PathBuf>,
        /// COCO detection JSON (use with --images).
        #[arg(long, group = "source", requires = "images")]
        from_coco: Option<PathBuf>,
        /// Folder of the COCO images.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Label field for COCO detections.
        #[arg(long, default_value = "ground_truth")]
        label_field: String,
        /// A FiftyOne dataset export (metadata.json, samples.json, data/); ids are kept.
        #[arg(long, group = "source")]
        from_fiftyone: Option<PathBuf>,
    },
    /// Load a zoo dataset (offline): quickstart.
    Zoo { name: String },
    /// Export a dataset as COCO detections or in FiftyOne's format.
    Export {
        /// Dataset name.
        name: String,
        /// The export format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Label field (COCO).
        #[arg(long, default_value = "ground_truth")]
        label_field: String,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// List datasets.
    List,
    /// Samples, fields and brain runs of a dataset.
    Info { name: String },
    /// The first samples.
    Head {
        /// Dataset name.
        name: String,
        /// How many samples to show.
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Delete a dataset, its brain runs and their index data (says what it keeps, and why).
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// Dataset name.
    pub name: String,
    /// Brain key of the index.
    #[arg(long)]
    pub brain_key: String,
    /// Backend parameter for loading (credentials, uri): key=value, repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SimilarityCmd {
    /// Build a similarity index and register it as a brain run.
    Compute {
        /// Dataset name.
        name: String,
        /// Brain key to register the index under (letters, digits, '_').
        #[arg(long)]
        brain_key: String,
        /// Backend (default from the brain config, else sklearn).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// float32 .npy with one row per sample (or patch), in dataset order.
        #[arg(long, group = "source")]
        embeddings: Option<PathBuf>,
        /// Vector field holding the embeddings.
        #[arg(long, group = "source")]
        embeddings_field: Option<String>,
        /// Create an empty index (fill it with `similarity add`).
        #[arg(long, group = "source")]
        no_embeddings: bool,
        /// Model name to compute embeddings (e.g. clip-vit-base32-torch).
        #[arg(long)]
        model: Option<String>,
        /// Index the detections of this label field (a patch index).
        #[arg(long)]
        patches_field: Option<String>,
        /// Distance metric (default: the backend's, cosine).
        #[arg(long, value_enum)]
        metric: Option<MetricArg>,
        /// Backend parameter key=value (collection_name, consistency_level, uri, ...), repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Sort a dataset by similarity to ids, a vector, or a text prompt.
    Sort {
        #[command(flatten)]
        key: KeyArgs,
        /// Query sample/patch id (repeat for the mean of several).
        #[arg(long = "id", group = "query", num_args = 1..)]
        ids: Vec<String>,
        /// Query vector(s) as a float32 .npy (1 row, or several averaged).
        #[arg(long, group = "query")]
        vector: Option<PathBuf>,
        /// Text prompt (needs an index built with a CLIP model).
        #[arg(long, group = "query")]
        text: Option<String>,
        /// Number of results (default: all).
        #[arg(short = 'k', long)]
        k: Option<usize>,
        /// Least similar first.
        #[arg(long)]
        reverse: bool,
        /// Write each result's distance to this field.
        #[arg(long)]
        dist_field: Option<String>,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Add (upsert) embeddings to an index.
    Add {
        #[command(flatten)]
        key: KeyArgs,
        /// float32 .npy, one row per id.
        #[arg(long)]
        embeddings: PathBuf,
        /// Sample ids (repeatable), aligned with the rows.
        #[arg(long = "id", num_args = 1..)]
        ids: Vec<String>,
        /// File with one sample id per line, aligned with the rows.
        #[arg(long)]
        ids_file: Option<PathBuf>,
        /// File with one label id per line (patch indexes).
        #[arg(long)]
        label_ids_file: Option<PathBuf>,
        /// Keep existing vectors of ids already present.
        #[arg(long)]
        no_overwrite: bool,
    },
    /// Remove samples from an index.
    Remove {
        #[command(flatten)]
        key: KeyArgs,
        /// Sample (or patch label) ids to remove (repeat --id, or list several after one --id).
        #[arg(long = "id", required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Fail (changing nothing) if an id is not in the index.
        #[arg(long)]
        strict: bool,
    },
    /// Print an index's vectors (each id and its values), or write them to a .npy with --out.
    Get {
        #[command(flatten)]
        key: KeyArgs,
        /// Sample ids (default: every sample of the index).
        #[arg(long = "id", num_args = 1..)]
        ids: Vec<String>,
        /// Write the vectors to this float32 .npy.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Index sizes.
    Size {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Near-duplicates: keep a point unless an earlier kept one is within the threshold.
    Duplicates(dups::DuplicatesArgs),
    /// The COUNT most spread-out points.
    Unique(dups::UniqueArgs),
    /// Histogram of nearest-neighbour distances with the threshold line (PNG or SVG).
    PlotDistances(dups::PlotArgs),
}

/// `dataset export --format`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// COCO detections JSON plus the images.
    Coco,
    /// FiftyOne's dataset export (metadata.json, samples.json, data/); ids are kept.
    Fiftyone,
}

/// `similarity compute --backend`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Backend {
    /// Embedded, exact, files under the simile home.
    Sklearn,
    /// A Milvus server (uri and credentials from the brain config or --set).
    Milvus,
}

/// `similarity compute --metric`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MetricArg {
    Cosine,
    Dotproduct,
    Euclidean,
}

impl Backend {
    /// The facade's backend name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sklearn => "sklearn",
            Backend::Milvus => "milvus",
        }
    }
}

impl MetricArg {
    /// The backends' metric name.
    pub fn name(self) -> &'static str {
        match self {
            MetricArg::Cosine => "cosine",
            MetricArg::Dotproduct => "dotproduct",
            MetricArg::Euclidean => "euclidean",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum BrainCmd {
    /// Brain keys of a dataset.
    List {
        /// Dataset name.
        name: String,
        /// Only runs of this type (similarity, uniqueness).
        #[arg(long = "type")]
        run_type: Option<String>,
        /// Only runs of this backend (sklearn, milvus).
        #[arg(long)]
        method: Option<String>,
        /// Only patch indexes of this detections field.
        #[arg(long)]
        patches_field: Option<String>,
        /// Only runs whose model does (true) or does not (false) embed text prompts.
        #[arg(long)]
        supports_prompts: Option<bool>,
    },
    /// A run's record.
    Info { name: String, key: String },
    /// Rename a run.
    Rename {
        /// Dataset name.
        name: String,
        /// Current brain key.
        old: String,
        /// New brain key.
        new: String,
    },
    /// Delete a run's record (and with --cleanup its backend data first).
    Delete {
        /// Dataset name.
        name: String,
        /// Brain key of the run.
        key: String,
        /// Also delete the index's data in its backend (files or Milvus collection).
        #[arg(long)]
        cleanup: bool,
    },
    /// Score each sample's uniqueness (distances to its 3 nearest neighbours) into a field.
    Uniqueness(dups::UniquenessArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `SIMILE_LOG`, read by simile-config like every other variable (ARCHITECTURE.md, 3).
    let filter = simile::Settings::load()
        .ok()
        .and_then(|s| s.log_filter)
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // In CLI terms: flags and variables, not the library's Rust names.
            for (i, m) in errors::messages(&e).iter().enumerate() {
                if i == 0 {
                    eprintln!("error: {m}");
                } else {
                    eprintln!("  caused by: {m}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
