use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Format, Json, Serialized};
use figment::value::{Dict, Map as FigMap};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ConfigError, EnvSnapshot};

/// The backend used when neither the call, the file nor the environment names one.
pub const DEFAULT_SIMILARITY_BACKEND: &str = "sklearn";

/// The backends simile ships; used (with the file's backends) to split
/// `..._SIMILARITY_<BACKEND>_<PARAM>` variable names.
pub const BUILTIN_BACKENDS: &[&str] = &["sklearn", "milvus"];

/// Variables naming the brain config file, first set one wins.
pub const CONFIG_PATH_VARS: &[&str] = &["SIMILE_BRAIN_CONFIG_PATH", "FIFTYONE_BRAIN_CONFIG_PATH"];

/// Variables setting the default backend, later ones winning.
pub const DEFAULT_BACKEND_VARS: &[&str] = &[
    "FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND",
    "SIMILE_DEFAULT_SIMILARITY_BACKEND",
];

/// Prefixes of per-backend parameter variables, later ones winning.
pub const PARAM_PREFIXES: &[&str] = &["FIFTYONE_BRAIN_SIMILARITY_", "SIMILE_SIMILARITY_"];

/// Whether a backend parameter is a credential, to be hidden from `Debug`, logs and output: the
/// one definition, [`simile_index::is_secret_param`].
pub use simile_index::is_secret_param;

/// A copy of `params` with every secret value (see [`is_secret_param`]) replaced by `"***"`, for
/// showing a configuration to a user.
pub fn redact_params(params: &Map<String, Value>) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_param(k) {
                Value::String("***".into())
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// The brain config: which similarity backend to use by default, and each backend's parameters
/// (connection settings, credentials, defaults such as `metric`).
///
/// `Debug` prints secret parameters as `***`. There is deliberately no `Serialize`: the config
/// holds credentials and must not be persisted; backends persist their own non-secret settings.
#[derive(Clone, PartialEq, Deserialize)]
pub struct BrainConfig {
    /// The backend `compute_similarity` uses when the call names none (default `"sklearn"`).
    #[serde(default = "default_backend")]
    pub default_similarity_backend: String,
    /// Parameters per backend name.
    #[serde(default)]
    pub similarity_backends: BTreeMap<String, Map<String, Value>>,
}

fn default_backend() -> String {
    DEFAULT_SIMILARITY_BACKEND.to_string()
}

impl Default for BrainConfig {
    fn default() -> Self {
        BrainConfig {
            default_similarity_backend: default_backend(),
            similarity_backends: BTreeMap::new(),
        }
    }
}

impl BrainConfig {
    /// Loads the config from the process environment: defaults → JSON file → env vars.
    pub fn load() -> Result<BrainConfig, ConfigError> {
        BrainConfig::load_from(&EnvSnapshot::from_process())
    }

    /// Loads the config with `env` standing in for the process environment.
    pub fn load_from(env: &EnvSnapshot) -> Result<BrainConfig, ConfigError> {
        let figment = BrainConfig::figment(env)?;
        figment.extract().map_err(extract_error)
    }

    /// The brain config file path `env` selects: `$SIMILE_BRAIN_CONFIG_PATH`, else
    /// `$FIFTYONE_BRAIN_CONFIG_PATH`, else `~/.fiftyone/brain_config.json` (`None` when there is
    /// no home directory). The file need not exist.
    pub fn config_path(env: &EnvSnapshot) -> Option<PathBuf> {
        CONFIG_PATH_VARS
            .iter()
            .find_map(|var| env.get_nonempty(var))
            .map(PathBuf::from)
            .or_else(|| {
                env.home_dir()
                    .map(|h| h.join(".fiftyone").join("brain_config.json"))
            })
    }

    /// The layered figment (defaults → file → env) behind [`BrainConfig::load_from`], for callers
    /// that want to extract typed sections themselves, e.g.
    /// `figment.extract_inner::<MyParams>("similarity_backends.milvus")`.
    ///
    /// The file is read and checked here, so a malformed file is reported with its path.
    pub fn figment(env: &EnvSnapshot) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Defaults {
            default_similarity_backend: DEFAULT_SIMILARITY_BACKEND,
        }));
        let mut known: BTreeSet<String> = BUILTIN_BACKENDS.iter().map(|b| b.to_string()).collect();
        match BrainConfig::config_path(env) {
            Some(path) => match read_file(&path)? {
                Some(file_backends) => {
                    tracing::debug!(path = %path.display(), "brain config file loaded");
                    known.extend(file_backends.into_iter().map(|b| b.to_lowercase()));
                    figment = figment.merge(Json::file_exact(&path));
                }
                None => {
                    tracing::debug!(path = %path.display(), "no brain config file; using defaults");
                }
            },
            None => tracing::debug!("no home directory; brain config file skipped"),
        }
        Ok(figment.merge(EnvLayer::from_env(env, &known)))
    }

    /// The parameters of `backend`: the file's and the environment's values (env winning), then
    /// `overrides` on top (a shallow update like Python's `dict.update`; override values keep
    /// their JSON types). The backend name is matched exactly, else case-insensitively.
    pub fn backend_params(
        &self,
        backend: &str,
        overrides: &Map<String, Value>,
    ) -> Map<String, Value> {
        let base = self.similarity_backends.get(backend).or_else(|| {
            self.similarity_backends
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(backend))
                .map(|(_, params)| params)
        });
        let mut params = base.cloned().unwrap_or_default();
        for (k, v) in overrides {
            params.insert(k.clone(), v.clone());
        }
        params
    }

    /// The backend to use: `explicit` if given (and not blank), else the default backend;
    /// trimmed and lowercased. Whether the name is supported is the caller's business.
    pub fn resolve_backend(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(self.default_similarity_backend.trim())
            .to_lowercase()
    }
}

