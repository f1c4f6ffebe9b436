//! Import a folder of images.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use simile_dataset::{check_field_name, Dataset, NewSample};

use crate::media::{absolute, decode_check, image_dimensions, image_metadata, is_image_path};
use crate::{ImportReport, IoError, Result, SkipReason};

/// How [`import_image_dir`] checks and describes images.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageDirOptions {
    /// Descend into subdirectories (default `true`). Hidden entries (`.name`) are ignored.
    pub recursive: bool,
    /// Decode every image completely instead of reading its header only (default `false`;
    /// much slower). Catches corrupt pixel data in most formats; the JPEG decoder pads
    /// truncated JPEGs rather than failing, so those still pass.
    pub full_decode: bool,
    /// Store width, height, size and MIME type in a JSON field (default `Some("metadata")`,
    /// shaped like FiftyOne's `ImageMetadata`); `None` stores nothing.
    pub metadata_field: Option<String>,
}

impl Default for ImageDirOptions {
    fn default() -> Self {
        ImageDirOptions {
            recursive: true,
            full_decode: false,
            metadata_field: Some("metadata".to_string()),
        }
    }
}

impl ImageDirOptions {
    /// The defaults: recursive, no full decode, metadata in `metadata`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether subdirectories are searched too.
    pub fn recursive(mut self, yes: bool) -> Self {
        self.recursive = yes;
        self
    }
    /// Whether every image is fully decoded at import (see the field of that name).
    pub fn full_decode(mut self, yes: bool) -> Self {
        self.full_decode = yes;
        self
    }
    /// The JSON field for image metadata; `None` stores none.
    pub fn metadata_field(mut self, field: Option<&str>) -> Self {
        self.metadata_field = field.map(str::to_string);
        self
    }
}

/// Imports every image under `dir` (sorted by path, absolute paths) as one sample each.
///
/// Files with other extensions and images that cannot be read are reported in
/// [`ImportReport::skipped`]; the rest is added in one transaction (all or nothing).
pub fn import_image_dir(
    dataset: &Dataset,
    dir: &Path,
    opts: &ImageDirOptions,
) -> Result<ImportReport> {
    if !dir.is_dir() {
        return Err(IoError::NotADirectory(dir.to_path_buf()));
    }
    if let Some(f) = &opts.metadata_field {
        check_field_name(f).map_err(|_| IoError::InvalidField(f.clone()))?;
    }
    let root = absolute(dir)?;
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    walk(&root, opts.recursive, &mut seen, &mut files)?;
    files.sort();

    let mut report = ImportReport::default();
    let mut samples = Vec::with_capacity(files.len());
    for path in files {
        let shown = path.display().to_string();
        if !is_image_path(&path) {
            report.skip(shown, SkipReason::NotAnImage);
            continue;
        }
        let dims = if opts.full_decode {
            decode_check(&path)
        } else {
            image_dimensions(&path)
        };
        let (w, h) = match dims {
            Ok(d) => d,
            Err(e) => {
                report.skip(shown, SkipReason::Unreadable(e));
                continue;
            }
        };
        let mut s = NewSample::new(path.clone());
        if let Some(f) = &opts.metadata_field {
            s = s.with_field(f.clone(), image_metadata(&path, w, h));
        }
        samples.push(s);
    }
    report.added = dataset.add_samples(samples)?;
    tracing::info!(
        dataset = dataset.name(),
        added = report.added.len(),
        skipped = report.skipped.len(),
        "imported image folder"
    );
    Ok(report)
}

fn walk(
    dir: &Path,
    recursive: bool,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    // Symlinked folders may form loops: visit each real directory once.
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a linked folder or image counts like a real one.
        let meta = std::fs::metadata(&path);
        match meta {
            Ok(m) if m.is_dir() => {
                if recursive {
                    walk(&path, recursive, seen, out)?;
                }
            }
            // Broken links and files we cannot stat are reported like unreadable files.
            _ => out.push(path),
        }
    }
    Ok(())
}
