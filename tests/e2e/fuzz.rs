//! Fuzz harnesses (`simile-fuzz`) through the facade: `.npy` files, view/stage JSON and id lists
//! mutated from valid ones. The property: never a panic, always `Ok` or a typed error; round
//! trips where there is one (write → read, stages → JSON → stages); an error changes nothing.
//! Short pass by default; `SIMILE_FUZZ_SECONDS=N` runs long (`cargo xtask fuzz`).
use std::cell::Cell;

use serde_json::{json, Value};
use simile::ndarray::Array2;
use simile::{parse_stages, stages_to_json, AddOptions, Error, MissingOptions, SimilarityOptions};
use simile_fuzz::proptest::prelude::*;
use simile_fuzz::{bytes_from, check, json_from, json_value_from};

fn bits(a: &Array2<f32>) -> (Vec<usize>, Vec<u32>) {
    (a.shape().to_vec(), a.iter().map(|x| x.to_bits()).collect())
}

#[test]
fn npy_arrays_round_trip_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let arrays = (0usize..6, 0usize..9).prop_flat_map(|(r, c)| {
        prop::collection::vec(any::<u32>().prop_map(f32::from_bits), r * c)
            .prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    });
    check("npy round trip", 64, arrays, |a| {
        simile::npy::write_npy(&path, &a).unwrap();
        let back = simile::npy::read_npy(&path).unwrap();
        prop_assert_eq!(bits(&back), bits(&a));
        Ok(())
    });
}

#[test]
fn mutated_npy_files_read_or_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let seed = Array2::from_shape_fn((3, 4), |(r, c)| (r * 4 + c) as f32 - 5.5);
    simile::npy::write_npy(&path, &seed).unwrap();
    let valid = std::fs::read(&path).unwrap();
    let (oks, errs) = (Cell::new(0), Cell::new(0));
    check("npy files", 512, bytes_from(valid, 6), |b| {
        std::fs::write(&path, &b.0).unwrap();
        match simile::npy::read_npy(&path) {
            Ok(a) => {
                oks.set(oks.get() + 1);
                prop_assert!(
                    a.len() * 4 <= b.0.len(),
                    "{:?} from {} bytes",
                    a.shape(),
                    b.0.len()
                );
            }
            Err(Error::Npy { .. }) => errs.set(errs.get() + 1),
            Err(other) => prop_assert!(false, "not a typed npy error: {other:?}"),
        }
        Ok(())
    });
    assert!(
        oks.get() > 0 && errs.get() > 0,
        "{} read, {} refused",
        oks.get(),
        errs.get()
    );
}

/// A session with dataset `d` of 12 samples (field `idx`, tags on some) and an index `emb`.
fn indexed() -> (tempfile::TempDir, simile::Dataset, Vec<String>) {
    let (home, simile) = simile_e2e::session();
    let (ds, ids, emb) = simile_e2e::dataset_with(&simile, "d", 12, 4);
    ds.limit(8)
        .compute_similarity(
            SimilarityOptions::new()
                .brain_key("emb")
                .embeddings(emb.slice(simile::ndarray::s![..8, ..]).to_owned()),
        )
        .unwrap();
    (home, ds, ids)
}

