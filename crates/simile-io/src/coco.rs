//! COCO detection JSON: import into a `Detections` field and export back.
//!
//! Layout read and written (the subset FiftyOne's `COCODetectionDataset` uses for boxes):
//! `images: [{id, file_name, width, height}]`, `annotations: [{id, image_id, category_id,
//! bbox: [x, y, w, h] in pixels, area, iscrowd, score?}]`, `categories: [{id, name,
//! supercategory?}]`. Exports write `labels.json` plus the images under `data/`.
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use simile_dataset::{
    check_field_name, new_object_id, Dataset, DatasetError, Detection, Detections, FieldKind,
    NewSample, View,
};

use crate::media::{
    absolute, dims_from_metadata, image_dimensions, read_to_string, write_json, MediaCopier,
};
use crate::{ExportReport, ImportReport, IoError, Result, SkipReason};

/// Boxes may overshoot the image by at most this many pixels (rounding in many COCO files);
/// such boxes are clamped to the image. Larger overshoots are skipped as bad boxes.
pub const BOX_TOLERANCE_PX: f64 = 1.0;

const FORMAT: &str = "COCO detection";

/// The id of a COCO item as a map key: integers (also written as `3.0`) or strings.
fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.is_finite()).then(|| format!("{}", f as i64))
            }
        }
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn positive_dim(v: Option<&Value>) -> Option<u32> {
    let f = v?.as_f64()?;
    (f >= 1.0 && f <= f64::from(u32::MAX) && f.fract() == 0.0).then_some(f as u32)
}

fn bbox_of(v: Option<&Value>) -> Option<[f64; 4]> {
    let a = v?.as_array()?;
    if a.len() != 4 {
        return None;
    }
    let mut out = [0.0; 4];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_f64()?;
    }
    Some(out)
}

/// Converts a pixel box to a relative one; `None` if it is not usable.
pub(crate) fn to_relative(b: [f64; 4], width: u32, height: u32) -> Option<[f64; 4]> {
    let (iw, ih) = (f64::from(width), f64::from(height));
    let [x, y, w, h] = b;
    if !b.iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
        return None;
    }
    let t = BOX_TOLERANCE_PX;
    if x < -t || y < -t || x + w > iw + t || y + h > ih + t {
        return None;
    }
    let x0 = x.max(0.0);
    let y0 = y.max(0.0);
    let x1 = (x + w).min(iw);
    let y1 = (y + h).min(ih);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let rel = [x0 / iw, y0 / ih, (x1 - x0) / iw, (y1 - y0) / ih];
    Some(rel)
}

fn field_array<'a>(root: &'a Value, key: &str, json: &Path, required: bool) -> Result<&'a [Value]> {
    match root.get(key) {
        Some(Value::Array(a)) => Ok(a),
        None | Some(Value::Null) if !required => Ok(&[]),
        _ => Err(IoError::Format {
            path: json.to_path_buf(),
            format: FORMAT,
            message: format!("'{key}' must be a list"),
        }),
    }
}

struct CocoImage {
    path: PathBuf,
    width: u32,
    height: u32,
    detections: Vec<Detection>,
}

