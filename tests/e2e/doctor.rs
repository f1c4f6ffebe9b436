//! Registry and storage never silently disagree (issue 12, "Orphans"): `Simile::doctor` finds
//! what a killed compute or write left, runs whose storage is missing, corrupt or gone from
//! Milvus, and size mismatches; `repair` removes only what is provably orphaned; a broken run
//! can be deleted with its data; deleting a dataset deletes its indexes' storage.
use std::fs;
use std::path::{Path, PathBuf};

use simile::{
    DoctorOptions, MilvusCheck, MilvusIndex, Query, RunProblem, SimilarityOptions, SortOptions,
};
use simile_e2e::{dataset_with, milvus_session, open, session};

fn storage_of(dataset: &simile::Dataset, key: &str) -> String {
    let info = dataset.get_brain_info(key).unwrap();
    info.results.unwrap()["storage_dir"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What a compute killed mid-write leaves: a storage directory with a partial temp file, and no
/// run.
fn leftover(home: &Path, dataset: &simile::Dataset, name: &str, bytes: usize) -> PathBuf {
    let dir = home.join(format!("indexes/{}/{name}", dataset_id(home, dataset)));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("vectors.simv.tmp"), vec![7u8; bytes]).unwrap();
    dir
}

/// The dataset's folder under `indexes/` (its database id), found through a run's storage.
fn dataset_id(home: &Path, dataset: &simile::Dataset) -> String {
    let key = dataset
        .list_brain_runs(&simile::RunFilter::default())
        .unwrap()
        .into_iter()
        .next()
        .expect("a run on the dataset");
    let rel = storage_of(dataset, &key);
    let id = rel.split('/').nth(1).unwrap().to_string();
    assert!(home.join("indexes").join(&id).is_dir());
    id
}

fn compute(dataset: &simile::Dataset, key: &str, emb: &simile::ndarray::Array2<f32>) {
    dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key(key)
                .embeddings(emb.clone()),
        )
        .unwrap();
}

#[test]
fn a_healthy_home_has_nothing_to_report() {
    let (_home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "a", &emb);
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.unresolved(), 0);
    assert_eq!(report.runs, 1);
    assert!(matches!(report.milvus, MilvusCheck::Skipped { .. }));
}

#[test]
fn a_killed_computes_leftovers_are_listed_then_removed_by_repair_only() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "a", &emb);
    let run_dir = home.path().join(storage_of(&dataset, "a"));
    let dead = leftover(home.path(), &dataset, "00000000deadbeef", 5000);
    let ds_dir = dead.parent().unwrap().to_path_buf();
    fs::write(ds_dir.join("0000000000000001.lock"), b"").unwrap();

    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(report.orphan_storage.len(), 1, "{report:?}");
    let o = &report.orphan_storage[0];
    assert!(o.path.ends_with("/00000000deadbeef"), "{}", o.path);
    assert_eq!(o.bytes, 5000);
    assert!(!o.in_use && !o.removed);
    assert_eq!(report.stale_locks.len(), 1);
    assert!(
        report.temp_files.is_empty(),
        "the run's own storage has none"
    );
    assert_eq!(report.unresolved(), 2);
    assert!(dead.exists(), "looking changes nothing");
    assert!(ds_dir.join("0000000000000001.lock").exists());

    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert!(report.orphan_storage[0].removed);
    assert_eq!(report.unresolved(), 0, "{report:?}");
    assert!(!dead.exists());
    assert!(!ds_dir.join("0000000000000001.lock").exists());
    assert!(
        run_dir.join("vectors.simv").exists(),
        "a run's storage stays"
    );
    let view = dataset
        .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().brain_key("a").k(3))
        .unwrap();
    assert_eq!(view.ids().unwrap()[0], ids[0]);
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

