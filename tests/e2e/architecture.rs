//! Checks ARCHITECTURE.md's invariants on the source tree.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workspace crates each crate may depend on (`[dependencies]` and `[build-dependencies]`).
/// ARCHITECTURE.md's "Allowed dependencies" table says the same (checked below); a new crate or
/// a new edge goes in both. `[dev-dependencies]` may also name the test-support crates.
const ALLOWED: &[(&str, &[&str])] = &[
    ("simile-index", &[]),
    ("simile-dataset", &[]),
    ("simile-runs", &["simile-index"]),
    ("simile-config", &["simile-index"]),
    ("simile-sklearn", &["simile-index"]),
    ("simile-milvus", &["simile-index"]),
    ("simile-embed", &[]),
    ("simile-io", &["simile-dataset"]),
    (
        "simile",
        &[
            "simile-index",
            "simile-dataset",
            "simile-runs",
            "simile-config",
            "simile-sklearn",
            "simile-milvus",
            "simile-embed",
            "simile-io",
        ],
    ),
    ("simile-app", &["simile"]),
    ("simile-cli", &["simile", "simile-app"]),
    ("simile-e2e", &["simile"]),
    ("simile-fuzz", &[]),
    ("xtask", &[]),
];

/// Crates that exist for tests only; any crate's `[dev-dependencies]` may name them.
const TEST_SUPPORT: &[&str] = &["simile-e2e", "simile-fuzz"];

/// A workspace member: its directory and its manifest's package name and dependency sections.
struct Member {
    dir: PathBuf,
    name: String,
    /// Section name (`dependencies`, `dev-dependencies`, `build-dependencies`) → dependency names.
    deps: BTreeMap<String, Vec<String>>,
}

/// The workspace members listed in the root manifest.
fn members() -> Vec<Member> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").expect("a members list");
    let list = &manifest[start..];
    let list = &list[..list.find(']').unwrap()];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(|dir| member(&root().join(dir)))
        .collect()
}

/// Reads a member's manifest (a line-based reading of the TOML this workspace writes:
/// `name = ...` / `name.workspace = true` lines under the dependency section headers).
fn member(dir: &Path) -> Member {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let mut name = String::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.trim_matches(['[', ']']).to_string();
            continue;
        }
        if section == "package" {
            if let Some(v) = l.strip_prefix("name = ") {
                name = v.trim_matches('"').to_string();
            }
        }
        if section.ends_with("dependencies") {
            if let Some((dep, _)) = l.split_once(['=', '.']) {
                let dep = dep.trim();
                if !dep.is_empty() && !dep.starts_with('#') {
                    deps.entry(section.clone())
                        .or_default()
                        .push(dep.to_string());
                }
            }
        }
    }
    assert!(!name.is_empty(), "{} has a package name", dir.display());
    Member {
        dir: dir.to_path_buf(),
        name,
        deps,
    }
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text without `//` comments (doc comments included), for checks on code only.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_crate_depends_only_on_the_workspace_crates_the_table_allows() {
    let allowed = allowed();
    let workspace: BTreeSet<String> = members().into_iter().map(|m| m.name).collect();
    let table: BTreeSet<String> = allowed.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        workspace, table,
        "every workspace member has a row in ALLOWED (and ARCHITECTURE.md), and only members do"
    );
    for m in members() {
        let ok = &allowed[m.name.as_str()];
        for (section, deps) in &m.deps {
            for d in deps.iter().filter(|d| workspace.contains(*d)) {
                let fine = ok.contains(d.as_str())
                    || (section == "dev-dependencies"
                        && (TEST_SUPPORT.contains(&d.as_str()) || d == &m.name));
                assert!(
                    fine,
                    "{} [{section}] names {d}, which ARCHITECTURE.md's table does not allow",
                    m.name
                );
            }
        }
    }
    // Invariant 1: a backend implements the contract.
    for backend in ["simile-sklearn", "simile-milvus"] {
        let m = member(&root().join("crates").join(backend));
        assert!(
            m.deps["dependencies"].contains(&"simile-index".to_string()),
            "{backend} implements simile-index"
        );
    }
}

/// ARCHITECTURE.md's table of allowed dependencies is the same as [`ALLOWED`].
#[test]
fn the_architecture_doc_lists_the_same_allowed_dependencies() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("| crate | may depend on |")
        .expect("ARCHITECTURE.md has the allowed-dependencies table");
    let mut from_doc: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in doc[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let deps = cells[2]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        from_doc.insert(name, deps);
    }
    let from_test: BTreeMap<String, BTreeSet<String>> = allowed()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect();
    assert_eq!(from_doc, from_test);
}

/// Invariant 2: no brain-run, backend or model concept in the dataset crate's code (comments may
/// say what it does not know).
#[test]
fn dataset_model_knows_no_higher_layer() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/simile-dataset/src"), &mut files);
    assert!(!files.is_empty());
    let words = [
        "brain",
        "backend",
        "milvus",
        "sklearn",
        "onnx",
        "clip",
        "knn",
        "embedding",
        "model",
        "simile_index",
        "simile_runs",
        "simile_config",
        "simile_embed",
    ];
    for f in files {
        let code = code_of(&std::fs::read_to_string(&f).unwrap()).to_lowercase();
        for w in words {
            assert!(
                !code.contains(w),
                "{} mentions {w:?}: simile-dataset knows nothing of models, backends or brain runs",
                f.display()
            );
        }
    }
}

/// The code-only check above sees through comments and not into strings.
#[test]
fn code_of_drops_comments_only() {
    assert_eq!(code_of("let a = 1; // brain"), "let a = 1; ");
    assert_eq!(code_of("/// brain runs\nfn f() {}"), "\nfn f() {}");
    assert_eq!(code_of("let u = \"http://x\";"), "let u = \"http://x\";");
}

