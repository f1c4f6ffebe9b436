use serde_json::json;
use simile_runs::{RunRecord, RunRegistry, RunState, RunsError};

use crate::{obj, open};

#[test]
fn a_second_connection_sees_committed_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let mut writer = open(&path);
    let reader = open(&path);

    RunRegistry::register(
        &writer,
        1,
        &RunRecord::new("committed", "sklearn", obj(json!({"metric": "cosine"}))),
    )
    .unwrap();
    assert_eq!(
        RunRegistry::get(&reader, 1, "committed").unwrap().config["metric"],
        "cosine"
    );

    // an open transaction is invisible to the reader until commit
    let tx = writer.transaction().unwrap();
    RunRegistry::register(
        &tx,
        1,
        &RunRecord::new("pending", "sklearn", Default::default()),
    )
    .unwrap();
    RunRegistry::set_state(&tx, 1, "committed", RunState::Completed).unwrap();
    assert!(!RunRegistry::exists(&reader, 1, "pending").unwrap());
    assert_eq!(
        RunRegistry::get(&reader, 1, "committed").unwrap().state,
        RunState::Running
    );
    tx.commit().unwrap();
    assert!(RunRegistry::exists(&reader, 1, "pending").unwrap());
    assert_eq!(
        RunRegistry::get(&reader, 1, "committed").unwrap().state,
        RunState::Completed
    );

    // a rolled-back registration leaves nothing behind
    let tx = writer.transaction().unwrap();
    RunRegistry::register(
        &tx,
        1,
        &RunRecord::new("rolled_back", "sklearn", Default::default()),
    )
    .unwrap();
    drop(tx);
    assert!(!RunRegistry::exists(&writer, 1, "rolled_back").unwrap());
    assert_eq!(
        RunRegistry::list(&reader, 1, &Default::default()).unwrap(),
        ["committed", "pending"]
    );
}

#[test]
fn runs_survive_reopening_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let rec = RunRecord::new("sim", "sklearn", obj(json!({"metric": "euclidean"})));
    {
        let conn = open(&path);
        RunRegistry::register(&conn, 3, &rec).unwrap();
    }
    let conn = open(&path);
    RunRegistry::migrate(&conn).unwrap();
    assert_eq!(RunRegistry::get(&conn, 3, "sim").unwrap(), rec);
}

#[test]
fn credentials_never_reach_the_database_file() {
    const PASSWORD: &str = "pw-4f1c9e-never-persist";
    const TOKEN: &str = "tok-8a2d7b-never-persist";
    const URI: &str = "http://secret-host-93c1:19530";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = open(&path);
        let config = obj(json!({
            "metric": "dotproduct", "collection_name": "coll_visible",
            "uri": URI, "user": "root", "password": PASSWORD, "token": TOKEN,
            "model_kwargs": {"api_key": PASSWORD}
        }));
        let rec = RunRecord::new("mv", "milvus", config.clone());
        RunRegistry::register(&conn, 1, &rec).unwrap();
        RunRegistry::register(
            &conn,
            1,
            &RunRecord::new("mv2", "milvus", Default::default()),
        )
        .unwrap();
        RunRegistry::update_config(&conn, 1, "mv2", &config).unwrap();

        let stored = RunRegistry::get(&conn, 1, "mv").unwrap();
        assert_eq!(stored.config["collection_name"], "coll_visible");
        for k in ["uri", "user", "password", "token"] {
            assert!(!stored.config.contains_key(k), "{k} persisted");
        }
        assert_eq!(stored.config["model_kwargs"], json!({}));
        let shown = serde_json::to_string(&stored.brain_info()).unwrap();
        assert!(!shown.contains(PASSWORD));
        // checkpoint the WAL so the data is in the main file too
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut seen_data = false;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        seen_data |= text.contains("coll_visible");
        for secret in [PASSWORD, TOKEN, URI] {
            assert!(
                !text.contains(secret),
                "a secret reached the database files"
            );
        }
    }
    assert!(
        seen_data,
        "the check must look at the files holding the records"
    );
}

#[test]
fn errors_on_a_database_without_the_table_are_sqlite_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("raw.sqlite")).unwrap();
    let err = RunRegistry::get(&conn, 1, "x").unwrap_err();
    assert!(matches!(err, RunsError::Sqlite(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
}
