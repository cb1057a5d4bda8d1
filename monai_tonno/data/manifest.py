# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The manifest of a generated synthetic dataset: written last, so that a folder holds a whole dataset of one
configuration or is generated again."""

from __future__ import annotations

import json
from pathlib import Path

from monai_tonno.atomic import atomic_write

__all__ = ["MANIFEST", "complete_dataset", "mark_complete"]

MANIFEST = "synthetic_manifest.json"


def _description(config: object) -> str:
    return json.dumps(config.__dict__, sort_keys=True, default=list)


def complete_dataset(root: Path, config: object, overwrite: bool = False) -> bool:
    """Whether ``root`` already holds the whole dataset of ``config``; if not, its manifest is removed, so that a
    generation killed part-way is redone."""
    manifest = root / MANIFEST
    if manifest.is_file() and manifest.read_text() == _description(config) and not overwrite:
        return True
    manifest.unlink(missing_ok=True)
    return False


def mark_complete(root: Path, config: object) -> None:
    """Record, atomically and after the last file, that ``root`` holds the whole dataset of ``config``."""
    with atomic_write(root / MANIFEST) as handle:
        handle.write(_description(config))
