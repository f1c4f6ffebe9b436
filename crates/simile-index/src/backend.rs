use std::any::Any;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::{BorrowedRows, Embeddings, Error, Metric, Result};

/// What a backend can and cannot do. The conformance suite checks that every operation a backend
/// declares unsupported fails with [`Error::NotSupported`] rather than misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest `k` a single query may ask for (`None`: unlimited).
    pub max_k: Option<usize>,
    /// Least-similar-first queries (`reverse = true`).
    pub reverse: bool,
    /// `k = None`: rank every candidate.
    pub unbounded_k: bool,
    /// [`SimilarityBackend::get_all`] and [`SimilarityBackend::keys`] (enumerating the index).
    pub enumerate: bool,
    /// Exact k-NN (`false`: approximate; the conformance suite then checks recall instead of order).
    pub exact: bool,
}

/// One search hit. `distance` follows [`Metric`]'s definition on every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// The index key (sample id, or label id for patch indexes).
    pub key: String,
    /// The owning sample.
    pub sample_id: String,
    /// The distance from the query, as [`Metric`] defines it (smaller is closer).
    pub distance: f32,
}

/// One k-nearest-neighbour request, after the facade has resolved ids/prompts to a single vector.
#[derive(Debug, Clone, Copy)]
pub struct KnnQuery<'a> {
    /// The query vector (several queries are averaged by the caller: the "mean" aggregation).
    pub vector: &'a [f32],
    /// Number of results; `None` ranks every candidate (needs [`Capabilities::unbounded_k`]).
    pub k: Option<usize>,
    /// Farthest first (needs [`Capabilities::reverse`]).
    pub reverse: bool,
    /// Only these keys are candidates (a view). Keys absent from the index are ignored.
    /// `None`: the whole index.
    pub restrict: Option<&'a [String]>,
    /// A name the caller gives the `restrict` key set: a promise that every query carrying this
    /// token carries the same keys, in the same order. A backend may keep what it derived from
    /// the keys under the token (the exact backend: their rows) and reuse it while its own
    /// content is unchanged; any upsert or remove must invalidate that. Backends may ignore it;
    /// results never depend on it. `None`: no promise.
    pub restrict_token: Option<u64>,
}

impl<'a> KnnQuery<'a> {
    /// The `k` nearest in the whole index.
    pub fn nearest(vector: &'a [f32], k: usize) -> Self {
        KnnQuery {
            vector,
            k: Some(k),
            reverse: false,
            restrict: None,
            restrict_token: None,
        }
    }
}

/// The contract every similarity backend implements.
///
/// All methods take `&self`: backends use interior mutability so one handle can be shared across
/// threads. All methods are blocking; network backends drive their async client on a runtime of
/// their own, so callers need no runtime (and must not call them on an async worker thread: use
/// `spawn_blocking`).
pub trait SimilarityBackend: Send + Sync + fmt::Debug {
    /// The backend's registered name ("sklearn", "milvus", ...).
    fn name(&self) -> &'static str;
    /// What this backend can do; what it cannot fails with [`Error::NotSupported`](crate::Error::NotSupported).
    fn capabilities(&self) -> Capabilities;
    /// The metric every distance of this index follows.
    fn metric(&self) -> Metric;
    /// The vectors' dimension; `None` while the index is empty and has never been given one.
    fn dim(&self) -> Result<Option<usize>>;

