//! Bad inputs that used to crash the CLI or be silently accepted (issue 12): each one now fails
//! with exit code 1 (never an abort), an error that names the problem, and nothing changed.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{images, npy, Cli};

impl Cli {
    /// Runs a command that must fail cleanly: exit code 1 (an abort has none), nothing on
    /// stdout. Returns stderr.
    fn refuses(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "simile {args:?} should fail with exit code 1: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
        err
    }

    /// A dataset `d` of `n` images; returns the sample ids in order.
    pub(crate) fn dataset(&self, n: usize) -> Vec<String> {
        let imgs = self.home.path().join("imgs");
        images(&imgs, n);
        self.create_from_dir("d", &imgs);
        let head = self.ok(&["dataset", "head", "d", "-n", "1000", "--json"]);
        head.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `d` with an index `sim` of 8-d vectors; returns the sample ids.
    pub(crate) fn indexed(&self, n: usize) -> Vec<String> {
        let ids = self.dataset(n);
        let emb = self.file("emb.npy");
        npy(&emb, n, 8, 1);
        self.compute_with("d", "sim", &emb);
        ids
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn size(&self) -> Value {
        self.ok(&["similarity", "size", "d", "--brain-key", "sim", "--json"])["total_index_size"]
            .clone()
    }
}

/// A `.npy` file whose header claims `shape` but that holds only 8 bytes of data.
fn lying_npy(path: &Path, shape: &str) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Padded like numpy: magic, version, length and header fill whole 64-byte blocks.
    header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0u8; 8]);
    std::fs::write(path, b).unwrap();
}

#[test]
fn npy_headers_claiming_huge_shapes_are_refused_without_allocating() {
    let cli = Cli::new();
    let ids = cli.indexed(4);
    let huge = cli.file("huge.npy");
    lying_npy(&huge, "(4000000, 4000000)");
    let huge = huge.to_str().unwrap();
    let check = |err: &str| {
        assert!(
            err.contains("huge.npy") && err.contains("64000000000000 bytes"),
            "{err}"
        );
    };
    check(&cli.refuses(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "other",
        "--embeddings",
        huge,
    ]));
    check(&cli.refuses(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--vector",
        huge,
    ]));
    check(&cli.refuses(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        huge,
        "--id",
        &ids[0],
    ]));
    assert_eq!(cli.ok(&["brain", "list", "d", "--json"]), json!(["sim"]));
    assert_eq!(cli.size(), 4);
}

#[test]
fn add_refuses_ids_not_in_the_dataset_duplicates_and_conflicting_flags() {
    let cli = Cli::new();
    let ids = cli.indexed(4);
    cli.ok(&[
        "similarity",
        "remove",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "--json",
    ]);
    let two = cli.file("two.npy");
    npy(&two, 2, 8, 5);
    let two = two.to_str().unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec!["similarity", "add", "d", "--brain-key", "sim"];
        args.extend_from_slice(&["--embeddings", two]);
        args.extend_from_slice(extra);
        cli.refuses(&args)
    };
    // Malformed and well-formed ids that are not samples of the dataset.
    let err = add(&["--id", &ids[0], "--id", "xyz"]);
    assert!(
        err.contains("xyz") && err.contains("not in dataset 'd'"),
        "{err}"
    );
    let absent = "0123456789abcdef01234567";
    let err = add(&["--id", absent, "--id", &ids[0]]);
    assert!(
        err.contains(absent) && err.contains("not in dataset"),
        "{err}"
    );
    // The same id twice in one call.
    let err = add(&["--id", &ids[0], "--id", &ids[0]]);
    assert!(err.contains("twice") && err.contains(&ids[0]), "{err}");
    // --id and --ids-file together.
    let file = cli.file("ids.txt");
    std::fs::write(&file, format!("{}\n{}\n", ids[0], ids[1])).unwrap();
    let err = add(&["--ids-file", file.to_str().unwrap(), "--id", &ids[2]]);
    assert!(err.contains("--id") && err.contains("--ids-file"), "{err}");
    // A duplicate line in an ids file names the lines.
    std::fs::write(&file, format!("{}\n{}\n", ids[1], ids[1])).unwrap();
    let err = add(&["--ids-file", file.to_str().unwrap()]);
    assert!(
        err.contains("twice") && err.contains("lines 1 and 2"),
        "{err}"
    );
    assert_eq!(cli.size(), 3, "nothing was added");
    // The index still returns only samples of the dataset.
    let rows = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[1],
        "--json",
    ]);
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["filepath"].is_string()));
    // A valid add still works.
    cli.ok(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        two,
        "--id",
        &ids[0],
        "--id",
        &ids[1],
        "--json",
    ]);
    assert_eq!(cli.size(), 4);
}

