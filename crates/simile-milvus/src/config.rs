//! The backend's parameters, parsed from [`BackendParams::params`].
use std::fmt;
use std::time::Duration;

use milvus::v2::types::ConsistencyLevel;
use serde_json::{Map, Value};
use simile_index::{BackendParams, Error, Metric, Result, Secret};

use crate::BACKEND;

/// Default server URI.
pub const DEFAULT_URI: &str = "http://localhost:19530";
/// Largest `k` of one search (Milvus' `topk` limit).
pub const MAX_K: usize = 16384;

/// Every parameter [`MilvusConfig::from_params`] reads (the facade refuses others).
pub const PARAMS: &[&str] = &[
    "uri",
    "user",
    "password",
    "token",
    "db_name",
    "secure",
    "connect_timeout_s",
    "rpc_timeout_s",
    "retry_attempts",
    "telemetry",
    "collection_name",
    "metric",
    "consistency_level",
    "index_type",
    "hnsw_m",
    "M",
    "hnsw_ef_construction",
    "efConstruction",
    "search_ef",
    "ef",
    "batch_size",
    "parallel_batches",
    "flush_on_persist",
];

/// The vector index built on the `vector` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// HNSW graph (approximate).
    Hnsw,
    /// Brute force (exact).
    Flat,
}

impl IndexKind {
    /// The name Milvus uses for this index type (`"HNSW"`, `"FLAT"`).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Hnsw => "HNSW",
            IndexKind::Flat => "FLAT",
        }
    }
}

/// Connection settings: never persisted. Secrets are kept in [`Secret`]s.
#[derive(Clone)]
pub struct ConnectionSettings {
    /// The server's address (`uri`), e.g. `http://localhost:19530`.
    pub uri: String,
    /// The user name (`user`), if the server has authentication on.
    pub user: Option<String>,
    /// The user's password (`password`).
    pub password: Option<Secret>,
    /// An API token (`token`), instead of user and password.
    pub token: Option<Secret>,
    /// The database (`db_name`); the server's default when `None`.
    pub db_name: Option<String>,
    /// TLS to the server (`secure`).
    pub secure: bool,
    /// How long to wait for a connection (`connect_timeout_s`, default 5 s).
    pub connect_timeout: Duration,
    /// How long one request may take (`rpc_timeout_s`, default 60 s).
    pub rpc_timeout: Duration,
    /// Attempts for a request that fails transiently (`retry_attempts`, default 4).
    pub retry_attempts: u32,
    /// The SDK's telemetry (`telemetry`, off by default).
    pub telemetry: bool,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("uri", &redact_uri(&self.uri))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("db_name", &self.db_name)
            .field("secure", &self.secure)
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("retry_attempts", &self.retry_attempts)
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

/// Everything the backend reads from its parameters.
#[derive(Debug, Clone)]
pub struct MilvusConfig {
    /// Where and how to connect (never persisted).
    pub connection: ConnectionSettings,
    /// `None`: generate a unique name at creation.
    pub collection_name: Option<String>,
    /// `None`: not configured (dotproduct for new collections; an existing collection's own metric).
    pub metric: Option<Metric>,
    /// The read consistency of searches and queries (`consistency_level`).
    pub consistency_level: ConsistencyLevel,
    /// The vector index built on new collections (`index_type`: HNSW or FLAT).
    pub index_kind: IndexKind,
    /// HNSW's `M`, edges per node (`hnsw_m` or `M`, default 16).
    pub hnsw_m: u32,
    /// HNSW's `efConstruction`, the build-time candidate list (`hnsw_ef_construction` or `efConstruction`, default 128).
    pub hnsw_ef_construction: u32,
    /// HNSW `ef` at search time (raised to `k` when smaller).
    pub search_ef: u32,
    /// Rows per insert/upsert request and ids per query request.
    pub batch_size: usize,
    /// Requests in flight at once during large upserts.
    pub parallel_batches: usize,
    /// Flush the collection on `persist()` (Milvus already logs acknowledged writes durably).
    pub flush_on_persist: bool,
}

fn invalid(param: &str, reason: impl Into<String>) -> Error {
    Error::InvalidParam {
        backend: BACKEND,
        param: param.to_string(),
        reason: reason.into(),
    }
}

/// Parses a consistency level name (case-insensitive).
pub fn parse_consistency(s: &str) -> Result<ConsistencyLevel> {
    match s.trim().to_ascii_lowercase().as_str() {
        "strong" => Ok(ConsistencyLevel::Strong),
        "session" => Ok(ConsistencyLevel::Session),
        "bounded" => Ok(ConsistencyLevel::Bounded),
        "eventually" => Ok(ConsistencyLevel::Eventually),
        _ => Err(invalid(
            "consistency_level",
            format!("'{s}' is not one of Strong, Session, Bounded, Eventually"),
        )),
    }
}

/// The canonical name of a consistency level.
pub fn consistency_name(level: ConsistencyLevel) -> &'static str {
    match level {
        ConsistencyLevel::Strong => "Strong",
        ConsistencyLevel::Bounded => "Bounded",
        ConsistencyLevel::Eventually => "Eventually",
        _ => "Session",
    }
}

