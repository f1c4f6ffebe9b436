//! `compute_uniqueness`, nearest-neighbour distance histograms (`plot_distances`) and
//! `compute_exact_duplicates`.
use std::collections::BTreeMap;
use std::fmt::Write as _;
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
    /// Each point's distance to its nearest other point (exact), in walk order.
    pub fn nearest_distances(&self) -> Result<Vec<f64>> {
        let all = self.get_all_embeddings()?;
        let lists = all_neighbors(
            all.embeddings.view(),
            self.metric(),
            Want { k: 1, radius: None },
        );
        Ok(lists
            .iter()
            .filter_map(|l| l.first().map(|x| x.1))
            .collect())
    }

    /// Writes a histogram of nearest-neighbour distances, with the last `find_duplicates`
    /// threshold as a line, as an SVG file (`bins` bars; `log` for a logarithmic count axis).
    pub fn plot_distances(&self, out: &Path, bins: usize, log: bool) -> Result<()> {
        self.plot_distances_at(out, bins, log, self.duplicates().map(|d| d.thresh))
    }

    /// [`SimilarityIndex::plot_distances`] with the threshold line at `thresh` (none: no line).
    pub fn plot_distances_at(
        &self,
        out: &Path,
        bins: usize,
        log: bool,
        thresh: Option<f64>,
    ) -> Result<()> {
        let dists = self.nearest_distances()?;
        let svg = histogram_svg(&dists, bins.max(1), log, thresh, self.metric());
        std::fs::write(out, svg).map_err(|source| Error::Io {
            path: out.display().to_string(),
            source,
        })
    }
}

/// Counts of values in equal-width bins over their range.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The lower edge of the first bin.
    pub lo: f64,
    /// The upper edge of the last bin.
    pub hi: f64,
    /// Values per bin.
    pub counts: Vec<usize>,
}

impl Histogram {
    /// `bins` equal bins over the values' range, widened to include `extra` (e.g. a threshold).
    pub fn of(values: &[f64], bins: usize, extra: Option<f64>) -> Histogram {
        let bins = bins.max(1);
        let lo = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(extra.unwrap_or(f64::INFINITY));
        let hi = values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            .max(extra.unwrap_or(f64::NEG_INFINITY));
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let mut counts = vec![0usize; bins];
        for &x in values {
            let i = (((x - lo) / (hi - lo)) * bins as f64).floor() as usize;
            counts[i.min(bins - 1)] += 1;
        }
        Histogram { lo, hi, counts }
    }

    /// The edges of bin `i`.
    pub fn edges(&self, i: usize) -> (f64, f64) {
        let w = (self.hi - self.lo) / self.counts.len().max(1) as f64;
        (self.lo + w * i as f64, self.lo + w * (i + 1) as f64)
    }
}

impl SimilarityIndex {
    /// The histogram of nearest-neighbour distances (what `plot_distances` draws).
    pub fn distance_histogram(&self, bins: usize) -> Result<Histogram> {
        Ok(Histogram::of(&self.nearest_distances()?, bins, None))
    }
}

/// An SVG histogram (self-contained, readable in any browser).
pub(crate) fn histogram_svg(
    d: &[f64],
    bins: usize,
    log: bool,
    thresh: Option<f64>,
    metric: Metric,
) -> String {
    let (w, h, l, b, t, r) = (720.0, 400.0, 64.0, 48.0, 36.0, 40.0);
    let Histogram { lo, hi, counts } = Histogram::of(d, bins, thresh);
    let scale = |c: usize| {
        if log {
            ((c as f64) + 1.0).ln()
        } else {
            c as f64
        }
    };
    let top = counts
        .iter()
        .map(|c| scale(*c))
        .fold(0.0, f64::max)
        .max(1e-9);
    let (pw, ph) = (w - l - r, h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="{l}" y="22" font-size="14">Nearest-neighbour distances ({} points, {})</text>"##,
        d.len(),
        metric.as_str()
    );
    for (i, &c) in counts.iter().enumerate() {
        let bh = scale(c) / top * ph;
        let x = l + pw * i as f64 / bins as f64;
        let _ = write!(
            s,
            r##"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{bh:.2}" fill="#5b7cfa"><title>{c}</title></rect>"##,
            t + ph - bh,
            (pw / bins as f64 - 1.0).max(0.5)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="#333"/>"##,
        t + ph,
        l + pw,
        t + ph,
        t + ph
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let x = l + pw * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{v:.4}</text>"#,
            t + ph + 18.0
        );
    }
    let max_count = counts.iter().copied().max().unwrap_or(0);
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{max_count}</text><text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#,
        l - 6.0,
        t + 4.0,
        l - 6.0,
        t + ph
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">distance to the nearest other point</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">count{}</text>"#,
        l + pw / 2.0,
        h - 8.0,
        t + ph / 2.0,
        t + ph / 2.0,
        if log { " (log)" } else { "" }
    );
    if let Some(th) = thresh {
        let x = l + pw * (th - lo) / (hi - lo);
        let _ = write!(
            s,
            r##"<line x1="{x:.2}" y1="{t}" x2="{x:.2}" y2="{:.2}" stroke="#e5484d" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.2}" y="{:.2}" fill="#e5484d">thresh {th}</text>"##,
            t + ph,
            x + 4.0,
            t + 12.0
        );
    }
    s.push_str("</svg>\n");
    s
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
