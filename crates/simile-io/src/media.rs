//! Shared media helpers: which files are images, reading image sizes, copying media into an
//! export directory under unique names.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{IoError, Result};

/// File extensions imported as images (lower case, compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub(crate) fn mime_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("bmp") => "image/bmp",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("tif" | "tiff") => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// Width and height of an image from its header (cheap: the pixels are not decoded).
pub fn image_dimensions(path: &Path) -> std::result::Result<(u32, u32), String> {
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?;
    let reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    if w == 0 || h == 0 {
        return Err(format!("empty image ({w}x{h})"));
    }
    Ok((w, h))
}

/// Decodes the whole image (slow; catches truncated files whose header is fine).
pub(crate) fn decode_check(path: &Path) -> std::result::Result<(u32, u32), String> {
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?;
    let reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    let img = reader.decode().map_err(|e| e.to_string())?;
    Ok((img.width(), img.height()))
}

/// The JSON `metadata` value stored on samples, shaped like FiftyOne's `ImageMetadata`.
pub(crate) fn image_metadata(path: &Path, width: u32, height: u32) -> Value {
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    json!({
        "_cls": "ImageMetadata",
        "size_bytes": size,
        "mime_type": mime_type(path),
        "width": width,
        "height": height,
        "num_channels": Value::Null,
    })
}

/// Width and height from a sample's `metadata` JSON field, if present.
pub(crate) fn dims_from_metadata(v: Option<&Value>) -> Option<(u32, u32)> {
    let v = v?;
    let w = v.get("width")?.as_u64()?;
    let h = v.get("height")?.as_u64()?;
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Some((w, h)),
        _ => None,
    }
}

/// Absolute form of `path` (canonical when it exists).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) if path.is_absolute() => Ok(path.to_path_buf()),
        Err(_) => std::env::current_dir()
            .map(|d| d.join(path))
            .map_err(|e| IoError::io(path, e)),
    }
}

/// Copies media files into one directory, keeping base names and appending `-1`, `-2`, ...
/// on collisions (like FiftyOne's media exporter).
#[derive(Debug)]
pub(crate) struct MediaCopier {
    dir: PathBuf,
    used: HashSet<String>,
}

impl MediaCopier {
    pub(crate) fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))?;
        Ok(MediaCopier {
            dir,
            used: HashSet::new(),
        })
    }

    /// Copies `src`; returns the file name used inside the directory.
    pub(crate) fn copy(&mut self, src: &Path) -> Result<String> {
        let name = self.unique_name(src);
        let dst = self.dir.join(&name);
        std::fs::copy(src, &dst).map_err(|e| IoError::io(src, e))?;
        Ok(name)
    }

    fn unique_name(&mut self, src: &Path) -> String {
        let stem = src
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "media".to_string());
        let ext = src
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let mut name = format!("{stem}{ext}");
        let mut n = 1;
        while self.used.contains(&name) {
            name = format!("{stem}-{n}{ext}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|source| IoError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(|e| IoError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_are_case_insensitive() {
        assert!(is_image_path(Path::new("a/b.JPG")));
        assert!(is_image_path(Path::new("x.tiff")));
        assert!(!is_image_path(Path::new("labels.json")));
        assert!(!is_image_path(Path::new("noext")));
    }

    #[test]
    fn copier_makes_names_unique() {
        let dir = std::env::temp_dir().join(format!("simile-io-copier-{}", std::process::id()));
        let mut c = MediaCopier::new(dir.clone()).unwrap();
        assert_eq!(c.unique_name(Path::new("/a/x.jpg")), "x.jpg");
        assert_eq!(c.unique_name(Path::new("/b/x.jpg")), "x-1.jpg");
        assert_eq!(c.unique_name(Path::new("/c/x.jpg")), "x-2.jpg");
        let _ = std::fs::remove_dir_all(dir);
    }
}