    /// Insert-or-replace: a key already present gets the new vector (size unchanged); within one
    /// batch the last row of a key wins. All-or-nothing for exact backends.
    fn upsert(&self, batch: &Embeddings) -> Result<()>;
    /// A hint before a bulk build: about `additional` more rows are coming in `upsert` batches.
    /// Backends may preallocate or stream rows straight to storage; the default does nothing.
    fn reserve(&self, additional: usize) -> Result<()> {
        let _ = additional;
        Ok(())
    }
    /// Deletes the given keys; absent keys are ignored. Returns how many were present.
    fn remove(&self, keys: &[String]) -> Result<usize>;
    /// For each key, whether it is in the index.
    fn contains(&self, keys: &[String]) -> Result<Vec<bool>>;
    /// The rows of the keys that are present, in the order asked (absent keys are skipped).
    fn get(&self, keys: &[String]) -> Result<Embeddings>;
    /// The rows owned by the given samples (all patches of each sample for patch indexes),
    /// grouped in the order the samples were asked.
    fn get_by_sample_ids(&self, sample_ids: &[String]) -> Result<Embeddings>;
    /// Every row (needs [`Capabilities::enumerate`]).
    fn get_all(&self) -> Result<Embeddings>;
    /// Every key with its owning sample (needs [`Capabilities::enumerate`]).
    fn keys(&self) -> Result<Vec<(String, String)>>;
    /// Calls `f` once with every row of the index borrowed in index row order (the order of
    /// [`keys`](Self::keys)), without copying, and returns `Ok(true)`; or returns `Ok(false)`
    /// without calling `f` when the backend cannot lend its rows (the default; callers then read
    /// them with [`get`](Self::get)). The index cannot change while `f` runs (writers wait), so
    /// `f` must not call this backend.
    fn with_rows(&self, f: &mut dyn FnMut(BorrowedRows<'_>)) -> Result<bool> {
        let _ = f;
        Ok(false)
    }
    /// Number of vectors in the index, exact.
    fn size(&self) -> Result<usize>;
    /// Nearest (or farthest) neighbours, closest first (or farthest first), ties broken by key.
    fn knn(&self, query: &KnnQuery<'_>) -> Result<Vec<Neighbor>>;

    /// Makes every change durable (local backends write their files; servers flush). The facade
    /// calls this after each change to a registered index.
    fn persist(&self) -> Result<()>;
    /// Deletes the backend's data (files, collection). The handle is unusable afterwards except
    /// for `size()`, which reports 0.
    fn cleanup(&self) -> Result<()>;

    /// Whether this handle created the storage it uses (`false` when it attached to data that
    /// existed before, such as an existing Milvus collection). When a `compute_similarity` call
    /// fails, the facade calls `cleanup()` only on indexes that created their storage, so user
    /// data is never dropped.
    fn created_storage(&self) -> bool {
        true
    }

    /// Non-secret settings to store in the run record and pass back to [`BackendFactory::open`].
    /// Must never contain credentials.
    fn persisted_config(&self) -> Map<String, Value>;

    /// For downcasting to the concrete backend (e.g. to reach the Milvus client).
    fn as_any(&self) -> &dyn Any;
}

/// What a factory gets when it creates or reopens an index.
#[derive(Debug, Clone)]
pub struct BackendParams {
    /// Merged parameters for this backend: config file → env vars → per-call overrides, and, on
    /// open, the persisted config on top of the credentials. Secrets may be present here; backends
    /// keep them in [`Secret`]s and never persist them.
    pub params: Map<String, Value>,
    /// A directory reserved for this index, for backends that keep local files.
    pub storage_dir: PathBuf,
    /// The dataset's name (used for auto-generated collection names).
    pub dataset_name: String,
    /// The brain key, if the run is registered.
    pub brain_key: Option<String>,
    /// Whether the index holds patches (keys are label ids).
    pub patches: bool,
}

impl BackendParams {
    /// The string value of `name`, if set. Numbers and booleans are rendered as strings.
    pub fn get_str(&self, name: &str) -> Option<String> {
        match self.params.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The metric from `params["metric"]`, or `default`.
    pub fn metric_or(&self, default: Metric) -> Result<Metric> {
        match self.get_str("metric") {
            Some(m) => m.parse(),
            None => Ok(default),
        }
    }

    /// A boolean from `true/false/1/0/yes/no` strings or JSON booleans.
    pub fn get_bool(&self, backend: &'static str, name: &str) -> Result<Option<bool>> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => {
                let s = match v {
                    Value::String(s) => s.to_ascii_lowercase(),
                    other => other.to_string(),
                };
                match s.as_str() {
                    "true" | "1" | "yes" | "on" => Ok(Some(true)),
                    "false" | "0" | "no" | "off" | "" => Ok(Some(false)),
                    _ => Err(Error::InvalidParam {
                        backend,
                        param: name.to_string(),
                        reason: format!("expected a boolean, got {v}"),
                    }),
                }
            }
        }
    }

    /// An unsigned integer from a JSON number or a numeric string.
    pub fn get_u64(&self, backend: &'static str, name: &str) -> Result<Option<u64>> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(v) => Err(Error::InvalidParam {
                backend,
                param: name.to_string(),
                reason: format!("expected a non-negative integer, got {v}"),
            }),
        }
    }
}

