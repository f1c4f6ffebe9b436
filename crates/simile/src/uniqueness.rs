//! `compute_uniqueness`, nearest-neighbour distances (drawn by `plot.rs`) and
//! `compute_exact_duplicates`.
use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;
use serde_json::{json, Map};
use simile_dataset::FieldValue;
use simile_index::Metric;
use simile_runs::{RunRecord, RunRegistry, RunState};

use crate::neighbors::{all_neighbors, Want};
use crate::{Error, Result, SimilarityIndex, View};

/// The run type `compute_uniqueness` registers.
pub const UNIQUENESS: &str = "uniqueness";

/// Where `compute_uniqueness` gets its embeddings.
#[derive(Debug, Clone, PartialEq)]
pub enum UniquenessSource {
    /// The vectors (and metric) of a sample-level similarity index.
    BrainKey(String),
    /// A vector field of the samples (cosine).
    EmbeddingsField(String),
    /// Embed the samples with this model (cosine).
    Model(String),
}

/// FiftyOne's uniqueness: the weighted mean of the distances to the nearest 1–3 other samples
/// (weights .6, .3, .1), normalised to [0, 1] by the largest (under dotproduct, whose distances
/// can be negative, by the range): larger is more unique, on every metric and backend.
pub(crate) fn uniqueness_scores(emb: &Array2<f32>, metric: Metric) -> Vec<f64> {
    const W: [f64; 3] = [0.6, 0.3, 0.1];
    let lists = all_neighbors(emb.view(), metric, Want { k: 3, radius: None });
    let raw: Vec<f64> = lists
        .iter()
        .map(|l| {
            let (mut s, mut w) = (0.0, 0.0);
            for ((_, d), wi) in l.iter().zip(W) {
                s += wi * d;
                w += wi;
            }
            if w > 0.0 {
                s / w
            } else {
                0.0
            }
        })
        .collect();
    let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
    if min >= 0.0 {
        raw.iter()
            .map(|x| if max > 0.0 { x / max } else { 0.0 })
            .collect()
    } else {
        raw.iter()
            .map(|x| {
                if max > min {
                    (x - min) / (max - min)
                } else {
                    0.0
                }
            })
            .collect()
    }
}

impl View {
    /// Scores each sample's uniqueness into `field` (FiftyOne's formula: the weighted mean of
    /// the distances to the 3 nearest, .6/.3/.1, scaled to [0, 1]) and registers a brain run of
    /// type `uniqueness` under the key `field` (replacing an earlier uniqueness run
    /// of that key). Samples without an embedding get no score. Returns the number scored.
    pub fn compute_uniqueness(&self, field: &str, source: UniquenessSource) -> Result<usize> {
        let dataset = self.dataset();
        let (ids, emb, metric) = match &source {
            UniquenessSource::BrainKey(key) => {
                let index = dataset.load_brain_results(key)?.use_view(self);
                if index.patches_field().is_some() {
                    return Err(Error::NotSupported(format!(
                        "brain run '{key}' indexes patches; uniqueness is per sample: use a sample index"
                    )));
                }
                let all = index.get_all_embeddings()?;
                (all.sample_ids, all.embeddings, index.metric())
            }
            UniquenessSource::EmbeddingsField(f) => {
                // A field an unfinished embed left part-filled would score only its samples.
                crate::resume::ensure_complete(&self.ctx.store, &dataset, f)?;
                let ids = self.ids()?;
                let vectors = self.vectors(f)?;
                let (mut keep, mut data, mut dim) = (Vec::new(), Vec::new(), 0);
                for (id, v) in ids.into_iter().zip(vectors) {
                    if let Some(v) = v {
                        dim = v.len();
                        keep.push(id);
                        data.extend(v);
                    }
                }
                let emb = Array2::from_shape_vec((keep.len(), dim), data).map_err(|e| {
                    Error::NotSupported(format!(
                        "field '{f}' holds vectors of different sizes: {e}"
                    ))
                })?;
                (keep, emb, Metric::Cosine)
            }
            UniquenessSource::Model(name) => {
                let model = crate::model_loader::load(&self.ctx, name)?;
                let e = self.compute_embeddings(model.as_ref(), crate::EmbedOptions::new())?;
                (e.sample_ids, e.embeddings, Metric::Cosine)
            }
        };
        if ids.len() < 2 {
            return Err(Error::EmptyCollection(format!(
                "{} (uniqueness needs at least 2 samples with embeddings)",
                dataset.name()
            )));
        }
        simile_dataset::check_field_name(field)?;
        let scores = uniqueness_scores(&emb, metric);
        let mut config = Map::new();
        config.insert("type".into(), UNIQUENESS.into());
        config.insert("uniqueness_field".into(), field.into());
        config.insert("metric".into(), metric.as_str().into());
        let (k, v) = match &source {
            UniquenessSource::BrainKey(k) => ("similarity_index", k),
            UniquenessSource::EmbeddingsField(f) => ("embeddings_field", f),
            UniquenessSource::Model(m) => ("model", m),
        };
        config.insert(k.into(), v.clone().into());
        let ds = dataset.db_id();
        let store = &self.ctx.store;
        let existing = store.read(|c| RunRegistry::exists(c, ds, field))?;
        if existing {
            let rec = store.read(|c| RunRegistry::get(c, ds, field))?;
            if rec.run_type != UNIQUENESS {
                return Err(Error::BadRun {
                    key: field.to_string(),
                    reason: format!("the key is taken by a {} run", rec.run_type),
                });
            }
        }
        let values: Vec<(String, FieldValue)> = ids
            .iter()
            .cloned()
            .zip(scores.iter().map(|s| FieldValue::Json(json!(s))))
            .collect();
        dataset.set_values(field, values)?;
        let mut record = RunRecord::new(field, UNIQUENESS, config);
        record.run_type = UNIQUENESS.into();
        record.state = RunState::Completed;
        store.write(|tx| {
            if existing {
                RunRegistry::delete(tx, ds, field)?;
            }
            RunRegistry::register(tx, ds, &record)
        })?;
        Ok(ids.len())
    }
}

