//! The SVG histogram (self-contained, readable in any browser).
use std::fmt::Write as _;

use super::{DistancePlot, Histogram};

impl DistancePlot<'_> {
    /// An SVG histogram (self-contained, readable in any browser).
    pub(crate) fn svg(&self) -> String {
        let (w, h, l, b, t, r) = (720.0, 400.0, 64.0, 48.0, 36.0, 40.0);
        let bins = self.bins.max(1);
        let Histogram { lo, hi, counts } = self.histogram();
        let top = counts
            .iter()
            .map(|c| self.level(*c as f64))
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
            r##"<rect width="100%" height="100%" fill="#fff"/><text x="{l}" y="22" font-size="14">{}</text>"##,
            self.title()
        );
        for (i, &c) in counts.iter().enumerate() {
            let bh = self.level(c as f64) / top * ph;
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
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">nearest-neighbour distance</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
            l + pw / 2.0,
            h - 8.0,
            t + ph / 2.0,
            t + ph / 2.0,
            self.y_label()
        );
        if let Some(th) = self.thresh() {
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
}

#[cfg(test)]
mod tests {
    use crate::plot::tests::{plot, skewed};

    #[test]
    fn the_svg_has_a_bar_per_bin_and_the_line() {
        let svg = plot(&skewed(), 4, true, Some(0.5)).svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("thresh 0.5") && svg.contains("count (log)"));
        assert!(!plot(&skewed(), 4, true, None).svg().contains("thresh"));
    }
}
