//! The checks layers above run before writing: sample ids that exist, fields that may take
//! distances (issue 12).
use serde_json::json;
use simile_dataset::*;

use super::store;

#[test]
fn missing_ids_lists_each_absent_id_once_in_order() {
    let (_d, store) = store();
    let ds = store.create_dataset("d").unwrap();
    let ids = ds
        .add_samples(vec![NewSample::new("/a.jpg"), NewSample::new("/b.jpg")])
        .unwrap();
    let other = store.create_dataset("other").unwrap();
    let elsewhere = other.add_sample(NewSample::new("/c.jpg")).unwrap();
    let absent = "0123456789abcdef01234567".to_string();
    let asked = vec![
        ids[0].clone(),
        "xyz".to_string(),
        absent.clone(),
        "xyz".to_string(),
        elsewhere.clone(),
        ids[1].clone(),
    ];
    assert_eq!(
        ds.missing_ids(&asked).unwrap(),
        vec!["xyz".to_string(), absent, elsewhere]
    );
    assert!(ds.missing_ids(&ids).unwrap().is_empty());
}

#[test]
fn distances_never_overwrite_another_field() {
    let (_d, store) = store();
    let ds = store.create_dataset("d").unwrap();
    let det = Detection::new("cat", [0.1, 0.1, 0.5, 0.5]).unwrap();
    let ids = ds
        .add_samples(vec![
            NewSample::new("/a.jpg")
                .with_field("metadata", json!({"width": 3}))
                .with_field("dist", json!(0.5))
                .with_field("emb", vec![1.0f32, 2.0])
                .with_field("gt", Detections::new(vec![det.clone()])),
            NewSample::new("/b.jpg")
                .with_field("dist", json!(null))
                .with_field("score", json!(2)),
            NewSample::new("/c.jpg").with_field("score", json!("high")),
        ])
        .unwrap();
    // New fields and fields of numbers/null may take distances.
    ds.check_distance_field("new_dist").unwrap();
    ds.check_distance_field("dist").unwrap();
    let refused = |field: &str, found: &str| match ds.check_distance_field(field) {
        Err(DatasetError::NotADistanceField {
            field: f,
            found: got,
            ..
        }) => {
            assert_eq!(f, field);
            assert!(got.contains(found), "{field}: {got}");
        }
        other => panic!("{field}: {other:?}"),
    };
    refused("metadata", "an object");
    refused("score", "a string");
    refused("emb", "vector");
    refused("gt", "detections");
    assert!(matches!(
        ds.check_distance_field("id"),
        Err(DatasetError::InvalidField(_))
    ));
    // Label attributes.
    ds.check_distance_attribute("gt", "dist").unwrap();
    let mut values = std::collections::HashMap::new();
    values.insert(det.id.clone(), json!("near"));
    ds.set_label_values("gt", "note", &values).unwrap();
    for (attr, found) in [
        ("note", "a string"),
        ("label", "own"),
        ("confidence", "own"),
    ] {
        match ds.check_distance_attribute("gt", attr) {
            Err(DatasetError::NotADistanceField {
                field, found: got, ..
            }) => {
                assert_eq!(field, format!("gt.{attr}"));
                assert!(got.contains(found), "{attr}: {got}");
            }
            other => panic!("{attr}: {other:?}"),
        }
    }
    values.insert(det.id.clone(), json!(0.25));
    ds.set_label_values("gt", "d", &values).unwrap();
    ds.check_distance_attribute("gt", "d").unwrap();
    // Nothing changed.
    assert_eq!(
        ds.sample(&ids[0]).unwrap().get("metadata"),
        Some(&json!({"width": 3}))
    );
}
