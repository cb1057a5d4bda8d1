# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Writing files so that a kill at any moment leaves either the old file or the new one, never half of one.

Every file the product writes goes through :func:`atomic_write`: the content goes to a temporary file in the same
folder (same file system, so the rename is atomic), is flushed and fsynced, and replaces the target with
``os.replace``; the folder is fsynced too, so that the rename itself survives a power cut. Temporary files are
named ``.<name>.partial-<random>`` (hidden, and without the target's extension, so that no ``*.pt`` or
``*.nii.gz`` glob ever picks one up).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_path",
    "atomic_write",
    "file_digest",
    "file_stamp",
    "fsync_dir",
    "torch_save_atomic",
    "write_json_atomic",
]

PARTIAL_MARK = ".partial-"


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries to disk (a no-op where the platform cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name; it replaces ``path`` on success.

    Args:
        path: the file to write.
        suffix: kept at the end of the temporary name, for writers that choose the format by extension
            (``".nii.gz"`` for nibabel).

    The temporary file is removed when the block raises, so a failed write leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{PARTIAL_MARK}", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path`` atomically.

    Args:
        path: the file to write.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        open_kwargs: passed to ``open`` (e.g. ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()


def write_json_atomic(path: str | Path, content: Any, **dumps_kwargs: Any) -> Path:
    """Write ``content`` as JSON to ``path`` atomically; returns ``path``."""
    text = json.dumps(content, **{"indent": 2, **dumps_kwargs})
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def torch_save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's content, to tie what is read back (a threshold, an output) to the file it was made
    from: a model copied from another run has another digest, whatever its name and modification time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_stamp(path: str | Path) -> list[int]:
    """``[size, modification time in ns]`` of a file: what a cache entry or a record about the file is keyed by, so
    that a replaced file (another mask, a rewritten output) is not taken for the one described."""
    status = Path(path).stat()
    return [int(status.st_size), int(status.st_mtime_ns)]
