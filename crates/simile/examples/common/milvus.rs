//! Shared by the facade's benchmark examples (`#[path]`-included, not an example itself).

/// Brain config for the Milvus server of the test environment, Milvus the default backend:
/// `SIMILE_TEST_MILVUS_URI`/`_USER`/`_PASSWORD` (read through simile-config's snapshot of the
/// process environment) become the `milvus` backend's parameters, so the credentials come from
/// the config layers, never the run record.
pub fn milvus_config() -> simile::BrainConfig {
    let process = simile_config::EnvSnapshot::from_process();
    let mut env = simile_config::EnvSnapshot::new();
    for (from, to) in [
        (
            "SIMILE_TEST_MILVUS_URI",
            "FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI",
        ),
        (
            "SIMILE_TEST_MILVUS_USER",
            "FIFTYONE_BRAIN_SIMILARITY_MILVUS_USER",
        ),
        (
            "SIMILE_TEST_MILVUS_PASSWORD",
            "FIFTYONE_BRAIN_SIMILARITY_MILVUS_PASSWORD",
        ),
    ] {
        if let Some(v) = process.get(from) {
            env = env.set(to, v);
        }
    }
    env = env.set("FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND", "milvus");
    simile::BrainConfig::load_from(&env).unwrap()
}
