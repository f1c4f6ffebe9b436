//! Appending a streaming build's rows with direct I/O (`O_DIRECT`, Linux), past the page cache.
//!
//! Writing a new file through the page cache costs the writer a page-cache page per 4 KiB: on
//! the virtual machines simile was measured on, filling 2.5 GB of fresh page cache took 5.8 s of
//! kernel CPU (0.4 GB/s) where a direct write of the same bytes took 0.4 s of CPU and ran at the
//! disk's 0.7–1.3 GB/s. A build appends its rows, so [`Direct::append`] writes every whole
//! 4 KiB block of an append directly (re-reading the partial block it starts in) and the partial
//! block it ends in through the page cache, where the next append picks it up. The file's
//! contents are the same either way: readers of the file (the build's own read-only map) see
//! every written byte, since the kernel writes back and invalidates cached pages of the range a
//! direct write covers. Without `O_DIRECT` (other systems, file systems that refuse it) every
//! write goes through the page cache, as before.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::format;

/// The alignment direct I/O needs for file offsets, lengths and memory (covers 512-byte and
/// 4 KiB logical blocks).
const BLOCK: usize = 4096;

/// The most bytes one direct write takes (the staging buffer's size).
const CHUNK: usize = 8 << 20;

/// A second, direct-I/O descriptor of a file being built, with its staging buffer.
pub(crate) struct Direct {
    file: Option<File>,
    /// `CHUNK + BLOCK` bytes, of which the `CHUNK` from `aligned_start` are block-aligned.
    staging: Vec<u8>,
}

impl Direct {
    /// Opens `path` (already created) for direct writes; without direct I/O, every append goes
    /// through `buffered`.
    pub(crate) fn open(path: &Path) -> Self {
        let file = open_direct(path);
        if file.is_none() {
            tracing::debug!(path = %path.display(), "direct I/O unavailable: writing through the page cache");
        }
        Direct {
            file,
            staging: Vec::new(),
        }
    }

    /// One for each of a file's row sections (each with its own descriptor and buffer, so the
    /// sections can be written at the same time).
    pub(crate) fn open_each(path: &Path) -> [Self; 3] {
        std::array::from_fn(|_| Self::open(path))
    }

    /// Writes `bytes` at `at` of `buffered`'s file, whose bytes from the start of `at`'s block
    /// up to `at` are already written (or zero): whole blocks directly, the last partial block
    /// through the page cache.
    pub(crate) fn append(&mut self, buffered: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
        let Some(direct) = &self.file else {
            return format::write_at(buffered, at, bytes);
        };
        let head = (at % BLOCK as u64) as usize;
        let start = at - head as u64;
        let whole = (head + bytes.len()) / BLOCK * BLOCK;
        if whole == 0 {
            return format::write_at(buffered, at, bytes);
        }
        if self.staging.is_empty() {
            self.staging = vec![0u8; CHUNK + BLOCK];
        }
        let off = self.staging.as_ptr().align_offset(BLOCK);
        let stage = &mut self.staging[off..off + CHUNK];
        // The block `at` starts in: what the file holds before `at`, then the new bytes.
        format::read_at(buffered, start, &mut stage[..head])?;
        let mut done = 0; // bytes of `bytes` written
        let mut pos = start;
        let mut fill = head;
        while (pos - start) < whole as u64 {
            let room = (whole - (pos - start) as usize).min(CHUNK) - fill;
            stage[fill..fill + room].copy_from_slice(&bytes[done..done + room]);
            let len = fill + room;
            if let Err(e) = format::write_at(direct, pos, &stage[..len]) {
                // EINVAL: this file system or device refuses direct I/O after all.
                tracing::debug!(error = %e, "direct write refused: writing through the page cache");
                self.file = None;
                self.staging = Vec::new();
                return format::write_at(buffered, at + done as u64, &bytes[done..]);
            }
            done += room;
            pos += len as u64;
            fill = 0;
        }
        format::write_at(buffered, pos, &bytes[done..])
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::DIRECT.bits();
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(i32::try_from(flags).ok()?)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends of every size and alignment give the file a buffered writer would.
    #[test]
    fn appends_write_the_same_bytes_as_buffered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let total = 3 * CHUNK + 12_345;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(total as u64 + 100).unwrap();
        let mut d = Direct::open(&path);
        // Only where the file system allows it (tmpfs before Linux 6.6 does not): the bytes
        // must be the same either way.
        let expected: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4099) as u8).collect();
        let sizes = [1, 4095, 4096, 4097, 100, CHUNK + 3, 2 * CHUNK, 77, 8191];
        let mut at = 0;
        for (i, s) in sizes.iter().cycle().enumerate() {
            if at >= total {
                break;
            }
            let len = (*s).min(total - at);
            d.append(&file, at as u64, &expected[at..at + len]).unwrap();
            at += len;
            if i == 3 {
                // A buffered write inside what was written directly, as an overwrite does.
                format::write_at(&file, 10, &expected[10..20]).unwrap();
            }
        }
        let mut got = vec![0u8; total + 100];
        format::read_at(&file, 0, &mut got).unwrap();
        assert_eq!(&got[..total], &expected[..]);
        assert!(got[total..].iter().all(|&b| b == 0));
    }
}
