//! Distance histograms as pictures (`plot_distances`): the nearest-neighbour distances in
//! equal bins, with the duplicates threshold as a line, as SVG or PNG — picked by the output
//! file's extension. `svg.rs` writes the SVG; `png.rs` draws the PNG pixel by pixel with
//! `image` and the small embedded bitmap font of `font.rs`, so it needs no font file and no
//! system fonts. Both are written atomically (a temporary file beside the output, renamed into
//! place): a failed write leaves no file.
use std::path::{Path, PathBuf};

use simile_index::Metric;

use crate::{Error, Result, SimilarityIndex};

mod font;
mod png;
mod svg;

/// The most bars a plot takes.
pub const MAX_PLOT_BINS: usize = 10_000;

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
    /// `bins` equal bins over the values' range, widened to include `extra` (e.g. a threshold;
    /// ignored unless finite).
    pub fn of(values: &[f64], bins: usize, extra: Option<f64>) -> Histogram {
        let bins = bins.max(1);
        let extra = extra.filter(|x| x.is_finite());
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
        let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            // One distinct value: a unit-wide range from it.
            (lo, lo + 1.0)
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
    /// Writes a histogram of nearest-neighbour distances, with the last `find_duplicates`
    /// threshold as a line, as a PNG or SVG file (by `out`'s extension: `.png` or `.svg`;
    /// `bins` bars, 1 to [`MAX_PLOT_BINS`]; `log` for a logarithmic count axis).
    pub fn plot_distances(&self, out: &Path, bins: usize, log: bool) -> Result<()> {
        self.plot_distances_at(out, bins, log, self.duplicates().map(|d| d.thresh))
    }

    /// [`SimilarityIndex::plot_distances`] with the threshold line at `thresh` (none: no line).
    /// An unsupported extension or bar count is an error before any work, and nothing is
    /// written; the file is replaced atomically.
    pub fn plot_distances_at(
        &self,
        out: &Path,
        bins: usize,
        log: bool,
        thresh: Option<f64>,
    ) -> Result<()> {
        let format = PlotFormat::of_path(out)?;
        let check = DistancePlot {
            distances: &[],
            bins,
            log,
            thresh,
            metric: self.metric(),
        };
        check.check()?;
        let distances = self.nearest_distances()?;
        DistancePlot {
            distances: &distances,
            ..check
        }
        .write(out, format)
    }

    /// The histogram of nearest-neighbour distances (what `plot_distances` draws).
    pub fn distance_histogram(&self, bins: usize) -> Result<Histogram> {
        Ok(Histogram::of(&self.nearest_distances()?, bins, None))
    }
}

/// The picture formats a plot is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlotFormat {
    Png,
    Svg,
}

impl PlotFormat {
    /// The format `out`'s extension names (`.png` or `.svg`, any case); anything else is
    /// [`Error::InvalidOption`] naming the extension and the accepted ones.
    pub(crate) fn of_path(out: &Path) -> Result<PlotFormat> {
        let ext = out.extension().map(|e| e.to_string_lossy().into_owned());
        match ext.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("png") => Ok(PlotFormat::Png),
            Some("svg") => Ok(PlotFormat::Svg),
            _ => Err(Error::InvalidOption {
                option: "plot file",
                reason: format!(
                    "{} is not a plot format: the file name must end in .png or .svg",
                    ext.map_or("no extension".to_string(), |e| format!(
                        "the extension '.{e}'"
                    ))
                ),
            }),
        }
    }
}

/// A histogram of nearest-neighbour distances, ready to draw.
#[derive(Debug, Clone)]
pub(crate) struct DistancePlot<'a> {
    pub distances: &'a [f64],
    pub bins: usize,
    /// A logarithmic count axis (`ln(1 + count)`).
    pub log: bool,
    /// Where the threshold line goes (none, or not finite: no line).
    pub thresh: Option<f64>,
    pub metric: Metric,
}

impl DistancePlot<'_> {
    /// Checks `bins` (1 to [`MAX_PLOT_BINS`]).
    pub(crate) fn check(&self) -> Result<()> {
        if self.bins == 0 || self.bins > MAX_PLOT_BINS {
            return Err(Error::InvalidOption {
                option: "bins",
                reason: format!("{} bars: use 1 to {MAX_PLOT_BINS}", self.bins),
            });
        }
        Ok(())
    }

    /// Writes the plot to `out` in `format`, atomically.
    pub(crate) fn write(&self, out: &Path, format: PlotFormat) -> Result<()> {
        self.check()?;
        let bytes = match format {
            PlotFormat::Svg => self.svg().into_bytes(),
            PlotFormat::Png => {
                let mut buf = std::io::Cursor::new(Vec::new());
                self.png()
                    .write_to(&mut buf, image::ImageFormat::Png)
                    .map_err(|e| Error::Io {
                        path: out.display().to_string(),
                        source: std::io::Error::other(e),
                    })?;
                buf.into_inner()
            }
        };
        write_atomic(out, &bytes)
    }

    fn thresh(&self) -> Option<f64> {
        self.thresh.filter(|t| t.is_finite())
    }

    fn histogram(&self) -> Histogram {
        Histogram::of(self.distances, self.bins, self.thresh())
    }

    /// A bar's height in axis units: the count, or `ln(1 + count)` on a log axis.
    fn level(&self, count: f64) -> f64 {
        if self.log {
            count.ln_1p()
        } else {
            count
        }
    }

    fn title(&self) -> String {
        format!(
            "Nearest-neighbour distances ({} points, {})",
            self.distances.len(),
            self.metric.as_str()
        )
    }

    fn y_label(&self) -> &'static str {
        if self.log {
            "count (log)"
        } else {
            "count"
        }
    }

    /// The counts the y axis marks: round numbers up to `max`; on a log axis 0, 1, 10, 100, …
    fn count_ticks(&self, max: usize) -> Vec<usize> {
        let max = max.max(1);
        if self.log {
            let decades = std::iter::successors(Some(1usize), |p| p.checked_mul(10));
            let steps: Vec<usize> = if max < 1000 {
                decades
                    .flat_map(|p| [p, 2 * p, 5 * p])
                    .take_while(|c| *c <= max)
                    .collect()
            } else {
                decades.take_while(|c| *c <= max).collect()
            };
            std::iter::once(0).chain(steps).collect()
        } else {
            nice_ticks(0.0, max as f64, 5)
                .into_iter()
                .filter(|v| v.fract() == 0.0 && *v >= 0.0)
                .map(|v| v as usize)
                .collect()
        }
    }
}

