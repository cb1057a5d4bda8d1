# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Whether the slice classifier is ready for ToNNO: a validation measure that predicts the masks, an early stop
once it has plateaued, and a record of it in the best model that inference reads back.

A classifier trained from volume labels can sit at chance for a thousand steps before it finds the lesions, and a
slice AUC above chance does not tell a classifier whose masks find the lesions from one whose masks find none.
The readiness measure is the masks' own decision on the validation studies: the ROC AUC of the ToNNO detection
peaks (:class:`~monai_tonno.inferers.ValidationInferer`), and, since a handful of studies separates well by luck,
the permutation p-value of that separation (:func:`~monai_tonno.metrics.separation_p_value`). The classifier is
*ready* when that p-value is at most ``significance`` (the test the mask calibration applies) and the AUC is at
least ``min_auc``: better than chance is not good enough, since a model that separates 20 studies at AUC 0.79
(p = 0.02) still makes masks with a lesion F1 of 0.35 (``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from monai_tonno.metrics.classification import readiness_score

__all__ = [
    "READINESS_KEY",
    "ReadinessRecord",
    "TrainingReadiness",
    "read_readiness",
    "readiness_note",
    "warn_if_unready",
]

logger = logging.getLogger(__name__)

READINESS_KEY = "readiness"


class ReadinessRecord:
    """The readiness of the latest validation as a checkpoint object: put it in the ``save_dict`` of the saver of
    ``model.pt`` (under :data:`READINESS_KEY`), which saves when that validation is the best, so the best model
    carries the readiness it was saved with."""

    def __init__(self, readiness: TrainingReadiness) -> None:
        self.readiness = readiness

    def state_dict(self) -> dict[str, str]:
        return {"json": json.dumps(self.readiness.latest(), sort_keys=True)}

    def load_state_dict(self, state_dict: Mapping[str, str]) -> None:
        """Nothing to restore: the record is derived from the :class:`TrainingReadiness` history."""


class TrainingReadiness:
    """Track the readiness measure over validations, stop training once it has plateaued, and say at the end of
    training whether the best model is ready.

    Attach it to the validation evaluator (among its ``val_handlers``, before the saver of ``model.pt``; on every
    rank of a distributed run, so that every rank stops at the same iteration) and give
    it the trainer with :meth:`set_trainer` (as MONAI's ``EarlyStopHandler``, since the trainer is built after
    its validator). Put it among the trainer's checkpoint objects so that a resumed run keeps its history and an
    early-stopped run stays stopped.

    The best model, which the saver of ``model.pt`` keeps with the key metric
    ``VolumeSeparation(statistic="readiness")``, is the latest ready one (or, before any is ready, the one with the
    highest score); :attr:`best` tracks the same choice.

    Training stops once the model has been ready at each of the last ``patience + 1`` validations and the score
    has not improved by more than ``min_delta`` for ``patience`` of them; until then it goes on to the end of its
    budget (``max_iterations``), since a classifier from volume labels may leave chance late, and a few
    validation studies separate well by luck now and then.

    Args:
        score_name: the evaluator metric that ranks models (the key metric: higher is better).
        p_value_name: the evaluator metric of the chance of separating the studies as well by luck.
        significance: the largest p-value at which the model is ready.
        min_auc: the smallest score (AUC) at which the model is ready.
        patience: validations without improvement, once ready, before training stops.
        min_delta: the smallest rise of the score that counts as an improvement.
        early_stop: stop early at all (``False``: train to the budget, still tracking readiness).
    """

    def __init__(
        self,
        score_name: str = "val_volume_auc",
        p_value_name: str = "val_volume_separation_p",
        significance: float = 0.05,
        min_auc: float = 0.9,
        patience: int = 2,
        min_delta: float = 0.0,
        early_stop: bool = True,
    ) -> None:
        if not 0.0 < float(significance) < 1.0:
            raise ValueError(f"significance must be in (0, 1), got {significance!r}.")
        if not 0.5 <= float(min_auc) <= 1.0:
            raise ValueError(f"min_auc must be in [0.5, 1], got {min_auc!r}.")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive number of validations, got {patience!r}.")
        if not math.isfinite(float(min_delta)) or float(min_delta) < 0:
            raise ValueError(f"min_delta must be a finite non-negative score difference, got {min_delta!r}.")
        self.score_name = score_name
        self.p_value_name = p_value_name
        self.significance = float(significance)
        self.min_auc = float(min_auc)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.early_stop = bool(early_stop)
        self.record = ReadinessRecord(self)
        self.trainer: Engine | None = None
        self._reset()

    def _reset(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # the validation whose model is model.pt
        self.top_score = -math.inf  # the score improvements are counted from (ties are no improvement)
        self.since_improvement = 0
        self.stopped_at: int | None = None

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._validated)

    def set_trainer(self, trainer: Engine) -> None:
        """The trainer to stop; attach it after the checkpoint loader, so that a resume has restored the state."""
        self.trainer = trainer
        trainer.add_event_handler(Events.STARTED, self._stay_stopped)
        trainer.add_event_handler(Events.COMPLETED, self._report)

    def latest(self) -> dict[str, Any]:
        """The latest validation's readiness (what :class:`ReadinessRecord` saves)."""
        latest = self.history[-1] if self.history else {}
        return {"measure": self.score_name, "significance": self.significance, "min_auc": self.min_auc, **latest}

    def _validated(self, evaluator: Engine) -> None:
        metrics = evaluator.state.metrics
        missing = [name for name in (self.score_name, self.p_value_name) if name not in metrics]
        if missing:
            raise KeyError(f"the readiness measure needs the evaluator metrics {missing}; it has {sorted(metrics)}.")
        score, p_value = float(metrics[self.score_name]), float(metrics[self.p_value_name])
        iteration = int(self.trainer.state.iteration) if self.trainer is not None else int(evaluator.state.epoch)
        dataset = getattr(getattr(evaluator, "data_loader", None), "dataset", None)
        entry = {
            "iteration": iteration,
            "score": score,
            "p_value": p_value,
            "rank": readiness_score(score, p_value, self.significance, self.min_auc),
            "volumes": len(dataset) if hasattr(dataset, "__len__") else None,
        }
        entry["ready"] = entry["rank"] == 1.0
        self.history.append(entry)
        if math.isnan(score):
            return
        # the saver of model.pt keeps the later of equal key metrics, so this mirrors which model it holds
        if self.best is None or entry["rank"] >= self.best["rank"]:
            self.best = entry
        if score > self.top_score + self.min_delta:
            self.top_score, self.since_improvement = score, 0
        else:
            self.since_improvement += 1
        plateaued = self.since_improvement >= self.patience
        # ready at each of the last patience + 1 validations: one lucky validation of a few studies is not a plateau
        recent = self.history[-self.patience - 1 :]
        steadily_ready = len(recent) == self.patience + 1 and all(entry["ready"] for entry in recent)
        if self.early_stop and self.trainer is not None and steadily_ready and plateaued:
            self.stopped_at = iteration
            logger.info(
                "stopping training at iteration %d: the model is ready (%s %.3f at iteration %d, chance p = %.3g) "
                "and the score has not improved in %d validations",
                iteration, self.score_name, self.best["score"], self.best["iteration"], self.best["p_value"],
                self.since_improvement,
            )  # fmt: skip
            self.trainer.terminate()

    def _stay_stopped(self, trainer: Engine) -> None:
        if self.stopped_at is not None:
            logger.info("training had stopped early at iteration %d; not resuming it", self.stopped_at)
            trainer.terminate()

    def _report(self, trainer: Engine) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_rank() > 0:
            return  # every rank decides alike (the metrics are gathered); one says so
        budget = int(trainer.state.max_epochs or 0) * int(trainer.state.epoch_length or 0)
        if self.best is None:
            logger.warning("no validation measured whether the classifier is ready for ToNNO.")
            return
        best = self.best
        if best["ready"]:
            logger.info(
                "the classifier is ready for ToNNO: at iteration %d its heatmaps tell the %s validation studies with "
                "lesions from those without at %s %.3f (chance p = %.3g)%s; model.pt is that model",
                best["iteration"], best["volumes"], self.score_name, best["score"], best["p_value"],
                f", training stopped at iteration {self.stopped_at} of {budget}" if self.stopped_at else "",
            )  # fmt: skip
            return
        logger.warning(
            "NOT READY: after %d iterations the classifier's ToNNO heatmaps do not tell the %s validation studies "
            "with lesions from those without well enough (best %s %.3f at iteration %d, chance p = %.3g; ready needs "
            "at least %g and at most %g). Its masks will not find the lesions. Train longer (a larger "
            "--max_iterations), start from pretrained weights, or check the volume labels; %s",
            trainer.state.iteration, best["volumes"], self.score_name, best["score"], best["iteration"],
            best["p_value"], self.min_auc, self.significance, _WHAT_TO_DO,
        )  # fmt: skip

    def state_dict(self) -> dict[str, str]:
        state = {
            "history": self.history,
            "best": self.best,
            "top_score": self.top_score if math.isfinite(self.top_score) else None,
            "since_improvement": self.since_improvement,
            "stopped_at": self.stopped_at,
        }
        return {"json": json.dumps(state)}

    def load_state_dict(self, state_dict: Mapping[str, str]) -> None:
        state = json.loads(state_dict["json"])
        self._reset()
        self.history = [self._ranked(entry) for entry in state["history"]]
        self.best = None if state["best"] is None else self._ranked(state["best"])
        self.top_score = -math.inf if state["top_score"] is None else float(state["top_score"])
        self.since_improvement = int(state["since_improvement"])
        self.stopped_at = state["stopped_at"]

    def _ranked(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A saved validation with its rank (a checkpoint written before ranks were saved has none)."""
        if "rank" not in entry and not math.isnan(entry["score"]):
            entry["rank"] = readiness_score(entry["score"], entry["p_value"], self.significance, self.min_auc)
        return entry


_WHAT_TO_DO = (
    "the bundle README says how to tell that training has worked and what to set for your data (voxel size, slice "
    "size, training length)."
)


def read_readiness(model_file: str | Path) -> dict[str, Any] | None:
    """The readiness recorded in a best model written by training (``None`` for a model without one)."""
    try:
        checkpoint = torch.load(Path(model_file).expanduser(), map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # loading the model says what is wrong with the file
    record = checkpoint.get(READINESS_KEY) if isinstance(checkpoint, dict) else None
    return json.loads(record["json"]) if isinstance(record, dict) and "json" in record else None


def warn_if_unready(model_file: str | Path) -> dict[str, Any] | None:
    """Inference's and evaluation's warning before they use a model that training did not find ready.

    Returns:
        The recorded readiness (``None`` when the model records none, which is warned about too).
    """
    readiness = read_readiness(model_file)
    if readiness is None or "ready" not in readiness:
        logger.warning(
            "%s records no readiness measure (a model from an older training, or trained elsewhere): nothing "
            "says whether its ToNNO masks find lesions.",
            model_file,
        )
        return readiness
    if not readiness["ready"]:
        logger.warning(
            "the model %s is NOT READY: at its best validation (iteration %d) its ToNNO heatmaps did not tell the %s "
            "validation studies with lesions from those without well enough (%s %.3f, chance p = %.3g; ready needs "
            "at least %g and at most %g). Its masks are not to be trusted; train longer. %s",
            model_file, readiness["iteration"], readiness.get("volumes"), readiness["measure"], readiness["score"],
            readiness["p_value"], readiness.get("min_auc", 0.5), readiness["significance"], _WHAT_TO_DO,
        )  # fmt: skip
    return readiness


def readiness_note(model_file: str | Path) -> str:
    """One line for a report above its table: whether the model evaluated was ready, and by what measure."""
    readiness = read_readiness(model_file)
    if readiness is None or "ready" not in readiness:
        return f"Model {Path(model_file).name}: no readiness recorded (a model from an older or another training)."
    studies = f"{readiness['volumes']} validation studies" if readiness.get("volumes") else "the validation studies"
    measured = (
        f"{readiness['measure']} {readiness['score']:.3f} on {studies} at iteration {readiness['iteration']}, "
        f"chance p = {readiness['p_value']:.3g}"
    )
    if readiness["ready"]:
        return f"Model {Path(model_file).name}: ready ({measured})."
    return (
        f"Model {Path(model_file).name}: NOT READY ({measured}; ready needs at least {readiness.get('min_auc', 0.5):g} "
        f"and at most {readiness['significance']:g}): the classifier had not learnt to tell studies with lesions from "
        "those without, so these numbers say little of the method. Train longer before reading them."
    )
