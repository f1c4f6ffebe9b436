//! Checks ARCHITECTURE.md's invariants on the source tree.
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deps_of(krate: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(root().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = l.split_once(['=', '.']) {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn backends_depend_on_the_contract_only() {
    let internal = [
        "simile",
        "simile-dataset",
        "simile-runs",
        "simile-config",
        "simile-sklearn",
        "simile-milvus",
        "simile-embed",
    ];
    for backend in ["simile-sklearn", "simile-milvus"] {
        if !root().join("crates").join(backend).exists() {
            continue;
        }
        let deps = deps_of(backend);
        assert!(
            deps.contains(&"simile-index".to_string()),
            "{backend} implements simile-index"
        );
        for d in &deps {
            assert!(
                !internal.contains(&d.as_str()),
                "{backend} must not depend on {d}"
            );
        }
    }
}

#[test]
fn dataset_model_knows_no_higher_layer() {
    let deps = deps_of("simile-dataset");
    for d in deps {
        assert!(
            !d.starts_with("simile"),
            "simile-dataset must not depend on {d}"
        );
    }
}

#[test]
fn only_the_config_crate_reads_the_environment() {
    let crates = root().join("crates");
    for e in std::fs::read_dir(&crates).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // simile-fuzz is test support (a dev-dependency only): its budget comes from the env.
        if name == "simile-config" || name == "simile-cli" || name == "simile-fuzz" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&e.path().join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for pat in ["env::var(", "env::var_os(", "env::vars("] {
                assert!(
                    !text.contains(pat),
                    "{} reads the environment ({pat}); only simile-config may",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn the_app_server_uses_the_facade_only_and_only_the_cli_uses_it() {
    let internal: Vec<String> = deps_of("simile-app")
        .into_iter()
        .filter(|d| d.starts_with("simile"))
        .collect();
    assert_eq!(
        internal,
        vec!["simile".to_string()],
        "simile-app depends on the facade only"
    );
    for e in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "simile-cli" || name == "simile-app" {
            continue;
        }
        assert!(
            !deps_of(&name).contains(&"simile-app".to_string()),
            "{name} must not depend on the App server"
        );
    }
}
