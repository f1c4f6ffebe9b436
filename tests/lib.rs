//! Shared helpers for the end-to-end tests: isolated sessions and synthetic datasets.
#![allow(clippy::unwrap_used)]

pub mod load;

use rand::{Rng, SeedableRng};
use simile::ndarray::Array2;
use simile::{BrainConfig, NewSample, Settings, Simile};

/// A session on a fresh temp home, with the default brain config (nothing read from the
/// machine's `~/.fiftyone` or environment).
pub fn session() -> (tempfile::TempDir, Simile) {
    let dir = tempfile::tempdir().unwrap();
    let simile = open(dir.path());
    (dir, simile)
}

/// Opens another session on the same home (as a second process would).
pub fn open(home: &std::path::Path) -> Simile {
    Simile::builder()
        .settings(Settings::for_home(home))
        .brain_config(BrainConfig::default())
        .open()
        .unwrap()
}

/// A dataset of `n` samples (`filepath` = `img{i}.jpg`, field `idx`), and `n × dim` random
/// embeddings aligned with it.
pub fn dataset_with(
    simile: &Simile,
    name: &str,
    n: usize,
    dim: usize,
) -> (simile::Dataset, Vec<String>, Array2<f32>) {
    let ds = simile.create_dataset(name).unwrap();
    let ids = ds
        .add_samples(
            (0..n)
                .map(|i| {
                    NewSample::new(format!("img{i}.jpg")).with_field("idx", serde_json::json!(i))
                })
                .collect(),
        )
        .unwrap();
    (ds, ids, random_array(n, dim, 51))
}

/// Seeded `n × dim` values in [-1, 1).
pub fn random_array(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0..1.0))
}

/// Exact cosine ranking of all rows against row `q` (reference for assertions).
pub fn cosine_rank(emb: &Array2<f32>, q: &[f32]) -> Vec<(usize, f64)> {
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nq = norm(q);
    let mut out: Vec<(usize, f64)> = emb
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.to_vec();
            let dot: f64 = r
                .iter()
                .zip(q)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            (i, 1.0 - dot / (norm(&r) * nq))
        })
        .collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    out
}

/// The Milvus server the tests run against, from `cargo xtask ci` (which starts a real server
/// with authentication on and exports these variables).
pub fn milvus_params() -> serde_json::Map<String, serde_json::Value> {
    let uri = std::env::var("SIMILE_TEST_MILVUS_URI").unwrap_or_else(|_| {
        panic!(
            "SIMILE_TEST_MILVUS_URI is not set: run the suite with `cargo xtask ci`, or start a server with \
             `cargo xtask milvus start` and export SIMILE_TEST_MILVUS_URI/_USER/_PASSWORD"
        )
    });
    let mut m = serde_json::Map::new();
    m.insert("uri".into(), uri.into());
    if let Ok(u) = std::env::var("SIMILE_TEST_MILVUS_USER") {
        m.insert("user".into(), u.into());
    }
    if let Ok(p) = std::env::var("SIMILE_TEST_MILVUS_PASSWORD") {
        m.insert("password".into(), p.into());
    }
    m
}

/// A session whose brain config holds the test server's connection (as a user's
/// `brain_config.json` would), optionally with Milvus as the default backend.
pub fn milvus_session(default_milvus: bool) -> (tempfile::TempDir, Simile) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrainConfig::default();
    if default_milvus {
        config.default_similarity_backend = "milvus".into();
    }
    config
        .similarity_backends
        .insert("milvus".into(), milvus_params());
    let simile = Simile::builder()
        .settings(Settings::for_home(dir.path()))
        .brain_config(config)
        .open()
        .unwrap();
    (dir, simile)
}

/// A session that can run the committed tiny CLIP (RANDOM weights): the ONNX Runtime library
/// comes from `SIMILE_ORT_DYLIB_PATH`, which `cargo xtask ci` sets.
pub fn clip_session() -> (tempfile::TempDir, Simile) {
    let dir = tempfile::tempdir().unwrap();
    let ort = std::env::var("SIMILE_ORT_DYLIB_PATH").unwrap_or_else(|_| {
        panic!("SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci` (or `cargo xtask models fetch-ort` and export it)")
    });
    let mut settings = Settings::for_home(dir.path());
    settings.ort_dylib_path = Some(ort.into());
    settings.offline = true;
    let simile = Simile::builder()
        .settings(settings)
        .brain_config(BrainConfig::default())
        .open()
        .unwrap();
    (dir, simile)
}

/// Writes `n` small PNG images (distinct colour patterns, pairs of near-duplicates) into `dir`.
pub fn write_images(dir: &std::path::Path, n: usize) -> Vec<std::path::PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let base = (i / 2) as u32; // 2k and 2k+1 are near-duplicates
            let img = image::RgbImage::from_fn(64, 48, |x, y| {
                let r = ((x * 4 + base * 37) % 256) as u8;
                let g = ((y * 5 + base * 91) % 256) as u8;
                let b = (((x + y) * 3 + base * 53 + (i as u32 % 2) * ((x * y) % 3)) % 256) as u8;
                image::Rgb([r, g, b])
            });
            let p = dir.join(format!("{i:03}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}
