use std::path::Path;

use simile_dataset::{Dataset, Store};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("home")).unwrap();
        Env { dir, store }
    }
    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    pub fn dataset(&self, name: &str) -> Dataset {
        self.store.create_dataset(name).unwrap()
    }
}

/// Writes a small image (format from the extension) with a colour ramp.
pub fn write_image(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

pub fn assert_box_close(a: [f64; 4], b: [f64; 4]) {
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}
