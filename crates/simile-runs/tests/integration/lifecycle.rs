use serde_json::json;
use simile_runs::{RunRecord, RunRegistry, RunState, RunsError, SIMILARITY, VERSION};

use crate::{obj, open};

const DS: i64 = 1;

#[test]
fn register_get_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    let mut rec = RunRecord::new(
        "sim",
        "sklearn",
        obj(json!({"metric": "cosine", "embeddings_field": null, "k": 3})),
    );
    rec.results = Some(json!({"path": "indexes/sim.bin", "size": 10}));
    RunRegistry::register(&conn, DS, &rec).unwrap();
    let got = RunRegistry::get(&conn, DS, "sim").unwrap();
    assert_eq!(got, rec);
    assert_eq!(got.run_type, SIMILARITY);
    assert_eq!(got.version, VERSION);
    assert_eq!(got.state, RunState::Running);
    assert_eq!(got.config["embeddings_field"], serde_json::Value::Null);
    assert!(RunRegistry::exists(&conn, DS, "sim").unwrap());
    assert!(!RunRegistry::exists(&conn, DS, "other").unwrap());
    // datasets are separate namespaces
    assert!(!RunRegistry::exists(&conn, 2, "sim").unwrap());
    assert!(
        matches!(RunRegistry::get(&conn, 2, "sim"), Err(RunsError::UnknownKey(k)) if k == "sim")
    );
}

#[test]
fn timestamps_are_stored_in_utc_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    let mut rec = RunRecord::new("sim", "sklearn", Default::default());
    rec.timestamp = rec
        .timestamp
        .to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
    RunRegistry::register(&conn, DS, &rec).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT timestamp FROM brain_runs WHERE key = 'sim'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.ends_with('Z'), "{stored}");
    let got = RunRegistry::get(&conn, DS, "sim").unwrap();
    assert_eq!(got.timestamp, rec.timestamp);
    assert_eq!(got.timestamp.offset(), time::UtcOffset::UTC);
}

#[test]
fn duplicate_and_invalid_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    RunRegistry::register(
        &conn,
        DS,
        &RunRecord::new("sim", "sklearn", obj(json!({"metric": "cosine"}))),
    )
    .unwrap();
    let err = RunRegistry::register(
        &conn,
        DS,
        &RunRecord::new("sim", "milvus", Default::default()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, RunsError::DuplicateKey(k) if k == "sim"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "a brain run with key 'sim' already exists");
    // the existing run is untouched
    assert_eq!(
        RunRegistry::get(&conn, DS, "sim").unwrap().method,
        "sklearn"
    );
    for bad in ["bad key", "", "1x", "a-b"] {
        let err = RunRegistry::register(
            &conn,
            DS,
            &RunRecord::new(bad, "sklearn", Default::default()),
        )
        .unwrap_err();
        assert!(
            matches!(&err, RunsError::InvalidKey(k) if k == bad),
            "{err:?}"
        );
    }
    assert_eq!(
        RunRegistry::list(&conn, DS, &Default::default()).unwrap(),
        ["sim"]
    );
}

#[test]
fn updates_state_results_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    RunRegistry::register(
        &conn,
        DS,
        &RunRecord::new("mv", "milvus", obj(json!({"metric": "dotproduct"}))),
    )
    .unwrap();
    RunRegistry::set_state(&conn, DS, "mv", RunState::Completed).unwrap();
    RunRegistry::set_results(&conn, DS, "mv", Some(&json!({"n": 5}))).unwrap();
    RunRegistry::update_config(
        &conn,
        DS,
        "mv",
        &obj(json!({"metric": "dotproduct", "collection_name": "fo_abc"})),
    )
    .unwrap();
    let got = RunRegistry::get(&conn, DS, "mv").unwrap();
    assert_eq!(got.state, RunState::Completed);
    assert_eq!(got.results, Some(json!({"n": 5})));
    assert_eq!(got.config["collection_name"], "fo_abc");
    RunRegistry::set_results(&conn, DS, "mv", None).unwrap();
    assert_eq!(RunRegistry::get(&conn, DS, "mv").unwrap().results, None);

    for r in [
        RunRegistry::set_state(&conn, DS, "nope", RunState::Failed),
        RunRegistry::set_results(&conn, DS, "nope", None),
        RunRegistry::update_config(&conn, DS, "nope", &Default::default()),
    ] {
        assert!(matches!(r, Err(RunsError::UnknownKey(k)) if k == "nope"));
    }
}