/// Round values (1, 2 or 5 × 10ⁿ apart) from `lo` to `hi`, about `target` of them.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return vec![lo];
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// A tick value with as many decimals as the tick spacing `step` needs.
fn tick_label(v: f64, step: f64) -> String {
    if step >= 1e-4 && v.abs() < 1e6 {
        let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.1e}")
    }
}

/// A count axis label (powers of ten from 10⁴ on as `1e4` on a log axis).
fn count_label(c: usize, log: bool) -> String {
    if log && c >= 10_000 {
        format!("1e{}", c.ilog10())
    } else {
        c.to_string()
    }
}

/// A short form of a threshold: at most 4 decimals, trailing zeros dropped.
fn number(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.into()
        }
    } else {
        format!("{v:.3e}")
    }
}

/// Writes `bytes` to `out` through a temporary file beside it, renamed into place.
pub(crate) fn write_atomic(out: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = out.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, out));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn plot(
        distances: &[f64],
        bins: usize,
        log: bool,
        thresh: Option<f64>,
    ) -> DistancePlot<'_> {
        DistancePlot {
            distances,
            bins,
            log,
            thresh,
            metric: Metric::Cosine,
        }
    }

    /// Distances whose 4-bin histogram over [0, 1] counts 8, 2, 4 and 1.
    pub(crate) fn skewed() -> Vec<f64> {
        let mut d = vec![0.0; 7];
        d.extend([0.1, 0.3, 0.3, 0.6, 0.6, 0.6, 0.7, 1.0]);
        d
    }

    #[test]
    fn the_format_comes_from_the_extension() {
        assert_eq!(
            PlotFormat::of_path(Path::new("a/b.png")).unwrap(),
            PlotFormat::Png
        );
        assert_eq!(
            PlotFormat::of_path(Path::new("b.SVG")).unwrap(),
            PlotFormat::Svg
        );
        for (path, named) in [
            ("plot.txt", "'.txt'"),
            ("plot", "no extension"),
            ("a.png.gz", "'.gz'"),
        ] {
            match PlotFormat::of_path(Path::new(path)) {
                Err(
                    e @ Error::InvalidOption {
                        option: "plot file",
                        ..
                    },
                ) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(named) && msg.contains(".png") && msg.contains(".svg"),
                        "{msg}"
                    );
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_label_has_glyphs() {
        let mut labels = vec!["nearest-neighbour distance".to_string(), "thresh".into()];
        for metric in Metric::ALL {
            for log in [false, true] {
                let p = DistancePlot {
                    metric,
                    ..plot(&[0.5], 3, log, None)
                };
                labels.push(p.title());
                labels.push(p.y_label().into());
                labels.extend(p.count_ticks(123_456).iter().map(|c| count_label(*c, log)));
            }
        }
        for v in [-1.25, 0.0, 3e-7, 0.1234567, 12.5, 4.2e7] {
            labels.push(number(v));
            labels.push(tick_label(v, 1e-5));
            labels.push(tick_label(v, 0.05));
        }
        for l in &labels {
            assert!(
                l.chars().all(font::has),
                "no glyph for a character of {l:?}"
            );
        }
    }

    #[test]
    fn ticks_are_round_values_in_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(0.013, 0.087, 6);
        assert!(
            t.len() >= 3 && t.iter().all(|v| (0.013..=0.087).contains(v)),
            "{t:?}"
        );
        assert_eq!(tick_label(t[0], t[1] - t[0]), "0.02");
        assert_eq!(nice_ticks(-3.0, 5.0, 4), vec![-2.0, 0.0, 2.0, 4.0]);
        assert_eq!(nice_ticks(1.0, 1.0, 5), vec![1.0]);
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(5.0), "5");
        assert_eq!(count_label(100_000, true), "1e5");
        let p = plot(&[], 3, true, None);
        assert_eq!(p.count_ticks(250), vec![0, 1, 2, 5, 10, 20, 50, 100, 200]);
        assert_eq!(p.count_ticks(54_321), vec![0, 1, 10, 100, 1000, 10_000]);
        assert_eq!(
            plot(&[], 3, false, None).count_ticks(8),
            vec![0, 2, 4, 6, 8]
        );
    }

    #[test]
    fn bar_counts_out_of_range_are_refused() {
        for bins in [0, MAX_PLOT_BINS + 1] {
            let err = plot(&[0.1], bins, false, None).check().unwrap_err();
            assert!(
                matches!(err, Error::InvalidOption { option: "bins", .. }),
                "{err:?}"
            );
        }
        // The most bars still draw (several to a pixel column).
        let d = skewed();
        let most = plot(&d, MAX_PLOT_BINS, false, None);
        assert!(most.check().is_ok());
        assert_eq!(most.svg().matches("<title>").count(), MAX_PLOT_BINS);
        assert!(most.png().pixels().any(|p| p.0 == [91, 124, 250]));
    }
}
