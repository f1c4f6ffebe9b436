//! Imports that used to succeed quietly with nothing (or too much) in them (issue 12).
use serde_json::json;
use simile_io::{import_coco, import_paths, IoError, SkipReason};

use crate::common::{write_image, Env};

fn write_labels(env: &Env, images: serde_json::Value) -> std::path::PathBuf {
    let path = env.path("labels.json");
    std::fs::write(&path, json!({ "images": images }).to_string()).unwrap();
    path
}

#[test]
fn coco_file_names_must_stay_inside_the_images_dir() {
    let env = Env::new();
    let imgs = env.path("root/images");
    write_image(&imgs.join("a.jpg"), 20, 10);
    write_image(&env.path("root/secret.jpg"), 20, 10);
    let labels = write_labels(
        &env,
        json!([
            {"id": 1, "file_name": "a.jpg"},
            {"id": 2, "file_name": "./a.jpg"},
            {"id": 3, "file_name": "../secret.jpg"},
            {"id": 4, "file_name": "../../../../etc/passwd", "width": 10, "height": 10},
            {"id": 5, "file_name": "/etc/passwd", "width": 10, "height": 10},
            {"id": 6, "file_name": "sub/../../secret.jpg"},
            {"id": 7, "file_name": ""},
        ]),
    );
    let ds = env.dataset("c");
    let r = import_coco(&ds, &labels, &imgs, "gt").unwrap();
    assert_eq!(r.added.len(), 2, "a.jpg and ./a.jpg: {:?}", r.skipped);
    let outside: Vec<&str> = r
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::OutsideImagesDir)
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(outside.len(), 5, "{:?}", r.skipped);
    assert!(outside[1].contains("images[3]") && outside[1].contains("etc/passwd"));
    for s in ds.view().samples().unwrap() {
        assert!(s
            .filepath()
            .starts_with(std::fs::canonicalize(&imgs).unwrap()));
    }
}

#[test]
fn a_coco_import_of_nothing_is_an_error() {
    let env = Env::new();
    let imgs = env.path("images");
    std::fs::create_dir_all(&imgs).unwrap();
    let labels = write_labels(&env, json!([{"id": 1, "file_name": "gone.jpg"}]));
    let ds = env.dataset("c");
    // The images directory does not exist.
    let err = import_coco(&ds, &labels, &env.path("nope"), "gt").unwrap_err();
    assert!(
        matches!(err, IoError::NotADirectory(ref p) if p.ends_with("nope")),
        "{err:?}"
    );
    // It exists, but no image of the file does.
    let err = import_coco(&ds, &labels, &imgs, "gt").unwrap_err();
    match &err {
        IoError::NothingImported { skipped, first, .. } => {
            assert_eq!(*skipped, 1);
            assert_eq!(first.reason, SkipReason::MissingFile);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("gone.jpg"), "{err}");
    assert_eq!(ds.len().unwrap(), 0);
    // An empty `images` list is a valid (empty) COCO file.
    let empty = write_labels(&env, json!([]));
    assert!(import_coco(&ds, &empty, &imgs, "gt")
        .unwrap()
        .added
        .is_empty());
}

#[test]
fn paths_that_do_not_exist_are_reported_and_nothing_is_an_error() {
    let env = Env::new();
    let good = env.path("imgs/a.jpg");
    write_image(&good, 8, 8);
    let ds = env.dataset("p");
    let missing = env.path("imgs/missing.jpg");
    let err = import_paths(&ds, std::slice::from_ref(&missing), "list.txt").unwrap_err();
    assert!(
        matches!(err, IoError::NothingImported { ref from, .. } if from == "list.txt"),
        "{err:?}"
    );
    assert_eq!(ds.len().unwrap(), 0);
    let r = import_paths(&ds, &[good.clone(), missing.clone()], "list.txt").unwrap();
    assert_eq!(r.added.len(), 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, missing.display().to_string());
    assert_eq!(r.skipped[0].reason, SkipReason::MissingFile);
    let s = ds.sample(&r.added[0]).unwrap();
    assert!(s.filepath().is_absolute());
    assert!(import_paths(&ds, &[], "list.txt").unwrap().added.is_empty());
}
