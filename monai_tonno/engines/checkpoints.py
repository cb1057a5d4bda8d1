# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Resuming training from the newest checkpoint in a folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from monai.handlers import CheckpointLoader

__all__ = ["latest_checkpoint", "resume_handlers"]

_ITERATION = re.compile(r"(?:epoch|iteration)=(\d+)")


def latest_checkpoint(ckpt_dir: str | Path, pattern: str = "checkpoint*.pt") -> Path | None:
    """The most recently written checkpoint of ``ckpt_dir`` (ties broken by the epoch number in the name)."""
    folder = Path(ckpt_dir)
    candidates = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not candidates:
        return None

    def order(path: Path) -> tuple[float, int]:
        match = _ITERATION.search(path.name)
        return (path.stat().st_mtime, int(match.group(1)) if match else -1)

    return max(candidates, key=order)


def resume_handlers(
    ckpt_dir: str | Path, save_dict: dict[str, Any], resume: bool = True, map_location: Any = "cpu"
) -> list[CheckpointLoader]:
    """A ``CheckpointLoader`` for the newest checkpoint of ``ckpt_dir``, or nothing when there is none.

    Args:
        ckpt_dir: folder of ``CheckpointSaver`` files.
        save_dict: objects to restore, e.g. ``{"network": ..., "optimizer": ..., "trainer": ...}``.
        resume: ``False`` starts from scratch whatever the folder holds.
        map_location: where to load tensors.
    """
    path = latest_checkpoint(ckpt_dir) if resume else None
    if path is None:
        return []
    return [CheckpointLoader(load_path=str(path), load_dict=save_dict, map_location=map_location)]
