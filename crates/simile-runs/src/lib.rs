//! The brain-run registry of simile: one record per brain key (a similarity index, in FiftyOne's
//! vocabulary a "brain run"), stored in the dataset's SQLite database.
//!
//! This crate does not know the dataset crate: every function takes a [`rusqlite::Connection`]
//! (callers own transactions; a `rusqlite::Transaction` derefs to a `Connection`) and the
//! dataset's numeric id. Call [`RunRegistry::migrate`] once per database before anything else.
//!
//! Records never hold credentials: [`RunRegistry::register`] and [`RunRegistry::update_config`]
//! strip every secret (`simile_index::is_secret_param`, at any nesting level) and connection
//! parameter (`simile_index::CONNECTION_PARAMS`) from the config before writing it.
//!
//! ```
//! use rusqlite::Connection;
//! use simile_runs::{RunFilter, RunRecord, RunRegistry};
//!
//! let conn = Connection::open_in_memory().unwrap();
//! RunRegistry::migrate(&conn).unwrap();
//! let mut config = serde_json::Map::new();
//! config.insert("metric".into(), "cosine".into());
//! RunRegistry::register(&conn, 1, &RunRecord::new("sim", "sklearn", config)).unwrap();
//! assert_eq!(RunRegistry::list(&conn, 1, &RunFilter::similarity()).unwrap(), ["sim"]);
//! ```

#![warn(missing_docs)]

mod error;
mod record;
mod registry;

pub use error::{Result, RunsError};
pub use record::{validate_key, RunFilter, RunRecord, RunState, SIMILARITY, VERSION};
pub use registry::{RunRefs, RunRegistry, TABLE};
