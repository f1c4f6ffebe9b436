//! The integration tests of simile-config (one binary; see the modules).

mod errors;
mod fuzz;
mod layering;
mod process_env;

use std::path::Path;

use simile_config::EnvSnapshot;

/// FiftyOne's example brain_config.json.
pub const MILVUS_FILE: &str = r#"{
  "default_similarity_backend": "milvus",
  "similarity_backends": {
    "milvus": {"uri": "http://localhost:19530", "user": "u", "password": "p",
               "collection_name": "your_collection", "metric": "dotproduct",
               "consistency_level": "Strong", "port": 19530, "secure": false, "extra": null}
  }
}"#;

/// An environment whose config file is `dir/brain_config.json`, written with `contents`.
pub fn env_with_file(dir: &Path, contents: &str) -> EnvSnapshot {
    let path = dir.join("brain_config.json");
    std::fs::write(&path, contents).expect("write config file");
    EnvSnapshot::new()
        .home(dir.join("home-without-config"))
        .set(
            "SIMILE_BRAIN_CONFIG_PATH",
            path.to_str().expect("utf-8 temp path"),
        )
}
