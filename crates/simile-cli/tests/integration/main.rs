//! The `simile` binary, driven as a user would: separate processes on one home, JSON output,
//! errors on stderr with a non-zero exit and nothing changed.
#![allow(clippy::unwrap_used)]

mod doctor;
mod dups;
mod fuzz;
mod install;
mod reliability;
mod resume;
mod store_pages;
mod streaming;
mod ux;
mod views;

use std::path::Path;
use std::process::{Command, Output};

use ndarray::Array2;
use ndarray_npy::WriteNpyExt;
use serde_json::Value;

struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
        }
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_simile"))
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            // An isolated brain config: nothing from the machine's ~/.fiftyone.
            .env(
                "SIMILE_BRAIN_CONFIG_PATH",
                self.home.path().join("no-such-config.json"),
            )
            .env_remove("FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND")
            .env_remove("SIMILE_DEFAULT_SIMILARITY_BACKEND")
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "simile {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }
    /// `dataset create NAME --from-dir DIR --json`, which must succeed.
    fn create_from_dir(&self, name: &str, dir: &Path) -> Value {
        let dir = dir.to_str().unwrap();
        self.ok(&["dataset", "create", name, "--from-dir", dir, "--json"])
    }
    /// `similarity compute DATASET --brain-key KEY --embeddings FILE --json`, which must succeed.
    fn compute_with(&self, dataset: &str, key: &str, embeddings: &Path) -> Value {
        let emb = embeddings.to_str().unwrap();
        self.ok(&[
            "similarity",
            "compute",
            dataset,
            "--brain-key",
            key,
            "--embeddings",
            emb,
            "--json",
        ])
    }
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "simile {args:?} should have failed");
        assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
        String::from_utf8_lossy(&out.stderr).to_string()
    }
}

fn images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..n {
        let p = if i % 2 == 0 {
            dir.join(format!("{i:03}.jpg"))
        } else {
            dir.join("sub").join(format!("{i:03}.png"))
        };
        let img = image::RgbImage::from_fn(16, 12, |x, y| {
            image::Rgb([(x * 15) as u8, (y * 20) as u8, (i * 40) as u8])
        });
        img.save(p).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
}

