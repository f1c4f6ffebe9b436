//! Images by sample id: the original (`/media`), a thumbnail (`/thumb`) and a box crop
//! (`/crop`). No route takes a path: a file is served only when it is the filepath of a sample
//! in the store, is a regular file (a symlink only when it stays inside its own folder) and
//! starts like an image. Thumbnails and crops are made once, on the blocking pool bounded by the
//! cores, and cached on disk under `<home>/app-cache`, keyed by the file's path, size and
//! modification time (a changed file is re-made).
use std::io::Read;
use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use image::{DynamicImage, ImageReader, Limits};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use simile::{Sample, Simile};

use crate::api::blocking;
use crate::{ApiError, AppState};

/// Longest side of thumbnails and crops, in pixels.
pub const THUMB_SIZE: u32 = 320;
/// Bumped when the thumbnail recipe changes (invalidates the cache).
const RECIPE: &str = "v1";
/// Decoding limits: a file that claims a huge size is an error, not an abort.
const MAX_SIDE: u32 = 60_000;
const MAX_ALLOC: u64 = 1 << 30;

#[derive(Deserialize)]
pub(crate) struct MediaParams {
    dataset: Option<String>,
    field: Option<String>,
}

fn no_media(what: &str) -> ApiError {
    ApiError::not_found("unknown_media", format!("no image for {what}"))
}

/// The sample behind an id: in `dataset` when given, else the first dataset that has it.
fn find_sample(s: &Simile, dataset: Option<&str>, id: &str) -> Result<Sample, ApiError> {
    if !is_object_id(id) {
        return Err(no_media(&format!("id {id:?}")));
    }
    let names = match dataset {
        Some(d) => vec![d.to_string()],
        None => s.list_datasets()?,
    };
    for name in names {
        let ds = match s.load_dataset(&name) {
            Ok(ds) => ds,
            Err(_) => continue,
        };
        if let Ok(sample) = ds.sample(id) {
            return Ok(sample);
        }
    }
    Err(no_media(&format!("sample {id}")))
}

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What kind of image a file's first bytes say it is.
fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if starts(b"BM") {
        Some("image/bmp")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("image/tiff")
    } else {
        None
    }
}

/// A sample's file, checked: a regular file (a symlink only if its target stays inside the
/// folder that holds the link), starting like an image. Returns its path and content type.
fn servable(sample: &Sample) -> Result<(PathBuf, &'static str, std::fs::Metadata), ApiError> {
    let path = sample.filepath();
    let what = || no_media(&format!("sample {}", sample.id()));
    let link = std::fs::symlink_metadata(path).map_err(|_| what())?;
    if link.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(|_| what())?;
        let folder = path
            .parent()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .ok_or_else(what)?;
        if !target.starts_with(&folder) {
            return Err(what());
        }
    }
    let meta = std::fs::metadata(path).map_err(|_| what())?;
    if !meta.is_file() {
        return Err(what());
    }
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|_| what())?;
    let n = f.read(&mut head).map_err(|_| what())?;
    let kind = sniff(&head[..n]).ok_or_else(what)?;
    Ok((path.to_path_buf(), kind, meta))
}

pub(crate) async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<MediaParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let (path, kind, meta) = blocking(&state, move |s| {
        let sample = find_sample(s, q.dataset.as_deref(), &id)?;
        servable(&sample)
    })
    .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| no_media("that sample"))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CONTENT_LENGTH, HeaderValue::from(meta.len())),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

/// A cached JPEG of `what` made by `make`, answered with an ETag (304 when the browser has it).
async fn cached_jpeg(
    state: &AppState,
    headers: &HeaderMap,
    key: String,
    make: impl FnOnce() -> Result<DynamicImage, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let etag = format!("\"{key}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let file = state.cache_dir.join(&key[..2]).join(format!("{key}.jpg"));
    let bytes = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(_) => {
            // Image work is bounded by the cores so API calls stay fast meanwhile.
            let _slot = state.image_slots.acquire().await.map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "the server is stopping",
                )
            })?;
            let file2 = file.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
                let img = make()?;
                let bytes = encode_jpeg(&img)?;
                write_atomically(&file2, &bytes);
                Ok(bytes)
            })
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "making the image failed",
                )
            })??
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

