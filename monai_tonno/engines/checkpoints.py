# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Resuming training from the newest checkpoint in a folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointLoader

from monai_tonno.networks.trained import NETWORK_CONFIG_FILE, load_network_config

__all__ = ["check_resumable", "latest_checkpoint", "resume_handlers"]

logger = logging.getLogger(__name__)

_ITERATION = re.compile(r"(?:epoch|iteration)=(\d+)")


def _trainer_iteration(path: Path) -> int | None:
    """The trainer iteration stored in a ``CheckpointSaver`` file, ``None`` for a file without a trainer."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # not a readable checkpoint: say so, and let the others decide
        logger.warning("could not read %s while looking for the newest checkpoint: %s", path, error)
        return None
    trainer = state.get("trainer") if isinstance(state, dict) else None
    if isinstance(trainer, dict) and "iteration" in trainer:
        return int(trainer["iteration"])
    return None


def latest_checkpoint(ckpt_dir: str | Path, pattern: str = "*.pt") -> Path | None:
    """The training checkpoint of ``ckpt_dir`` that is furthest into training.

    Files are ranked by the trainer iteration stored in them (so a copy that lost its modification time, or a
    ``CheckpointSaver`` ``file_prefix``, changes nothing), then by the epoch or iteration in their name, then by
    modification time. Files without a trainer state (e.g. ``model.pt``, the best network alone) are not
    candidates.
    """
    folder = Path(ckpt_dir)
    candidates = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    ranked = []
    for path in candidates:
        iteration = _trainer_iteration(path)
        if iteration is None:
            continue
        match = _ITERATION.search(path.name)
        ranked.append(((iteration, int(match.group(1)) if match else -1, path.stat().st_mtime), path))
    return max(ranked, key=lambda pair: pair[0])[1] if ranked else None


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


def check_resumable(
    ckpt_dir: str | Path, network_config: dict[str, Any], resume: bool = True, total_iterations: int | None = None
) -> None:
    """Before resuming, check that this run continues the run whose checkpoints ``ckpt_dir`` holds.

    Args:
        ckpt_dir: the checkpoint folder.
        network_config: this run's configuration (as saved in ``network.json``).
        resume: ``False`` checks nothing (the run starts afresh).
        total_iterations: this run's planned iterations (epochs x epoch length); a learning-rate schedule such as
            one-cycle ends at the planned total, so a resumed run cannot plan another.

    Raises:
        ValueError: the saved ``network.json`` describes another network, or the checkpoint was planned for
            another number of iterations; the message names what differs.
    """
    latest = latest_checkpoint(ckpt_dir) if resume else None
    if latest is None:
        return
    differences = []
    if (Path(ckpt_dir) / NETWORK_CONFIG_FILE).is_file():
        saved = load_network_config(ckpt_dir)
        differences += [
            f"{key}: trained with {saved.get(key)!r}, now {value!r}"
            for key, value in network_config.items()
            if key in ("network", "slice_size") and saved.get(key) != value
        ]
    trainer = torch.load(latest, map_location="cpu", weights_only=True, mmap=True)["trainer"]
    planned = int(trainer.get("max_epochs", 0)) * int(trainer.get("epoch_length") or 0)
    if total_iterations is not None and planned and planned != int(total_iterations):
        differences.append(f"iterations: planned for {planned}, now {int(total_iterations)}")
    if differences:
        raise ValueError(
            f"cannot resume from {str(latest)!r}, which belongs to another run ({'; '.join(differences)}). Pass the "
            "same settings, or start afresh with --resume false or another --output_dir."
        )
