//! Pages at any offset equal the same slice of the view's full order, on every paging path:
//! the whole dataset with contiguous rows (arithmetic), with holes and interleaved with another
//! dataset (page index), filtered, skip/limit windows, and id lists (ranked results, ordered
//! selections) with ids that are not samples and repeats. The expected orders are computed here
//! from the inserted ids, not from the store.
use serde_json::json;
use simile_dataset::*;

use crate::store;

/// Every page of `view` at offsets 0, 1, middle, last, past the end, for many page sizes.
fn check_pages(view: &View, want: &[String], what: &str) {
    assert_eq!(view.count().unwrap(), want.len(), "{what}: count");
    assert_eq!(view.len().unwrap(), want.len(), "{what}: len");
    let n = want.len();
    for limit in [1, 3, 50, 1023, 1024, 1025, 5000] {
        let offsets = [
            0,
            1,
            n / 2,
            n.saturating_sub(1),
            n.saturating_sub(limit),
            n,
            n + 7,
        ];
        for offset in offsets {
            let page = view.page(offset, limit).unwrap();
            let got: Vec<&str> = page.samples.iter().map(|s| s.id()).collect();
            let exp: Vec<&str> = want
                .iter()
                .skip(offset)
                .take(limit)
                .map(String::as_str)
                .collect();
            assert_eq!(page.total, n, "{what}: total at {offset}/{limit}");
            assert_eq!(got, exp, "{what}: page at {offset}, limit {limit}");
        }
        let head: Vec<String> = view
            .head(limit)
            .unwrap()
            .iter()
            .map(|s| s.id().to_string())
            .collect();
        assert_eq!(head, want[..limit.min(n)], "{what}: head({limit})");
    }
    assert_eq!(view.ids().unwrap(), want, "{what}: ids");
}

#[test]
fn pages_at_any_offset_equal_the_slice_of_the_full_order() {
    let (_d, store) = store();
    let ds = store.create_dataset("d").unwrap();
    let n = 5200;
    let samples = (0..n)
        .map(|i| NewSample::new(format!("/img/{i}.jpg")).with_field("idx", json!(i)))
        .collect();
    let ids = ds.add_samples(samples).unwrap();
    // Contiguous rows: the whole dataset, skip/limit windows.
    check_pages(&ds.view(), &ids, "whole");
    check_pages(&ds.view().skip(4500), &ids[4500..], "skip");
    check_pages(
        &ds.view().skip(10).limit(4300).skip(5),
        &ids[15..4310],
        "skip limit skip",
    );
    check_pages(&ds.view().limit(0), &[], "limit 0");
    // Filtered windows: through the page index (and without one, near the start).
    let not_zero_view = ds.view().match_field(Filter::Ne("idx".into(), json!(0)));
    check_pages(&not_zero_view, &ids[1..], "filtered");
    check_pages(
        &ds.view()
            .match_field(Filter::Gte("idx".into(), 700.0))
            .skip(4000),
        &ids[4700..],
        "filtered skip",
    );
    // Id lists: ranked ids with unknown ids and a repeat; ordered selections.
    let subset: Vec<String> = ids.iter().rev().step_by(7).skip(1).cloned().collect();
    let subset: Vec<String> = ids
        .iter()
        .rev()
        .filter(|i| !subset.contains(i))
        .cloned()
        .collect();
    let mut ranked = subset.clone();
    ranked.insert(3, "0123456789abcdef01234567".into());
    ranked.insert(4000, ranked[10].clone());
    let want = subset;
    let distances = vec![0.5; ranked.len()];
    let ranked_view = ds.view().with_stage(Stage::Ranked {
        ids: ranked.clone(),
        distances,
    });
    check_pages(&ranked_view, &want, "ranked");
    let window: Vec<String> = want.iter().skip(2).take(4400).cloned().collect();
    check_pages(&ranked_view.skip(2).limit(4400), &window, "ranked window");
    check_pages(&ds.view().select_ordered(&ranked), &want, "ordered select");
    // Holes: deleted rows and another dataset's rows between this one's.
    let other = store.create_dataset("other").unwrap();
    other.add_samples(vec![NewSample::new("/o.jpg")]).unwrap();
    let more = ds
        .add_samples(
            (0..30)
                .map(|i| NewSample::new(format!("/m/{i}.jpg")))
                .collect(),
        )
        .unwrap();
    ds.delete_samples(&ids[2000..2003]).unwrap();
    let mut rest: Vec<String> = ids.iter().chain(&more).cloned().collect();
    rest.drain(2000..2003);
    check_pages(&ds.view(), &rest, "holed");
    check_pages(&ds.view().skip(5000), &rest[5000..], "holed skip");
    let want: Vec<String> = want
        .into_iter()
        .filter(|i| !ids[2000..2003].contains(i))
        .collect();
    check_pages(&ranked_view, &want, "ranked after deletes");
    assert_eq!(other.len().unwrap(), 1);
}

#[test]
fn counts_are_kept_through_adds_deletes_and_other_connections() {
    let (dir, store) = store();
    let ds = store.create_dataset("d").unwrap();
    assert_eq!(ds.len().unwrap(), 0);
    let ids = ds
        .add_samples(
            (0..40)
                .map(|i| NewSample::new(format!("/{i}.jpg")))
                .collect(),
        )
        .unwrap();
    // A failed batch (a bad id) adds nothing and counts nothing.
    let bad = vec![
        NewSample::new("/x.jpg"),
        NewSample::new("/y.jpg").with_id("nope"),
    ];
    assert!(ds.add_samples(bad).is_err());
    assert_eq!(ds.len().unwrap(), 40);
    let unknown = "0123456789abcdef01234567".to_string();
    assert_eq!(ds.delete_samples(&[ids[0].clone(), unknown]).unwrap(), 1);
    assert_eq!(ds.len().unwrap(), 39);
    let other = Store::open(dir.path()).unwrap().load_dataset("d").unwrap();
    other.delete_samples(&ids[1..5]).unwrap();
    assert_eq!(ds.len().unwrap(), 35);
    assert_eq!(ds.view().count().unwrap(), 35);
    assert_eq!(ds.view().page(34, 5).unwrap().samples[0].id(), ids[39]);
    store.delete_dataset("d").unwrap();
    let again = store.create_dataset("d").unwrap();
    assert_eq!(again.len().unwrap(), 0);
    assert!(again.view().head(3).unwrap().is_empty());
}