fn u32_param(p: &BackendParams, names: &[&str], default: u32, min: u32, max: u32) -> Result<u32> {
    for name in names {
        if let Some(v) = p.get_u64(BACKEND, name)? {
            if v < u64::from(min) || v > u64::from(max) {
                return Err(invalid(
                    name,
                    format!("must be between {min} and {max}, got {v}"),
                ));
            }
            return Ok(v as u32);
        }
    }
    Ok(default)
}

fn nonempty(p: &BackendParams, name: &str) -> Option<String> {
    p.get_str(name).filter(|s| !s.trim().is_empty())
}

impl MilvusConfig {
    /// Parses and validates the parameters.
    pub fn from_params(p: &BackendParams) -> Result<Self> {
        let uri = nonempty(p, "uri").unwrap_or_else(|| DEFAULT_URI.to_string());
        let connection = ConnectionSettings {
            uri,
            user: nonempty(p, "user"),
            password: nonempty(p, "password").map(Secret::new),
            token: nonempty(p, "token").map(Secret::new),
            db_name: nonempty(p, "db_name"),
            secure: p.get_bool(BACKEND, "secure")?.unwrap_or(false),
            connect_timeout: Duration::from_secs(u64::from(u32_param(
                p,
                &["connect_timeout_s"],
                5,
                1,
                600,
            )?)),
            rpc_timeout: Duration::from_secs(u64::from(u32_param(
                p,
                &["rpc_timeout_s"],
                60,
                1,
                3600,
            )?)),
            retry_attempts: u32_param(p, &["retry_attempts"], 4, 1, 100)?,
            telemetry: p.get_bool(BACKEND, "telemetry")?.unwrap_or(false),
        };
        let collection_name = nonempty(p, "collection_name");
        if let Some(name) = &collection_name {
            validate_collection_name(name)?;
        }
        let metric = match p.get_str("metric") {
            Some(m) => Some(m.parse::<Metric>()?),
            None => None,
        };
        let consistency_level = match nonempty(p, "consistency_level") {
            Some(s) => parse_consistency(&s)?,
            None => ConsistencyLevel::Session,
        };
        let index_kind = match nonempty(p, "index_type").map(|s| s.to_ascii_uppercase()) {
            None => IndexKind::Hnsw,
            Some(s) if s == "HNSW" => IndexKind::Hnsw,
            Some(s) if s == "FLAT" => IndexKind::Flat,
            Some(s) => {
                return Err(invalid(
                    "index_type",
                    format!("'{s}' is not one of HNSW, FLAT"),
                ))
            }
        };
        Ok(MilvusConfig {
            connection,
            collection_name,
            metric,
            consistency_level,
            index_kind,
            hnsw_m: u32_param(p, &["hnsw_m", "M"], 16, 2, 2048)?,
            hnsw_ef_construction: u32_param(
                p,
                &["hnsw_ef_construction", "efConstruction"],
                128,
                1,
                1 << 20,
            )?,
            search_ef: u32_param(p, &["search_ef", "ef"], 64, 1, 1 << 20)?,
            batch_size: u32_param(p, &["batch_size"], 1000, 1, 100_000)? as usize,
            parallel_batches: u32_param(p, &["parallel_batches"], 2, 1, 16)? as usize,
            flush_on_persist: p.get_bool(BACKEND, "flush_on_persist")?.unwrap_or(false),
        })
    }

