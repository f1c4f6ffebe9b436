//! The PNG histogram, drawn pixel by pixel with the embedded font.
use image::{Rgb, RgbImage};

use super::font;
use super::{count_label, nice_ticks, number, tick_label, DistancePlot, Histogram};

impl DistancePlot<'_> {
    /// The PNG picture: bars, axes with tick values, the threshold line and its value, title
    /// and axis labels.
    pub(crate) fn png(&self) -> RgbImage {
        let px = Png::LAYOUT;
        let mut img = RgbImage::from_pixel(px.w as u32, px.h as u32, Png::BG);
        let hist = self.histogram();
        let max_count = hist.counts.iter().copied().max().unwrap_or(0);
        let top = self.level(max_count.max(1) as f64) * Png::HEADROOM;
        let bottom = px.t + px.ph;
        let y_of =
            |count: usize| bottom - (self.level(count as f64) / top * px.ph as f64).round() as i64;
        let text = 2;
        // Horizontal grid lines and the count axis' ticks.
        for c in self.count_ticks(max_count) {
            let y = y_of(c);
            fill(&mut img, px.l, y, px.l + px.pw - 1, y, Png::GRID);
            fill(&mut img, px.l - 6, y, px.l - 1, y, Png::AXIS);
            let label = count_label(c, self.log);
            let lw = font::text_width(&label, text);
            font::draw(
                &mut img,
                px.l - 10 - lw,
                y - font::HEIGHT * text / 2 + 1,
                &label,
                text,
                Png::TEXT,
            );
        }
        // Bars.
        for (i, &c) in hist.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let (a, b) = hist.edges(i);
            let x0 = px.x_of(a, &hist);
            let mut x1 = px.x_of(b, &hist) - 1;
            if x1 - x0 >= 3 {
                x1 -= 1; // a one-pixel gap between wide bars
            }
            fill(&mut img, x0, y_of(c), x1.max(x0), bottom - 1, Png::BAR);
        }
        // Axes and the distance axis' ticks.
        fill(&mut img, px.l - 1, px.t, px.l - 1, bottom, Png::AXIS);
        fill(&mut img, px.l - 1, bottom, px.l + px.pw, bottom, Png::AXIS);
        let ticks = nice_ticks(hist.lo, hist.hi, 6);
        let step = if ticks.len() > 1 {
            ticks[1] - ticks[0]
        } else {
            hist.hi - hist.lo
        };
        for v in ticks {
            let x = px.x_of(v, &hist);
            fill(&mut img, x, bottom + 1, x, bottom + 6, Png::AXIS);
            let label = tick_label(v, step);
            let lw = font::text_width(&label, text);
            font::draw(&mut img, x - lw / 2, bottom + 12, &label, text, Png::TEXT);
        }
        // The threshold line, two pixels wide, with its value beside it.
        if let Some(th) = self.thresh() {
            let x = px.x_of(th, &hist);
            fill(&mut img, x - 1, px.t, x, bottom - 1, Png::THRESH);
            let label = format!("thresh {}", number(th));
            let lw = font::text_width(&label, text);
            let lx = if x + 8 + lw <= px.l + px.pw {
                x + 8
            } else {
                x - 8 - lw
            };
            fill(
                &mut img,
                lx - 3,
                px.t + 2,
                lx + lw + 2,
                px.t + 4 + font::HEIGHT * text,
                Png::BG,
            );
            font::draw(&mut img, lx, px.t + 4, &label, text, Png::THRESH);
        }
        // Title and axis labels.
        let title = self.title();
        let tw = font::text_width(&title, text);
        font::draw(
            &mut img,
            px.l + (px.pw - tw) / 2,
            16,
            &title,
            text,
            Png::TEXT,
        );
        let xl = "nearest-neighbour distance";
        let xw = font::text_width(xl, text);
        font::draw(
            &mut img,
            px.l + (px.pw - xw) / 2,
            px.h - 28,
            xl,
            text,
            Png::TEXT,
        );
        let yl = self.y_label();
        let yw = font::text_width(yl, text);
        font::draw_up(&mut img, 10, px.t + (px.ph + yw) / 2, yl, text, Png::TEXT);
        img
    }
}

/// The PNG's size, margins and colours.
struct Png {
    w: i64,
    h: i64,
    /// Left and top margins.
    l: i64,
    t: i64,
    /// The plot area's width and height.
    pw: i64,
    ph: i64,
}

impl Png {
    const LAYOUT: Png = Png {
        w: 800,
        h: 480,
        l: 110,
        t: 56,
        pw: 800 - 110 - 30,
        ph: 480 - 56 - 80,
    };
    /// The plot area's height over the tallest bar's.
    const HEADROOM: f64 = 1.08;
    const BG: Rgb<u8> = Rgb([255, 255, 255]);
    const BAR: Rgb<u8> = Rgb([91, 124, 250]);
    const THRESH: Rgb<u8> = Rgb([229, 72, 77]);
    const AXIS: Rgb<u8> = Rgb([51, 51, 51]);
    const GRID: Rgb<u8> = Rgb([228, 231, 238]);
    const TEXT: Rgb<u8> = Rgb([34, 34, 34]);

