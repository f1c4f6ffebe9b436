use std::collections::HashMap;

use simile_dataset::Store;
use simile_io::load_quickstart;
use simile_io::quickstart::{self, CLASSES, NUM_IMAGES, NUM_NEAR_DUPLICATES, PALETTE};

use crate::common::Env;

type Boxes = Vec<(String, Vec<(String, [f64; 4], String)>)>;

fn generated(env: &Env, sub: &str, seed: u64) -> (simile_dataset::Dataset, Boxes) {
    let samples = quickstart::generate(&env.path(sub), seed).unwrap();
    assert_eq!(samples.len(), NUM_IMAGES);
    let store = Store::open(env.path(&format!("home-{sub}"))).unwrap();
    let ds = store.create_dataset("q").unwrap();
    ds.add_samples(samples).unwrap();
    let boxes = ds
        .view()
        .samples()
        .unwrap()
        .iter()
        .map(|s| {
            let dets = s.detections("ground_truth").unwrap().unwrap();
            let name = s
                .filepath()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let list = dets
                .detections
                .into_iter()
                .map(|d| {
                    let color = d.attributes["color"].as_str().unwrap().to_string();
                    (d.label, d.bounding_box, color)
                })
                .collect();
            (name, list)
        })
        .collect();
    (ds, boxes)
}

/// Determinism, box geometry and near-duplicates, on one pair of generations (generating is
/// the slow part of these tests in debug builds).
#[test]
fn same_seed_same_bytes_and_boxes_inside_the_images() {
    let env = Env::new();
    let (ds, a) = generated(&env, "q", quickstart::DEFAULT_SEED);
    let (_, b) = generated(&env, "b", quickstart::DEFAULT_SEED);
    assert_eq!(a, b);
    for i in 0..NUM_IMAGES {
        let name = quickstart::file_name(i);
        let x = std::fs::read(env.path("q").join(&name)).unwrap();
        let y = std::fs::read(env.path("b").join(&name)).unwrap();
        assert!(x == y, "{name} differs between runs");
    }
    check_boxes_and_duplicates(&env, &ds, &a);
}

fn check_boxes_and_duplicates(env: &Env, ds: &simile_dataset::Dataset, boxes: &Boxes) {
    let palette: HashMap<&str, [u8; 3]> = PALETTE.iter().copied().collect();
    let mut per_class: HashMap<String, usize> = HashMap::new();
    for (name, list) in boxes {
        assert!(
            (1..=6).contains(&list.len()),
            "{name}: {} objects",
            list.len()
        );
        for (label, [x, y, w, h], _) in list {
            assert!(CLASSES.contains(&label.as_str()));
            assert!(*x >= 0.0 && *y >= 0.0 && *w > 0.0 && *h > 0.0);
            assert!(
                x + w <= 1.0 && y + h <= 1.0,
                "{name}: {label} box leaves the image"
            );
            *per_class.entry(label.clone()).or_default() += 1;
        }
        // The last object drawn is on top: the pixel at its box centre has its colour
        // (stars and triangles contain their box centre too).
        let img = image::open(env.path("q").join(name)).unwrap().to_rgb8();
        assert_eq!(
            (img.width(), img.height()),
            (quickstart::WIDTH, quickstart::HEIGHT)
        );
        let (_, [x, y, w, h], color) = list.last().unwrap();
        let px = img.get_pixel(
            ((x + w / 2.0) * f64::from(img.width())) as u32,
            ((y + h / 2.0) * f64::from(img.height())) as u32,
        );
        let want = palette[color.as_str()];
        for c in 0..3 {
            let diff = (i32::from(px[c]) - i32::from(want[c])).abs();
            assert!(
                diff <= 45,
                "{name}: centre pixel {px:?} vs {color} {want:?}"
            );
        }
    }
    assert_eq!(per_class.len(), CLASSES.len(), "every class appears");

    // Predictions: valid boxes, confidences in (0, 1), mostly the right class.
    let mut n_pred = 0;
    for s in ds.view().samples().unwrap() {
        let p = s.detections("predictions").unwrap().unwrap();
        for d in &p.detections {
            let c = d.confidence.unwrap();
            assert!(c > 0.0 && c < 1.0);
            let [x, y, w, h] = d.bounding_box;
            assert!(
                x >= 0.0
                    && y >= 0.0
                    && w > 0.0
                    && h > 0.0
                    && x + w <= 1.0 + 1e-9
                    && y + h <= 1.0 + 1e-9
            );
            n_pred += 1;
        }
    }
    let n_gt: usize = boxes.iter().map(|(_, l)| l.len()).sum();
    assert!(
        n_pred > n_gt * 3 / 4 && n_pred < n_gt * 5 / 4,
        "{n_pred} predictions for {n_gt} objects"
    );

    // Near-duplicates point at existing originals with the same objects.
    let samples = ds.view().samples().unwrap();
    let by_id: HashMap<&str, &simile_dataset::Sample> =
        samples.iter().map(|s| (s.id(), s)).collect();
    let dups: Vec<_> = samples
        .iter()
        .filter_map(|s| s.get("near_duplicate_of").map(|o| (s, o.as_str().unwrap())))
        .collect();
    assert_eq!(dups.len(), NUM_NEAR_DUPLICATES);
    for (dup, orig) in dups {
        let o = by_id[orig];
        assert!(o.get("near_duplicate_of").is_none());
        let a = dup.detections("ground_truth").unwrap().unwrap();
        let b = o.detections("ground_truth").unwrap().unwrap();
        assert_eq!(a.detections.len(), b.detections.len());
        for (p, q) in a.detections.iter().zip(&b.detections) {
            assert_eq!(p.label, q.label);
            let shift =
                (p.bounding_box[0] - q.bounding_box[0]).abs() * f64::from(quickstart::WIDTH);
            assert!(shift <= 3.0 + 1e-9);
            assert!(
                (p.bounding_box[2] - q.bounding_box[2]).abs() < 1e-12,
                "same size"
            );
        }
    }
}

#[test]
fn load_quickstart_is_idempotent_and_restores_images() {
    let env = Env::new();
    let store = Store::open(env.path("home")).unwrap();
    let dir = quickstart::default_dir(&store);
    let ds = load_quickstart(&store, &dir).unwrap();
    assert_eq!(ds.name(), quickstart::DATASET_NAME);
    assert_eq!(ds.len().unwrap(), NUM_IMAGES);
    let ids = ds.view().ids().unwrap();
    let first = ds.sample(&ids[0]).unwrap();
    let bytes = std::fs::read(first.filepath()).unwrap();

    std::fs::remove_file(first.filepath()).unwrap();
    let again = load_quickstart(&store, &dir).unwrap();
    assert_eq!(
        again.view().ids().unwrap(),
        ids,
        "same samples, nothing added"
    );
    assert_eq!(
        std::fs::read(first.filepath()).unwrap(),
        bytes,
        "image restored"
    );
    assert_eq!(store.list_datasets().unwrap(), [quickstart::DATASET_NAME]);
}
