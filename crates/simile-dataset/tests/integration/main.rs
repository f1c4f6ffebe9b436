//! Integration tests of the dataset store, on real SQLite files in temp dirs.
#![allow(clippy::unwrap_used)]

mod guards;
mod pages;

use serde_json::json;
use simile_dataset::*;

pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn with_samples(store: &Store, n: usize) -> (Dataset, Vec<String>) {
    let ds = store.create_dataset("d").unwrap();
    let samples = (0..n)
        .map(|i| {
            NewSample::new(format!("/img/{i}.jpg"))
                .with_field("idx", json!(i))
                .with_field("emb", vec![i as f32, 1.0])
        })
        .collect();
    let ids = ds.add_samples(samples).unwrap();
    (ds, ids)
}

#[test]
fn datasets_are_created_listed_loaded_and_deleted() {
    let (_d, store) = store();
    store.create_dataset("b").unwrap();
    store.create_dataset("a").unwrap();
    assert!(matches!(store.create_dataset("a"), Err(DatasetError::AlreadyExists(n)) if n == "a"));
    assert!(matches!(
        store.create_dataset(" "),
        Err(DatasetError::InvalidName(_))
    ));
    assert_eq!(store.list_datasets().unwrap(), vec!["a", "b"]);
    assert_eq!(store.load_dataset("a").unwrap().name(), "a");
    store.delete_dataset("a").unwrap();
    assert!(matches!(
        store.load_dataset("a"),
        Err(DatasetError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_dataset("a"),
        Err(DatasetError::NotFound(_))
    ));
}

#[test]
fn samples_fields_and_vectors_round_trip() {
    let (_d, store) = store();
    let (ds, ids) = with_samples(&store, 5);
    assert_eq!(ds.len().unwrap(), 5);
    assert!(ids.iter().all(|i| is_object_id(i)));
    let s = ds.sample(&ids[3]).unwrap();
    assert_eq!(s.filepath().to_str(), Some("/img/3.jpg"));
    assert_eq!(s.get("idx"), Some(&json!(3)));
    assert!(s.get("emb").is_none(), "vectors are not in the JSON fields");
    let v = ds
        .vectors("emb", &[ids[2].clone(), "0123456789abcdef01234567".into()])
        .unwrap();
    assert_eq!(v, vec![Some(vec![2.0, 1.0]), None]);
    assert_eq!(ds.field_kind("emb").unwrap(), FieldKind::Vector);
    assert_eq!(ds.field_kind("idx").unwrap(), FieldKind::Json);
    assert!(matches!(
        ds.field_kind("nope"),
        Err(DatasetError::UnknownField { .. })
    ));
}

#[test]
fn failed_writes_change_nothing() {
    let (_d, store) = store();
    let (ds, ids) = with_samples(&store, 3);
    // A bad vector in the middle of a batch: nothing of the batch is added.
    let batch = vec![
        NewSample::new("/x/1.jpg").with_field("emb", vec![1.0, 2.0]),
        NewSample::new("/x/2.jpg").with_field("emb", vec![f32::NAN, 2.0]),
    ];
    assert!(matches!(
        ds.add_samples(batch),
        Err(DatasetError::NonFiniteVector { .. })
    ));
    assert_eq!(ds.len().unwrap(), 3);
    // A field of another kind is refused.
    let r = ds.set_values("idx", vec![(ids[0].clone(), FieldValue::Vector(vec![1.0]))]);
    assert!(matches!(r, Err(DatasetError::FieldKind { .. })));
    // An unknown id in a set_values batch rolls the whole batch back.
    let r = ds.set_values(
        "score",
        vec![
            (ids[0].clone(), json!(1).into()),
            ("0123456789abcdef01234567".into(), json!(2).into()),
        ],
    );
    assert!(matches!(r, Err(DatasetError::UnknownSample(..))));
    assert!(ds.sample(&ids[0]).unwrap().get("score").is_none());
    assert!(matches!(
        ds.field_kind("score"),
        Err(DatasetError::UnknownField { .. })
    ));
    // Bad ids and bad boxes.
    assert!(matches!(
        ds.add_sample(NewSample::new("a").with_id("xyz")),
        Err(DatasetError::InvalidId(_))
    ));
    let bad = Detections::new(vec![Detection {
        id: new_object_id(),
        label: "cat".into(),
        bounding_box: [0.5, 0.5, 0.9, 0.1],
        confidence: None,
        attributes: Default::default(),
    }]);
    assert!(matches!(
        ds.add_sample(NewSample::new("a").with_field("gt", bad)),
        Err(DatasetError::InvalidBoundingBox { .. })
    ));
    assert_eq!(ds.len().unwrap(), 3);
}

#[test]
fn view_stages() {
    let (_d, store) = store();
    let (ds, ids) = with_samples(&store, 10);
    let v = ds.view();
    assert_eq!(v.ids().unwrap(), ids);
    assert_eq!(v.limit(3).ids().unwrap(), ids[..3].to_vec());
    assert_eq!(v.skip(8).ids().unwrap(), ids[8..].to_vec());
    assert_eq!(v.skip(2).limit(2).ids().unwrap(), ids[2..4].to_vec());
    let sel = vec![
        ids[5].clone(),
        ids[1].clone(),
        "0123456789abcdef01234567".into(),
    ];
    assert_eq!(
        v.select(&sel).ids().unwrap(),
        vec![ids[1].clone(), ids[5].clone()]
    );
    assert_eq!(
        v.select_ordered(&sel).ids().unwrap(),
        vec![ids[5].clone(), ids[1].clone()]
    );
    assert_eq!(v.exclude(&ids[1..]).ids().unwrap(), vec![ids[0].clone()]);
    let t1 = v.take(4, Some(51)).ids().unwrap();
    assert_eq!(t1.len(), 4);
    assert_eq!(
        t1,
        v.take(4, Some(51)).ids().unwrap(),
        "same seed, same samples"
    );
    let t = v.take(4, None);
    assert_eq!(
        t.ids().unwrap(),
        t.ids().unwrap(),
        "a view keeps its drawn seed"
    );
    let m = v.match_field(Filter::Gte("idx".into(), 7.0));
    assert_eq!(m.ids().unwrap(), ids[7..].to_vec());
    let m = v.match_field(Filter::Or(vec![
        Filter::Eq("idx".into(), json!(0)),
        Filter::Lt("idx".into(), -1.0),
    ]));
    assert_eq!(m.len().unwrap(), 1);
    assert_eq!(v.first().unwrap().unwrap().id(), ids[0]);
    assert_eq!(v.last().unwrap().unwrap().id(), ids[9]);
    assert_eq!(v.values("idx").unwrap()[4], Some(json!(4)));
    assert_eq!(
        v.limit(2).vectors("emb").unwrap(),
        vec![Some(vec![0.0, 1.0]), Some(vec![1.0, 1.0])]
    );
    assert_eq!(ds.delete_samples(&ids[..2]).unwrap(), 2);
    assert_eq!(v.len().unwrap(), 8);
}

#[test]
fn label_fields_and_filter_labels() {
    let (_d, store) = store();
    let ds = store.create_dataset("labels").unwrap();
    let dets = |labels: &[&str]| {
        Detections::new(
            labels
                .iter()
                .map(|l| Detection::new(*l, [0.1, 0.1, 0.2, 0.2]).unwrap())
                .collect(),
        )
    };
    let ids = ds
        .add_samples(vec![
            NewSample::new("a.jpg").with_field("gt", dets(&["cat", "dog"])),
            NewSample::new("b.jpg").with_field("gt", dets(&["dog"])),
            NewSample::new("c.jpg").with_field("gt", dets(&["cat", "cat"])),
        ])
        .unwrap();
    let all = ds.view().label_ids("gt").unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].0, ids[0]);
    let cats = ds
        .view()
        .filter_labels("gt", LabelFilter::LabelIn(vec!["cat".into()]));
    assert_eq!(cats.ids().unwrap(), vec![ids[0].clone(), ids[2].clone()]);
    let l = cats.label_ids("gt").unwrap();
    assert_eq!(l.len(), 3);
    let s = &cats.samples().unwrap()[0];
    assert_eq!(s.detections("gt").unwrap().unwrap().detections.len(), 1);
    // Per-label values.
    let mut vals = std::collections::HashMap::new();
    vals.insert(l[0].1.clone(), json!(0.25));
    ds.set_label_values("gt", "dist", &vals).unwrap();
    let d = ds
        .sample(&ids[0])
        .unwrap()
        .detections("gt")
        .unwrap()
        .unwrap();
    assert_eq!(d.detections[0].attributes.get("dist"), Some(&json!(0.25)));
}