/// Files outside simile-config that may read the environment, and why. Everything else in
/// every member's `src/` and `examples/` (and `benches/`) is scanned.
const ENV_READERS: &[(&str, &str)] = &[
    (
        "crates/simile-milvus/examples/milvus_bench.rs",
        "a benchmark: the test server's SIMILE_TEST_MILVUS_* variables, as the tests read them",
    ),
    (
        "crates/simile-embed/examples/clip_bench.rs",
        "a benchmark: SIMILE_ORT_DYLIB_PATH when --ort is not given, as the tests read it",
    ),
];

/// Ways code reads environment variables at run time.
const ENV_PATTERNS: &[&str] = &[
    "env::var",         // var, var_os, vars, vars_os
    "from_env(",        // EnvFilter::try_from_env / from_env, figment's Env
    "from_default_env", // EnvFilter::from_default_env / try_from_default_env
    "env = \"",         // clap's #[arg(env = "...")]
    "option_env!",
    "dotenv",
];

fn env_reads(text: &str) -> Vec<&'static str> {
    let code = code_of(text);
    ENV_PATTERNS
        .iter()
        .copied()
        .filter(|p| code.contains(p))
        .collect()
}

/// Invariant 3: only simile-config reads the environment; the test and bench harnesses the
/// doc names are the exceptions.
#[test]
fn only_the_config_crate_reads_the_environment() {
    // Test harnesses, excepted by the invariant: the e2e tests, the fuzz support crate, xtask.
    let harness = ["simile-config", "simile-e2e", "simile-fuzz", "xtask"];
    let mut scanned = 0;
    for m in members() {
        if harness.contains(&m.name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        for dir in ["src", "examples", "benches"] {
            rust_files(&m.dir.join(dir), &mut files);
        }
        for f in files {
            let rel = f
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if ENV_READERS.iter().any(|(p, _)| *p == rel) {
                continue;
            }
            scanned += 1;
            let text = std::fs::read_to_string(&f).unwrap();
            assert_eq!(
                env_reads(&text),
                Vec::<&str>::new(),
                "{rel} reads the environment; only simile-config may (ARCHITECTURE.md, invariant 3)"
            );
        }
    }
    assert!(scanned > 50, "only {scanned} files scanned");
    for (path, why) in ENV_READERS {
        let text = std::fs::read_to_string(root().join(path)).unwrap();
        assert!(
            !env_reads(&text).is_empty(),
            "{path} is listed as reading the environment ({why}) but does not: drop it"
        );
    }
}

/// The scan's patterns catch the ways this workspace's dependencies read variables.
#[test]
fn env_patterns_catch_tracing_filters_and_clap() {
    for code in [
        "let v = std::env::var(\"X\");",
        "let v = std::env::var_os(\"X\");",
        "for (k, v) in std::env::vars() {}",
        "EnvFilter::try_from_env(\"SIMILE_LOG\")",
        "EnvFilter::from_default_env()",
        "EnvFilter::try_from_default_env()",
        "#[arg(long, env = \"SIMILE_HOME\")]",
        "let v = option_env!(\"X\");",
    ] {
        assert!(!env_reads(code).is_empty(), "{code}");
    }
    assert!(env_reads("// std::env::var(\"X\") in a comment").is_empty());
    assert!(env_reads("let v = env!(\"CARGO_PKG_VERSION\");").is_empty());
}

/// Invariant 4: the conformance macro runs every case the suite defines, and every crate that
/// implements the backend contract invokes it in its tests.
#[test]
fn every_backend_runs_every_conformance_case() {
    let text =
        std::fs::read_to_string(root().join("crates/simile-index/src/conformance.rs")).unwrap();
    let cases: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pub fn "))
        .filter(|l| l.contains("(make: Make<'_>)"))
        .map(|l| l[..l.find('(').unwrap()].to_string())
        .collect();
    assert!(cases.len() >= 10, "conformance cases found: {cases:?}");
    let start = text.find("macro_rules! conformance_tests").unwrap();
    let list_start = start + text[start..].find("@cases $make;").unwrap() + "@cases $make;".len();
    let list_end = list_start + text[list_start..].find(')').unwrap();
    let in_macro: BTreeSet<String> = text[list_start..list_end]
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        in_macro, cases,
        "conformance_tests! must list exactly the suite's `pub fn case(make: Make<'_>)` functions"
    );

    let mut backends = 0;
    for m in members() {
        let mut src = Vec::new();
        rust_files(&m.dir.join("src"), &mut src);
        let implements = src.iter().any(|f| {
            let code = code_of(&std::fs::read_to_string(f).unwrap());
            code.contains("SimilarityBackend for ")
        });
        if !implements {
            continue;
        }
        backends += 1;
        let mut tests = Vec::new();
        rust_files(&m.dir.join("tests"), &mut tests);
        assert!(
            tests
                .iter()
                .any(|f| code_of(&std::fs::read_to_string(f).unwrap())
                    .contains("simile_index::conformance_tests!(")),
            "{} implements SimilarityBackend but its tests do not run conformance_tests!",
            m.name
        );
    }
    assert!(backends >= 2, "found {backends} backends");
}

#[test]
fn the_app_server_uses_the_facade_only_and_only_the_cli_uses_it() {
    let allowed = allowed();
    assert_eq!(
        allowed["simile-app"],
        BTreeSet::from(["simile"]),
        "simile-app depends on the facade only"
    );
    for (name, deps) in &allowed {
        if deps.contains("simile-app") {
            assert_eq!(
                *name, "simile-cli",
                "only the CLI depends on the App server"
            );
        }
    }
}
