use simile_io::{import_image_dir, ImageDirOptions, IoError, SkipReason};

use crate::common::{write_image, Env};

#[test]
fn imports_images_recursively_and_reports_bad_files() {
    let env = Env::new();
    let root = env.path("imgs");
    write_image(&root.join("b.jpg"), 40, 30);
    write_image(&root.join("sub/a.png"), 20, 10);
    write_image(&root.join("sub/deeper/c.bmp"), 8, 8);
    std::fs::write(root.join("broken.jpg"), b"this is not a jpeg").unwrap();
    std::fs::write(root.join("notes.txt"), b"hello").unwrap();
    write_image(&root.join(".hidden.jpg"), 8, 8);
    let ds = env.dataset("folder");

    let report = import_image_dir(&ds, &root, &ImageDirOptions::default()).unwrap();
    assert_eq!(report.added.len(), 3);
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    let broken = report
        .skipped
        .iter()
        .find(|s| s.path.ends_with("broken.jpg"))
        .unwrap();
    assert!(matches!(broken.reason, SkipReason::Unreadable(_)));
    let txt = report
        .skipped
        .iter()
        .find(|s| s.path.ends_with("notes.txt"))
        .unwrap();
    assert_eq!(txt.reason, SkipReason::NotAnImage);

    let samples = ds.view().samples().unwrap();
    let names: Vec<String> = samples
        .iter()
        .map(|s| {
            assert!(s.filepath().is_absolute());
            s.filepath()
                .strip_prefix(std::fs::canonicalize(&root).unwrap())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["b.jpg", "sub/a.png", "sub/deeper/c.bmp"]);
    let meta = samples[1].get("metadata").unwrap();
    assert_eq!(meta["width"], 20);
    assert_eq!(meta["height"], 10);
    assert_eq!(meta["mime_type"], "image/png");
}

#[test]
fn options_control_recursion_metadata_and_decoding() {
    let env = Env::new();
    let root = env.path("imgs");
    write_image(&root.join("a.jpg"), 64, 48);
    write_image(&root.join("sub/b.jpg"), 64, 48);
    // A truncated PNG: its header reads fine, its pixels do not. (The JPEG decoder pads
    // truncated files instead of failing, so a PNG is used here.)
    write_image(&root.join("full.png"), 64, 48);
    let full = std::fs::read(root.join("full.png")).unwrap();
    std::fs::remove_file(root.join("full.png")).unwrap();
    std::fs::write(root.join("t.png"), &full[..full.len() / 2]).unwrap();

    let ds = env.dataset("flat");
    let opts = ImageDirOptions::new().recursive(false).metadata_field(None);
    let r = import_image_dir(&ds, &root, &opts).unwrap();
    assert_eq!(r.added.len(), 2, "a.jpg and the truncated t.png");
    assert!(ds
        .view()
        .first()
        .unwrap()
        .unwrap()
        .get("metadata")
        .is_none());

    let ds2 = env.dataset("decoded");
    let r = import_image_dir(&ds2, &root, &ImageDirOptions::new().full_decode(true)).unwrap();
    assert_eq!(r.added.len(), 2, "a.jpg and sub/b.jpg");
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].path.ends_with("t.png"));
    assert!(matches!(r.skipped[0].reason, SkipReason::Unreadable(_)));
}

#[test]
fn a_missing_directory_is_an_error() {
    let env = Env::new();
    let ds = env.dataset("x");
    let err = import_image_dir(&ds, &env.path("nope"), &ImageDirOptions::default()).unwrap_err();
    assert!(matches!(err, IoError::NotADirectory(_)));
    let err = import_image_dir(
        &ds,
        env.dir.path(),
        &ImageDirOptions::new().metadata_field(Some("bad name")),
    )
    .unwrap_err();
    assert!(matches!(err, IoError::InvalidField(_)));
    assert_eq!(ds.len().unwrap(), 0);
}