#[test]
fn second_store_on_same_home_sees_writes_and_concurrent_access_works() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    let ds = a.create_dataset("shared").unwrap();
    ds.add_sample(NewSample::new("x.jpg")).unwrap();
    let b = Store::open(dir.path()).unwrap();
    assert_eq!(b.load_dataset("shared").unwrap().len().unwrap(), 1);

    // A writer and a reader on separate connections at once: no "database is locked".
    let home = dir.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        let s = Store::open(&home).unwrap();
        let d = s.load_dataset("shared").unwrap();
        for i in 0..50 {
            d.add_samples(vec![
                NewSample::new(format!("{i}.jpg")).with_field("emb", vec![i as f32])
            ])
            .unwrap();
        }
    });
    let mut last = 0;
    for _ in 0..50 {
        let n = b
            .load_dataset("shared")
            .unwrap()
            .view()
            .ids()
            .unwrap()
            .len();
        assert!(n >= last, "counts only grow");
        last = n;
    }
    writer.join().unwrap();
    assert_eq!(b.load_dataset("shared").unwrap().len().unwrap(), 51);
}

#[test]
fn match_filters_agree_in_sql_and_in_rust() {
    let (_d, store) = store();
    let ds = store.create_dataset("m").unwrap();
    let values = [
        json!(1),
        json!(2.5),
        json!("a"),
        json!(true),
        json!(null),
        json!([1, 2]),
        json!(-3),
    ];
    ds.add_samples(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                NewSample::new(format!("{i}.jpg"))
                    .with_field("x", v.clone())
                    .with_field("i", json!(i))
            })
            .chain(std::iter::once(NewSample::new("none.jpg")))
            .collect(),
    )
    .unwrap();
    let filters = vec![
        Filter::Eq("x".into(), json!(1)),
        Filter::Eq("x".into(), json!("a")),
        Filter::Eq("x".into(), json!(true)),
        Filter::Ne("x".into(), json!("a")),
        Filter::Gt("x".into(), 1.0),
        Filter::Gte("x".into(), 1.0),
        Filter::Lt("x".into(), 2.5),
        Filter::Lte("x".into(), 2.5),
        Filter::In("x".into(), vec![json!(1), json!("a")]),
        Filter::In("x".into(), vec![]),
        Filter::Exists("x".into()),
        Filter::Missing("x".into()),
        Filter::And(vec![
            Filter::Gt("i".into(), 1.0),
            Filter::Lt("i".into(), 5.0),
        ]),
        Filter::Or(vec![
            Filter::Eq("x".into(), json!(-3)),
            Filter::Eq("filepath".into(), json!("none.jpg")),
        ]),
        Filter::Not(Box::new(Filter::Exists("x".into()))),
        Filter::Eq("x".into(), json!([1, 2])),
        Filter::Contains("x".into(), json!(2)),
        Filter::Contains("x".into(), json!(2.0)),
        Filter::Contains("x".into(), json!("a")),
        Filter::Contains("i".into(), json!(1)),
    ];
    for f in filters {
        // Leading: translated to SQL. After skip(0): evaluated in Rust.
        let sql = ds.view().match_field(f.clone()).ids().unwrap();
        let rust = ds.view().skip(0).match_field(f.clone()).ids().unwrap();
        assert_eq!(sql, rust, "filter {f:?}");
    }
    assert_eq!(
        ds.view()
            .match_field(Filter::Gt("x".into(), 1.0))
            .len()
            .unwrap(),
        1
    );
}