/// Creates and reopens indexes of one backend. The facade keeps one per backend name.
pub trait BackendFactory: Send + Sync + fmt::Debug {
    /// The name users select the backend by (`backend="sklearn"`).
    fn name(&self) -> &'static str;
    /// The metric a new index gets when none is configured.
    fn default_metric(&self) -> Metric;
    /// Creates a new (empty) index, or connects to an existing one where the params name it.
    fn create(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>>;
    /// Reopens an index from a run record.
    fn open(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>>;
}

/// A secret string (password, token). `Debug` and `Display` print `***`; it does not implement
/// `Serialize`, so it cannot end up in a run record by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value: call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Names of backend parameters that are credentials: never persisted, never logged.
pub const SECRET_PARAMS: &[&str] = &[
    "password",
    "token",
    "api_key",
    "secret",
    "client_key_path",
    "client_pem_path",
    "ca_pem_path",
    "server_pem_path",
];

/// Words that make a parameter name a credential wherever they appear in it (see
/// [`is_secret_param`]).
const SECRET_WORDS: &[&str] = &["password", "passwd", "token", "secret", "apikey"];

/// Whether a parameter name is a credential: the one definition that decides what is stripped
/// before a run record is written, redacted from `Debug`, logs and output, everywhere.
///
/// Ignoring ASCII case, a name is a credential when it is one of [`SECRET_PARAMS`], or when one
/// of its words (split at `_`, `-`, `.` and camelCase humps) is `password`, `passwd`, `token`,
/// `secret` or `apikey`, or two adjacent words are `api` and `key`: `db_password`,
/// `my_access_token`, `OPENAI_API_KEY`, `clientSecret`. Whole words only: `tokenizer`,
/// `max_tokens` and `secretary` are ordinary parameters.
pub fn is_secret_param(name: &str) -> bool {
    if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return true;
    }
    let words = name_words(name);
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words.windows(2).any(|w| w[0] == "api" && w[1] == "key")
}

/// The lower-case words of a parameter name: split at non-alphanumeric characters and where a
/// lower-case letter or digit is followed by an upper-case one.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    words.extend((!word.is_empty()).then_some(word));
    words
}

/// Connection parameters: not secret, but supplied per machine (from config/env/overrides) and
/// therefore not persisted either.
pub const CONNECTION_PARAMS: &[&str] = &["uri", "user", "secure", "db_name", "server_name"];

/// Removes credentials (every name [`is_secret_param`] accepts) and connection settings from a
/// parameter map.
pub fn strip_credentials(params: &mut Map<String, Value>) {
    params.retain(|k, _| !is_secret_param(k) && !CONNECTION_PARAMS.contains(&k.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn one_definition_of_a_secret_name() {
        for name in SECRET_PARAMS {
            assert!(is_secret_param(name), "{name}");
            assert!(
                is_secret_param(&name.to_ascii_uppercase()),
                "{name} in upper case"
            );
        }
        for name in [
            "Password",
            "db_password",
            "DB_PASSWD",
            "my_access_token",
            "accessToken",
            "OPENAI_API_KEY",
            "apiKey",
            "x-api-key",
            "client-secret",
            "clientSecret",
            "aws.secret.access_key",
        ] {
            assert!(is_secret_param(name), "{name} is a credential");
        }
        for name in [
            "uri",
            "user",
            "collection_name",
            "metric",
            "hnsw_m",
            "efConstruction",
            "tokenizer",
            "max_tokens",
            "secretary",
            "passwords_checked_at",
            "brain_key",
            "keypoints_field",
            "",
        ] {
            assert!(!is_secret_param(name), "{name} is not a credential");
        }
        assert_eq!(
            name_words("aB_c-D.eF2G"),
            ["a", "b", "c", "d", "e", "f2", "g"]
        );
    }

    #[test]
    fn strip_credentials_removes_every_secret_and_connection_setting() {
        let mut m = Map::new();
        for k in [
            "PASSWORD",
            "db_password",
            "Token",
            "uri",
            "user",
            "tokenizer",
            "metric",
        ] {
            m.insert(k.into(), Value::String("x".into()));
        }
        strip_credentials(&mut m);
        let kept: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(m.contains_key("tokenizer") && m.contains_key("metric"));
    }

    #[test]
    fn params_parse_leniently() {
        let mut params = Map::new();
        params.insert("secure".into(), Value::String("True".into()));
        params.insert("batch".into(), Value::String("500".into()));
        params.insert("password".into(), Value::String("123".into()));
        params.insert("bad".into(), Value::String("maybe".into()));
        let p = BackendParams {
            params,
            storage_dir: PathBuf::new(),
            dataset_name: "d".into(),
            brain_key: None,
            patches: false,
        };
        assert_eq!(p.get_bool("x", "secure").unwrap(), Some(true));
        assert_eq!(p.get_u64("x", "batch").unwrap(), Some(500));
        assert_eq!(p.get_str("password").as_deref(), Some("123"));
        assert!(matches!(
            p.get_bool("x", "bad"),
            Err(Error::InvalidParam { .. })
        ));
        let mut m = p.params.clone();
        strip_credentials(&mut m);
        assert!(!m.contains_key("password"));
        assert!(m.contains_key("batch"));
    }
}
