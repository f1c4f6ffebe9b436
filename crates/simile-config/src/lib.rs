//! Configuration for simile: the FiftyOne-compatible brain config and simile's own settings.
//!
//! This is the only crate of the workspace that reads environment variables. Everything else gets
//! its configuration from here, already resolved.
//!
//! # Brain config ([`BrainConfig`])
//!
//! Layered with [figment], later layers winning:
//!
//! 1. defaults: `default_similarity_backend = "sklearn"`, no backend parameters;
//! 2. a JSON file with FiftyOne's `brain_config.json` shape, found at `$SIMILE_BRAIN_CONFIG_PATH`,
//!    else `$FIFTYONE_BRAIN_CONFIG_PATH`, else `~/.fiftyone/brain_config.json` (a missing file
//!    means defaults; a malformed one is a [`ConfigError`] naming the file);
//! 3. environment variables (see below), `SIMILE_*` beating `FIFTYONE_*`;
//! 4. per-call keyword overrides, applied by [`BrainConfig::backend_params`].
//!
//! ```json
//! {"default_similarity_backend": "milvus",
//!  "similarity_backends": {"milvus": {"uri": "http://localhost:19530", "user": "u", "password": "p",
//!                                     "collection_name": "c", "metric": "dotproduct",
//!                                     "consistency_level": "Strong"}}}
//! ```
//!
//! ## Environment variables
//!
//! | variable | effect |
//! |---|---|
//! | `FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND`, `SIMILE_DEFAULT_SIMILARITY_BACKEND` | `default_similarity_backend` |
//! | `FIFTYONE_BRAIN_SIMILARITY_<BACKEND>_<PARAM>`, `SIMILE_SIMILARITY_<BACKEND>_<PARAM>` | `similarity_backends[backend][param]`, both lowercased |
//!
//! **Values stay strings**: a password `123` is the string `"123"` and `a,b` is the string `"a,b"`
//! (FiftyOne turns them into an integer and a list). Backends parse the strings they need as
//! numbers or booleans (see `simile_index::BackendParams::get_u64` / `get_bool`). An empty value
//! is kept as the empty string, except for the default backend where it is ignored.
//!
//! **Backend names containing underscores.** `<BACKEND>_<PARAM>` is split by matching the known
//! backend names — the builtins [`BUILTIN_BACKENDS`] plus every backend named in the JSON file,
//! compared case-insensitively — longest name first, so with a file declaring `my_backend`,
//! `SIMILE_SIMILARITY_MY_BACKEND_URI` sets `my_backend.uri`. When no known name matches, the
//! backend is the text before the first underscore (`SIMILE_SIMILARITY_FOO_DB_NAME` sets
//! `foo.db_name`). A name without any `_` after the prefix (such as FiftyOne's
//! `FIFTYONE_BRAIN_SIMILARITY_BACKENDS`) is ignored.
//!
//! # Settings ([`Settings`])
//!
//! `SIMILE_HOME` (default `~/.simile`), `SIMILE_MODELS_DIR`, `SIMILE_MODEL_CACHE` (default
//! `<home>/models`), `SIMILE_ORT_DYLIB_PATH` (else `ORT_DYLIB_PATH`), `SIMILE_OFFLINE`, `SIMILE_LOG`
//! (the log filter a binary installs).
//!
//! # Testing
//!
//! Every loader has a variant taking an [`EnvSnapshot`], so tests need not touch the process
//! environment.

#![warn(missing_docs)]

mod brain;
mod env;
mod error;
mod settings;

pub use brain::{
    is_secret_param, redact_params, BrainConfig, BUILTIN_BACKENDS, CONFIG_PATH_VARS,
    DEFAULT_BACKEND_VARS, DEFAULT_SIMILARITY_BACKEND, PARAM_PREFIXES,
};
pub use env::EnvSnapshot;
pub use error::ConfigError;
pub use settings::{find_ort_library, Settings, ORT_LIB_DIR};
