//! A small embedded bitmap font (5×8 cells: 7 rows above the baseline, one for descenders) for
//! the PNG plots, so drawing text needs no font file and no system fonts. It covers the digits,
//! `. - + e ( ) , : = /`, the lowercase letters and `N`; anything else draws as a hollow box.
use image::{Rgb, RgbImage};

/// Glyph width in font pixels (each glyph is followed by one blank column).
pub(crate) const WIDTH: i64 = 5;
/// Glyph height in font pixels.
pub(crate) const HEIGHT: i64 = 8;
/// Horizontal advance per character, in font pixels.
pub(crate) const ADVANCE: i64 = WIDTH + 1;

/// Each glyph: 8 rows, top first; bit 4 is the leftmost column.
const GLYPHS: &[(char, [u8; 8])] = &[
    (' ', [0, 0, 0, 0, 0, 0, 0, 0]),
    ('0', [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0]),
    ('1', [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0]),
    ('2', [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0]),
    ('3', [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0]),
    ('4', [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0]),
    ('5', [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0]),
    ('6', [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0]),
    ('7', [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0]),
    ('8', [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0]),
    ('9', [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0]),
    ('.', [0, 0, 0, 0, 0, 0x0c, 0x0c, 0]),
    ('-', [0, 0, 0, 0x0e, 0, 0, 0, 0]),
    ('+', [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0, 0]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0]),
    (',', [0, 0, 0, 0, 0, 0x0c, 0x04, 0x08]),
    (':', [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0, 0]),
    ('=', [0, 0, 0x1f, 0, 0x1f, 0, 0, 0]),
    ('/', [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10, 0]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0]),
    ('a', [0, 0, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0]),
    ('b', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0]),
    ('c', [0, 0, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0]),
    ('d', [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0]),
    ('e', [0, 0, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0]),
    ('f', [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0]),
    ('g', [0, 0, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('h', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0]),
    ('i', [0x04, 0, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0]),
    ('j', [0x02, 0, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0c]),
    ('k', [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0]),
    ('l', [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0]),
    ('m', [0, 0, 0x1a, 0x15, 0x15, 0x11, 0x11, 0]),
    ('n', [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11, 0]),
    ('o', [0, 0, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0]),
    ('p', [0, 0, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10]),
    ('q', [0, 0, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01]),
    ('r', [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10, 0]),
    ('s', [0, 0, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0]),
    ('t', [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0]),
    ('u', [0, 0, 0x11, 0x11, 0x11, 0x13, 0x0d, 0]),
    ('v', [0, 0, 0x11, 0x11, 0x11, 0x0a, 0x04, 0]),
    ('w', [0, 0, 0x11, 0x11, 0x15, 0x15, 0x0a, 0]),
    ('x', [0, 0, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0]),
    ('y', [0, 0, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('z', [0, 0, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0]),
];

/// What a character without a glyph draws as.
const MISSING: [u8; 8] = [0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f, 0];

/// The rows of `c`'s glyph (a hollow box when the font has none).
pub(crate) fn glyph(c: char) -> [u8; 8] {
    GLYPHS
        .iter()
        .find(|(g, _)| *g == c)
        .map_or(MISSING, |(_, rows)| *rows)
}

/// Whether the font has a glyph for `c`.
#[cfg(test)]
pub(crate) fn has(c: char) -> bool {
    GLYPHS.iter().any(|(g, _)| *g == c)
}

/// The width in image pixels of `text` drawn at `scale`.
pub(crate) fn text_width(text: &str, scale: i64) -> i64 {
    let n = text.chars().count() as i64;
    (n * ADVANCE - 1).max(0) * scale
}

/// Sets one pixel, ignoring positions outside the image.
pub(crate) fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, color);
    }
}

/// Draws `text` left to right with its top-left corner at (`x`, `y`), each font pixel a
/// `scale`×`scale` square.
pub(crate) fn draw(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let x0 = x + i as i64 * ADVANCE * scale;
        for_each_dot(c, |col, row| {
            for dy in 0..scale {
                for dx in 0..scale {
                    put(img, x0 + col * scale + dx, y + row * scale + dy, color);
                }
            }
        });
    }
}

/// Draws `text` rotated a quarter turn anticlockwise (read bottom to top), starting at the
/// bottom-left corner (`x`, `y`): it spans `text_width` pixels upwards and `HEIGHT × scale`
/// pixels to the right.
pub(crate) fn draw_up(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let y0 = y - i as i64 * ADVANCE * scale;
        for_each_dot(c, |col, row| {
            for dy in 0..scale {
                for dx in 0..scale {
                    put(img, x + row * scale + dx, y0 - col * scale - dy, color);
                }
            }
        });
    }
}

/// Calls `f(column, row)` for each set dot of `c`'s glyph.
fn for_each_dot(c: char, mut f: impl FnMut(i64, i64)) {
    for (row, bits) in glyph(c).iter().enumerate() {
        for col in 0..WIDTH {
            if bits & (1 << (WIDTH - 1 - col)) != 0 {
                f(col, row as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_unique_and_fit_their_cell() {
        for (i, (c, rows)) in GLYPHS.iter().enumerate() {
            assert!(
                GLYPHS[i + 1..].iter().all(|(d, _)| d != c),
                "duplicate glyph {c:?}"
            );
            assert!(rows.iter().all(|r| *r < 32), "glyph {c:?} is wider than 5");
            if *c != ' ' {
                assert!(rows.iter().any(|r| *r != 0), "glyph {c:?} is empty");
            }
        }
        assert!(has('e') && has('.') && has('-') && has('N'));
        assert!(!has('Q'));
        assert_eq!(glyph('Q'), MISSING);
    }

    #[test]
    fn text_is_drawn_where_its_width_says() {
        let black = Rgb([0, 0, 0]);
        let mut img = RgbImage::from_pixel(100, 40, Rgb([255, 255, 255]));
        draw(&mut img, 10, 5, "10", 2, black);
        let inked: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == black)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(!inked.is_empty());
        let w = text_width("10", 2);
        assert_eq!(w, (2 * ADVANCE - 1) * 2);
        assert!(inked
            .iter()
            .all(|(x, y)| (10..10 + w as u32).contains(x)
                && (5..5 + (HEIGHT * 2) as u32).contains(y)));
        // Upright text is `HEIGHT × scale` wide once rotated.
        let mut up = RgbImage::from_pixel(40, 100, Rgb([255, 255, 255]));
        draw_up(&mut up, 5, 90, "count", 2, black);
        let xs: Vec<u32> = up
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == black)
            .map(|(x, _, _)| x)
            .collect();
        assert!(xs.iter().all(|x| (5..5 + (HEIGHT * 2) as u32).contains(x)));
    }
}