#[test]
fn storage_a_running_compute_holds_is_never_removed() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    // Another session (as another process would) holds an index computed without a brain key:
    // nothing references its storage, yet it is in use.
    let other = open(home.path());
    let other_ds = other.load_dataset("d").unwrap();
    let unregistered = other_ds
        .compute_similarity(SimilarityOptions::new().embeddings(emb.clone()))
        .unwrap();
    assert_eq!(unregistered.total_index_size().unwrap(), 20);

    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert_eq!(report.orphan_storage.len(), 1, "{report:?}");
    let o = &report.orphan_storage[0];
    assert!(o.in_use && !o.removed, "{o:?}");
    let dir = home.path().join(&o.path);
    assert!(dir.join("vectors.simv").exists());
    assert_eq!(report.unresolved(), 0, "in use is not a problem");

    // Its session ends (the process exits): the storage is now provably orphaned.
    drop(unregistered);
    drop(other_ds);
    drop(other);
    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert_eq!(report.orphan_storage.len(), 1);
    assert!(report.orphan_storage[0].removed && !report.orphan_storage[0].in_use);
    assert!(!dir.exists());
    let _ = dataset;
}

#[test]
fn the_next_compute_removes_a_crashed_computes_leftovers() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "a", &emb);
    let dead = leftover(home.path(), &dataset, "00000000deadbeef", 100);
    compute(&dataset, "b", &emb);
    assert!(!dead.exists(), "removed by the next compute on the dataset");
    for key in ["a", "b"] {
        assert!(home
            .path()
            .join(storage_of(&dataset, key))
            .join("vectors.simv")
            .exists());
    }
    let names: Vec<_> = fs::read_dir(dead.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "two run directories and no lock files: {names:?}"
    );
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

/// Flips one byte in the middle of the index file: its checksum no longer matches.
fn corrupt(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(file, bytes).unwrap();
}

#[test]
fn runs_whose_storage_is_corrupt_or_missing_are_broken_and_marked_by_repair() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 30, 8);
    compute(&dataset, "bad", &emb);
    compute(&dataset, "gone", &emb);
    compute(&dataset, "good", &emb);
    corrupt(
        &home
            .path()
            .join(storage_of(&dataset, "bad"))
            .join("vectors.simv"),
    );
    fs::remove_dir_all(home.path().join(storage_of(&dataset, "gone"))).unwrap();

    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(report.runs, 3);
    let problems: Vec<_> = report
        .broken_runs
        .iter()
        .map(|b| (b.key.as_str(), b.problem, b.marked))
        .collect();
    assert_eq!(
        problems,
        [
            ("bad", RunProblem::StorageCorrupt, false),
            ("gone", RunProblem::StorageMissing, false)
        ]
    );
    assert!(report.broken_runs[0].detail.contains("vectors.simv"));
    assert_eq!(
        dataset.get_brain_info("bad").unwrap().state.as_str(),
        "completed",
        "looking changes nothing"
    );

    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert!(report.broken_runs.iter().all(|b| b.marked), "{report:?}");
    for key in ["bad", "gone"] {
        let info = dataset.get_brain_info(key).unwrap();
        assert_eq!(info.state.as_str(), "failed");
        assert!(info.results.unwrap()["broken"]["problem"].is_string());
    }
    assert_eq!(
        dataset.get_brain_info("good").unwrap().state.as_str(),
        "completed"
    );
    // Still reported (they are still broken), already marked.
    let again = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(again.broken_runs.len(), 2);
    assert!(again.broken_runs.iter().all(|b| b.marked));
}

/// Opening an exact index over 8 MiB reads only its header (issue 11: no work proportional to
/// N at load), so damage inside a section is doctor's to find: it verifies every section.
#[test]
fn damage_inside_a_big_index_file_is_found_by_doctor() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 8000, 256);
    compute(&dataset, "big", &emb);
    let file = home
        .path()
        .join(storage_of(&dataset, "big"))
        .join("vectors.simv");
    assert!(fs::metadata(&file).unwrap().len() > 8 << 20, "a big file");
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
    corrupt(&file);
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    let problems: Vec<_> = report
        .broken_runs
        .iter()
        .map(|b| (b.key.as_str(), b.problem))
        .collect();
    assert_eq!(
        problems,
        [("big", RunProblem::StorageCorrupt)],
        "{report:?}"
    );
}

