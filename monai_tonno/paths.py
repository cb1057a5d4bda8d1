# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Checks of the files and folders a run reads: each error says what the path should have been and what to do."""

from __future__ import annotations

from pathlib import Path

__all__ = ["require_dir", "require_file"]


def require_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a ``Path`` if it is a file; otherwise a ``FileNotFoundError`` that says what it should be.

    Args:
        path: the file (``~`` expanded).
        what: what the file is, and how to get it (e.g. ``"trained model; run the training bundle first"``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: expected the {what}.")
    return path


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path`` if it is a folder; a ``ValueError`` when none was given (an empty
    ``--dataset_dir``), a ``FileNotFoundError`` when it does not exist.

    Args:
        path: the folder (``~`` expanded).
        what: the dataset or folder it should be (e.g. ``"AutoPET"``).
    """
    if not str(path).strip():
        raise ValueError(f"no {what} folder given: pass --dataset_dir with the path of the downloaded dataset.")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {str(path)!r} does not exist.")
    return path
