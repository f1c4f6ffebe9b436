//! The `vectors.simv` file: round trips, dirty tracking, damage detection, cleanup.

use std::fs::{self, OpenOptions};
use std::path::Path;

use simile_index::conformance::{oid, random_vectors};
use simile_index::{Embeddings, Error, KnnQuery, Metric, SimilarityBackend};
use simile_sklearn::{SklearnIndex, FILE_NAME};

/// A patch-style batch: keys differ from their samples for odd rows.
fn patch_batch(n: usize, dim: usize, prefix: u8, seed: u64) -> Embeddings {
    let keys: Vec<String> = (0..n).map(|i| oid(prefix, i)).collect();
    let samples: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                keys[i].clone()
            } else {
                format!("sample-é-{}", i / 4)
            }
        })
        .collect();
    Embeddings::new(dim, random_vectors(n, dim, seed), keys, samples).unwrap()
}

fn bits(e: &Embeddings) -> Vec<u32> {
    e.data().iter().map(|v| v.to_bits()).collect()
}

fn assert_same_content(a: &SklearnIndex, b: &SklearnIndex) {
    assert_eq!(a.size().unwrap(), b.size().unwrap());
    assert_eq!(a.dim().unwrap(), b.dim().unwrap());
    assert_eq!(a.metric(), b.metric());
    let (ea, eb) = (a.get_all().unwrap(), b.get_all().unwrap());
    assert_eq!(ea.keys(), eb.keys());
    assert_eq!(ea.sample_ids(), eb.sample_ids());
    assert_eq!(bits(&ea), bits(&eb), "vectors must round-trip bit for bit");
    assert_eq!(a.keys().unwrap(), b.keys().unwrap());
}

#[test]
fn round_trip_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let index = SklearnIndex::create(dir.path(), Metric::DotProduct).unwrap();
    let mut batch = patch_batch(700, 33, 1, 1);
    // Values that need every bit: subnormals, negative zero, extremes.
    let mut data = batch.data().to_vec();
    data[0] = f32::MIN_POSITIVE / 4.0;
    data[1] = -0.0;
    data[2] = f32::MAX;
    data[3] = f32::MIN;
    batch = Embeddings::new(33, data, batch.keys().to_vec(), batch.sample_ids().to_vec()).unwrap();
    index.upsert(&batch).unwrap();
    index.persist().unwrap();
    assert!(dir.path().join(FILE_NAME).is_file());
    assert_eq!(index.file_path().unwrap(), dir.path().join(FILE_NAME));

    let again = SklearnIndex::open(dir.path()).unwrap();
    assert_same_content(&index, &again);
    assert_eq!(bits(&again.get(batch.keys()).unwrap()), bits(&batch));
    let q = random_vectors(1, 33, 9);
    assert_eq!(
        index.knn(&KnnQuery::nearest(&q, 20)).unwrap(),
        again.knn(&KnnQuery::nearest(&q, 20)).unwrap()
    );
}

#[test]
fn reopen_after_remove_and_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let index = SklearnIndex::create(dir.path(), Metric::Euclidean).unwrap();
    let first = patch_batch(300, 16, 2, 2);
    index.upsert(&first).unwrap();
    index.persist().unwrap();

    let gone: Vec<String> = first.keys().iter().step_by(5).cloned().collect();
    assert_eq!(index.remove(&gone).unwrap(), 60);
    let replaced: Vec<String> = first.keys().iter().skip(1).step_by(5).cloned().collect();
    let newer =
        Embeddings::for_samples(16, random_vectors(replaced.len(), 16, 3), replaced.clone())
            .unwrap();
    index.upsert(&newer).unwrap();
    index.upsert(&patch_batch(50, 16, 3, 4)).unwrap();
    index.persist().unwrap();

    let again = SklearnIndex::open(dir.path()).unwrap();
    assert_same_content(&index, &again);
    assert_eq!(again.size().unwrap(), 300 - 60 + 50);
    assert_eq!(again.contains(&gone).unwrap(), vec![false; gone.len()]);
    assert_eq!(bits(&again.get(&replaced).unwrap()), bits(&newer));

    // The reopened index keeps working and persisting.
    again.remove(&replaced).unwrap();
    again.persist().unwrap();
    assert_eq!(
        SklearnIndex::open(dir.path()).unwrap().size().unwrap(),
        290 - replaced.len()
    );
}

