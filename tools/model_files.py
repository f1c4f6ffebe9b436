"""Helpers shared by the model tools (export_clip.py, quantize_clip.py): standard library only."""
import hashlib


def sha256(path):
    """Hex SHA-256 of a file, read in 1 MiB chunks (the manifests' checksums)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
