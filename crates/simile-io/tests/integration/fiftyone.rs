use serde_json::{json, Value};
use simile_dataset::{FieldKind, Store};
use simile_io::{export_fiftyone, import_fiftyone, IoError, SkipReason};

use crate::common::{assert_box_close, write_image, Env};

const S1: &str = "65a1b2c3d4e5f60718293a01";
const S2: &str = "65a1b2c3d4e5f60718293a02";
const S3: &str = "65a1b2c3d4e5f60718293a03";
const L1: &str = "65a1b2c3d4e5f60718293b01";
const L2: &str = "65a1b2c3d4e5f60718293b02";
const L3: &str = "65a1b2c3d4e5f60718293b03";
const DS: &str = "65a1b2c3d4e5f60718293c00";

/// `np.save` of a float32 vector, zlib-compressed and base64-encoded, as FiftyOne's JSON
/// exports hold a `VectorField`.
fn binary_vector(v: &[f32]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        v.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for x in v {
        npy.extend_from_slice(&x.to_le_bytes());
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&npy).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
    format!(r#"{{"$binary": {{"base64": "{b64}", "subType": "00"}}}}"#)
}

/// A directory shaped like `dataset.export(export_dir, fo.types.FiftyOneDataset)` output.
fn fixture(env: &Env) -> std::path::PathBuf {
    let dir = env.path("fo");
    write_image(&dir.join("data/000001.jpg"), 64, 48);
    write_image(&dir.join("data/000002.jpg"), 32, 32);
    let metadata = json!({
        "name": "quickstart-export",
        "version": "0.23.8",
        "media_type": "image",
        "sample_fields": [
            {"name": "id", "ftype": "fiftyone.core.fields.ObjectIdField", "db_field": "_id"},
            {"name": "filepath", "ftype": "fiftyone.core.fields.StringField"},
            {"name": "embedding", "ftype": "fiftyone.core.fields.VectorField"},
            {"name": "ground_truth", "ftype": "fiftyone.core.fields.EmbeddedDocumentField",
             "embedded_doc_type": "fiftyone.core.labels.Detections"},
        ],
        "brain_methods": {},
    });
    std::fs::write(dir.join("metadata.json"), metadata.to_string()).unwrap();
    // Written by hand like `bson.json_util.dumps`: `$oid`, `$date` and a bare NaN.
    let clip = binary_vector(&[1.5, -2.5, 0.125]);
    let samples = format!(
        r#"{{"samples": [
{{"_id": {{"$oid": "{S1}"}}, "filepath": "data/000001.jpg", "tags": ["validation"],
  "metadata": {{"_cls": "ImageMetadata", "width": 64, "height": 48}},
  "_media_type": "image", "_rand": 0.42, "_dataset_id": {{"$oid": "{DS}"}},
  "created_at": {{"$date": "2024-05-01T10:00:00Z"}}, "last_modified_at": {{"$date": 1714557600000}},
  "uniqueness": 0.5, "embedding": [0.25, -1.0, 2.0], "clip": {clip},
  "weather": {{"_id": {{"$oid": "{L3}"}}, "_cls": "Classification", "label": "sunny"}},
  "ground_truth": {{"_cls": "Detections", "detections": [
    {{"_id": {{"$oid": "{L1}"}}, "_cls": "Detection", "attributes": {{}}, "tags": [], "label": "cat",
      "bounding_box": [0.1, 0.2, 0.3, 0.4], "confidence": NaN, "iscrowd": 0, "supercategory": "animal"}},
    {{"_id": {{"$oid": "{L2}"}}, "_cls": "Detection", "attributes": {{}}, "tags": ["checked"], "label": "dog",
      "bounding_box": [0.5, 0.5, 0.5, 0.5], "confidence": 0.9}},
    {{"_id": {{"$oid": "65a1b2c3d4e5f60718293b09"}}, "_cls": "Detection", "label": "bad",
      "bounding_box": [0.9, 0.9, 0.5, 0.5]}}
  ]}}}},
{{"_id": {{"$oid": "{S2}"}}, "filepath": "data/000002.jpg", "tags": [], "metadata": null,
  "_media_type": "image", "uniqueness": 0.25, "ground_truth": null}},
{{"_id": {{"$oid": "{S3}"}}, "filepath": "data/missing.jpg", "tags": []}},
{{"_id": {{"$oid": "{S2}"}}, "filepath": "data/000002.jpg", "tags": []}},
{{"filepath": "data/000002.jpg"}}
]}}"#
    );
    std::fs::write(dir.join("samples.json"), samples).unwrap();
    dir
}

