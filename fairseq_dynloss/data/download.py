"""Checksummed downloads: write to a temporary file, verify, then rename (never half-written)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from typing import Optional, Sequence


class ChecksumError(RuntimeError):
    """A dataset file does not have the expected checksum (corrupt or incomplete)."""


class DownloadError(RuntimeError):
    """No mirror of a dataset file could be reached (the message lists each URL and its error)."""


def file_digest(path: str, algorithm: str = "md5", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str, md5: Optional[str] = None, sha256: Optional[str] = None) -> None:
    """Raise ``ChecksumError`` naming the file and the expected checksum if it does not match.

    Args:
        path: the file.
        md5, sha256: expected hex digests; None skips that check.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file {path} does not exist")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise ChecksumError(
                f"{path}: {algorithm} is {actual}, expected {expected}; the file is corrupt or "
                "incomplete -- delete it and download again"
            )


def download(urls: Sequence[str], path: str, md5: Optional[str] = None,
             sha256: Optional[str] = None) -> str:
    """Download ``path`` from the first URL that works; verify before it appears under its name.

    Existing files are verified, not re-downloaded. Bytes go to a temporary file in the same
    folder, which is checked and then renamed with ``os.replace``; on any error it is removed.

    Args:
        urls: mirrors tried in order (``http(s)://``, ``ftp://`` or ``file://``).
        path: destination file.
        md5, sha256: expected digests.

    Returns:
        ``path``.
    """
    if os.path.exists(path):
        verify_checksum(path, md5=md5, sha256=sha256)
        return path
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    errors, corrupt = [], False
    for url in urls:
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as src:
                shutil.copyfileobj(src, out, 1 << 20)
            verify_checksum(tmp, md5=md5, sha256=sha256)
            os.replace(tmp, path)
            return path
        except ChecksumError as error:
            corrupt = True
            errors.append(f"{url}: {error}")
        except OSError as error:
            errors.append(f"{url}: {error}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    message = f"could not download {path}; tried:\n  " + "\n  ".join(errors)
    raise ChecksumError(message) if corrupt else DownloadError(message)
