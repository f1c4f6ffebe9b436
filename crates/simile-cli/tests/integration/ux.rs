//! The CLI as a new user meets it: the README's `--id ID...` form, help on every argument.
use super::{npy, Cli};

#[test]
fn several_ids_after_one_flag_equal_repeated_flags() {
    let cli = Cli::new();
    let ids = cli.indexed(6);
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let one_flag = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        a,
        b,
        "-k",
        "4",
        "--json",
    ]);
    let repeated = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        a,
        "--id",
        b,
        "-k",
        "4",
        "--json",
    ]);
    assert_eq!(one_flag, repeated);
    assert_eq!(one_flag.as_array().unwrap().len(), 4);
}

#[test]
fn every_argument_has_a_help_line() {
    let cli = Cli::new();
    for cmd in [
        &["dataset", "create"][..],
        &["dataset", "export"],
        &["dataset", "head"],
        &["embed"],
        &["similarity", "compute"],
        &["similarity", "remove"],
        &["similarity", "duplicates"],
        &["brain", "list"],
        &["brain", "rename"],
        &["brain", "delete"],
        &["brain", "uniqueness"],
        &["app"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = cli.run(&args);
        assert!(out.status.success(), "{cmd:?} --help");
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        // clap prints an argument with no doc as its name alone on the line.
        for line in help.lines().filter(|l| l.starts_with("  ")) {
            let t = line.trim();
            let bare = (t.starts_with('<') && t.ends_with('>') && !t.contains(' '))
                || (t.starts_with("--")
                    && t.split_whitespace().count() <= 2
                    && !line.starts_with("          "));
            assert!(
                !bare || help.contains(&format!("{t}\n          ")),
                "{cmd:?}: '{t}' has no help line:\n{help}"
            );
        }
    }
}

#[test]
fn messages_count_in_english_and_brain_info_honours_json() {
    let cli = Cli::new();
    let ids = cli.indexed(3);
    let id = ids[0].as_str();
    let one = cli.home.path().join("one.npy");
    npy(&one, 1, 8, 9);
    // Re-adding a present id with --no-overwrite adds nothing and says so.
    let out = cli.run(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        one.to_str().unwrap(),
        "--id",
        id,
        "--no-overwrite",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("added 0 vectors, left 1 already present"),
        "{text}"
    );
    let j = cli.ok(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        one.to_str().unwrap(),
        "--id",
        id,
        "--json",
    ]);
    assert_eq!(
        (j["added"].as_u64(), j["replaced"].as_u64()),
        (Some(0), Some(1))
    );
    let out = cli.run(&[
        "similarity",
        "remove",
        "d",
        "--brain-key",
        "sim",
        "--id",
        id,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("removed 1 vector;"), "{text}");
    // brain info: readable by default, JSON with --json.
    let out = cli.run(&["brain", "info", "d", "sim"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("sim (similarity run, sklearn backend"),
        "{text}"
    );
    assert_eq!(
        cli.ok(&["brain", "info", "d", "sim", "--json"])["key"],
        "sim"
    );
}

/// Output to a pipe or a file carries no colour codes: a warning and a progress bar.
#[test]
fn no_colour_codes_when_output_is_not_a_terminal() {
    assert!(
        std::env::var("SIMILE_ORT_DYLIB_PATH").is_ok(),
        "SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"
    );
    let cli = Cli::new();
    cli.indexed(3);
    let no_escape = |out: &std::process::Output, what: &str| {
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.windows(2).any(|w| w == b"\x1b["),
                "{what}: colour codes on {name}: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    };
    // A warning: ids that are not in the index.
    let out = cli.run(&[
        "similarity",
        "remove",
        "d",
        "--brain-key",
        "sim",
        "--id",
        "0123456789abcdef01234567",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("WARN") && err.contains("not present"), "{err}");
    no_escape(&out, "remove");
    // Progress (embedding) and the random-weights warning.
    let out = cli.run(&["embed", "d", "--model", "clip-tiny-random"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 of 3 samples"));
    no_escape(&out, "embed");
}

#[test]
fn get_prints_the_vectors_without_out() {
    let cli = Cli::new();
    let ids = cli.indexed(3);
    let emb: ndarray::Array2<f32> = ndarray_npy::read_npy(cli.file("emb.npy")).unwrap();
    let j = cli.ok(&[
        "similarity",
        "get",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[2],
        &ids[0],
        "--json",
    ]);
    assert_eq!(j["ids"], serde_json::json!([ids[2], ids[0]]));
    let rows: Vec<Vec<f32>> = serde_json::from_value(j["vectors"].clone()).unwrap();
    assert_eq!(rows, vec![emb.row(2).to_vec(), emb.row(0).to_vec()]);
    // Readable: one line per id, its values in full.
    let out = cli.run(&["similarity", "get", "d", "--brain-key", "sim"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, (id, row)) in lines.iter().zip(ids.iter().zip(emb.rows())) {
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some(id.as_str()));
        let values: Vec<f32> = parts.map(|v| v.parse().unwrap()).collect();
        assert_eq!(values, row.to_vec());
    }
}

/// `simile models`: the known models, which have random weights, where each is looked for.
#[test]
fn models_lists_known_models_and_where_they_are_looked_for() {
    let cli = Cli::new();
    let models_dir = cli.file("my-models");
    // ViT-B/32's two ONNX files (contents are not checked by the listing) and a model of our own.
    let vit = models_dir.join("clip-vit-base32");
    std::fs::create_dir_all(&vit).unwrap();
    std::fs::write(vit.join("image.onnx"), b"x").unwrap();
    std::fs::write(vit.join("text.onnx"), b"x").unwrap();
    let mine = models_dir.join("my-clip");
    std::fs::create_dir_all(&mine).unwrap();
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../simile-embed/tests/assets/clip-tiny-random/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny).unwrap()).unwrap();
    manifest["name"] = "my-clip".into();
    std::fs::write(mine.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(mine.join("image.onnx"), b"x").unwrap();
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_simile"));
        cmd.arg("--home")
            .arg(cli.home.path())
            .arg("models")
            .env("SIMILE_MODELS_DIR", &models_dir)
            .env_remove("SIMILE_MODEL_CACHE")
            .env_remove("SIMILE_OFFLINE")
            .env_remove("HF_HUB_OFFLINE");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let j: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let model = |name: &str| {
        j["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {j}"))
            .clone()
    };
    assert_eq!(
        j["onnx_runtime"]["path"],
        std::env::var("SIMILE_ORT_DYLIB_PATH")
            .expect("SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"),
        "the library the models run on"
    );
    assert_eq!(j["onnx_runtime"]["present"], true);
    let tiny = model("clip-tiny-random");
    assert_eq!(tiny["random_weights"], true);
    assert_eq!(tiny["present"], true);
    let vit = model("clip-vit-base32");
    assert_eq!(vit["random_weights"], false);
    assert!(vit["aliases"]
        .as_array()
        .unwrap()
        .contains(&"clip-vit-base32-torch".into()));
    let locations = vit["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 2, "models dir, then the download cache");
    assert_eq!(
        locations[0]["path"],
        models_dir.join("clip-vit-base32").display().to_string()
    );
    assert_eq!(locations[0]["present"], true);
    assert_eq!(
        locations[1]["path"],
        cli.home
            .path()
            .join("models/models/clip-vit-base32")
            .display()
            .to_string()
    );
    assert_eq!(locations[1]["present"], false);
    let mine = model("my-clip");
    assert_eq!(mine["random_weights"], true);
    assert_eq!(mine["present"], false, "text.onnx is missing");
    let text = run(false);
    assert!(text.contains("RANDOM WEIGHTS"), "{text}");
    assert!(
        text.contains(&format!(
            "present  {}",
            models_dir.join("clip-vit-base32").display()
        )),
        "{text}"
    );
}

/// Errors name flags, not the library's Rust calls.
#[test]
fn errors_name_flags_not_rust_calls() {
    let cli = Cli::new();
    cli.dataset(2);
    let err = cli.fails(&["similarity", "compute", "d", "--brain-key", "k"]);
    assert!(
        err.contains("--embeddings FILE.npy")
            && err.contains("--model NAME")
            && err.contains("--no-embeddings")
            && !err.contains("()"),
        "{err}"
    );
}