    /// The image column of distance `v`.
    fn x_of(&self, v: f64, hist: &Histogram) -> i64 {
        self.l + ((v - hist.lo) / (hist.hi - hist.lo) * self.pw as f64).round() as i64
    }
}

/// Fills the rectangle from (`x0`, `y0`) to (`x1`, `y1`), inclusive.
fn fill(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb<u8>) {
    for y in y0.min(y1)..=y0.max(y1) {
        for x in x0.min(x1)..=x0.max(x1) {
            font::put(img, x, y, color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::{plot, skewed};
    use crate::plot::PlotFormat;
    use crate::Error;

    /// Pixels of `color` in column `x` of the plot area.
    fn in_column(img: &RgbImage, x: i64, color: Rgb<u8>) -> usize {
        let px = Png::LAYOUT;
        (px.t..px.t + px.ph)
            .filter(|y| img.get_pixel(x as u32, *y as u32) == &color)
            .count()
    }

    #[test]
    fn a_png_is_written_atomically_and_decodes_to_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("d.png");
        std::fs::write(&out, b"old").unwrap();
        plot(&skewed(), 4, false, Some(0.5))
            .write(&out, PlotFormat::Png)
            .unwrap();
        let img = image::open(&out).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (Png::LAYOUT.w as u32, Png::LAYOUT.h as u32)
        );
        // Only the output is left: the temporary file was renamed into place.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("d.png")]);
        // A failed write (no such directory) leaves nothing and names the path.
        let missing = dir.path().join("no/such/d.png");
        let err = plot(&skewed(), 4, false, None)
            .write(&missing, PlotFormat::Png)
            .unwrap_err();
        assert!(
            matches!(err, Error::Io { ref path, .. } if path.ends_with("d.png")),
            "{err:?}"
        );
        assert!(!missing.exists());
    }

    #[test]
    fn the_threshold_line_is_where_the_threshold_maps() {
        let px = Png::LAYOUT;
        let d = skewed();
        let img = plot(&d, 4, false, Some(0.45)).png();
        let hist = Histogram::of(&d, 4, Some(0.45));
        let x = px.l + (0.45 * px.pw as f64).round() as i64;
        assert_eq!(px.x_of(0.45, &hist), x);
        // The line spans the plot area's height (the label box may cover its top).
        assert!(in_column(&img, x, Png::THRESH) >= (px.ph - 30) as usize);
        for far in [x - 40, px.l + 5, px.l + px.pw - 3] {
            assert_eq!(in_column(&img, far, Png::THRESH), 0, "column {far}");
        }
        // Without a threshold (or with a non-finite one) there is no line at all.
        for thresh in [None, Some(f64::NAN), Some(f64::INFINITY)] {
            let img = plot(&d, 4, false, thresh).png();
            assert!(!img.pixels().any(|p| *p == Png::THRESH), "{thresh:?}");
        }
        // A threshold beyond the distances widens the axis to show it.
        let img = plot(&d, 4, false, Some(2.0)).png();
        assert!(in_column(&img, px.l + px.pw, Png::THRESH) > 0);
    }

    #[test]
    fn bar_heights_follow_the_counts_and_log_compresses_them() {
        let px = Png::LAYOUT;
        let d = skewed();
        assert_eq!(Histogram::of(&d, 4, None).counts, vec![8, 2, 4, 1]);
        let centre = |i: i64| px.l + px.pw * (2 * i + 1) / 8;
        let heights = |img: &RgbImage| -> Vec<usize> {
            (0..4)
                .map(|i| in_column(img, centre(i), Png::BAR))
                .collect()
        };
        let linear = heights(&plot(&d, 4, false, None).png());
        // The tallest bar nearly fills the plot area; the others follow the counts 8 : 2 : 4 : 1.
        let full = px.ph as f64 / Png::HEADROOM;
        assert_eq!(linear[0], full.round() as usize);
        assert!(linear[0] > linear[2] && linear[2] > linear[1] && linear[1] > linear[3]);
        for (h, c) in linear.iter().zip([8.0, 2.0, 4.0, 1.0]) {
            let want = c / 8.0 * full;
            assert!((*h as f64 - want).abs() <= 1.0, "{linear:?}");
        }
        let log = heights(&plot(&d, 4, true, None).png());
        assert_eq!(log[0], full.round() as usize);
        for (h, c) in log.iter().zip([8.0f64, 2.0, 4.0, 1.0]) {
            let want = c.ln_1p() / 9f64.ln() * full;
            assert!((*h as f64 - want).abs() <= 1.0, "{log:?}");
        }
        // On a log axis the small bars are relatively taller.
        assert!(log[3] > linear[3] && log[1] > linear[1]);
    }
}