#[test]
fn empty_backend_unknown_params_and_zero_limits_are_refused() {
    let cli = Cli::new();
    let ids = cli.indexed(4);
    let compute = |extra: &[&str]| {
        let mut args = vec!["similarity", "compute", "d", "--brain-key", "k2"];
        args.push("--no-embeddings");
        args.extend_from_slice(extra);
        cli.refuses(&args)
    };
    // A blank --backend is a usage error (exit 2) that lists the choices.
    for blank in ["", "  "] {
        let err = cli.fails(&[
            "similarity",
            "compute",
            "d",
            "--brain-key",
            "k2",
            "--no-embeddings",
            "--backend",
            blank,
        ]);
        assert!(
            err.contains("--backend") && err.contains("[possible values: sklearn, milvus]"),
            "{err}"
        );
    }
    let err = compute(&["--set", "bogus_param=1"]);
    assert!(
        err.contains("bogus_param") && err.contains("metric"),
        "names the unknown parameter and the known ones: {err}"
    );
    let err = compute(&["--backend", "milvus", "--set", "colection_name=x"]);
    assert!(
        err.contains("colection_name") && err.contains("collection_name"),
        "{err}"
    );
    assert_eq!(cli.ok(&["brain", "list", "d", "--json"]), json!(["sim"]));
    // Load-time parameters are checked too.
    let err = cli.refuses(&[
        "similarity",
        "size",
        "d",
        "--brain-key",
        "sim",
        "--set",
        "bogus_param=1",
    ]);
    assert!(err.contains("bogus_param"), "{err}");
    // -k 0 would print nothing.
    let err = cli.refuses(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "-k",
        "0",
    ]);
    assert!(err.contains("-k"), "{err}");
    // --batch-size 0 is refused before any model is loaded.
    let err = cli.refuses(&[
        "embed",
        "d",
        "--model",
        "clip-tiny-random",
        "--batch-size",
        "0",
    ]);
    assert!(err.contains("--batch-size"), "{err}");
}

#[test]
fn a_dist_field_never_clobbers_another_field() {
    let cli = Cli::new();
    let ids = cli.indexed(4);
    let before = cli.ok(&["dataset", "head", "d", "-n", "10", "--json"]);
    assert!(before[0]["metadata"].is_object());
    let sort = |field: &str| {
        let mut args = vec!["similarity", "sort", "d", "--brain-key", "sim", "--id"];
        args.extend_from_slice(&[ids[0].as_str(), "--dist-field", field]);
        cli.run(&[args.as_slice(), &["--json"]].concat())
    };
    let out = sort("metadata");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("metadata") && err.contains("--dist-field"),
        "{err}"
    );
    assert_eq!(
        cli.ok(&["dataset", "head", "d", "-n", "10", "--json"]),
        before,
        "nothing written"
    );
    // A new field, then the same field again (it holds distances): fine.
    for _ in 0..2 {
        let out = sort("dist");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 4);
    }
    let head = cli.ok(&["dataset", "head", "d", "-n", "10", "--json"]);
    assert!(head[0]["dist"].is_number());
    assert_eq!(head[0]["metadata"], before[0]["metadata"]);
}

