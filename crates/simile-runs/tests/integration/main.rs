//! The integration tests of simile-runs, on real SQLite files in temp dirs (one binary).

mod lifecycle;
mod listing;
mod persistence;

use std::path::Path;

use rusqlite::Connection;
use serde_json::{Map, Value};
use simile_runs::RunRegistry;

/// Opens (creating) the database at `path` in WAL mode, like the dataset store, and migrates it.
pub fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open database");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL mode");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    RunRegistry::migrate(&conn).expect("migrate");
    conn
}

/// A JSON object from a `json!` literal.
pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}
