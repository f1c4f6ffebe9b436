use serde_json::{json, Map, Value};
use simile_config::{BrainConfig, EnvSnapshot};

use crate::{env_with_file, MILVUS_FILE};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn defaults_without_file_or_env() {
    let dir = tempfile::tempdir().unwrap();
    let c = BrainConfig::load_from(&EnvSnapshot::new().home(dir.path())).unwrap();
    assert_eq!(c.default_similarity_backend, "sklearn");
    assert!(c.similarity_backends.is_empty());
    assert_eq!(c.resolve_backend(None), "sklearn");
    assert!(c.backend_params("milvus", &Map::new()).is_empty());
}

#[test]
fn default_path_is_under_home_fiftyone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".fiftyone")).unwrap();
    std::fs::write(dir.path().join(".fiftyone/brain_config.json"), MILVUS_FILE).unwrap();
    let env = EnvSnapshot::new().home(dir.path());
    assert_eq!(
        BrainConfig::config_path(&env).unwrap(),
        dir.path().join(".fiftyone/brain_config.json")
    );
    let c = BrainConfig::load_from(&env).unwrap();
    assert_eq!(c.default_similarity_backend, "milvus");
    assert_eq!(
        c.similarity_backends["milvus"]["uri"],
        "http://localhost:19530"
    );
}

#[test]
fn file_values_keep_their_json_types() {
    let dir = tempfile::tempdir().unwrap();
    let c = BrainConfig::load_from(&env_with_file(dir.path(), MILVUS_FILE)).unwrap();
    let m = &c.similarity_backends["milvus"];
    assert_eq!(m["port"], json!(19530));
    assert_eq!(m["secure"], json!(false));
    assert_eq!(m["extra"], Value::Null);
    assert_eq!(m["consistency_level"], "Strong");
}

#[test]
fn precedence_defaults_file_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with_file(dir.path(), MILVUS_FILE)
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI", "http://env:19530")
        .set("FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND", "sklearn");
    let c = BrainConfig::load_from(&env).unwrap();
    // env beats file
    assert_eq!(c.default_similarity_backend, "sklearn");
    let m = &c.similarity_backends["milvus"];
    assert_eq!(m["uri"], "http://env:19530");
    // file values the env does not touch survive (deep merge)
    assert_eq!(m["password"], "p");
    assert_eq!(m["collection_name"], "your_collection");

    // overrides beat env and file, and keep their JSON types
    let overrides = obj(json!({"uri": "http://call:1", "metric": "euclidean", "batch": 7}));
    let p = c.backend_params("milvus", &overrides);
    assert_eq!(p["uri"], "http://call:1");
    assert_eq!(p["metric"], "euclidean");
    assert_eq!(p["batch"], json!(7));
    assert_eq!(p["user"], "u");
    // the config itself is unchanged
    assert_eq!(c.similarity_backends["milvus"]["metric"], "dotproduct");
    assert_eq!(c.resolve_backend(Some("milvus")), "milvus");
    assert_eq!(c.resolve_backend(None), "sklearn");
}

#[test]
fn env_values_stay_strings() {
    let env = EnvSnapshot::new()
        .home("/nonexistent-home")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_PASSWORD", "123")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_USER", "a,b")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_SECURE", "true")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_TOKEN", "")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_TIMEOUT", "1.5")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_DB_NAME", "None");
    let c = BrainConfig::load_from(&env).unwrap();
    let m = &c.similarity_backends["milvus"];
    assert_eq!(m["password"], Value::String("123".into()));
    assert_eq!(m["user"], Value::String("a,b".into()));
    assert_eq!(m["secure"], Value::String("true".into()));
    assert_eq!(m["token"], Value::String(String::new()));
    assert_eq!(m["timeout"], Value::String("1.5".into()));
    assert_eq!(m["db_name"], Value::String("None".into()));
}

#[test]
fn simile_vars_beat_fiftyone_vars() {
    let env = EnvSnapshot::new()
        .home("/nonexistent-home")
        .set("FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND", "milvus")
        .set("SIMILE_DEFAULT_SIMILARITY_BACKEND", "sklearn")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI", "http://fiftyone")
        .set("SIMILE_SIMILARITY_MILVUS_URI", "http://simile")
        .set("FIFTYONE_BRAIN_SIMILARITY_MILVUS_USER", "only-fiftyone");
    let c = BrainConfig::load_from(&env).unwrap();
    assert_eq!(c.default_similarity_backend, "sklearn");
    assert_eq!(c.similarity_backends["milvus"]["uri"], "http://simile");
    assert_eq!(c.similarity_backends["milvus"]["user"], "only-fiftyone");
}