#[test]
fn patches_views() {
    let (_d, store) = store();
    let ds = store.create_dataset("p").unwrap();
    let dets = |labels: &[&str]| {
        Detections::new(
            labels
                .iter()
                .map(|l| Detection::new(*l, [0.1, 0.2, 0.3, 0.4]).unwrap())
                .collect(),
        )
    };
    let ids = ds
        .add_samples(vec![
            NewSample::new("a.jpg").with_field("gt", dets(&["cat", "dog"])),
            NewSample::new("b.jpg"),
            NewSample::new("c.jpg").with_field("gt", dets(&["cat"])),
        ])
        .unwrap();
    let p = ds.view().to_patches("gt");
    assert_eq!(p.len().unwrap(), 3);
    let rows = p.label_ids().unwrap();
    assert_eq!(rows[0].0, ids[0]);
    assert_eq!(rows[2].0, ids[2]);
    let first = p.first().unwrap().unwrap();
    assert_eq!(first.detection.label, "cat");
    assert_eq!(first.filepath.to_str(), Some("a.jpg"));
    let cats = ds
        .view()
        .filter_labels("gt", LabelFilter::LabelIn(vec!["cat".into()]))
        .to_patches("gt");
    assert_eq!(cats.len().unwrap(), 2);
    let sel = cats.with_similarity(
        vec![rows[2].1.clone(), rows[1].1.clone(), rows[0].1.clone()],
        vec![0.0, 0.5, 0.7],
    );
    assert_eq!(
        sel.ids().unwrap(),
        vec![rows[2].1.clone(), rows[0].1.clone()],
        "the dog is filtered out"
    );
    assert_eq!(sel.similarity().unwrap().1.len(), 3);
}