#[test]
fn persist_writes_only_when_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
    // A new index is written even when empty, so it can be reopened.
    index.persist().unwrap();
    let path = dir.path().join(FILE_NAME);
    assert!(path.is_file());
    let empty = SklearnIndex::open(dir.path()).unwrap();
    assert_eq!(empty.size().unwrap(), 0);
    assert_eq!(empty.dim().unwrap(), None);

    // Nothing changed: persist does not write.
    fs::remove_file(&path).unwrap();
    index.persist().unwrap();
    assert!(!path.exists(), "a clean index must not be rewritten");

    // A failed upsert changes nothing either.
    index.upsert(&patch_batch(4, 8, 4, 5)).unwrap();
    index.persist().unwrap();
    assert!(path.is_file());
    fs::remove_file(&path).unwrap();
    let wrong = Embeddings::for_samples(9, random_vectors(1, 9, 1), vec![oid(4, 100)]).unwrap();
    assert!(matches!(
        index.upsert(&wrong),
        Err(Error::DimensionMismatch { .. })
    ));
    assert_eq!(index.remove(&[oid(9, 9)]).unwrap(), 0);
    index.persist().unwrap();
    assert!(!path.exists());

    index.remove(&[oid(4, 0)]).unwrap();
    index.persist().unwrap();
    assert_eq!(SklearnIndex::open(dir.path()).unwrap().size().unwrap(), 3);
}

fn write_index(dir: &Path) -> u64 {
    let index = SklearnIndex::create(dir, Metric::Cosine).unwrap();
    index.upsert(&patch_batch(64, 12, 5, 6)).unwrap();
    index.persist().unwrap();
    fs::metadata(dir.join(FILE_NAME)).unwrap().len()
}

fn assert_corrupt(dir: &Path, what: &str) {
    match SklearnIndex::open(dir) {
        Err(Error::Corrupt { path, reason }) => {
            assert!(
                path.ends_with(FILE_NAME),
                "{what}: the error names the file, got {path}"
            );
            assert!(!reason.is_empty());
        }
        other => panic!("{what}: expected Error::Corrupt, got {other:?}"),
    }
}

#[test]
fn damaged_files_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let len = write_index(dir.path());
    let good = fs::read(&path).unwrap();

    // One flipped bit anywhere: header, norms, vectors, ids, checksum.
    for at in [
        9usize,
        20,
        60,
        48 + 64 * 8 + 100,
        len as usize - 30,
        len as usize - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        assert_corrupt(dir.path(), &format!("bit flip at {at}"));
    }
    // Truncated at several points, and trailing garbage.
    for keep in [0usize, 10, 47, 48, 200, good.len() - 1] {
        fs::write(&path, &good[..keep]).unwrap();
        assert_corrupt(dir.path(), &format!("truncated to {keep}"));
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"xx");
    fs::write(&path, &longer).unwrap();
    assert_corrupt(dir.path(), "trailing bytes");
    // Not ours at all.
    fs::write(
        &path,
        b"{\"embeddings\": [[1, 2, 3]]} and some more bytes to pass the header",
    )
    .unwrap();
    assert_corrupt(dir.path(), "json");

    // Truncated in place through a file handle, as a crash of another writer would leave it.
    fs::write(&path, &good).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_corrupt(dir.path(), "set_len");

    // The intact file still opens.
    fs::write(&path, &good).unwrap();
    assert_eq!(SklearnIndex::open(dir.path()).unwrap().size().unwrap(), 64);
}

#[test]
fn missing_index_is_index_missing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SklearnIndex::open(dir.path().join("nope")),
        Err(Error::IndexMissing {
            backend: "sklearn",
            ..
        })
    ));
    // Created but never persisted: nothing to open.
    let _index = SklearnIndex::create(dir.path().join("new"), Metric::Cosine).unwrap();
    assert!(matches!(
        SklearnIndex::open(dir.path().join("new")),
        Err(Error::IndexMissing { .. })
    ));
}

#[test]
fn cleanup_deletes_files_and_empties_memory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("idx");
    let index = SklearnIndex::create(&dir, Metric::Cosine).unwrap();
    index.upsert(&patch_batch(10, 4, 6, 7)).unwrap();
    index.persist().unwrap();
    index.cleanup().unwrap();
    assert_eq!(index.size().unwrap(), 0);
    assert!(!dir.join(FILE_NAME).exists());
    assert!(!dir.exists(), "the emptied storage directory is removed");
    assert!(index
        .knn(&KnnQuery::nearest(&[1.0; 4], 3))
        .unwrap()
        .is_empty());
    assert!(matches!(
        index.upsert(&patch_batch(1, 4, 6, 8)),
        Err(Error::IndexMissing { .. })
    ));
    index.persist().unwrap();
    assert!(!dir.exists(), "persist after cleanup writes nothing");
    assert!(matches!(
        SklearnIndex::open(&dir),
        Err(Error::IndexMissing { .. })
    ));
    // Twice is fine.
    index.cleanup().unwrap();
}

/// `batch` split into batches of `size` rows.
fn batches(batch: &Embeddings, size: usize) -> Vec<Embeddings> {
    (0..batch.len())
        .step_by(size)
        .map(|s| batch.select_rows(&(s..(s + size).min(batch.len())).collect::<Vec<_>>()))
        .collect()
}