#[test]
fn imports_fiftyone_export_keeping_ids() {
    let env = Env::new();
    let dir = fixture(&env);
    let ds = env.dataset("fo");
    let r = import_fiftyone(&ds, &dir).unwrap();
    assert_eq!(r.added, vec![S1.to_string(), S2.to_string()]);
    let reasons: Vec<&SkipReason> = r.skipped.iter().map(|s| &s.reason).collect();
    assert_eq!(r.skipped.len(), 4, "{:?}", r.skipped);
    assert!(matches!(reasons[0], SkipReason::BadBox { .. }));
    assert!(r.skipped[0].path.contains("ground_truth[2]"));
    assert_eq!(*reasons[1], SkipReason::MissingFile);
    assert_eq!(*reasons[2], SkipReason::DuplicateId(S2.into()));
    assert!(matches!(reasons[3], SkipReason::Malformed(_)));

    let s = ds.sample(S1).unwrap();
    assert!(s.filepath().is_absolute() && s.filepath().ends_with("data/000001.jpg"));
    assert_eq!(s.get("uniqueness"), Some(&json!(0.5)));
    assert_eq!(s.get("tags"), Some(&json!(["validation"])));
    assert_eq!(s.get("weather").unwrap()["label"], "sunny");
    assert_eq!(s.get("weather").unwrap()["_id"], L3);
    assert!(s.get("created_at").is_none() && s.get("_rand").is_none());
    let gt = s.detections("ground_truth").unwrap().unwrap();
    let ids: Vec<&str> = gt.detections.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [L1, L2]);
    assert_eq!(gt.detections[0].confidence, None, "NaN becomes unset");
    assert_eq!(gt.detections[0].attributes["supercategory"], "animal");
    assert_eq!(gt.detections[1].attributes["tags"], json!(["checked"]));
    assert_eq!(gt.detections[1].confidence, Some(0.9));
    assert_eq!(ds.field_kind("embedding").unwrap(), FieldKind::Vector);
    assert_eq!(
        ds.vectors("embedding", &[S1.to_string()]).unwrap()[0],
        Some(vec![0.25, -1.0, 2.0])
    );
    assert_eq!(
        ds.vectors("clip", &[S1.to_string()]).unwrap()[0],
        Some(vec![1.5, -2.5, 0.125]),
        "FiftyOne's binary vectors are decoded"
    );
    let label_ids = ds.view().label_ids("ground_truth").unwrap();
    assert_eq!(
        label_ids,
        [
            (S1.to_string(), L1.to_string()),
            (S1.to_string(), L2.to_string())
        ]
    );

    // Importing again: the ids are taken, nothing is added twice.
    let again = import_fiftyone(&ds, &dir).unwrap();
    assert!(again.added.is_empty());
    assert!(again
        .skipped
        .iter()
        .any(|s| matches!(&s.reason, SkipReason::AlreadyInDataset(id) if id.starts_with(S1))));
    assert_eq!(ds.len().unwrap(), 2);

    // Another dataset of the same store can hold the same export, ids kept.
    let other = env.dataset("fo_copy");
    let copy = import_fiftyone(&other, &dir).unwrap();
    assert_eq!(copy.added.len(), 2);
    assert_eq!(other.view().ids().unwrap(), ds.view().ids().unwrap());
}

