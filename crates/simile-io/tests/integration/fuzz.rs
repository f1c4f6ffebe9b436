//! Fuzz harnesses (`simile-fuzz`): COCO and FiftyOne imports of mutated valid files. The
//! property: never a panic, always `Ok` or a typed `IoError`; an error adds nothing; an `Ok`
//! adds exactly the reported samples, and a COCO sample's file is inside the images directory.
//! Short pass by default; `SIMILE_FUZZ_SECONDS=N` runs long (`cargo xtask fuzz`).
use std::cell::Cell;
use std::path::Path;

use serde_json::{json, Value};
use simile_fuzz::proptest::prelude::*;
use simile_fuzz::{check, json_from, Bytes};
use simile_io::{import_coco, import_fiftyone};

use crate::common::{write_image, Env};

fn coco_seed() -> Value {
    json!({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 20},
            {"id": 2, "file_name": "sub/b.png", "width": 30, "height": 30},
            {"id": 3, "file_name": "./c.jpg"},
        ],
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [20, 10, 20, 10], "score": 0.75},
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0.5, 0.5, 29.5, 29.5]},
            {"id": 13, "image_id": 3, "category_id": 2, "bbox": [3, 3, 4, 4]},
        ],
    })
}

/// Imports `text` as a new dataset; checks the property.
fn import_checked(
    env: &Env,
    n: &Cell<usize>,
    oks: &Cell<usize>,
    text: &Bytes,
    import: impl Fn(
        &simile_dataset::Dataset,
        &Path,
    ) -> Result<simile_io::ImportReport, simile_io::IoError>,
    file: &Path,
    inside: Option<&Path>,
) -> Result<(), TestCaseError> {
    n.set(n.get() + 1);
    std::fs::write(file, &text.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ds = env.dataset(&format!("d{}", n.get()));
    match import(&ds, file) {
        Ok(report) => {
            if !report.added.is_empty() {
                oks.set(oks.get() + 1);
            }
            prop_assert_eq!(
                ds.len().unwrap(),
                report.added.len(),
                "Ok adds what it reports"
            );
            if let Some(dir) = inside {
                for s in ds.view().samples().unwrap() {
                    prop_assert!(
                        s.filepath().starts_with(dir),
                        "{} is outside {}",
                        s.filepath().display(),
                        dir.display()
                    );
                }
            }
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            prop_assert_eq!(ds.len().unwrap(), 0, "an error adds nothing: {}", e);
        }
    }
    Ok(())
}

#[test]
fn coco_imports_of_mutated_files_are_ok_or_typed_errors() {
    let env = Env::new();
    let imgs = env.path("coco/images");
    write_image(&imgs.join("a.jpg"), 40, 20);
    write_image(&imgs.join("sub/b.png"), 30, 30);
    write_image(&imgs.join("c.jpg"), 8, 8);
    // A file next to the images dir that a path escaping it could reach.
    write_image(&env.path("coco/secret.jpg"), 8, 8);
    let imgs = imgs.canonicalize().unwrap();
    let file = env.path("coco/labels.json");
    let n = Cell::new(0);
    let oks = Cell::new(0);
    check("coco", 96, json_from(coco_seed()), |text| {
        import_checked(
            &env,
            &n,
            &oks,
            &text,
            |ds, f| import_coco(ds, f, &imgs, "gt"),
            &file,
            Some(&imgs),
        )
    });
    // The mutations leave enough intact that imports get deep (not only parse errors).
    assert!(
        oks.get() * 4 > n.get(),
        "{} of {} imported something",
        oks.get(),
        n.get()
    );
}

#[test]
fn fiftyone_imports_of_mutated_exports_are_ok_or_typed_errors() {
    let assets =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/assets/fiftyone-1.22.1");
    let samples: Value =
        serde_json::from_slice(&std::fs::read(assets.join("samples.json")).unwrap()).unwrap();
    let metadata = std::fs::read(assets.join("metadata.json")).unwrap();
    let env = Env::new();
    let dir = env.path("export");
    for s in samples["samples"].as_array().unwrap() {
        write_image(&dir.join(s["filepath"].as_str().unwrap()), 16, 12);
    }
    std::fs::write(dir.join("metadata.json"), &metadata).unwrap();
    let n = Cell::new(0);
    let oks = Cell::new(0);
    check("fiftyone samples.json", 64, json_from(samples), |text| {
        import_checked(
            &env,
            &n,
            &oks,
            &text,
            import_fiftyone_at(&dir),
            &dir.join("samples.json"),
            None,
        )
    });
    assert!(
        oks.get() * 4 > n.get(),
        "{} of {} imported something",
        oks.get(),
        n.get()
    );
    let meta: Value = serde_json::from_slice(&metadata).unwrap();
    let samples = std::fs::read(assets.join("samples.json")).unwrap();
    std::fs::write(dir.join("samples.json"), &samples).unwrap();
    check("fiftyone metadata.json", 32, json_from(meta), |text| {
        import_checked(
            &env,
            &n,
            &oks,
            &text,
            import_fiftyone_at(&dir),
            &dir.join("metadata.json"),
            None,
        )
    });
}

fn import_fiftyone_at(
    dir: &Path,
) -> impl Fn(&simile_dataset::Dataset, &Path) -> Result<simile_io::ImportReport, simile_io::IoError> + '_
{
    move |ds, _| import_fiftyone(ds, dir)
}