fn tmp_file(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{FILE_NAME}.tmp"))
}

#[test]
fn streaming_build_matches_an_in_memory_build() {
    for (reserve, metric) in [(700, Metric::Cosine), (100, Metric::Euclidean)] {
        let dir = tempfile::tempdir().unwrap();
        let built = SklearnIndex::create(dir.path(), metric).unwrap();
        let memory = SklearnIndex::in_memory(metric);
        built.reserve(reserve).unwrap();
        // Keys seen again across batches and inside one, new samples for old keys.
        let mut all = patch_batch(600, 24, 7, 11);
        let again = patch_batch(80, 24, 7, 12);
        all = Embeddings::new(
            24,
            [all.data(), again.data()].concat(),
            [all.keys(), again.keys()].concat(),
            [all.sample_ids(), &vec!["moved".to_string(); 80]].concat(),
        )
        .unwrap();
        let q = random_vectors(1, 24, 13);
        for b in batches(&all, 128) {
            built.upsert(&b).unwrap();
            memory.upsert(&b).unwrap();
            assert!(tmp_file(dir.path()).is_file(), "rows go to the file");
            // Queries during the build see every batch.
            assert_eq!(
                built.knn(&KnnQuery::nearest(&q, 7)).unwrap(),
                memory.knn(&KnnQuery::nearest(&q, 7)).unwrap()
            );
        }
        assert!(matches!(
            built.upsert(&Embeddings::for_samples(3, vec![1.0; 3], vec!["x".into()]).unwrap()),
            Err(Error::DimensionMismatch { .. })
        ));
        assert_eq!(built.size().unwrap(), 600);
        built.persist().unwrap();
        assert!(!tmp_file(dir.path()).exists());
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp.grow")).exists());
        built.verify().unwrap();
        let reopened = SklearnIndex::open(dir.path()).unwrap();
        for index in [&built, &reopened] {
            assert_same_content(index, &SklearnIndex::open(dir.path()).unwrap());
            assert_eq!(
                bits(&index.get_all().unwrap()),
                bits(&memory.get_all().unwrap())
            );
            assert_eq!(index.keys().unwrap(), memory.keys().unwrap());
            for reverse in [false, true] {
                let mut query = KnnQuery::nearest(&q, 25);
                query.reverse = reverse;
                assert_eq!(index.knn(&query).unwrap(), memory.knn(&query).unwrap());
            }
        }
        // Later changes work as usual.
        reopened.upsert(&patch_batch(5, 24, 8, 14)).unwrap();
        reopened.persist().unwrap();
        assert_eq!(SklearnIndex::open(dir.path()).unwrap().size().unwrap(), 605);
    }
}

#[test]
fn streaming_build_interrupted_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let all = patch_batch(300, 8, 9, 15);
    // Dropped before persist.
    {
        let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
        index.reserve(300).unwrap();
        index.upsert(&all).unwrap();
        assert!(tmp_file(dir.path()).is_file());
    }
    assert!(!tmp_file(dir.path()).exists());
    // Cleaned up.
    let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
    index.reserve(300).unwrap();
    index.upsert(&all).unwrap();
    index.cleanup().unwrap();
    assert!(!tmp_file(dir.path()).exists());
    // A removal ends the streaming build; the index goes on in memory.
    let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
    index.reserve(300).unwrap();
    index.upsert(&all).unwrap();
    assert_eq!(index.remove(&all.keys()[..10]).unwrap(), 10);
    assert!(!tmp_file(dir.path()).exists());
    index.persist().unwrap();
    let again = SklearnIndex::open(dir.path()).unwrap();
    assert_eq!(again.size().unwrap(), 290);
    assert_eq!(
        bits(&again.get(&all.keys()[10..]).unwrap()),
        bits(&all.select_rows(&(10..300).collect::<Vec<_>>()))
    );
}

#[test]
fn verify_finds_damage_that_open_skips_in_big_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = SklearnIndex::create(dir.path(), Metric::Cosine).unwrap();
    index.reserve(8000).unwrap();
    for b in batches(&patch_batch(8000, 256, 10, 16), 1000) {
        index.upsert(&b).unwrap();
    }
    index.persist().unwrap();
    index.verify().unwrap();
    let path = dir.path().join(FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    // A byte of an id string (before the id offsets and the hash table at the end).
    let at = bytes.len() - (2 * 8000 + 1) * 8 - 16384 * 4 - 200;
    bytes[at] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let opened = SklearnIndex::open(dir.path()).unwrap();
    assert_eq!(opened.size().unwrap(), 8000);
    assert!(matches!(opened.verify(), Err(Error::Corrupt { .. })));
    assert!(SklearnIndex::in_memory(Metric::Cosine).verify().is_ok());
}
