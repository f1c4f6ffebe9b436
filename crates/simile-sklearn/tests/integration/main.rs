//! Integration tests of the sklearn backend: the shared conformance suite, an exact comparison with
//! the naive `f64` reference, persistence, and the factory.
#![allow(clippy::unwrap_used)]

mod factory;
mod persistence;
mod reference;

use std::path::Path;

use serde_json::{Map, Value};
use simile_index::{BackendFactory, BackendParams, Metric, SimilarityBackend};
use simile_sklearn::SklearnFactory;

/// Factory parameters for an index in `dir`.
pub fn params(dir: &Path, metric: Option<&str>) -> BackendParams {
    let mut params = Map::new();
    if let Some(m) = metric {
        params.insert("metric".into(), Value::String(m.into()));
    }
    BackendParams {
        params,
        storage_dir: dir.to_path_buf(),
        dataset_name: "test".into(),
        brain_key: Some("sim".into()),
        patches: false,
    }
}

/// A new, empty index in a fresh temporary directory (kept on disk: `cleanup()` removes it).
fn fresh(metric: Metric) -> Box<dyn SimilarityBackend> {
    let dir = tempfile::tempdir().unwrap().keep();
    SklearnFactory
        .create(&params(&dir, Some(metric.as_str())))
        .unwrap()
}

simile_index::conformance_tests!(fresh);