#[test]
fn a_broken_run_is_deleted_with_whatever_exists_of_its_storage() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 30, 8);
    compute(&dataset, "bad", &emb);
    compute(&dataset, "gone", &emb);
    let bad_dir = home.path().join(storage_of(&dataset, "bad"));
    corrupt(&bad_dir.join("vectors.simv"));
    fs::remove_dir_all(home.path().join(storage_of(&dataset, "gone"))).unwrap();
    // Another process (nothing cached) cannot load it: `load_brain_results(..).cleanup()`
    // used to fail here and keep the record.
    let fresh = open(home.path());
    let dataset = fresh.load_dataset("d").unwrap();
    assert!(dataset.load_brain_results("bad").is_err());

    dataset.delete_brain_run_and_data("bad").unwrap();
    dataset.delete_brain_run_and_data("gone").unwrap();
    assert!(!dataset.has_brain_run("bad").unwrap());
    assert!(!dataset.has_brain_run("gone").unwrap());
    assert!(!bad_dir.exists(), "the corrupt file went with its run");
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

#[test]
fn a_plain_delete_leaves_storage_that_doctor_finds_and_repair_removes() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 30, 8);
    compute(&dataset, "bad", &emb);
    let dir = home.path().join(storage_of(&dataset, "bad"));
    corrupt(&dir.join("vectors.simv"));
    dataset.delete_brain_run("bad").unwrap();
    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert_eq!(report.orphan_storage.len(), 1);
    assert!(report.orphan_storage[0].removed);
    assert!(!dir.exists());
}

#[test]
fn a_temp_file_left_in_a_runs_storage_is_removed_and_the_run_kept() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "a", &emb);
    let dir = home.path().join(storage_of(&dataset, "a"));
    fs::write(dir.join("vectors.simv.tmp"), vec![1u8; 321]).unwrap();
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(report.temp_files.len(), 1, "{report:?}");
    assert_eq!(report.temp_files[0].bytes, 321);
    assert!(report.orphan_storage.is_empty());
    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert!(report.temp_files[0].removed);
    assert!(!dir.join("vectors.simv.tmp").exists());
    assert!(dir.join("vectors.simv").exists());
    let index = dataset.load_brain_results("a").unwrap();
    assert_eq!(index.total_index_size().unwrap(), ids.len());
}

#[test]
fn a_run_whose_backend_holds_another_size_than_recorded_is_reported() {
    let (home, simile) = session();
    let (dataset, ids, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "all", &emb);
    let (other, _, other_emb) = dataset_with(&simile, "e", 5, 8);
    compute(&other, "few", &other_emb);
    // The recorded size follows changes.
    let index = dataset.load_brain_results("all").unwrap();
    index
        .remove_from_index(&ids[..2], simile::MissingOptions::default())
        .unwrap();
    assert!(simile
        .doctor(DoctorOptions::new())
        .unwrap()
        .size_mismatches
        .is_empty());
    // A file swapped behind the registry's back (a valid index of another size).
    fs::copy(
        home.path()
            .join(storage_of(&other, "few"))
            .join("vectors.simv"),
        home.path()
            .join(storage_of(&dataset, "all"))
            .join("vectors.simv"),
    )
    .unwrap();
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(report.size_mismatches.len(), 1, "{report:?}");
    let m = &report.size_mismatches[0];
    assert_eq!((m.key.as_str(), m.recorded, m.actual), ("all", 18, 5));
    assert_eq!(report.unresolved(), 1);
}