#[test]
fn pages_agree_with_the_evaluated_view_on_every_kind_of_view() {
    let (_d, store) = store();
    let (ds, ids) = with_samples(&store, 57);
    ds.tag_samples(&ids[10..20], &["a".into()]).unwrap();
    let views = [
        ds.view(),
        ds.view().match_field(Filter::Gte("idx".into(), 13.0)),
        ds.view().match_tags(&["a".into()]),
        ds.view().skip(3).limit(40),
        ds.view().take(30, Some(4)),
        ds.view()
            .select_ordered(&[ids[9].clone(), ids[2].clone(), ids[40].clone()]),
    ];
    for v in &views {
        let all = v.ids().unwrap();
        assert_eq!(v.count().unwrap(), all.len());
        for (offset, limit) in [(0, 10), (5, 7), (50, 20), (1000, 5), (0, 0)] {
            let page = v.page(offset, limit).unwrap();
            assert_eq!(page.total, all.len());
            let got: Vec<String> = page.samples.iter().map(|s| s.id().to_string()).collect();
            let want: Vec<String> = all.iter().skip(offset).take(limit).cloned().collect();
            assert_eq!(got, want, "{:?} offset {offset} limit {limit}", v.stages());
        }
    }
}

#[test]
fn tags_are_added_removed_counted_and_matched() {
    let (_d, store) = store();
    let (ds, ids) = with_samples(&store, 6);
    assert_eq!(
        ds.tag_samples(&ids[..3], &["dup".into(), "x".into()])
            .unwrap(),
        3
    );
    // Tagging again changes nothing.
    assert_eq!(ds.tag_samples(&ids[..3], &["dup".into()]).unwrap(), 0);
    assert_eq!(ds.untag_samples(&ids[1..2], &["dup".into()]).unwrap(), 1);
    let counts = ds.count_sample_tags().unwrap();
    assert_eq!(counts.get("dup"), Some(&2));
    assert_eq!(counts.get("x"), Some(&3));
    let tagged = ds.view().match_tags(&["dup".into()]).ids().unwrap();
    assert_eq!(tagged, vec![ids[0].clone(), ids[2].clone()]);
    assert_eq!(
        ds.sample(&ids[0]).unwrap().get("tags"),
        Some(&json!(["dup", "x"]))
    );
    // An unknown id is a typed error and nothing changes.
    let unknown = "0123456789abcdef01234567".to_string();
    let err = ds
        .tag_samples(&[ids[4].clone(), unknown], &["new".into()])
        .unwrap_err();
    assert!(matches!(err, DatasetError::UnknownSample(..)), "{err}");
    assert!(!ds.count_sample_tags().unwrap().contains_key("new"));
    // Empty tags are refused.
    assert!(matches!(
        ds.tag_samples(&ids[..1], &[" ".into()]),
        Err(DatasetError::InvalidStage(_))
    ));
}