/// Imports a COCO detection file: one sample per image (absolute paths under `images_dir`),
/// with the boxes as `Detections` in `label_field` (relative `[x, y, w, h]`, labels from the
/// category names, `score` as confidence, `supercategory` and a non-zero `iscrowd` as
/// attributes), and the image size in a `metadata` JSON field.
///
/// Missing or unreadable images, `file_name`s that would leave `images_dir` (absolute, or with
/// `..`), duplicate ids, unknown categories, annotations of unknown images and bad boxes are
/// reported per item; the rest is added in one transaction. A file that is not JSON or has no
/// `images` list, an `images_dir` that is not a directory, and a non-empty `images` list of
/// which nothing could be imported ([`IoError::NothingImported`]) are errors, and nothing is
/// imported.
pub fn import_coco(
    dataset: &Dataset,
    json: &Path,
    images_dir: &Path,
    label_field: &str,
) -> Result<ImportReport> {
    check_field_name(label_field).map_err(|_| IoError::InvalidField(label_field.to_string()))?;
    let text = read_to_string(json)?;
    let root: Value = serde_json::from_str(&text).map_err(|source| IoError::Json {
        path: json.to_path_buf(),
        source,
    })?;
    if !root.is_object() {
        return Err(IoError::Format {
            path: json.to_path_buf(),
            format: FORMAT,
            message: "the top level must be an object".into(),
        });
    }
    let images = field_array(&root, "images", json, true)?;
    let annotations = field_array(&root, "annotations", json, false)?;
    let categories = field_array(&root, "categories", json, false)?;
    if !images_dir.is_dir() {
        return Err(IoError::NotADirectory(images_dir.to_path_buf()));
    }
    let images_dir = absolute(images_dir)?;
    let name = json
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "labels.json".into());
    let mut report = ImportReport::default();

    // Categories: id -> (name, supercategory).
    let mut cats: HashMap<String, (String, Option<Value>)> = HashMap::new();
    for (i, c) in categories.iter().enumerate() {
        let at = format!("{name}#categories[{i}]");
        let id = c.get("id").and_then(id_key);
        let cname = c.get("name").and_then(Value::as_str);
        match (id, cname) {
            (Some(id), Some(n)) => {
                if cats.contains_key(&id) {
                    report.skip(at, SkipReason::DuplicateId(id));
                    continue;
                }
                let sup = c.get("supercategory").filter(|v| !v.is_null()).cloned();
                cats.insert(id, (n.to_string(), sup));
            }
            _ => report.skip(
                at,
                SkipReason::Malformed("a category needs 'id' and 'name'".into()),
            ),
        }
    }

    // Images: id -> index into `kept`.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    let mut kept: Vec<CocoImage> = Vec::new();
    for (i, im) in images.iter().enumerate() {
        let at = format!("{name}#images[{i}]");
        let Some(id) = im.get("id").and_then(id_key) else {
            report.skip(at, SkipReason::Malformed("an image needs an 'id'".into()));
            continue;
        };
        if !seen_ids.insert(id.clone()) {
            report.skip(at, SkipReason::DuplicateId(id));
            continue;
        }
        let Some(file_name) = im.get("file_name").and_then(Value::as_str) else {
            report.skip(
                at,
                SkipReason::Malformed("an image needs a 'file_name'".into()),
            );
            continue;
        };
        let Some(path) = inside(&images_dir, file_name) else {
            report.skip(format!("{at} ({file_name})"), SkipReason::OutsideImagesDir);
            continue;
        };
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let dims = match (
            positive_dim(im.get("width")),
            positive_dim(im.get("height")),
        ) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => image_dimensions(&path),
        };
        let (width, height) = match dims {
            Ok(d) => d,
            Err(e) => {
                report.skip(path.display().to_string(), SkipReason::Unreadable(e));
                continue;
            }
        };
        by_id.insert(id, kept.len());
        kept.push(CocoImage {
            path,
            width,
            height,
            detections: Vec::new(),
        });
    }

    let mut has_labels = vec![false; kept.len()];
    for (i, a) in annotations.iter().enumerate() {
        let at = match a.get("id").and_then(id_key) {
            Some(id) => format!("{name}#annotations[{i}] (id {id})"),
            None => format!("{name}#annotations[{i}]"),
        };
        let (Some(image_id), Some(cat_id)) = (
            a.get("image_id").and_then(id_key),
            a.get("category_id").and_then(id_key),
        ) else {
            report.skip(
                at,
                SkipReason::Malformed("an annotation needs 'image_id' and 'category_id'".into()),
            );
            continue;
        };
        let Some(&idx) = by_id.get(&image_id) else {
            report.skip(at, SkipReason::UnknownImage(image_id));
            continue;
        };
        let Some((label, sup)) = cats.get(&cat_id) else {
            report.skip(at, SkipReason::UnknownCategory(cat_id));
            continue;
        };
        let Some(px) = bbox_of(a.get("bbox")) else {
            report.skip(at, SkipReason::Malformed("'bbox' must be 4 numbers".into()));
            continue;
        };
        let img = &mut kept[idx];
        let Some(rel) = to_relative(px, img.width, img.height) else {
            report.skip(at, SkipReason::BadBox { bbox: px });
            continue;
        };
        let mut attributes = Map::new();
        // `iscrowd: 0` is the default (and always written on export): kept only when set.
        if let Some(c) = a
            .get("iscrowd")
            .filter(|v| !v.is_null() && v.as_f64() != Some(0.0))
        {
            attributes.insert("iscrowd".into(), c.clone());
        }
        if let Some(s) = sup {
            attributes.insert("supercategory".into(), s.clone());
        }
        let det = Detection {
            id: new_object_id(),
            label: label.clone(),
            bounding_box: rel,
            confidence: a
                .get("score")
                .and_then(Value::as_f64)
                .filter(|c| c.is_finite()),
            attributes,
        };
        if det.validate().is_err() {
            report.skip(at, SkipReason::BadBox { bbox: px });
            continue;
        }
        img.detections.push(det);
        has_labels[idx] = true;
    }

    let samples: Vec<NewSample> = kept
        .into_iter()
        .map(|img| {
            let meta = crate::media::image_metadata(&img.path, img.width, img.height);
            let mut s = NewSample::new(img.path).with_field("metadata", meta);
            if !img.detections.is_empty() {
                s = s.with_field(label_field, Detections::new(img.detections));
            }
            s
        })
        .collect();
    if samples.is_empty() && !images.is_empty() {
        return IoError::check_imported(report, || json.display().to_string());
    }
    report.added = dataset.add_samples(samples)?;
    tracing::info!(
        dataset = dataset.name(),
        added = report.added.len(),
        skipped = report.skipped.len(),
        "imported COCO detections"
    );
    Ok(report)
}

/// `dir/relative` when `relative` stays inside `dir`: a relative path of plain components
/// (`.` allowed). Absolute paths, `..` and drive prefixes are refused: paths in an import file
/// must not reach files outside the directory the user named.
pub(crate) fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    use std::path::Component;
    let rel = Path::new(relative);
    let plain = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (plain && !relative.is_empty()).then(|| dir.join(rel))
}

