use serde_json::json;
use simile_io::{export_coco, import_coco, IoError, SkipReason};

use crate::common::{assert_box_close, write_image, Env};

fn fixture(env: &Env) -> std::path::PathBuf {
    let imgs = env.path("coco/images");
    write_image(&imgs.join("a.jpg"), 100, 50);
    write_image(&imgs.join("b.png"), 80, 80);
    write_image(&imgs.join("nested/c.jpg"), 64, 32);
    let labels = json!({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.png", "width": 80, "height": 80},
            {"id": 3, "file_name": "nested/c.jpg"},
            {"id": 4, "file_name": "missing.jpg", "width": 10, "height": 10},
            {"id": 1, "file_name": "b.png", "width": 80, "height": 80},
        ],
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [50, 25, 50, 25], "score": 0.75},
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [70, 70, 30, 30]},
            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [1, 1, 0, 5]},
            {"id": 14, "image_id": 2, "category_id": 9, "bbox": [1, 1, 5, 5]},
            {"id": 15, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 16, "image_id": 4, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 17, "image_id": 3, "category_id": 2, "bbox": [0, 0, 64, 32]},
            {"id": 18, "image_id": 3, "category_id": 2, "bbox": "nope"},
            {"id": 19, "image_id": 2, "category_id": 2, "bbox": [-20, 0, 10, 5]},
        ],
    });
    let path = env.path("coco/labels.json");
    std::fs::write(&path, serde_json::to_string_pretty(&labels).unwrap()).unwrap();
    path
}