#[test]
fn imports_of_files_that_do_not_exist_fail() {
    let cli = Cli::new();
    let imgs = cli.file("imgs");
    images(&imgs, 2);
    let paths = cli.file("paths.txt");
    std::fs::write(&paths, "/no/such/a.jpg\n/no/such/b.jpg\n").unwrap();
    let err = cli.refuses(&[
        "dataset",
        "create",
        "p",
        "--from-paths",
        paths.to_str().unwrap(),
    ]);
    assert!(
        err.contains("/no/such/a.jpg") && err.contains("not found"),
        "{err}"
    );
    // Some exist: those are imported, the others reported.
    let good = imgs.join("000.jpg");
    std::fs::write(&paths, format!("{}\n/no/such/b.jpg\n", good.display())).unwrap();
    let created = cli.ok(&[
        "dataset",
        "create",
        "p",
        "--from-paths",
        paths.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(created["samples"], 1);
    assert_eq!(created["skipped"][0]["path"], "/no/such/b.jpg");
    // COCO with an images directory that does not exist.
    let labels = cli.file("labels.json");
    std::fs::write(
        &labels,
        json!({"images": [{"id": 1, "file_name": "000.jpg"}]}).to_string(),
    )
    .unwrap();
    let err = cli.refuses(&[
        "dataset",
        "create",
        "c",
        "--from-coco",
        labels.to_str().unwrap(),
        "--images",
        "/no/such/dir",
    ]);
    assert!(err.contains("/no/such/dir"), "{err}");
    assert_eq!(cli.ok(&["dataset", "list", "--json"]), json!(["p"]));
}

#[test]
fn coco_file_names_cannot_leave_the_images_dir() {
    let cli = Cli::new();
    let imgs = cli.file("imgs");
    images(&imgs, 2);
    let labels = cli.file("labels.json");
    std::fs::write(
        &labels,
        json!({"images": [
            {"id": 1, "file_name": "000.jpg"},
            {"id": 2, "file_name": "../../../../etc/passwd", "width": 10, "height": 10},
            {"id": 3, "file_name": "/etc/passwd", "width": 10, "height": 10},
        ]})
        .to_string(),
    )
    .unwrap();
    let created = cli.ok(&[
        "dataset",
        "create",
        "c",
        "--from-coco",
        labels.to_str().unwrap(),
        "--images",
        imgs.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(created["samples"], 1);
    let skipped = created["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    for s in skipped {
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .contains("outside the images directory"),
            "{s}"
        );
    }
    let head = cli.ok(&["dataset", "head", "c", "--json"]);
    assert!(head[0]["filepath"].as_str().unwrap().ends_with("000.jpg"));
    // Only escaping items: nothing imported is an error.
    std::fs::write(
        &labels,
        json!({"images": [{"id": 2, "file_name": "../../../../etc/passwd", "width": 10, "height": 10}]})
            .to_string(),
    )
    .unwrap();
    let err = cli.refuses(&[
        "dataset",
        "create",
        "c2",
        "--from-coco",
        labels.to_str().unwrap(),
        "--images",
        imgs.to_str().unwrap(),
    ]);
    assert!(err.contains("outside the images directory"), "{err}");
    assert_eq!(cli.ok(&["dataset", "list", "--json"]), json!(["c"]));
}

#[test]
fn a_truncated_jpeg_is_an_error_with_strict_and_a_warning_without() {
    assert!(
        std::env::var("SIMILE_ORT_DYLIB_PATH").is_ok(),
        "SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"
    );
    let cli = Cli::new();
    let imgs = cli.file("imgs");
    images(&imgs, 2);
    let big = image::RgbImage::from_fn(256, 192, |x, y| {
        image::Rgb([(x ^ y) as u8, (x * 3) as u8, (y * 7 + x) as u8])
    });
    big.save(imgs.join("big.jpg")).unwrap();
    let full = std::fs::read(imgs.join("big.jpg")).unwrap();
    std::fs::remove_file(imgs.join("big.jpg")).unwrap();
    std::fs::write(imgs.join("cut.jpg"), &full[..full.len() * 2 / 3]).unwrap();
    let created = cli.create_from_dir("d", &imgs);
    assert_eq!(
        created["samples"], 3,
        "the header of the cut file is readable"
    );
    let embed = |strict: bool| {
        let mut args = vec!["embed", "d", "--model", "clip-tiny-random", "--json"];
        if strict {
            args.push("--strict");
        }
        cli.run(&args)
    };
    let out = embed(true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.jpg") && err.contains("truncated"),
        "{err}"
    );
    let fields = cli.ok(&["dataset", "info", "d", "--json"])["fields"].clone();
    assert!(
        fields.get("embeddings").is_none(),
        "nothing written: {fields}"
    );
    let out = embed(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("truncated"), "a warning names the file: {err}");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["embedded"], 2);
}
