//! `load()` against the real process environment, isolated by `figment::Jail` (which serializes
//! the tests that use it and restores the environment afterwards).

use figment::Jail;
use serde_json::Map;
use simile_config::{BrainConfig, Settings};

#[test]
#[allow(clippy::result_large_err)] // figment::Error is Jail's error type
fn load_reads_the_process_environment() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        let home = jail.directory().to_path_buf();
        jail.set_env("HOME", home.display());
        jail.create_dir(".fiftyone")?;
        jail.create_file(
            ".fiftyone/brain_config.json",
            r#"{"similarity_backends": {"milvus": {"uri": "file", "password": "file-pw"}}}"#,
        )?;
        jail.set_env("FIFTYONE_BRAIN_SIMILARITY_MILVUS_PASSWORD", "123");
        jail.set_env("SIMILE_DEFAULT_SIMILARITY_BACKEND", "milvus");
        let c = BrainConfig::load().expect("load");
        assert_eq!(c.default_similarity_backend, "milvus");
        let p = c.backend_params("milvus", &Map::new());
        assert_eq!(p["password"], "123");
        assert_eq!(p["uri"], "file");

        jail.set_env("SIMILE_MODEL_CACHE", "/cache");
        jail.set_env("ORT_DYLIB_PATH", "/ort/libonnxruntime.so");
        let s = Settings::load().expect("settings");
        assert_eq!(s.home, home.join(".simile"));
        assert_eq!(s.model_cache_dir, std::path::PathBuf::from("/cache"));
        assert_eq!(
            s.ort_dylib_path.as_deref(),
            Some(std::path::Path::new("/ort/libonnxruntime.so"))
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment::Error is Jail's error type
fn load_reports_a_malformed_file_from_the_environment_path() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("bad.json", "{not json")?;
        let path = jail.directory().join("bad.json");
        jail.set_env("FIFTYONE_BRAIN_CONFIG_PATH", path.display());
        let err = BrainConfig::load().expect_err("malformed");
        assert!(err.to_string().contains("bad.json"), "{err}");
        Ok(())
    });
}
