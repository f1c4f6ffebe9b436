//! Model file downloads: resume (`Range`), sha256 verification, progress callback.
//!
//! A download writes `<dest>.part` and renames it to `<dest>` only once it is complete and (when a
//! checksum is known) verified. An interrupted download keeps its `.part` file and the next call
//! resumes from it; a checksum mismatch deletes it.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{EmbedError, Result};

/// Progress of one file download, passed to the callback after each chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The file being downloaded (its name in the model directory).
    pub file: &'a str,
    /// Bytes present so far (resumed bytes included).
    pub downloaded: u64,
    /// Total size when known (`Content-Length` or the manifest).
    pub total: Option<u64>,
}

/// A progress callback (the CLI draws a bar with it).
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress<'_>) + Sync);

/// What to fetch.
#[derive(Debug, Clone)]
pub struct DownloadSpec<'a> {
    /// `http://` or `https://` URL.
    pub url: &'a str,
    /// Final path.
    pub dest: &'a Path,
    /// Lower-case hex sha256 the file must have, if known.
    pub sha256: Option<&'a str>,
    /// Expected size in bytes, if known.
    pub size: Option<u64>,
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmbedError + '_ {
    move |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Computes the lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn download_error(url: &str, reason: impl Into<String>, source: Option<ureq::Error>) -> EmbedError {
    EmbedError::Download {
        url: url.to_string(),
        reason: reason.into(),
        source: source.map(|e| Box::new(e) as crate::error::BoxError),
    }
}

/// Downloads `spec.url` to `spec.dest`, resuming a previous partial download, verifying the size
/// and the sha256. Returns at once if `dest` already exists with the right checksum.
pub fn download(spec: &DownloadSpec<'_>, progress: Option<ProgressFn<'_>>) -> Result<()> {
    let DownloadSpec {
        url,
        dest,
        sha256,
        size,
    } = *spec;
    let file_name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model file")
        .to_string();
    if dest.is_file() {
        match sha256 {
            Some(expected) if sha256_file(dest)? != expected => {
                tracing::warn!(path = %dest.display(), "existing file has a wrong checksum; downloading again");
                std::fs::remove_file(dest).map_err(io_err(dest))?;
            }
            _ => return Ok(()),
        }
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let part = part_path(dest);
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(None)
        .user_agent(concat!("simile-embed/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();

    let complete_already = size.is_some_and(|s| have == s && s > 0);
    if !complete_already {
        let mut req = agent.get(url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let mut resp = req
            .call()
            .map_err(|e| download_error(url, "request failed", Some(e)))?;
        let status = resp.status().as_u16();
        let append = match status {
            206 => true,
            200 => {
                have = 0;
                false
            }
            416 if have > 0 => {
                // Nothing left to send: the partial file is (supposedly) complete.
                true
            }
            other => {
                return Err(download_error(url, format!("HTTP status {other}"), None));
            }
        };
        let total = if status == 416 {
            Some(have)
        } else {
            resp.body().content_length().map(|n| n + have).or(size)
        };
        if let (Some(t), Some(s)) = (total, size) {
            if t != s {
                return Err(download_error(
                    url,
                    format!("the server announces {t} bytes but the manifest says {s}"),
                    None,
                ));
            }
        }
        if status != 416 {
            let mut out = OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&part)
                .map_err(io_err(&part))?;
            let mut reader = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        out.flush().map_err(io_err(&part))?;
                        let got = have;
                        return Err(match total {
                            Some(expected) if got < expected => EmbedError::Truncated {
                                url: url.to_string(),
                                expected,
                                got,
                            },
                            _ => EmbedError::Download {
                                url: url.to_string(),
                                reason: "reading the response failed".into(),
                                source: Some(Box::new(e)),
                            },
                        });
                    }
                };
                out.write_all(&buf[..n]).map_err(io_err(&part))?;
                have += n as u64;
                if let Some(cb) = progress {
                    cb(&Progress {
                        file: &file_name,
                        downloaded: have,
                        total,
                    });
                }
            }
            out.flush().map_err(io_err(&part))?;
        }
        if let Some(expected) = total {
            if have != expected {
                return Err(EmbedError::Truncated {
                    url: url.to_string(),
                    expected,
                    got: have,
                });
            }
        }
    }
    if let Some(expected) = sha256 {
        let got = sha256_file(&part)?;
        if got != expected.to_ascii_lowercase() {
            let _ = std::fs::remove_file(&part);
            return Err(EmbedError::ChecksumMismatch {
                path: dest.to_path_buf(),
                expected: expected.to_string(),
                got,
            });
        }
    } else {
        tracing::warn!(url, "no sha256 pinned for this file; it was not verified");
    }
    std::fs::rename(&part, dest).map_err(io_err(dest))?;
    Ok(())
}