/// Cache key: recipe, what is made, the file's canonical path, size and mtime.
fn cache_key(path: &FsPath, meta: &std::fs::Metadata, what: &str) -> String {
    let mut h = Sha256::new();
    h.update(RECIPE.as_bytes());
    h.update(what.as_bytes());
    h.update(
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .to_string_lossy()
            .as_bytes(),
    );
    h.update(meta.len().to_le_bytes());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    h.update(mtime.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Decodes an image with limits (a lying header is an error, never an abort).
fn decode(path: &FsPath) -> Result<DynamicImage, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image",
            format!("cannot decode {}: {e}", path.display()),
        )
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| bad(&e))?
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| bad(&e))
}

fn encode_jpeg(img: &DynamicImage) -> Result<Vec<u8>, ApiError> {
    let rgb = img.to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&rgb)
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot encode a thumbnail: {e}"),
            )
        })?;
    Ok(out)
}

/// Best effort: a cache write that fails only costs a re-make later.
fn write_atomically(file: &FsPath, bytes: &[u8]) {
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

pub(crate) async fn thumb(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<MediaParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let (path, _, meta) = blocking(&state, move |s| {
        let sample = find_sample(s, q.dataset.as_deref(), &id)?;
        servable(&sample)
    })
    .await?;
    let key = cache_key(&path, &meta, &format!("thumb{THUMB_SIZE}"));
    cached_jpeg(&state, &headers, key, move || Ok(shrink(decode(&path)?))).await
}

pub(crate) async fn crop(
    State(state): State<AppState>,
    Path((id, label_id)): Path<(String, String)>,
    q: Result<Query<MediaParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let field = q
        .field
        .clone()
        .ok_or_else(|| ApiError::bad_request("a crop needs ?field=<detections field>"))?;
    let (path, meta, bbox) = blocking(&state, move |s| {
        let sample = find_sample(s, q.dataset.as_deref(), &id)?;
        let dets = sample
            .detections(&field)?
            .ok_or_else(|| no_media(&format!("label {label_id}")))?;
        let det = dets
            .detections
            .into_iter()
            .find(|d| d.id == label_id)
            .ok_or_else(|| no_media(&format!("label {label_id}")))?;
        let (path, _, meta) = servable(&sample)?;
        Ok((path, meta, det.bounding_box))
    })
    .await?;
    let what = format!("crop{THUMB_SIZE}:{bbox:?}");
    let key = cache_key(&path, &meta, &what);
    cached_jpeg(&state, &headers, key, move || {
        let img = decode(&path)?;
        Ok(shrink(crop_box(&img, bbox)))
    })
    .await
}

/// Fits an image in `THUMB_SIZE` × `THUMB_SIZE`, keeping its aspect ratio; never enlarges.
fn shrink(img: DynamicImage) -> DynamicImage {
    if img.width() <= THUMB_SIZE && img.height() <= THUMB_SIZE {
        img
    } else {
        img.thumbnail(THUMB_SIZE, THUMB_SIZE)
    }
}

/// The pixels of a relative `[x, y, w, h]` box (at least one pixel, clamped to the image).
fn crop_box(img: &DynamicImage, [x, y, w, h]: [f64; 4]) -> DynamicImage {
    let (iw, ih) = (img.width().max(1) as f64, img.height().max(1) as f64);
    let px = (x * iw).floor().clamp(0.0, iw - 1.0) as u32;
    let py = (y * ih).floor().clamp(0.0, ih - 1.0) as u32;
    let pw = ((w * iw).round() as u32).clamp(1, img.width() - px);
    let ph = ((h * ih).round() as u32).clamp(1, img.height() - py);
    img.crop_imm(px, py, pw, ph)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_images_only() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"root:x:0:0:root"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn crops_stay_inside() {
        let img = DynamicImage::new_rgb8(100, 50);
        let c = crop_box(&img, [0.9, 0.9, 0.5, 0.5]);
        assert!(c.width() >= 1 && c.width() <= 10 && c.height() >= 1 && c.height() <= 5);
        let c = crop_box(&img, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!((c.width(), c.height()), (30, 20));
    }
}