#[test]
fn deep_pages_and_counts_follow_every_change_from_any_connection() {
    let (dir, store) = store();
    let (ds, ids) = with_samples(&store, 2600);
    let view = ds.view().match_field(Filter::Gte("idx".into(), 100.0));
    for v in [ds.view(), view.clone()] {
        let all = v.ids().unwrap();
        for offset in [0, 1023, 1024, 1500, 2047, 2048, 2490, 2599] {
            let page = v.page(offset, 30).unwrap();
            let got: Vec<String> = page.samples.iter().map(|s| s.id().to_string()).collect();
            let want: Vec<String> = all.iter().skip(offset).take(30).cloned().collect();
            assert_eq!(got, want, "offset {offset}");
            assert_eq!(page.total, all.len());
        }
    }
    // A change on this connection.
    ds.delete_samples(&ids[..10]).unwrap();
    assert_eq!(ds.view().count().unwrap(), 2590);
    assert_eq!(ds.view().page(1500, 1).unwrap().samples[0].id(), ids[1510]);
    // A change committed by another connection (another process would do the same).
    let other = Store::open(dir.path()).unwrap();
    let ds2 = other.load_dataset("d").unwrap();
    ds2.delete_samples(&ids[10..20]).unwrap();
    assert_eq!(ds.view().count().unwrap(), 2580);
    assert_eq!(ds.view().page(1500, 1).unwrap().samples[0].id(), ids[1520]);
    assert_eq!(view.count().unwrap(), 2500);
}

#[test]
fn sort_by_orders_numbers_then_strings_with_missing_last() {
    let (_d, store) = store();
    let ds = store.create_dataset("s").unwrap();
    let vals = [
        json!(0.5),
        json!(null),
        json!(2),
        json!("b"),
        json!(-1.0),
        json!("a"),
    ];
    let mut samples: Vec<NewSample> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| NewSample::new(format!("{i}.jpg")).with_field("u", v.clone()))
        .collect();
    samples.push(NewSample::new("none.jpg"));
    let ids = ds.add_samples(samples).unwrap();
    let asc = ds.view().sort_by("u", false).ids().unwrap();
    assert_eq!(asc, [4, 0, 2, 5, 3, 1, 6].map(|i| ids[i].clone()).to_vec());
    let desc = ds.view().sort_by("u", true).ids().unwrap();
    assert_eq!(desc, [3, 5, 2, 0, 4, 1, 6].map(|i| ids[i].clone()).to_vec());
    // Pages of a sorted view follow the sort.
    let page = ds.view().sort_by("u", true).page(1, 2).unwrap();
    assert_eq!(
        page.samples
            .iter()
            .map(|s| s.id().to_string())
            .collect::<Vec<_>>(),
        vec![ids[5].clone(), ids[2].clone()]
    );
}