#[test]
fn fiftyone_round_trip_keeps_ids_fields_and_boxes() {
    let env = Env::new();
    let dir = fixture(&env);
    let ds = env.dataset("fo");
    import_fiftyone(&ds, &dir).unwrap();
    let out = env.path("export");
    let e = export_fiftyone(&ds.view(), &out).unwrap();
    assert_eq!((e.exported, e.labels), (2, 2));
    let text = std::fs::read_to_string(out.join("samples.json")).unwrap();
    assert!(text.contains(&format!(r#"{{"$oid":"{S1}"}}"#)));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["samples"][0]["filepath"], "data/000001.jpg");
    assert_eq!(doc["samples"][0]["_media_type"], "image");
    assert_eq!(doc["samples"][0]["ground_truth"]["_cls"], "Detections");
    assert_eq!(
        doc["samples"][0]["ground_truth"]["detections"][0]["_id"]["$oid"],
        L1
    );
    assert_eq!(
        doc["samples"][0]["weather"]["_id"]["$oid"], L3,
        "label documents kept as JSON get their ObjectId back"
    );
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["media_type"], "image");
    let fields: Vec<&str> = meta["sample_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for f in [
        "id",
        "filepath",
        "tags",
        "metadata",
        "ground_truth",
        "embedding",
        "uniqueness",
    ] {
        assert!(fields.contains(&f), "{f} declared in {fields:?}");
    }
    let weather = meta["sample_fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "weather")
        .unwrap();
    assert_eq!(
        weather["embedded_doc_type"],
        "fiftyone.core.labels.Classification"
    );

    // Into a fresh store (sample ids are unique per store).
    let store2 = Store::open(env.path("home2")).unwrap();
    let ds2 = store2.create_dataset("again").unwrap();
    let r = import_fiftyone(&ds2, &out).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.added, vec![S1.to_string(), S2.to_string()]);
    for id in [S1, S2] {
        let a = ds.sample(id).unwrap();
        let b = ds2.sample(id).unwrap();
        assert_eq!(a.filepath().file_name(), b.filepath().file_name());
        let mut fa = a.fields().clone();
        let mut fb = b.fields().clone();
        let ga = fa.remove("ground_truth");
        let gb = fb.remove("ground_truth");
        assert_eq!(fa, fb, "scalar fields survive the round trip");
        assert_eq!(ga.is_some(), gb.is_some());
        let da = a.detections("ground_truth").unwrap().unwrap_or_default();
        let db = b.detections("ground_truth").unwrap().unwrap_or_default();
        assert_eq!(da.detections.len(), db.detections.len());
        for (x, y) in da.detections.iter().zip(&db.detections) {
            assert_eq!(
                (&x.id, &x.label, x.confidence),
                (&y.id, &y.label, y.confidence)
            );
            assert_eq!(x.attributes, y.attributes);
            assert_box_close(x.bounding_box, y.bounding_box);
        }
    }
    assert_eq!(
        ds2.vectors("embedding", &[S1.to_string()]).unwrap()[0],
        Some(vec![0.25, -1.0, 2.0])
    );
    assert_eq!(
        ds2.vectors("clip", &[S1.to_string()]).unwrap()[0],
        Some(vec![1.5, -2.5, 0.125])
    );
    assert!(
        text.contains("\"$binary\""),
        "vectors written as FiftyOne binary"
    );
}

#[test]
fn per_sample_files_and_bad_inputs() {
    let env = Env::new();
    let dir = env.path("fo_dirs");
    write_image(&dir.join("data/x.png"), 16, 16);
    std::fs::create_dir_all(dir.join("samples")).unwrap();
    let doc = json!({"_id": {"$oid": S1}, "filepath": "data/x.png", "note": "hi"});
    std::fs::write(dir.join("samples/000001-x.json"), doc.to_string()).unwrap();
    let ds = env.dataset("d");
    let r = import_fiftyone(&ds, &dir).unwrap();
    assert_eq!(r.added, vec![S1.to_string()]);
    assert_eq!(ds.sample(S1).unwrap().get("note"), Some(&json!("hi")));

    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ds2 = env.dataset("e");
    assert!(matches!(
        import_fiftyone(&ds2, &empty),
        Err(IoError::Format { .. })
    ));
    std::fs::write(empty.join("samples.json"), "{\"samples\": [").unwrap();
    assert!(matches!(
        import_fiftyone(&ds2, &empty),
        Err(IoError::Json { .. })
    ));
    std::fs::write(empty.join("samples.json"), "{\"samples\": []}").unwrap();
    std::fs::write(empty.join("metadata.json"), "{\"media_type\": \"video\"}").unwrap();
    assert!(matches!(
        import_fiftyone(&ds2, &empty),
        Err(IoError::Format { .. })
    ));
    assert_eq!(ds2.len().unwrap(), 0);
}

/// A `samples.json` saved with a UTF-8 byte-order mark (as some Windows editors do) that also
/// holds a bare `NaN` once made the import panic; it imports like the same file without it.
#[test]
fn samples_json_with_byte_order_mark_and_nan_imports() {
    let env = Env::new();
    let dir = env.path("fo_bom");
    write_image(&dir.join("data/x.png"), 16, 16);
    let text = format!(
        "\u{feff}{{\"samples\": [{{\"_id\": {{\"$oid\": \"{S1}\"}}, \"filepath\": \"data/x.png\", \
         \"score\": NaN, \"note\": \"caf\u{e9} NaN\", \"uniqueness\": 0.5}}]}}"
    );
    std::fs::write(dir.join("samples.json"), text).unwrap();
    std::fs::write(
        dir.join("metadata.json"),
        "\u{feff}{\"media_type\": \"image\"}",
    )
    .unwrap();
    let ds = env.dataset("bom");
    let r = import_fiftyone(&ds, &dir).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.added, vec![S1.to_string()]);
    let s = ds.sample(S1).unwrap();
    assert_eq!(s.get("note"), Some(&json!("caf\u{e9} NaN")));
    assert_eq!(s.get("uniqueness"), Some(&json!(0.5)));
    assert!(s.get("score").is_none(), "NaN becomes unset");
}

/// Documents written by FiftyOne 1.22.1 itself (`Sample.to_mongo_dict` + `bson.json_util`,
/// see `assets/fiftyone-1.22.1/make_and_check.py`): `$numberDouble` NaN, `$binary` vectors,
/// `created_at: null`, a `Classification` field.
#[test]
fn imports_documents_written_by_fiftyone() {
    let env = Env::new();
    let dir = env.path("fo122");
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/assets/fiftyone-1.22.1");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["samples.json", "metadata.json"] {
        std::fs::copy(assets.join(f), dir.join(f)).unwrap();
    }
    for i in 0..3 {
        write_image(&dir.join(format!("data/{i:06}.jpg")), 32, 24);
    }
    let ids: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(assets.join("ids.json")).unwrap()).unwrap();

    let ds = env.dataset("fo");
    let r = import_fiftyone(&ds, &dir).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let mut want: Vec<&String> = ids.keys().collect();
    want.sort();
    assert_eq!(r.added.iter().collect::<Vec<_>>(), want);
    for (i, id) in r.added.iter().enumerate() {
        let s = ds.sample(id).unwrap();
        let gt = s.detections("ground_truth").unwrap().unwrap();
        let label_ids: Vec<Value> = gt.detections.iter().map(|d| json!(d.id)).collect();
        assert_eq!(Value::Array(label_ids), ids[id]);
        assert_eq!(gt.detections[0].attributes["color"], "red");
        assert_eq!(gt.detections[0].confidence, Some(0.9));
        assert_eq!(gt.detections[1].confidence, None, "$numberDouble NaN");
        assert_eq!(s.get("weather").unwrap()["label"], "sunny");
        assert_eq!(s.get("metadata").unwrap()["width"], 320);
        assert!(s.get("created_at").is_none());
        assert_eq!(
            ds.vectors("embedding", std::slice::from_ref(id)).unwrap()[0],
            Some(vec![i as f32, 2.0, 3.5])
        );
    }
}
