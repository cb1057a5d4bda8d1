# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints that survive a kill, and resuming training from the newest one to the result of an unbroken run.

A resumed run must end where an uninterrupted run ends: the same weights, the same best model. So the trainer's
checkpoint holds, besides the network, optimiser, scheduler and trainer, the best validation score and which files
hold it (:class:`AtomicCheckpointSaver`'s state) and every random generator the training draws from
(:class:`RandomStates`). Files are written atomically, and the checkpoint that a new one replaces is removed only
once the new one is complete.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Events
from ignite.handlers.checkpoint import BaseSaveHandler, Checkpoint
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.transforms import Compose, Randomizable

from monai_tonno.atomic import torch_save_atomic
from monai_tonno.networks.trained import NETWORK_CONFIG_FILE, load_network_config

__all__ = [
    "AtomicCheckpointSaver",
    "RandomStates",
    "check_resumable",
    "latest_checkpoint",
    "resume_handlers",
]

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


def planned_iterations_differ(checkpoint: str | Path, total_iterations: int | None) -> list[str]:
    """``["iterations: planned for A, now B"]`` when the trainer of ``checkpoint`` planned another total than
    ``total_iterations`` (a one-cycle schedule ends at its planned total, so a resumed run cannot plan another)."""
    trainer = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["trainer"]
    planned = int(trainer.get("max_epochs", 0)) * int(trainer.get("epoch_length") or 0)
    if total_iterations is not None and planned and planned != int(total_iterations):
        return [f"iterations: planned for {planned}, now {int(total_iterations)}"]
    return []


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
    differences += planned_iterations_differ(latest, total_iterations)
    if differences:
        raise ValueError(
            f"cannot resume from {str(latest)!r}, which belongs to another run ({'; '.join(differences)}). Pass the "
            "same settings, or start afresh with --resume false or another --output_dir."
        )


class _AtomicDiskSaver(BaseSaveHandler):
    """An ignite save handler that writes atomically and defers removals until the next file is complete.

    ignite's ``Checkpoint`` removes the file it replaces *before* writing the new one, so a kill in between (or
    during a non-atomic write) leaves no good checkpoint. Here ``remove`` only queues the name; the queue is
    emptied after the next successful write.
    """

    def __init__(self, dirname: str | Path, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename
        self._pending_removal: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        name = self.filename or filename
        torch_save_atomic(dict(checkpoint), self.dirname / name)
        for old in self._pending_removal:
            if old != name:
                (self.dirname / old).unlink(missing_ok=True)
        self._pending_removal = []

    def remove(self, filename: str) -> None:
        self._pending_removal.append(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` whose files are written atomically, and whose best-metric state can be resumed.

    Every argument is ``CheckpointSaver``'s. Two differences:

    - files are written to a temporary file, fsynced and moved into place, and a file being replaced (the previous
      interval checkpoint, the previous best model) is removed only once its successor is complete, so a kill at
      any moment leaves a readable checkpoint;
    - ``state_dict`` / ``load_state_dict`` hold the key-metric tracking (which score the saved best model has) and
      the attached engine's ``best_metric`` / ``best_metric_epoch``. Put the saver of the best model among the
      trainer's checkpoint objects and a resumed run keeps the best model of before the kill instead of taking the
      first validation after the resume as a new best.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, checkpoint.save_handler.filename)
        self._engine = None

    def attach(self, engine) -> None:
        super().attach(engine)
        self._engine = engine
        if self._interval_checkpoint is not None or self._final_checkpoint is not None:
            engine.add_event_handler(Events.STARTED, self._take_over_folder)

    def _take_over_folder(self, engine) -> None:
        """Account for the trainer checkpoints already in ``save_dir`` once the engine knows where it starts.

        Attached after the ``CheckpointLoader`` (so it runs once a resume has restored the iteration). Checkpoints
        up to the current iteration belong to this run: the interval ones count towards ``n_saved`` as if the run
        had never stopped, so the next save removes them as it would have. Checkpoints further into training are
        another run's (a start afresh with ``--resume false``): they are moved to ``save_dir/superseded`` with a
        warning, so that a later resume cannot pick them up and nothing is deleted.
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        folder = Path(self.save_dir)
        now = int(engine.state.iteration)
        interval = self._interval_checkpoint
        score_name = "epoch" if self.epoch_level else "iteration"
        prefix = f"{interval.filename_prefix}_" if interval is not None and interval.filename_prefix else ""
        pattern = re.compile(rf"{re.escape(prefix)}checkpoint_{score_name}=(\d+)\.pt")
        adopted = []
        for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
            iteration = _trainer_iteration(path)
            if iteration is None:
                continue
            if iteration > now:
                superseded = folder / "superseded"
                superseded.mkdir(exist_ok=True)
                os.replace(path, superseded / path.name)
                logger.warning(
                    "moved %s (trainer iteration %d, this run starts at %d) to %s: it belongs to another run",
                    path,
                    iteration,
                    now,
                    superseded,
                )
                continue
            match = pattern.fullmatch(path.name)
            if interval is not None and match and all(item.filename != path.name for item in interval._saved):
                adopted.append(Checkpoint.Item(int(match.group(1)), path.name))
        if interval is None:
            return
        interval._saved = sorted([*interval._saved, *adopted], key=lambda item: item.priority)
        while interval.n_saved is not None and len(interval._saved) > interval.n_saved:
            interval.save_handler.remove(interval._saved.pop(0).filename)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "key_metric": dict(self._key_metric_checkpoint.state_dict()) if self._key_metric_checkpoint else None
        }
        if self._engine is not None:
            state["best_metric"] = float(getattr(self._engine.state, "best_metric", -1))
            state["best_metric_epoch"] = int(getattr(self._engine.state, "best_metric_epoch", -1))
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if self._key_metric_checkpoint is not None and state_dict.get("key_metric") is not None:
            self._key_metric_checkpoint.load_state_dict(state_dict["key_metric"])
        if self._engine is not None and "best_metric" in state_dict:
            self._engine.state.best_metric = float(state_dict["best_metric"])
            self._engine.state.best_metric_epoch = int(state_dict["best_metric_epoch"])


def _randomizables(objects: Iterable[Any], seen: set[int] | None = None) -> list[Randomizable]:
    """Every ``Randomizable`` in ``objects``, in a fixed order: inside a ``Compose``, and the array transforms that a
    dictionary transform holds as attributes (MONAI's ``RandFlipd.flipper``, this package's ``slicer``)."""
    seen = set() if seen is None else seen
    found: list[Randomizable] = []
    for obj in objects:
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        if isinstance(obj, Compose):
            found += _randomizables(obj.transforms, seen)
        elif isinstance(obj, Randomizable):
            found += _randomizables([v for v in vars(obj).values() if isinstance(v, Randomizable)], seen)
    return found


def _numpy_state(generator: np.random.RandomState) -> list:
    name, keys, position, has_gauss, cached = generator.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)]


def _set_numpy_state(generator: np.random.RandomState, state: list) -> None:
    name, keys, position, has_gauss, cached = state
    generator.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))


class RandomStates:
    """The random generators a training draws from, as a checkpoint object (``state_dict`` / ``load_state_dict``).

    Torch's (CPU, and CUDA where present: the data sampler draws its seeds there), NumPy's and Python's global
    generators, and the ``R`` of every MONAI ``Randomizable`` transform in ``transforms`` (a ``Compose`` is searched
    through). Saved with the trainer's checkpoint at the end of an epoch and restored when training resumes, so
    the epochs after the resume draw the same slices in the same order as an uninterrupted run.

    Args:
        transforms: transforms or ``Compose`` chains whose random transforms are to be restored.
    """

    def __init__(self, transforms: Iterable[Any] = ()) -> None:
        self.transforms = _randomizables(transforms)

    def state_dict(self) -> dict[str, Any]:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(np.random.mtrand._rand),
            "python": list(random.getstate()),
            "transforms": [_numpy_state(t.R) for t in self.transforms],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if len(state_dict["transforms"]) != len(self.transforms):
            raise ValueError(
                f"the checkpoint holds the random states of {len(state_dict['transforms'])} random transforms, this "
                f"run has {len(self.transforms)}: it was written by another training pipeline. Start afresh with "
                "--resume false or another --output_dir."
            )
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available() and len(state_dict["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        _set_numpy_state(np.random.mtrand._rand, state_dict["numpy"])
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        for transform, state in zip(self.transforms, state_dict["transforms"], strict=True):
            _set_numpy_state(transform.R, state)