impl fmt::Debug for BrainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// A parameter value as JSON text, or `***` for secrets.
        struct Shown<'a>(&'a str, &'a Value);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if is_secret_param(self.0) {
                    f.write_str("***")
                } else {
                    write!(f, "{}", self.1)
                }
            }
        }
        struct Params<'a>(&'a Map<String, Value>);
        impl fmt::Debug for Params<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| (k, Shown(k, v))))
                    .finish()
            }
        }
        struct Backends<'a>(&'a BTreeMap<String, Map<String, Value>>);
        impl fmt::Debug for Backends<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| (k, Params(v))))
                    .finish()
            }
        }
        f.debug_struct("BrainConfig")
            .field(
                "default_similarity_backend",
                &self.default_similarity_backend,
            )
            .field("similarity_backends", &Backends(&self.similarity_backends))
            .finish()
    }
}

#[derive(Serialize)]
struct Defaults {
    default_similarity_backend: &'static str,
}

/// Reads and checks the brain config file. `Ok(None)`: no such file. `Ok(Some(names))`: the
/// backend names the file declares.
fn read_file(path: &Path) -> Result<Option<Vec<String>>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::ReadFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| ConfigError::MalformedFile {
            path: path.to_path_buf(),
            source,
        })?;
    let invalid = |field: &str, expected| ConfigError::InvalidFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        expected,
    };
    let Value::Object(top) = value else {
        return Err(invalid("(top level)", "a JSON object"));
    };
    if let Some(v) = top.get("default_similarity_backend") {
        if !v.is_string() {
            return Err(invalid("default_similarity_backend", "a string"));
        }
    }
    let mut names = Vec::new();
    if let Some(v) = top.get("similarity_backends") {
        let Value::Object(backends) = v else {
            return Err(invalid(
                "similarity_backends",
                "an object of backend name → parameters",
            ));
        };
        for (name, params) in backends {
            if !params.is_object() {
                return Err(invalid(
                    &format!("similarity_backends.{name}"),
                    "an object of parameters",
                ));
            }
            names.push(name.clone());
        }
    }
    Ok(Some(names))
}

/// The environment layer: values are inserted as strings, never parsed.
#[derive(Default, Serialize)]
struct EnvLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    default_similarity_backend: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    similarity_backends: BTreeMap<String, BTreeMap<String, String>>,
}