#[test]
fn mutated_view_stages_parse_and_run_or_are_typed_errors() {
    let (_home, ds, ids) = indexed();
    let seed = json!([
        {"select": {"ids": [ids[0], ids[3], ids[5], ids[7]], "ordered": true}},
        {"exclude": {"ids": [ids[3]]}},
        {"match": {"and": [{"gte": ["idx", 1]}, {"not": {"in": ["idx", [2, 4]]}}, {"exists": "idx"}]}},
        {"match_tags": ["a", "b"]},
        {"sort_by": {"field": "idx", "reverse": true}},
        {"filter_labels": {"field": "gt", "filter": {"label_in": ["cat"]}}},
        {"take": {"n": 3, "seed": 7}},
        {"skip": 1},
        {"limit": 2},
    ]);
    let (parsed, ran) = (Cell::new(0), Cell::new(0));
    check("view stages", 256, json_from(seed), |text| {
        let Ok(text) = std::str::from_utf8(&text.0) else {
            return Ok(());
        };
        let Ok(stages) = parse_stages(text) else {
            return Ok(());
        };
        parsed.set(parsed.get() + 1);
        let again = stages_to_json(&stages).unwrap().to_string();
        prop_assert_eq!(
            &parse_stages(&again).unwrap(),
            &stages,
            "stages -> JSON -> stages"
        );
        let view = ds.view_of(stages);
        match (view.inner().len(), view.inner().samples()) {
            (Ok(n), Ok(samples)) => {
                ran.set(ran.get() + 1);
                prop_assert_eq!(n, samples.len());
                prop_assert!(n <= ids.len());
            }
            (Err(e), _) | (_, Err(e)) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
    assert!(ran.get() > 20, "{} parsed, {} ran", parsed.get(), ran.get());
}

fn as_ids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect(),
        other => vec![other.to_string()],
    }
}

#[test]
fn mutated_id_lists_add_and_remove_or_are_typed_errors_that_change_nothing() {
    let (_home, ds, ids) = indexed();
    let index = ds.load_brain_results("emb").unwrap();
    // Valid: three samples not in the index, and one that is (replaced).
    let seed = json!([ids[8], ids[9], ids[10], ids[0]]);
    let added = Cell::new(0);
    check("id lists", 96, json_value_from(seed), |v| {
        let list = as_ids(&v);
        let before = index.total_index_size().unwrap();
        let rows = Array2::from_elem((list.len(), 4), 0.25f32);
        match index.add_to_index(rows.view(), &list, None, AddOptions::default()) {
            Ok(()) => {
                added.set(added.get() + 1);
                let all = ds.inner().view().ids().unwrap();
                for id in &list {
                    prop_assert!(all.contains(id), "{id:?} is not a sample but was added");
                }
                let new: std::collections::HashSet<&String> =
                    list.iter().filter(|id| !ids[..8].contains(id)).collect();
                prop_assert_eq!(index.total_index_size().unwrap(), 8 + new.len());
                let extra: Vec<String> = new.into_iter().cloned().collect();
                index
                    .remove_from_index(&extra, MissingOptions::default())
                    .unwrap();
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert_eq!(
                    index.total_index_size().unwrap(),
                    before,
                    "an error changes nothing"
                );
            }
        }
        // Removing the mutated list: Ok (missing ids allowed) or a typed error.
        let strict = MissingOptions {
            allow_missing: false,
            warn_missing: false,
        };
        if index.remove_from_index(&list, strict).is_ok() {
            // Put back what was removed, from the seed's rows.
            let back: Vec<String> = list
                .iter()
                .filter(|id| ids[..8].contains(id))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let rows = Array2::from_elem((back.len(), 4), 0.5f32);
            index
                .add_to_index(rows.view(), &back, None, AddOptions::default())
                .unwrap();
        }
        prop_assert_eq!(index.total_index_size().unwrap(), 8);
        Ok(())
    });
    assert!(added.get() > 5, "{} lists were added", added.get());
}

/// Found by `view stages`: serde_json parsed `1.074657925437282e+198` one ulp off the f64 it had
/// written, so a view description did not read back as itself (fixed: `float_roundtrip`).
#[test]
fn regression_view_numbers_read_back_exactly() {
    for text in [
        r#"[{"match": {"in": ["idx", [1.074657925437282e+198, 4]]}}]"#,
        r#"[{"match": {"gt": ["idx", 2.2250738585072014e-308]}}]"#,
    ] {
        let stages = parse_stages(text).unwrap();
        let again = stages_to_json(&stages).unwrap().to_string();
        assert_eq!(parse_stages(&again).unwrap(), stages, "{text}");
    }
}