fn npy(path: &Path, rows: usize, dim: usize, seed: u32) {
    let a = Array2::from_shape_fn((rows, dim), |(r, c)| {
        ((((r * 31 + c * 7) as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0
            - 0.5
    });
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn dataset_commands() {
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    images(&imgs, 6);
    let created = cli.create_from_dir("pics", &imgs);
    assert_eq!(created["samples"], 6, "recursive scan, images only");
    assert_eq!(
        created["skipped"].as_array().unwrap().len(),
        1,
        "notes.txt is reported"
    );
    assert_eq!(
        cli.ok(&["dataset", "list", "--json"]),
        serde_json::json!(["pics"])
    );
    let head = cli.ok(&["dataset", "head", "pics", "-n", "2", "--json"]);
    assert_eq!(head.as_array().unwrap().len(), 2);
    assert_eq!(head[0]["id"].as_str().unwrap().len(), 24);
    assert!(head[0]["filepath"].as_str().unwrap().ends_with("000.jpg"));
    let info = cli.ok(&["dataset", "info", "pics", "--json"]);
    assert_eq!(info["samples"], 6);
    let err = cli.fails(&[
        "dataset",
        "create",
        "pics",
        "--from-dir",
        imgs.to_str().unwrap(),
    ]);
    assert!(err.contains("already exists"), "{err}");
    // A corrupt image is reported, not fatal.
    std::fs::write(imgs.join("corrupt.jpg"), b"not a jpeg").unwrap();
    let other = cli.create_from_dir("pics2", &imgs);
    assert_eq!(other["samples"], 6);
    assert!(other["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["path"].as_str().unwrap().ends_with("corrupt.jpg")));
    cli.ok(&["dataset", "delete", "pics2", "--json"]);
    // FiftyOne-format round trip through export and import keeps the sample ids.
    let out = cli.home.path().join("fo-out");
    let exported = cli.ok(&[
        "dataset",
        "export",
        "pics",
        "--format",
        "fiftyone",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(exported["exported"], 6);
    let back = cli.ok(&[
        "dataset",
        "create",
        "back",
        "--from-fiftyone",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(back["samples"], 6);
    let head2 = cli.ok(&["dataset", "head", "back", "-n", "2", "--json"]);
    assert_eq!(head2[0]["id"], head[0]["id"], "sample ids are kept");
    cli.ok(&["dataset", "delete", "back", "--json"]);
    let err = cli.fails(&["dataset", "info", "nope"]);
    assert!(err.contains("'nope' not found"), "{err}");
    cli.ok(&["dataset", "delete", "pics", "--json"]);
    assert_eq!(
        cli.ok(&["dataset", "list", "--json"]),
        serde_json::json!([])
    );
    // The offline zoo.
    let zoo = cli.ok(&["dataset", "zoo", "quickstart", "--json"]);
    assert_eq!(zoo["name"], "quickstart");
    assert!(zoo["samples"].as_u64().unwrap() >= 200);
}

#[test]
fn similarity_workflow_across_processes() {
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    images(&imgs, 20);
    cli.create_from_dir("d", &imgs);
    let emb = cli.home.path().join("emb.npy");
    npy(&emb, 20, 8, 1);
    let computed = cli.compute_with("d", "sim", &emb);
    assert_eq!(computed["total_index_size"], 20);
    assert_eq!(computed["backend"], "sklearn");

    let head = cli.ok(&["dataset", "head", "d", "-n", "20", "--json"]);
    let ids: Vec<String> = head
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    // Another process queries the run.
    let sorted = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[4],
        "-k",
        "5",
        "--dist-field",
        "dist",
        "--json",
    ]);
    let rows = sorted.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["id"], ids[4].as_str());
    assert_eq!(rows[0]["distance"], 0.0);
    let d: Vec<f64> = rows
        .iter()
        .map(|r| r["distance"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "ascending distances");
    let q = cli.home.path().join("q.npy");
    npy(&q, 1, 8, 7);
    let by_vec = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--vector",
        q.to_str().unwrap(),
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(by_vec.as_array().unwrap().len(), 3);

    // Maintenance.
    let removed = cli.ok(&[
        "similarity",
        "remove",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "--id",
        &ids[1],
        "--json",
    ]);
    assert_eq!(removed["total_index_size"], 18);
    let add = cli.home.path().join("add.npy");
    npy(&add, 2, 8, 3);
    let added = cli.ok(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        add.to_str().unwrap(),
        "--id",
        &ids[0],
        "--id",
        &ids[2],
        "--json",
    ]);
    assert_eq!(added["total_index_size"], 19, "one new id, one upserted");
    let out = cli.home.path().join("got.npy");
    let got = cli.ok(&[
        "similarity",
        "get",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "--id",
        &ids[2],
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(got["shape"], serde_json::json!([2, 8]));
    let back: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    let want: Array2<f32> = ndarray_npy::read_npy(&add).unwrap();
    assert_eq!(back, want);

    // Brain runs.
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!(["sim"])
    );
    let info = cli.ok(&["brain", "info", "d", "sim", "--json"]);
    assert_eq!(info["method"], "sklearn");
    cli.ok(&["brain", "rename", "d", "sim", "sim2", "--json"]);
    cli.ok(&["brain", "delete", "d", "sim2", "--cleanup", "--json"]);
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn errors_change_nothing() {
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    images(&imgs, 4);
    cli.create_from_dir("d", &imgs);
    let bad = cli.home.path().join("bad.npy");
    npy(&bad, 3, 8, 1);
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        bad.to_str().unwrap(),
    ]);
    assert!(
        err.contains("number of embeddings (3)") && err.contains("(4)"),
        "{err}"
    );
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "bad key",
        "--no-embeddings",
    ]);
    assert!(err.contains("bad key"), "{err}");
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "k",
        "--no-embeddings",
        "--backend",
        "nope",
    ]);
    assert!(
        err.contains("invalid value 'nope'") && err.contains("sklearn, milvus"),
        "--backend lists its choices: {err}"
    );
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "k",
        "--no-embeddings",
        "--metric",
        "l1",
    ]);
    assert!(err.contains("l1"), "{err}");
    let garbage = cli.home.path().join("garbage.npy");
    std::fs::write(&garbage, b"definitely not npy").unwrap();
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "k",
        "--embeddings",
        garbage.to_str().unwrap(),
    ]);
    assert!(err.contains("garbage.npy"), "{err}");
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!([])
    );
    let err = cli.fails(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "nope",
        "--id",
        "0123456789abcdef01234567",
    ]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn quickstart_runs_end_to_end() {
    let cli = Cli::new();
    let out = cli.ok(&["quickstart", "--synthetic", "--json"]);
    assert_eq!(
        out["same_class_in_top10"], 10,
        "clustered demo data: the 10 nearest share the class"
    );
    assert_eq!(
        cli.ok(&["dataset", "list", "--json"]),
        serde_json::json!([]),
        "cleaned up"
    );

    assert!(
        std::env::var("SIMILE_ORT_DYLIB_PATH").is_ok(),
        "SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"
    );
    let out = cli.ok(&["quickstart", "--json"]);
    assert_eq!(out["model"], "clip-tiny-random");
    assert_eq!(out["random_weights"], true);
    // Near-duplicates are near even with random weights (the images are almost identical).
    assert!(out["near_duplicates_found"].as_u64().unwrap() >= 5, "{out}");
    assert_eq!(
        cli.ok(&["brain", "list", "quickstart", "--json"]),
        serde_json::json!([]),
        "indexes cleaned up"
    );
    assert_eq!(
        cli.ok(&["dataset", "list", "--json"]),
        serde_json::json!(["quickstart"])
    );
}

#[test]
fn model_workflow_with_the_tiny_random_clip() {
    assert!(
        std::env::var("SIMILE_ORT_DYLIB_PATH").is_ok(),
        "SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"
    );
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    for i in 0..6u32 {
        let img = image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6 + i * 40) as u8, (y * 8) as u8, (i * 30) as u8])
        });
        img.save(imgs.join(format!("{i}.png"))).unwrap();
    }
    cli.create_from_dir("d", &imgs);
    let out = cli.ok(&[
        "embed",
        "d",
        "--model",
        "clip-tiny-random",
        "--field",
        "clip",
        "--json",
    ]);
    assert_eq!(out["embedded"], 6);
    let computed = cli.ok(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "clip",
        "--model",
        "clip-tiny-random",
        "--json",
    ]);
    assert_eq!(computed["total_index_size"], 6);
    let rows = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "clip",
        "--text",
        "a photo of a dog",
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let by_field = cli.ok(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "by_field",
        "--embeddings-field",
        "clip",
        "--json",
    ]);
    assert_eq!(by_field["total_index_size"], 6);
    let err = cli.fails(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "by_field",
        "--text",
        "a dog",
    ]);
    assert!(err.contains("does not support text prompts"), "{err}");
}
