# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints survive a kill during a save, and a resumed run keeps the best model and the random draws."""

import io
import json
import os
import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver

from monai_tonno import RandObliqueSliced, atomic
from monai_tonno.engines import AtomicCheckpointSaver, RandomStates, latest_checkpoint, resume_handlers

_TORCH_SAVE = torch.save


class _DiesAfter:
    """``torch.save`` that writes ``limit`` bytes of the checkpoint and then fails, as a kill during a save does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, obj, handle) -> None:
        buffer = io.BytesIO()
        _TORCH_SAVE(obj, buffer)
        if isinstance(handle, (str, os.PathLike)):
            with open(handle, "wb") as file:
                file.write(buffer.getvalue()[: self.limit])
        else:
            handle.write(buffer.getvalue()[: self.limit])
        raise KeyboardInterrupt("killed during the save")


def test_atomic_json_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "threshold.json"
    atomic.write_json_atomic(target, {"threshold": 1.0})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.json, "dumps", lambda content, **kw: '{"threshold": 2.0, "trunc')
    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_json_atomic(target, {"threshold": 2.0})
    assert json.loads(target.read_text()) == {"threshold": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["threshold.json"]  # no temporary file left behind


def _trainer(network: torch.nn.Module) -> Engine:
    def step(engine, batch):
        with torch.no_grad():
            network.weight += 1.0

    return Engine(step)


@pytest.mark.parametrize("saver_class", [AtomicCheckpointSaver, CheckpointSaver])
def test_a_kill_during_a_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, saver_class):
    """MONAI's saver removes the previous checkpoint and writes the next in place: a kill during the write leaves
    nothing to resume from. The atomic saver keeps the previous file until the next one is complete."""
    network = torch.nn.Linear(1, 1, bias=False)
    initial = float(network.weight.detach())
    trainer = _trainer(network)
    saver = saver_class(str(tmp_path), {"network": network, "trainer": trainer}, save_interval=1, n_saved=1)
    saver.attach(trainer)
    limit = 200

    def die_at_epoch_3(engine):
        if engine.state.epoch == 2:  # the save of epoch 3 (the next handler call) dies part-way
            monkeypatch.setattr(torch, "save", _DiesAfter(limit))

    trainer.add_event_handler(Events.EPOCH_COMPLETED, die_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.run([0], max_epochs=5)
    monkeypatch.undo()
    latest = latest_checkpoint(tmp_path)
    if saver_class is CheckpointSaver:
        assert latest is None  # the cause of the issue: the previous checkpoint is gone, the new one truncated
        return
    assert latest is not None and latest.name == "checkpoint_epoch=2.pt"
    state = torch.load(latest, weights_only=True)
    assert state["trainer"]["iteration"] == 2 and float(state["network"]["weight"]) == pytest.approx(initial + 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=2.pt"]


def _run_with_validation(folder, scores, max_epochs, stop_after=None):
    """A trainer whose network weight counts iterations, validated every epoch with ``scores[epoch - 1]`` as the key
    metric; the best model is ``model.pt``. ``stop_after``: end the process' run there, as a kill would (the trainer
    checkpoint of that epoch is written, nothing after)."""
    network = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(network.weight)
    trainer = _trainer(network)
    evaluator = Engine(lambda engine, batch: None)
    evaluator.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(score=scores[trainer.state.epoch - 1])
    )
    best = AtomicCheckpointSaver(
        str(folder), {"model": network}, save_key_metric=True, key_metric_name="score", key_metric_filename="model.pt"
    )
    best.attach(evaluator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0]))
    objects = {"network": network, "trainer": trainer, "best_model": best}
    for handler in resume_handlers(folder, objects):
        handler.attach(trainer)
    AtomicCheckpointSaver(str(folder), objects, save_interval=1, n_saved=1).attach(trainer)
    if stop_after is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    trainer.run([0], max_epochs=max_epochs)


def test_resume_keeps_the_best_model_of_before_the_kill(tmp_path):
    scores = [0.9, 0.2, 0.5, 0.3]  # the best is epoch 1; after a resume at epoch 2, epoch 3 is worse than it
    _run_with_validation(tmp_path / "whole", scores, 4)
    _run_with_validation(tmp_path / "resumed", scores, 4, stop_after=2)
    assert float(torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["weight"]) == 1.0
    _run_with_validation(tmp_path / "resumed", scores, 4)
    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["weight"]
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["weight"]
    assert float(whole) == 1.0 and float(resumed) == 1.0  # epoch 1's weights, not epoch 3's
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["checkpoint_epoch=4.pt", "model.pt"]


def test_a_fresh_start_moves_another_runs_checkpoints_aside(tmp_path):
    scores = [0.9, 0.2, 0.5, 0.3]
    _run_with_validation(tmp_path, scores, 4)
    network = torch.nn.Linear(1, 1, bias=False)
    trainer = _trainer(network)
    AtomicCheckpointSaver(str(tmp_path), {"network": network, "trainer": trainer}, save_interval=1, n_saved=1).attach(
        trainer
    )
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())
    trainer.run([0], max_epochs=4)  # afresh (no resume handler): epoch 4 of the other run must not be resumed
    assert latest_checkpoint(tmp_path).name == "checkpoint_epoch=1.pt"
    assert (tmp_path / "superseded" / "checkpoint_epoch=4.pt").is_file()


def _global_numpy_draw() -> np.ndarray:
    return np.random.random_sample(3)  # noqa: NPY002 (the legacy global generator is what is restored)


def test_random_states_restore_the_draws_of_a_transform_and_the_global_generators():
    slicer = RandObliqueSliced("image", slice_size=8, num_samples=3)
    slicer.set_random_state(7)
    states = RandomStates([slicer])
    assert slicer.slicer in states.transforms  # the array transform the dictionary one holds
    saved = states.state_dict()
    torch.save(saved, buffer := io.BytesIO())
    buffer.seek(0)
    first = (torch.rand(3), _global_numpy_draw(), slicer.slicer.R.rand(3), random.random())
    states.load_state_dict(torch.load(buffer, weights_only=True))
    second = (torch.rand(3), _global_numpy_draw(), slicer.slicer.R.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[3] == second[3]
    with pytest.raises(ValueError, match="random transforms"):
        RandomStates([]).load_state_dict(saved)