#[test]
fn deleting_a_dataset_deletes_its_indexes_storage() {
    let (home, simile) = session();
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    compute(&dataset, "a", &emb);
    compute(&dataset, "b", &emb);
    let ds_dir = home
        .path()
        .join(format!("indexes/{}", dataset_id(home.path(), &dataset)));
    leftover(home.path(), &dataset, "00000000deadbeef", 10);
    let (keep, _, keep_emb) = dataset_with(&simile, "keep", 5, 8);
    compute(&keep, "k", &keep_emb);

    let deletion = simile.delete_dataset("d").unwrap();
    assert_eq!(deletion.runs, 2);
    assert_eq!(deletion.removed.len(), 3, "{deletion:?}");
    assert!(deletion.kept.is_empty(), "{deletion:?}");
    assert!(!ds_dir.exists());
    assert!(!simile.dataset_exists("d").unwrap());
    assert!(home
        .path()
        .join(storage_of(&keep, "k"))
        .join("vectors.simv")
        .exists());
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

/// Whether the collection of a Milvus index handle still exists on the server.
fn collection_exists(backend: &std::sync::Arc<dyn simile::SimilarityBackend>) -> bool {
    backend
        .as_any()
        .downcast_ref::<MilvusIndex>()
        .unwrap()
        .collection_exists()
        .unwrap()
}

#[test]
fn milvus_collections_no_run_references_are_found_and_dropped_by_repair() {
    let (_home, simile) = milvus_session(false);
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("m")
                .backend("milvus")
                .embeddings(emb.clone())
                .set("index_type", "FLAT"),
        )
        .unwrap();
    let name = index
        .backend()
        .as_any()
        .downcast_ref::<MilvusIndex>()
        .unwrap()
        .collection_name()
        .to_string();
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    assert_eq!(report.milvus, MilvusCheck::Checked);
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.runs, 1);

    // The record goes, the collection stays (a plain delete): an orphan simile created.
    dataset.delete_brain_run("m").unwrap();
    let report = simile.doctor(DoctorOptions::new()).unwrap();
    let names: Vec<_> = report.orphan_collections.iter().map(|c| &c.name).collect();
    assert_eq!(names, [&name], "{report:?}");
    assert!(!report.orphan_collections[0].removed);

    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert!(report.orphan_collections[0].removed);
    assert!(!collection_exists(&index.backend()), "dropped");
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

#[test]
fn a_milvus_run_whose_collection_is_gone_is_broken_and_can_be_deleted() {
    let (_home, simile) = milvus_session(false);
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("m")
                .backend("milvus")
                .embeddings(emb)
                .set("index_type", "FLAT"),
        )
        .unwrap();
    // Dropped behind the run's back.
    index.cleanup().unwrap();
    let report = simile.doctor(DoctorOptions::new().repair(true)).unwrap();
    assert_eq!(report.broken_runs.len(), 1, "{report:?}");
    assert_eq!(report.broken_runs[0].problem, RunProblem::CollectionMissing);
    assert!(report.broken_runs[0].marked);
    dataset.delete_brain_run_and_data("m").unwrap();
    assert!(!dataset.has_brain_run("m").unwrap());
    assert!(simile.doctor(DoctorOptions::new()).unwrap().is_healthy());
}

#[test]
fn deleting_a_dataset_drops_the_milvus_collections_simile_created_for_it() {
    let (_home, simile) = milvus_session(false);
    let (dataset, _, emb) = dataset_with(&simile, "d", 20, 8);
    let index = dataset
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("m")
                .backend("milvus")
                .embeddings(emb)
                .set("index_type", "FLAT"),
        )
        .unwrap();
    let name = index
        .backend()
        .as_any()
        .downcast_ref::<MilvusIndex>()
        .unwrap()
        .collection_name()
        .to_string();
    let backend = index.backend();
    drop(index);
    let deletion = simile.delete_dataset("d").unwrap();
    assert_eq!(deletion.runs, 1);
    assert!(
        deletion
            .removed
            .contains(&format!("milvus collection {name}")),
        "{deletion:?}"
    );
    assert!(deletion.kept.is_empty(), "{deletion:?}");
    assert!(!collection_exists(&backend));
}