#[test]
fn simile_config_path_beats_fiftyone_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    std::fs::write(&a, r#"{"default_similarity_backend": "a"}"#).unwrap();
    std::fs::write(&b, r#"{"default_similarity_backend": "b"}"#).unwrap();
    let env = EnvSnapshot::new()
        .home(dir.path())
        .set("FIFTYONE_BRAIN_CONFIG_PATH", b.to_str().unwrap());
    assert_eq!(
        BrainConfig::load_from(&env)
            .unwrap()
            .default_similarity_backend,
        "b"
    );
    let env = env.set("SIMILE_BRAIN_CONFIG_PATH", a.to_str().unwrap());
    assert_eq!(
        BrainConfig::load_from(&env)
            .unwrap()
            .default_similarity_backend,
        "a"
    );
}

#[test]
fn missing_file_means_defaults_plus_env() {
    let dir = tempfile::tempdir().unwrap();
    let env = EnvSnapshot::new()
        .set(
            "SIMILE_BRAIN_CONFIG_PATH",
            dir.path().join("nope.json").to_str().unwrap(),
        )
        .set("SIMILE_SIMILARITY_MILVUS_URI", "http://x");
    let c = BrainConfig::load_from(&env).unwrap();
    assert_eq!(c.default_similarity_backend, "sklearn");
    assert_eq!(c.similarity_backends.len(), 1);
    assert_eq!(c.similarity_backends["milvus"]["uri"], "http://x");
}

#[test]
fn underscored_backend_names_match_the_file_longest_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"{"similarity_backends": {"my_backend": {"uri": "file"}, "my": {}}}"#;
    let env = env_with_file(dir.path(), file)
        .set("SIMILE_SIMILARITY_MY_BACKEND_URI", "env")
        .set("SIMILE_SIMILARITY_MY_DB_NAME", "d")
        .set("SIMILE_SIMILARITY_NEWONE_DB_NAME", "n")
        .set("FIFTYONE_BRAIN_SIMILARITY_BACKENDS", "sklearn,milvus");
    let c = BrainConfig::load_from(&env).unwrap();
    assert_eq!(c.similarity_backends["my_backend"]["uri"], "env");
    assert_eq!(c.similarity_backends["my"]["db_name"], "d");
    assert_eq!(c.similarity_backends["newone"]["db_name"], "n");
    assert_eq!(c.similarity_backends.len(), 3);
}

#[test]
fn debug_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with_file(dir.path(), MILVUS_FILE)
        .set("SIMILE_SIMILARITY_MILVUS_TOKEN", "tok-very-secret")
        .set("SIMILE_SIMILARITY_MILVUS_PASSWORD", "pw-very-secret");
    let c = BrainConfig::load_from(&env).unwrap();
    let dbg = format!("{c:?} {c:#?}");
    assert!(!dbg.contains("pw-very-secret"), "{dbg}");
    assert!(!dbg.contains("tok-very-secret"), "{dbg}");
    assert!(dbg.contains(r#""password": ***"#), "{dbg}");
    assert!(dbg.contains("http://localhost:19530"), "{dbg}");
    assert!(!format!("{env:?}").contains("pw-very-secret"));
    let shown = simile_config::redact_params(&c.similarity_backends["milvus"]);
    assert_eq!(shown["password"], "***");
    assert_eq!(shown["token"], "***");
    assert_eq!(shown["user"], "u");
}

#[test]
fn figment_allows_typed_extraction() {
    #[derive(serde::Deserialize)]
    struct Milvus {
        uri: String,
        port: u16,
    }
    let dir = tempfile::tempdir().unwrap();
    let env = env_with_file(dir.path(), MILVUS_FILE);
    let m: Milvus = BrainConfig::figment(&env)
        .unwrap()
        .extract_inner("similarity_backends.milvus")
        .unwrap();
    assert_eq!(m.uri, "http://localhost:19530");
    assert_eq!(m.port, 19530);
}