/// Exports a view as a COCO detection dataset: `out_dir/labels.json` and the images copied into
/// `out_dir/data/` (base names kept, `-1`, `-2`, ... appended on collisions).
///
/// `label_field` must be a detections field of the dataset (`IoError::Dataset` otherwise).
/// Categories are the sorted distinct labels (ids from 1); boxes are written in pixels using each
/// image's size (from its `metadata` field, else its header). Samples whose image is missing or
/// unreadable are reported and left out.
pub fn export_coco(view: &View, label_field: &str, out_dir: &Path) -> Result<ExportReport> {
    // A typo in the field name is an error (`UnknownField`), not an export without labels.
    let kind = view.dataset().field_kind(label_field)?;
    if kind != FieldKind::Detections {
        return Err(IoError::Dataset(DatasetError::FieldKind {
            field: label_field.to_string(),
            expected: "detections",
            found: format!("{} values", kind.as_str()),
        }));
    }
    let samples = view.samples()?;
    let mut copier = MediaCopier::new(out_dir.join("data"))?;
    let mut report = ExportReport::default();
    struct Row {
        file_name: String,
        width: u32,
        height: u32,
        detections: Vec<Detection>,
    }
    let mut rows = Vec::with_capacity(samples.len());
    let mut labels: BTreeSet<String> = BTreeSet::new();
    let mut supercats: HashMap<String, Value> = HashMap::new();
    for s in &samples {
        let path = s.filepath();
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let dims = match dims_from_metadata(s.get("metadata")) {
            Some(d) => Ok(d),
            None => image_dimensions(path),
        };
        let (width, height) = match dims {
            Ok(d) => d,
            Err(e) => {
                report.skip(path.display().to_string(), SkipReason::Unreadable(e));
                continue;
            }
        };
        let detections = s
            .detections(label_field)?
            .map(|d| d.detections)
            .unwrap_or_default();
        for d in &detections {
            labels.insert(d.label.clone());
            if let Some(sc) = d.attributes.get("supercategory") {
                supercats
                    .entry(d.label.clone())
                    .or_insert_with(|| sc.clone());
            }
        }
        let file_name = copier.copy(path)?;
        rows.push(Row {
            file_name,
            width,
            height,
            detections,
        });
    }
    let cat_ids: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i + 1))
        .collect();
    let categories: Vec<Value> = labels
        .iter()
        .map(|l| {
            json!({
                "id": cat_ids[l.as_str()],
                "name": l,
                "supercategory": supercats.get(l).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let mut images = Vec::with_capacity(rows.len());
    let mut annotations = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let image_id = i + 1;
        images.push(json!({
            "id": image_id,
            "file_name": r.file_name,
            "width": r.width,
            "height": r.height,
        }));
        let (iw, ih) = (f64::from(r.width), f64::from(r.height));
        for d in &r.detections {
            let [x, y, w, h] = d.bounding_box;
            let bbox = [x * iw, y * ih, w * iw, h * ih];
            let mut a = json!({
                "id": annotations.len() + 1,
                "image_id": image_id,
                "category_id": cat_ids[d.label.as_str()],
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": d.attributes.get("iscrowd").cloned().unwrap_or(json!(0)),
            });
            if let (Some(c), Some(m)) = (d.confidence, a.as_object_mut()) {
                m.insert("score".into(), json!(c));
            }
            annotations.push(a);
        }
    }
    report.exported = rows.len();
    report.labels = annotations.len();
    let doc = json!({
        "info": {"description": format!("exported by simile from dataset '{}'", view.dataset().name())},
        "licenses": [],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    });
    write_json(&out_dir.join("labels.json"), &doc)?;
    tracing::info!(
        exported = report.exported,
        labels = report.labels,
        skipped = report.skipped.len(),
        "exported COCO detections"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_ints_floats_and_strings() {
        assert_eq!(id_key(&json!(3)).as_deref(), Some("3"));
        assert_eq!(id_key(&json!(3.0)).as_deref(), Some("3"));
        assert_eq!(id_key(&json!("a7")).as_deref(), Some("a7"));
        assert_eq!(id_key(&json!(3.5)), None);
        assert_eq!(id_key(&json!(null)), None);
    }

    #[test]
    fn boxes_convert_and_clamp() {
        let r = to_relative([10.0, 20.0, 30.0, 40.0], 100, 200).unwrap();
        assert_eq!(r, [0.1, 0.1, 0.3, 0.2]);
        // Within the tolerance: clamped.
        let r = to_relative([90.0, 0.0, 10.5, 10.0], 100, 100).unwrap();
        assert!((r[0] + r[2] - 1.0).abs() < 1e-12);
        // Outside, empty, negative, NaN: refused.
        assert!(to_relative([95.0, 0.0, 10.0, 10.0], 100, 100).is_none());
        assert!(to_relative([0.0, 0.0, 0.0, 10.0], 100, 100).is_none());
        assert!(to_relative([-5.0, 0.0, 3.0, 10.0], 100, 100).is_none());
        assert!(to_relative([f64::NAN, 0.0, 3.0, 10.0], 100, 100).is_none());
    }
}