fn reason_of(r: &simile_io::ImportReport, needle: &str) -> SkipReason {
    r.skipped
        .iter()
        .find(|s| s.path.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not reported: {:?}", r.skipped))
        .reason
        .clone()
}

#[test]
fn imports_boxes_and_reports_each_bad_item() {
    let env = Env::new();
    let json = fixture(&env);
    let ds = env.dataset("coco");
    let r = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap();
    assert_eq!(r.added.len(), 3);

    assert_eq!(reason_of(&r, "missing.jpg"), SkipReason::MissingFile);
    assert_eq!(
        reason_of(&r, "images[4]"),
        SkipReason::DuplicateId("1".into())
    );
    assert_eq!(
        reason_of(&r, "(id 12)"),
        SkipReason::BadBox {
            bbox: [70.0, 70.0, 30.0, 30.0]
        }
    );
    assert!(matches!(
        reason_of(&r, "(id 13)"),
        SkipReason::BadBox { .. }
    ));
    assert!(matches!(
        reason_of(&r, "(id 19)"),
        SkipReason::BadBox { .. }
    ));
    assert_eq!(
        reason_of(&r, "(id 14)"),
        SkipReason::UnknownCategory("9".into())
    );
    assert_eq!(
        reason_of(&r, "(id 15)"),
        SkipReason::UnknownImage("99".into())
    );
    assert_eq!(
        reason_of(&r, "(id 16)"),
        SkipReason::UnknownImage("4".into())
    );
    assert!(matches!(reason_of(&r, "(id 18)"), SkipReason::Malformed(_)));
    assert_eq!(r.skipped.len(), 9, "{:?}", r.skipped);

    let samples = ds.view().samples().unwrap();
    assert_eq!(samples.len(), 3);
    let a = samples[0].detections("ground_truth").unwrap().unwrap();
    assert_eq!(a.detections.len(), 2);
    assert_eq!(a.detections[0].label, "cat");
    assert_box_close(a.detections[0].bounding_box, [0.1, 0.1, 0.2, 0.2]);
    assert_eq!(a.detections[0].attributes["supercategory"], "animal");
    assert!(
        a.detections[0].attributes.get("iscrowd").is_none(),
        "0 is the default"
    );
    assert_eq!(a.detections[1].confidence, Some(0.75));
    assert_box_close(a.detections[1].bounding_box, [0.5, 0.5, 0.5, 0.5]);
    // b.png kept no valid labels: the sample is imported without the field.
    assert!(samples[1].detections("ground_truth").unwrap().is_none());
    // c.jpg had no width/height in the JSON: read from the file.
    let c = samples[2].detections("ground_truth").unwrap().unwrap();
    assert_box_close(c.detections[0].bounding_box, [0.0, 0.0, 1.0, 1.0]);
    assert_eq!(samples[2].get("metadata").unwrap()["width"], 64);
}

#[test]
fn malformed_json_imports_nothing() {
    let env = Env::new();
    let json = fixture(&env);
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, &text[..text.len() / 2]).unwrap();
    let ds = env.dataset("coco");
    let err = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap_err();
    assert!(matches!(err, IoError::Json { .. }), "{err:?}");
    assert_eq!(ds.len().unwrap(), 0);

    std::fs::write(&json, r#"{"annotations": []}"#).unwrap();
    let err = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap_err();
    assert!(matches!(err, IoError::Format { .. }), "{err:?}");
    std::fs::write(&json, r#"{"images": {}}"#).unwrap();
    let err = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap_err();
    assert!(matches!(err, IoError::Format { .. }), "{err:?}");
    assert_eq!(ds.len().unwrap(), 0);

    let err = import_coco(&ds, &env.path("nope.json"), &env.path("coco"), "gt").unwrap_err();
    assert!(matches!(err, IoError::Io { .. }));
    let err = import_coco(&ds, &json, &env.path("coco"), "not valid").unwrap_err();
    assert!(matches!(err, IoError::InvalidField(_)));
}

#[test]
fn a_store_refusal_adds_no_sample() {
    let env = Env::new();
    let json = fixture(&env);
    let ds = env.dataset("coco");
    // `ground_truth` already holds JSON values here: the whole import is refused.
    let img = env.path("coco/images/a.jpg");
    ds.add_sample(simile_dataset::NewSample::new(img).with_field("ground_truth", json!("x")))
        .unwrap();
    let err = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap_err();
    assert!(matches!(err, IoError::Dataset(_)), "{err:?}");
    assert_eq!(ds.len().unwrap(), 1);
}

#[test]
fn coco_round_trip_keeps_images_and_boxes() {
    let env = Env::new();
    let json = fixture(&env);
    let ds = env.dataset("coco");
    import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap();

    let out = env.path("export");
    let e = export_coco(&ds.view(), "ground_truth", &out).unwrap();
    assert_eq!(e.exported, 3);
    assert_eq!(e.labels, 3);
    assert!(out.join("data/a.jpg").is_file() && out.join("data/c.jpg").is_file());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).unwrap()).unwrap();
    assert_eq!(written["categories"][0]["name"], "cat");
    assert_eq!(written["categories"][0]["supercategory"], "animal");
    assert_eq!(written["annotations"][1]["score"], 0.75);

    let ds2 = env.dataset("again");
    let r = import_coco(
        &ds2,
        &out.join("labels.json"),
        &out.join("data"),
        "ground_truth",
    )
    .unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let before = ds.view().samples().unwrap();
    let after = ds2.view().samples().unwrap();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.filepath().file_name(), a.filepath().file_name());
        let bd = b.detections("ground_truth").unwrap().unwrap_or_default();
        let ad = a.detections("ground_truth").unwrap().unwrap_or_default();
        assert_eq!(bd.detections.len(), ad.detections.len());
        for (x, y) in bd.detections.iter().zip(&ad.detections) {
            assert_eq!(x.label, y.label);
            assert_eq!(x.confidence, y.confidence);
            assert_eq!(x.attributes, y.attributes);
            assert_box_close(x.bounding_box, y.bounding_box);
        }
    }
}

#[test]
fn export_reports_missing_media_and_respects_views() {
    let env = Env::new();
    let json = fixture(&env);
    let ds = env.dataset("coco");
    let r = import_coco(&ds, &json, &env.path("coco/images"), "ground_truth").unwrap();
    std::fs::remove_file(env.path("coco/images/b.png")).unwrap();
    let e = export_coco(&ds.view(), "ground_truth", &env.path("out")).unwrap();
    assert_eq!(e.exported, 2);
    assert_eq!(e.skipped.len(), 1);
    assert_eq!(e.skipped[0].reason, SkipReason::MissingFile);

    let err = export_coco(&ds.view(), "nope", &env.path("out3")).unwrap_err();
    assert!(matches!(
        err,
        IoError::Dataset(simile_dataset::DatasetError::UnknownField { .. })
    ));
    let err = export_coco(&ds.view(), "metadata", &env.path("out3")).unwrap_err();
    assert!(matches!(
        err,
        IoError::Dataset(simile_dataset::DatasetError::FieldKind { .. })
    ));

    let view = ds.view().select(&r.added[..1]);
    let e = export_coco(&view, "ground_truth", &env.path("out2")).unwrap();
    assert_eq!((e.exported, e.labels), (1, 2));
}