#[test]
fn rename_moves_the_record_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    for k in ["a", "b"] {
        RunRegistry::register(
            &conn,
            DS,
            &RunRecord::new(k, "sklearn", obj(json!({"tag": k}))),
        )
        .unwrap();
    }
    RunRegistry::rename(&conn, DS, "a", "c").unwrap();
    assert!(!RunRegistry::exists(&conn, DS, "a").unwrap());
    let c = RunRegistry::get(&conn, DS, "c").unwrap();
    assert_eq!(c.key, "c");
    assert_eq!(c.config["tag"], "a");

    assert!(
        matches!(RunRegistry::rename(&conn, DS, "nope", "d"), Err(RunsError::UnknownKey(k)) if k == "nope")
    );
    assert!(
        matches!(RunRegistry::rename(&conn, DS, "c", "b"), Err(RunsError::DuplicateKey(k)) if k == "b")
    );
    assert!(
        matches!(RunRegistry::rename(&conn, DS, "c", "c"), Err(RunsError::DuplicateKey(k)) if k == "c")
    );
    assert!(
        matches!(RunRegistry::rename(&conn, DS, "c", "bad key"), Err(RunsError::InvalidKey(k)) if k == "bad key")
    );
    assert_eq!(
        RunRegistry::list(&conn, DS, &Default::default()).unwrap(),
        ["b", "c"]
    );
}

#[test]
fn delete_one_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    for k in ["a", "b", "c"] {
        RunRegistry::register(&conn, DS, &RunRecord::new(k, "sklearn", Default::default()))
            .unwrap();
    }
    RunRegistry::register(
        &conn,
        2,
        &RunRecord::new("a", "sklearn", Default::default()),
    )
    .unwrap();
    RunRegistry::delete(&conn, DS, "b").unwrap();
    assert!(
        matches!(RunRegistry::delete(&conn, DS, "b"), Err(RunsError::UnknownKey(k)) if k == "b")
    );
    assert_eq!(
        RunRegistry::list(&conn, DS, &Default::default()).unwrap(),
        ["a", "c"]
    );
    assert_eq!(RunRegistry::delete_all(&conn, DS).unwrap(), 2);
    assert!(RunRegistry::list(&conn, DS, &Default::default())
        .unwrap()
        .is_empty());
    // the other dataset keeps its run
    assert_eq!(
        RunRegistry::list(&conn, 2, &Default::default()).unwrap(),
        ["a"]
    );
}

#[test]
fn copy_all_clones_runs_to_another_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    RunRegistry::register(
        &conn,
        1,
        &RunRecord::new("a", "sklearn", obj(json!({"metric": "cosine"}))),
    )
    .unwrap();
    RunRegistry::register(&conn, 1, &RunRecord::new("b", "milvus", Default::default())).unwrap();
    assert_eq!(RunRegistry::copy_all(&conn, 1, 7).unwrap(), 2);
    assert_eq!(
        RunRegistry::get(&conn, 7, "a").unwrap(),
        RunRegistry::get(&conn, 1, "a").unwrap()
    );
    assert!(
        matches!(RunRegistry::copy_all(&conn, 1, 7), Err(RunsError::DuplicateKey(k)) if k == "a")
    );
    assert_eq!(
        RunRegistry::list(&conn, 7, &Default::default()).unwrap(),
        ["a", "b"]
    );
}

#[test]
fn corrupt_rows_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    RunRegistry::register(
        &conn,
        DS,
        &RunRecord::new("ok", "sklearn", obj(json!({"patches_field": "gt"}))),
    )
    .unwrap();
    RunRegistry::register(
        &conn,
        DS,
        &RunRecord::new("bad", "sklearn", obj(json!({"patches_field": "gt"}))),
    )
    .unwrap();
    conn.execute(
        "UPDATE brain_runs SET config = '{oops' WHERE key = 'bad'",
        [],
    )
    .unwrap();
    assert!(
        matches!(RunRegistry::get(&conn, DS, "bad"), Err(RunsError::Corrupt { key, .. }) if key == "bad")
    );
    // listing by type/method does not need the config; filtering on it skips the corrupt run
    assert_eq!(
        RunRegistry::list(&conn, DS, &Default::default()).unwrap(),
        ["bad", "ok"]
    );
    let f = simile_runs::RunFilter::new().patches_field("gt");
    assert_eq!(RunRegistry::list(&conn, DS, &f).unwrap(), ["ok"]);
    let recs = RunRegistry::list_records(&conn, DS, &Default::default()).unwrap();
    assert_eq!(recs.len(), 1);
    conn.execute(
        "UPDATE brain_runs SET config = '{}', state = 'weird' WHERE key = 'bad'",
        [],
    )
    .unwrap();
    assert!(matches!(
        RunRegistry::get(&conn, DS, "bad"),
        Err(RunsError::Corrupt { .. })
    ));
    conn.execute(
        "UPDATE brain_runs SET state = 'failed', timestamp = 'yesterday' WHERE key = 'bad'",
        [],
    )
    .unwrap();
    assert!(matches!(
        RunRegistry::get(&conn, DS, "bad"),
        Err(RunsError::Corrupt { .. })
    ));
}