impl EnvLayer {
    fn from_env(env: &EnvSnapshot, known: &BTreeSet<String>) -> EnvLayer {
        let mut layer = EnvLayer::default();
        for var in DEFAULT_BACKEND_VARS {
            if let Some(v) = env.get_nonempty(var) {
                layer.default_similarity_backend = Some(v.trim().to_string());
            }
        }
        // Longest name first, so `my_backend` wins over `my`.
        let mut known: Vec<&str> = known.iter().map(String::as_str).collect();
        known.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        for prefix in PARAM_PREFIXES {
            for (name, value) in env.with_prefix(prefix) {
                let rest = &name[prefix.len()..];
                match split_backend_param(rest, &known) {
                    Some((backend, param)) => {
                        tracing::debug!(
                            var = name,
                            backend,
                            param,
                            "brain config from environment"
                        );
                        layer
                            .similarity_backends
                            .entry(backend)
                            .or_default()
                            .insert(param, value.to_string());
                    }
                    None => {
                        tracing::debug!(var = name, "not a <BACKEND>_<PARAM> variable; ignored")
                    }
                }
            }
        }
        layer
    }
}

/// Splits `MY_BACKEND_URI` into (`my_backend`, `uri`), see the crate docs.
fn split_backend_param(rest: &str, known_longest_first: &[&str]) -> Option<(String, String)> {
    let lower = rest.to_lowercase();
    for backend in known_longest_first {
        if let Some(param) = lower
            .strip_prefix(backend)
            .and_then(|r| r.strip_prefix('_'))
        {
            if !param.is_empty() {
                return Some((backend.to_string(), param.to_string()));
            }
        }
    }
    let (backend, param) = lower.split_once('_')?;
    if backend.is_empty() || param.is_empty() {
        return None;
    }
    Some((backend.to_string(), param.to_string()))
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables")
    }

    fn data(&self) -> Result<FigMap<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

/// Maps a figment extraction error without including the offending value (it may be a secret).
fn extract_error(e: figment::Error) -> ConfigError {
    let origin = match &e.metadata {
        Some(Metadata {
            source: Some(Source::File(path)),
            ..
        }) => path.display().to_string(),
        Some(m) => m.name.to_string(),
        None => "an unknown source".to_string(),
    };
    let reason = match &e.kind {
        Kind::InvalidType(_, expected) => format!("wrong type, expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
        Kind::Unsupported(_) | Kind::UnsupportedKey(..) => "unsupported value".to_string(),
        other => other.to_string(),
    };
    ConfigError::Invalid {
        key: e.path.join("."),
        origin,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_backend_names() {
        let known = ["my_backend", "milvus", "sklearn", "my"];
        let s = |r: &str| split_backend_param(r, &known);
        assert_eq!(s("MILVUS_URI"), Some(("milvus".into(), "uri".into())));
        assert_eq!(
            s("MILVUS_DB_NAME"),
            Some(("milvus".into(), "db_name".into()))
        );
        assert_eq!(
            s("MY_BACKEND_URI"),
            Some(("my_backend".into(), "uri".into()))
        );
        assert_eq!(s("MY_URI"), Some(("my".into(), "uri".into())));
        assert_eq!(s("FOO_DB_NAME"), Some(("foo".into(), "db_name".into())));
        assert_eq!(s("BACKENDS"), None);
        assert_eq!(s("MILVUS_"), None);
        assert_eq!(s("_URI"), None);
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_param("password"));
        assert!(is_secret_param("PASSWORD"));
        assert!(is_secret_param("ca_pem_path"));
        assert!(is_secret_param("my_access_token"));
        assert!(!is_secret_param("uri"));
        assert!(!is_secret_param("collection_name"));
    }

    #[test]
    fn resolve_backend_prefers_explicit() {
        let c = BrainConfig {
            default_similarity_backend: "Milvus".into(),
            ..BrainConfig::default()
        };
        assert_eq!(c.resolve_backend(None), "milvus");
        assert_eq!(c.resolve_backend(Some(" SKLEARN ")), "sklearn");
        assert_eq!(c.resolve_backend(Some("")), "milvus");
        assert_eq!(BrainConfig::default().resolve_backend(None), "sklearn");
    }
}