impl SimilarityIndex {
    /// Each point's distance to its nearest other point (exact): the view's points in the
    /// view's order, or every point of the index in index order. The rows are used in place
    /// where the backend lends them (see `walk.rs`).
    pub fn nearest_distances(&self) -> Result<Vec<f64>> {
        let metric = self.metric();
        let nearest = |emb: ndarray::ArrayView2<'_, f32>| -> Vec<f64> {
            let lists = all_neighbors(emb, metric, Want { k: 1, radius: None });
            lists
                .iter()
                .filter_map(|l| l.first().map(|x| x.1))
                .collect()
        };
        match &self.view {
            Some(v) => Ok(self
                .with_rows_of(self.view_keys(v)?, |_, emb| nearest(emb))?
                .0),
            None => self.with_all_rows(nearest),
        }
    }
}

/// Files with identical contents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactDuplicates {
    /// The first sample (view order) of each group of identical files → the others.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Samples whose file could not be read, with why.
    pub failed: Vec<(String, String)>,
}

impl View {
    /// Groups the view's samples whose files have identical contents (SHA-256), hashing on every
    /// core; unreadable files are reported per sample, never fatal.
    pub fn compute_exact_duplicates(&self) -> Result<ExactDuplicates> {
        use sha2::{Digest, Sha256};
        let samples: Vec<(String, std::path::PathBuf)> = self
            .samples()?
            .into_iter()
            .map(|s| (s.id().to_string(), s.filepath().to_path_buf()))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .max(1);
        let hash = |p: &Path| -> std::io::Result<[u8; 32]> {
            let mut f = std::fs::File::open(p)?;
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h)?;
            Ok(h.finalize().into())
        };
        let results: Vec<std::io::Result<[u8; 32]>> = std::thread::scope(|sc| {
            let chunk = samples.len().div_ceil(threads).max(1);
            let handles: Vec<_> = samples
                .chunks(chunk)
                .map(|c| {
                    let h = sc.spawn(move || c.iter().map(|(_, p)| hash(p)).collect::<Vec<_>>());
                    (c.len(), h)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(len, h)| {
                    h.join().unwrap_or_else(|_| {
                        (0..len)
                            .map(|_| Err(std::io::Error::other("hashing failed")))
                            .collect()
                    })
                })
                .collect()
        });
        let mut first: BTreeMap<[u8; 32], String> = BTreeMap::new();
        let mut out = ExactDuplicates::default();
        for ((id, path), r) in samples.iter().zip(results) {
            match r {
                Ok(h) => match first.get(&h) {
                    Some(keep) => out.groups.entry(keep.clone()).or_default().push(id.clone()),
                    None => {
                        first.insert(h, id.clone());
                    }
                },
                Err(e) => out
                    .failed
                    .push((id.clone(), format!("{}: {e}", path.display()))),
            }
        }
        Ok(out)
    }
}
