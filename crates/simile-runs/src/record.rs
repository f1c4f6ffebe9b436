use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{Result, RunsError};

/// The run type of similarity indexes (FiftyOne's `config.type`).
pub const SIMILARITY: &str = "similarity";

/// The simile version recorded in new runs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Checks a brain key with Python's `str.isidentifier()` rules: a Unicode `XID_Start` character
/// or `_`, then `XID_Continue` characters. Keywords (`class`) are identifiers too, as in Python.
pub fn validate_key(key: &str) -> Result<()> {
    let mut chars = key.chars();
    let ok = match chars.next() {
        Some(first) => {
            (first == '_' || unicode_ident::is_xid_start(first))
                && chars.all(unicode_ident::is_xid_continue)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RunsError::InvalidKey(key.to_string()))
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Registered; the index is being built.
    Running,
    /// The index is built and usable.
    Completed,
    /// Building the index failed.
    Failed,
}

impl RunState {
    /// `"running"`, `"completed"` or `"failed"` (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<RunState> {
        match s {
            "running" => Some(RunState::Running),
            "completed" => Some(RunState::Completed),
            "failed" => Some(RunState::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One brain run. Serializes with the timestamp in RFC 3339 (UTC when read back from the
/// registry). `Debug` hides secret config values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The brain key.
    pub key: String,
    /// The run type, [`SIMILARITY`] for similarity indexes.
    pub run_type: String,
    /// The backend name (`"sklearn"`, `"milvus"`).
    pub method: String,
    /// The non-secret config (metric, embeddings_field, model, patches_field, supports_prompts,
    /// backend settings such as collection_name, ...).
    pub config: Map<String, Value>,
    /// When the run was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The simile version that registered the run.
    pub version: String,
    /// Where the run is: `Running` while its index is built, then `Completed` or `Failed`.
    pub state: RunState,
    /// The backend's serialized results, if any.
    pub results: Option<Value>,
}

impl RunRecord {
    /// A new similarity run: type [`SIMILARITY`], timestamp now (UTC, microseconds), version
    /// [`VERSION`], state [`RunState::Running`], no results.
    pub fn new(
        key: impl Into<String>,
        method: impl Into<String>,
        config: Map<String, Value>,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        let timestamp = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        RunRecord {
            key: key.into(),
            run_type: SIMILARITY.to_string(),
            method: method.into(),
            config,
            timestamp,
            version: VERSION.to_string(),
            state: RunState::Running,
            results: None,
        }
    }

    /// The record as FiftyOne's `get_brain_info()` prints it:
    /// `{"key", "version", "timestamp", "config"}`, the config including `"type"` and `"method"`.
    pub fn brain_info(&self) -> Value {
        let mut config = self.config.clone();
        config
            .entry("type")
            .or_insert_with(|| Value::String(self.run_type.clone()));
        config
            .entry("method")
            .or_insert_with(|| Value::String(self.method.clone()));
        let timestamp = self
            .timestamp
            .format(&time::format_description::well_known::Rfc3339)
            .map(Value::String)
            .unwrap_or(Value::Null);
        let mut info = Map::new();
        info.insert("key".into(), Value::String(self.key.clone()));
        info.insert("version".into(), Value::String(self.version.clone()));
        info.insert("timestamp".into(), timestamp);
        info.insert("config".into(), Value::Object(config));
        Value::Object(info)
    }

    /// `config["patches_field"]` if it is a string.
    pub fn patches_field(&self) -> Option<&str> {
        self.config.get("patches_field").and_then(Value::as_str)
    }

    /// Whether `config["supports_prompts"]` is `true`.
    pub fn supports_prompts(&self) -> bool {
        self.config.get("supports_prompts") == Some(&Value::Bool(true))
    }
}

impl fmt::Debug for RunRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut config = self.config.clone();
        for (k, v) in config.iter_mut() {
            if simile_index::is_secret_param(k) {
                *v = Value::String("***".into());
            }
        }
        f.debug_struct("RunRecord")
            .field("key", &self.key)
            .field("run_type", &self.run_type)
            .field("method", &self.method)
            .field("config", &config)
            .field("timestamp", &self.timestamp)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("results", &self.results.as_ref().map(|_| "<results>"))
            .finish()
    }
}

/// Which runs [`crate::RunRegistry::list`] returns; `None` fields match everything.
///
/// ```
/// use simile_runs::RunFilter;
/// let f = RunFilter::similarity().method("milvus").patches_field("ground_truth");
/// assert_eq!(f.method.as_deref(), Some("milvus"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// The run type (`"similarity"`).
    pub run_type: Option<String>,
    /// The backend name.
    pub method: Option<String>,
    /// Runs whose `config["patches_field"]` is this string.
    pub patches_field: Option<String>,
    /// `Some(true)`: runs whose `config["supports_prompts"]` is `true`; `Some(false)`: all others.
    pub supports_prompts: Option<bool>,
}

impl RunFilter {
    /// Matches every run.
    pub fn new() -> Self {
        RunFilter::default()
    }

    /// Matches similarity runs.
    pub fn similarity() -> Self {
        RunFilter::new().run_type(SIMILARITY)
    }

    #[must_use]
    /// Only runs of this type (`"similarity"`, `"uniqueness"`, ...).
    pub fn run_type(mut self, run_type: impl Into<String>) -> Self {
        self.run_type = Some(run_type.into());
        self
    }

    #[must_use]
    /// Only runs of this method (the backend's name for similarity runs).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    #[must_use]
    /// Only runs over the patches of this label field.
    pub fn patches_field(mut self, field: impl Into<String>) -> Self {
        self.patches_field = Some(field.into());
        self
    }

    #[must_use]
    /// Only runs that do (or do not) support text prompts.
    pub fn supports_prompts(mut self, supports: bool) -> Self {
        self.supports_prompts = Some(supports);
        self
    }

    /// Whether the filter looks into the config (not only type and method).
    pub(crate) fn needs_config(&self) -> bool {
        self.patches_field.is_some() || self.supports_prompts.is_some()
    }

    /// Whether `record` passes the filter.
    pub fn matches(&self, record: &RunRecord) -> bool {
        self.matches_parts(&record.run_type, &record.method, &record.config)
    }

    pub(crate) fn matches_parts(
        &self,
        run_type: &str,
        method: &str,
        config: &Map<String, Value>,
    ) -> bool {
        if self.run_type.as_deref().is_some_and(|t| t != run_type) {
            return false;
        }
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        if let Some(field) = &self.patches_field {
            if config.get("patches_field").and_then(Value::as_str) != Some(field.as_str()) {
                return false;
            }
        }
        if let Some(want) = self.supports_prompts {
            if (config.get("supports_prompts") == Some(&Value::Bool(true))) != want {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_follow_python_isidentifier() {
        for ok in [
            "sim",
            "_x",
            "a1",
            "milvus_index",
            "clé",
            "数据",
            "class",
            "_",
            "ǅx",
        ] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bad key", "1abc", "a-b", "a.b", "€", " x", "x\n", "a$"] {
            assert!(
                matches!(validate_key(bad), Err(RunsError::InvalidKey(k)) if k == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn filter_matches_type_method_and_config() {
        let mut r = RunRecord::new("k", "milvus", Map::new());
        assert!(RunFilter::new().matches(&r));
        assert!(RunFilter::similarity().method("milvus").matches(&r));
        assert!(!RunFilter::new().method("sklearn").matches(&r));
        assert!(!RunFilter::new().run_type("visualization").matches(&r));
        assert!(!RunFilter::new().patches_field("gt").matches(&r));
        assert!(RunFilter::new().supports_prompts(false).matches(&r));
        r.config = json!({"patches_field": "gt", "supports_prompts": true})
            .as_object()
            .cloned()
            .unwrap();
        assert!(RunFilter::new()
            .patches_field("gt")
            .supports_prompts(true)
            .matches(&r));
        assert!(!RunFilter::new().patches_field("other").matches(&r));
        assert!(!RunFilter::new().supports_prompts(false).matches(&r));
    }

    #[test]
    fn brain_info_has_fiftyone_shape() {
        let config = json!({"metric": "cosine"}).as_object().cloned().unwrap();
        let r = RunRecord::new("sim", "sklearn", config);
        let info = r.brain_info();
        let keys: Vec<_> = info.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 4);
        for k in ["key", "version", "timestamp", "config"] {
            assert!(keys.iter().any(|x| x == k), "{k}");
        }
        assert_eq!(info["config"]["type"], "similarity");
        assert_eq!(info["config"]["method"], "sklearn");
        assert_eq!(info["config"]["metric"], "cosine");
        assert_eq!(info["version"], VERSION);
        assert!(info["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(r.state, RunState::Running);
        assert_eq!(r.timestamp.nanosecond() % 1_000, 0);
    }

    #[test]
    fn record_serializes_with_rfc3339_and_debug_hides_secrets() {
        let config = json!({"password": "hunter2", "metric": "cosine"})
            .as_object()
            .cloned()
            .unwrap();
        let mut r = RunRecord::new("sim", "milvus", config);
        r.timestamp = OffsetDateTime::parse(
            "2026-11-24T11:09:11.735478Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["timestamp"], "2026-11-24T11:09:11.735478Z");
        assert_eq!(v["state"], "running");
        let back: RunRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("cosine"));
    }
}
