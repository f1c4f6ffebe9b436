use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::{validate_key, Result, RunFilter, RunRecord, RunState, RunsError};

/// The table holding the runs.
pub const TABLE: &str = "brain_runs";

const COLUMNS: &str = "key, run_type, method, config, timestamp, version, state, results";

/// The brain-run registry: associated functions over a connection to the dataset's database.
///
/// Each function runs its statements on the given connection and does not open transactions of
/// its own, so callers can group registry changes with their own writes (pass a
/// `rusqlite::Transaction`). Every write is a single statement, hence atomic on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunRegistry;

/// A run's stored config and results, as text (see [`RunRegistry::all_refs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRefs {
    /// The dataset's row id in the store.
    pub dataset_id: i64,
    /// The run's brain key.
    pub key: String,
    /// The config JSON as stored.
    pub config: String,
    /// The results JSON as stored, if any.
    pub results: Option<String>,
}

impl RunRefs {
    /// Whether the stored text names `needle` as a whole JSON string (a storage directory or a
    /// collection name).
    pub fn mentions(&self, needle: &str) -> bool {
        let quoted = format!("\"{needle}\"");
        self.config.contains(&quoted)
            || self.results.as_deref().is_some_and(|r| r.contains(&quoted))
    }
}

impl RunRegistry {
    /// Creates the registry table if missing. Idempotent.
    pub fn migrate(conn: &Connection) -> Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS brain_runs (
                dataset_id INTEGER NOT NULL,
                key        TEXT NOT NULL,
                run_type   TEXT NOT NULL,
                method     TEXT NOT NULL,
                config     TEXT NOT NULL,   -- JSON object, credentials stripped
                timestamp  TEXT NOT NULL,   -- RFC 3339, UTC
                version    TEXT NOT NULL,
                state      TEXT NOT NULL,   -- running | completed | failed
                results    TEXT,            -- JSON, nullable
                PRIMARY KEY (dataset_id, key)
            );",
        )?;
        Ok(())
    }

    /// Registers a new run. Its config is stored without credentials or connection settings.
    ///
    /// Errors: [`RunsError::InvalidKey`], [`RunsError::DuplicateKey`] (the existing run is left
    /// untouched).
    pub fn register(conn: &Connection, dataset_id: i64, record: &RunRecord) -> Result<()> {
        validate_key(&record.key)?;
        let config = config_json(&record.key, &record.config)?;
        let timestamp = record
            .timestamp
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| RunsError::InvalidRecord {
                key: record.key.clone(),
                reason: format!("timestamp not representable in RFC 3339: {e}"),
            })?;
        let results = results_json(&record.key, record.results.as_ref())?;
        let inserted = conn.execute(
            "INSERT INTO brain_runs (dataset_id, key, run_type, method, config, timestamp, version, state, results)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                dataset_id,
                record.key,
                record.run_type,
                record.method,
                config,
                timestamp,
                record.version,
                record.state.as_str(),
                results,
            ],
        );
        match inserted {
            Ok(_) => {
                tracing::debug!(dataset_id, key = %record.key, method = %record.method, "brain run registered");
                Ok(())
            }
            Err(e) if is_constraint(&e) => Err(RunsError::DuplicateKey(record.key.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// The run `key`. Errors: [`RunsError::UnknownKey`], [`RunsError::Corrupt`].
    pub fn get(conn: &Connection, dataset_id: i64, key: &str) -> Result<RunRecord> {
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM brain_runs WHERE dataset_id = ?1 AND key = ?2"),
                params![dataset_id, key],
                RawRow::read,
            )
            .optional()?;
        row.ok_or_else(|| RunsError::UnknownKey(key.to_string()))?
            .into_record()
    }

    /// Whether the run `key` exists.
    pub fn exists(conn: &Connection, dataset_id: i64, key: &str) -> Result<bool> {
        let found = conn
            .query_row(
                "SELECT 1 FROM brain_runs WHERE dataset_id = ?1 AND key = ?2",
                params![dataset_id, key],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The keys of the runs matching `filter`, sorted (by code point, like Python's `sorted`).
    /// A run whose config cannot be read is skipped with a warning when the filter needs the
    /// config (as FiftyOne skips runs whose info cannot be loaded).
    pub fn list(conn: &Connection, dataset_id: i64, filter: &RunFilter) -> Result<Vec<String>> {
        let mut stmt = conn.prepare(
            "SELECT key, run_type, method, config FROM brain_runs
             WHERE dataset_id = ?1 AND (?2 IS NULL OR run_type = ?2) AND (?3 IS NULL OR method = ?3)
             ORDER BY key",
        )?;
        let rows = stmt.query_map(params![dataset_id, filter.run_type, filter.method], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (key, run_type, method, config) = row?;
            if filter.needs_config() {
                let config = match parse_config(&key, config) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(dataset_id, key = %key, error = %e, "skipping unreadable brain run");
                        continue;
                    }
                };
                let run_type = run_type.unwrap_or_default();
                let method = method.unwrap_or_default();
                if !filter.matches_parts(&run_type, &method, &config) {
                    continue;
                }
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// The runs matching `filter`, sorted by key. Unreadable runs are skipped with a warning.
    pub fn list_records(
        conn: &Connection,
        dataset_id: i64,
        filter: &RunFilter,
    ) -> Result<Vec<RunRecord>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM brain_runs WHERE dataset_id = ?1 ORDER BY key"
        ))?;
        let rows = stmt.query_map(params![dataset_id], RawRow::read)?;
        let mut records = Vec::new();
        for row in rows {
            match row?.into_record() {
                Ok(record) if filter.matches(&record) => records.push(record),
                Ok(_) => {}
                Err(e) => tracing::warn!(dataset_id, error = %e, "skipping unreadable brain run"),
            }
        }
        Ok(records)
    }

    /// Every run of every dataset as stored text, readable or not: what a storage check needs
    /// to be sure nothing still points at a directory or collection (an unreadable run's
    /// storage must not look orphaned).
    pub fn all_refs(conn: &Connection) -> Result<Vec<RunRefs>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT dataset_id, key, config, results FROM {TABLE} ORDER BY dataset_id, key"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRefs {
                dataset_id: r.get(0)?,
                key: r.get(1)?,
                config: r.get(2)?,
                results: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Replaces the run's config (stored without credentials or connection settings).
    /// Errors: [`RunsError::UnknownKey`].
    pub fn update_config(
        conn: &Connection,
        dataset_id: i64,
        key: &str,
        config: &Map<String, Value>,
    ) -> Result<()> {
        let config = config_json(key, config)?;
        let n = conn.execute(
            "UPDATE brain_runs SET config = ?3 WHERE dataset_id = ?1 AND key = ?2",
            params![dataset_id, key, config],
        )?;
        expect_one(n, key)
    }

    /// Sets the run's state. Errors: [`RunsError::UnknownKey`].
    pub fn set_state(conn: &Connection, dataset_id: i64, key: &str, state: RunState) -> Result<()> {
        let n = conn.execute(
            "UPDATE brain_runs SET state = ?3 WHERE dataset_id = ?1 AND key = ?2",
            params![dataset_id, key, state.as_str()],
        )?;
        expect_one(n, key)
    }

    /// Sets (or clears, with `None`) the run's results. Errors: [`RunsError::UnknownKey`].
    pub fn set_results(
        conn: &Connection,
        dataset_id: i64,
        key: &str,
        results: Option<&Value>,
    ) -> Result<()> {
        let results = results_json(key, results)?;
        let n = conn.execute(
            "UPDATE brain_runs SET results = ?3 WHERE dataset_id = ?1 AND key = ?2",
            params![dataset_id, key, results],
        )?;
        expect_one(n, key)
    }

    /// Renames a run. The backend's data is not touched (a Milvus collection keeps its name,
    /// which the config records).
    ///
    /// Errors: [`RunsError::InvalidKey`] for `new_key`, [`RunsError::UnknownKey`] for `old_key`,
    /// [`RunsError::DuplicateKey`] if `new_key` exists (also when it equals `old_key`, as in
    /// FiftyOne).
    pub fn rename(conn: &Connection, dataset_id: i64, old_key: &str, new_key: &str) -> Result<()> {
        validate_key(new_key)?;
        if old_key == new_key {
            return if RunRegistry::exists(conn, dataset_id, old_key)? {
                Err(RunsError::DuplicateKey(new_key.to_string()))
            } else {
                Err(RunsError::UnknownKey(old_key.to_string()))
            };
        }
        match conn.execute(
            "UPDATE brain_runs SET key = ?3 WHERE dataset_id = ?1 AND key = ?2",
            params![dataset_id, old_key, new_key],
        ) {
            Ok(n) => expect_one(n, old_key),
            Err(e) if is_constraint(&e) => Err(RunsError::DuplicateKey(new_key.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the run record (not the backend's data). Errors: [`RunsError::UnknownKey`].
    pub fn delete(conn: &Connection, dataset_id: i64, key: &str) -> Result<()> {
        let n = conn.execute(
            "DELETE FROM brain_runs WHERE dataset_id = ?1 AND key = ?2",
            params![dataset_id, key],
        )?;
        expect_one(n, key)
    }

    /// Deletes every run of the dataset; returns how many there were.
    pub fn delete_all(conn: &Connection, dataset_id: i64) -> Result<usize> {
        Ok(conn.execute(
            "DELETE FROM brain_runs WHERE dataset_id = ?1",
            params![dataset_id],
        )?)
    }

    /// Copies every run of `from_dataset` to `to_dataset` (for dataset clones); returns how many.
    /// Errors: [`RunsError::DuplicateKey`] if the target already has one of the keys (nothing is
    /// copied then).
    pub fn copy_all(conn: &Connection, from_dataset: i64, to_dataset: i64) -> Result<usize> {
        match conn.execute(
            &format!(
                "INSERT INTO brain_runs (dataset_id, {COLUMNS})
                 SELECT ?2, {COLUMNS} FROM brain_runs WHERE dataset_id = ?1"
            ),
            params![from_dataset, to_dataset],
        ) {
            Ok(n) => Ok(n),
            Err(e) if is_constraint(&e) => {
                let clash = conn
                    .query_row(
                        "SELECT a.key FROM brain_runs a JOIN brain_runs b ON a.key = b.key
                         WHERE a.dataset_id = ?1 AND b.dataset_id = ?2 ORDER BY a.key LIMIT 1",
                        params![from_dataset, to_dataset],
                        |row| row.get::<_, String>(0),
                    )
                    .optional()?
                    .unwrap_or_default();
                Err(RunsError::DuplicateKey(clash))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

fn expect_one(changed: usize, key: &str) -> Result<()> {
    if changed == 0 {
        Err(RunsError::UnknownKey(key.to_string()))
    } else {
        Ok(())
    }
}

/// The config as stored: credentials and connection settings removed at the top level, secret
/// names removed at every nesting level.
fn scrub(config: &Map<String, Value>) -> Map<String, Value> {
    fn remove_secrets(map: &mut Map<String, Value>) {
        map.retain(|k, _| !simile_index::is_secret_param(k));
        for v in map.values_mut() {
            remove_secrets_value(v);
        }
    }
    fn remove_secrets_value(v: &mut Value) {
        match v {
            Value::Object(m) => remove_secrets(m),
            Value::Array(items) => items.iter_mut().for_each(remove_secrets_value),
            _ => {}
        }
    }
    let mut config = config.clone();
    simile_index::strip_credentials(&mut config);
    remove_secrets(&mut config);
    config
}

fn config_json(key: &str, config: &Map<String, Value>) -> Result<String> {
    serde_json::to_string(&scrub(config)).map_err(|e| RunsError::InvalidRecord {
        key: key.to_string(),
        reason: format!("config cannot be serialized: {e}"),
    })
}

fn results_json(key: &str, results: Option<&Value>) -> Result<Option<String>> {
    results
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| RunsError::InvalidRecord {
            key: key.to_string(),
            reason: format!("results cannot be serialized: {e}"),
        })
}

fn parse_config(key: &str, config: Option<String>) -> Result<Map<String, Value>> {
    let corrupt = |reason: String| RunsError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let text = config.ok_or_else(|| corrupt("config is missing".into()))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt("config is not a JSON object".into())),
        Err(e) => Err(corrupt(format!("config is not valid JSON: {e}"))),
    }
}

/// A row as stored, before checking.
struct RawRow {
    key: String,
    run_type: Option<String>,
    method: Option<String>,
    config: Option<String>,
    timestamp: Option<String>,
    version: Option<String>,
    state: Option<String>,
    results: Option<String>,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            key: row.get(0)?,
            run_type: row.get(1)?,
            method: row.get(2)?,
            config: row.get(3)?,
            timestamp: row.get(4)?,
            version: row.get(5)?,
            state: row.get(6)?,
            results: row.get(7)?,
        })
    }

    fn into_record(self) -> Result<RunRecord> {
        let key = self.key;
        let corrupt = |reason: String| RunsError::Corrupt {
            key: key.clone(),
            reason,
        };
        let required =
            |v: Option<String>, what: &str| v.ok_or_else(|| corrupt(format!("{what} is missing")));
        let run_type = required(self.run_type, "run type")?;
        let method = required(self.method, "method")?;
        let version = required(self.version, "version")?;
        let timestamp = required(self.timestamp, "timestamp")?;
        let timestamp = OffsetDateTime::parse(&timestamp, &Rfc3339)
            .map_err(|e| corrupt(format!("timestamp is not RFC 3339: {e}")))?;
        let state = required(self.state, "state")?;
        let state =
            RunState::parse(&state).ok_or_else(|| corrupt(format!("unknown state '{state}'")))?;
        let results = self
            .results
            .map(|r| serde_json::from_str::<Value>(&r))
            .transpose()
            .map_err(|e| corrupt(format!("results are not valid JSON: {e}")))?;
        let config = parse_config(&key, self.config)?;
        Ok(RunRecord {
            key,
            run_type,
            method,
            config,
            timestamp,
            version,
            state,
            results,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scrub_removes_credentials_everywhere() {
        let config = json!({
            "uri": "http://h:19530", "user": "root", "password": "pw", "token": "t",
            "metric": "cosine", "collection_name": "c",
            "model_kwargs": {"api_key": "k", "size": 3, "list": [{"secret": "s", "x": 1}]}
        });
        let scrubbed = scrub(config.as_object().unwrap());
        assert_eq!(
            Value::Object(scrubbed),
            json!({"metric": "cosine", "collection_name": "c",
                   "model_kwargs": {"size": 3, "list": [{"x": 1}]}})
        );
    }

    #[test]
    fn refs_name_storage_even_of_unreadable_runs() {
        let conn = Connection::open_in_memory().unwrap();
        RunRegistry::migrate(&conn).unwrap();
        let mut rec = RunRecord::new("a", "sklearn", Map::new());
        rec.results = Some(json!({"storage_dir": "indexes/1/00ff"}));
        RunRegistry::register(&conn, 1, &rec).unwrap();
        conn.execute(
            "INSERT INTO brain_runs VALUES (2, 'b', 'similarity', 'milvus', '{\"collection_name\": \"fiftyone_x\"}', 'not a time', '1', 'completed', NULL)",
            [],
        )
        .unwrap();
        let refs = RunRegistry::all_refs(&conn).unwrap();
        assert_eq!(refs.len(), 2);
        assert!(refs[0].mentions("indexes/1/00ff"));
        assert!(!refs[0].mentions("indexes/1/00f"));
        assert!(
            refs[1].mentions("fiftyone_x"),
            "an unreadable run still counts"
        );
    }
}