    /// Non-secret, non-connection settings for the run record.
    pub fn persisted(&self, collection_name: &str, metric: Metric) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "collection_name".into(),
            Value::String(collection_name.to_string()),
        );
        m.insert("metric".into(), Value::String(metric.as_str().to_string()));
        m.insert(
            "consistency_level".into(),
            Value::String(consistency_name(self.consistency_level).to_string()),
        );
        m.insert(
            "index_type".into(),
            Value::String(self.index_kind.as_str().to_string()),
        );
        m.insert("hnsw_m".into(), Value::from(self.hnsw_m));
        m.insert(
            "hnsw_ef_construction".into(),
            Value::from(self.hnsw_ef_construction),
        );
        m.insert("search_ef".into(), Value::from(self.search_ef));
        m
    }
}

/// Milvus collection names: a letter or `_` first, then letters, digits and `_`, at most 255.
pub fn validate_collection_name(name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok_first && ok_rest && name.len() <= 255 {
        Ok(())
    } else {
        Err(invalid(
            "collection_name",
            format!("'{name}' is not a valid Milvus collection name (letters, digits, '_'; not starting with a digit)"),
        ))
    }
}

/// `fiftyone_<dataset slug>` (the random suffix is added by the caller).
pub fn collection_prefix(dataset_name: &str) -> String {
    let mut slug = String::new();
    for c in dataset_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug = slug.trim_matches('_');
    let slug: String = slug.chars().take(200).collect();
    if slug.is_empty() {
        "fiftyone".to_string()
    } else {
        format!("fiftyone_{slug}")
    }
}

/// A URI with any `user:password@` part removed, for messages.
pub fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = match uri.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), uri),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}{path}"),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn params(v: Value) -> BackendParams {
        BackendParams {
            params: v.as_object().unwrap().clone(),
            storage_dir: PathBuf::new(),
            dataset_name: "My Dataset-2".into(),
            brain_key: None,
            patches: false,
        }
    }

    #[test]
    fn defaults_and_validation() {
        let c = MilvusConfig::from_params(&params(serde_json::json!({}))).unwrap();
        assert_eq!(c.connection.uri, DEFAULT_URI);
        assert_eq!(c.consistency_level, ConsistencyLevel::Session);
        assert_eq!(c.metric, None);
        assert_eq!(c.index_kind, IndexKind::Hnsw);
        let bad = MilvusConfig::from_params(&params(
            serde_json::json!({"consistency_level": "Sometimes"}),
        ));
        assert!(
            matches!(bad, Err(Error::InvalidParam { param, .. }) if param == "consistency_level")
        );
        let strong =
            MilvusConfig::from_params(&params(serde_json::json!({"consistency_level": "strong"})))
                .unwrap();
        assert_eq!(strong.consistency_level, ConsistencyLevel::Strong);
        assert!(MilvusConfig::from_params(&params(
            serde_json::json!({"collection_name": "1bad-name"})
        ))
        .is_err());
        assert!(MilvusConfig::from_params(&params(serde_json::json!({"metric": "l1"}))).is_err());
    }

    #[test]
    fn every_listed_param_is_read() {
        // A bad value for a parameter that is read is refused; one that is ignored is not.
        for name in PARAMS {
            if ["uri", "user", "password", "token", "db_name"].contains(name) {
                continue; // free-form strings
            }
            let r = MilvusConfig::from_params(&params(serde_json::json!({ *name: "not valid!" })));
            assert!(r.is_err(), "'{name}' is listed but not read");
        }
        for name in MilvusConfig::from_params(&params(serde_json::json!({})))
            .unwrap()
            .persisted("c", Metric::Cosine)
            .keys()
        {
            assert!(
                PARAMS.contains(&name.as_str()),
                "'{name}' is persisted but not listed"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_persisted_config() {
        let c = MilvusConfig::from_params(&params(serde_json::json!({
            "uri": "http://u:hunter2@h:1", "user": "root", "password": "hunter2", "token": "root:hunter2"
        })))
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let persisted = serde_json::to_string(&c.persisted("coll", Metric::Cosine)).unwrap();
        assert!(!persisted.contains("hunter2"));
        assert!(!persisted.contains("uri"));
        assert!(persisted.contains("\"metric\":\"cosine\""));
    }

    #[test]
    fn collection_prefix_is_a_valid_name() {
        assert_eq!(collection_prefix("My Dataset-2"), "fiftyone_my_dataset_2");
        assert_eq!(collection_prefix("ü€"), "fiftyone");
        validate_collection_name(&collection_prefix("a b/c")).unwrap();
    }

    #[test]
    fn redacts_userinfo() {
        assert_eq!(redact_uri("http://u:p@host:19530"), "http://***@host:19530");
        assert_eq!(redact_uri("http://host:19530"), "http://host:19530");
    }
}
