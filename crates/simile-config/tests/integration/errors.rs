use std::error::Error as _;

use simile_config::{BrainConfig, ConfigError};

use crate::env_with_file;

#[test]
fn malformed_file_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with_file(
        dir.path(),
        r#"{"similarity_backends": {"milvus": {"password": "hunter2",}}"#,
    );
    let err = BrainConfig::load_from(&env).unwrap_err();
    let path = dir.path().join("brain_config.json");
    match &err {
        ConfigError::MalformedFile { path: p, .. } => assert_eq!(p, &path),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(path.to_str().unwrap()));
    let source = err.source().unwrap().to_string();
    assert!(source.contains("line 1"), "{source}");
    assert!(!format!("{err} {source} {err:?}").contains("hunter2"));
}

#[test]
fn wrong_shape_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    for (contents, field) in [
        (r#"[1, 2]"#, "(top level)"),
        (
            r#"{"default_similarity_backend": 3}"#,
            "default_similarity_backend",
        ),
        (r#"{"similarity_backends": []}"#, "similarity_backends"),
        (
            r#"{"similarity_backends": {"milvus": "secretish"}}"#,
            "similarity_backends.milvus",
        ),
    ] {
        let err = BrainConfig::load_from(&env_with_file(dir.path(), contents)).unwrap_err();
        match &err {
            ConfigError::InvalidFile { field: f, .. } => assert_eq!(f, field),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.to_string().contains("secretish"));
    }
}

#[test]
fn unreadable_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    // a directory where the file should be
    let env = simile_config::EnvSnapshot::new()
        .set("SIMILE_BRAIN_CONFIG_PATH", dir.path().to_str().unwrap());
    let err = BrainConfig::load_from(&env).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
}
