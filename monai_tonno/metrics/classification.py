# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Classification metrics for validating a slice classifier: volume-level balanced accuracy."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

__all__ = ["REDUCTIONS", "BalancedAccuracy", "BalancedAccuracyMetric", "balanced_accuracy"]

REDUCTIONS = ("mean", "max", "top")


def balanced_accuracy(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean of sensitivity and specificity of binary calls; a class absent from ``target`` is left out."""
    predicted, target = predicted.reshape(-1).bool(), target.reshape(-1).bool()
    rates = [float((predicted[target == c] == c).float().mean()) for c in (True, False) if bool((target == c).any())]
    return sum(rates) / len(rates) if rates else float("nan")


class BalancedAccuracyMetric(CumulativeIterationMetric):
    """Balanced accuracy of per-volume scores thresholded at ``threshold``.

    Each ``y_pred`` item is a score (or the slice logits of one volume, reduced by ``reduction`` after a
    sigmoid); ``y`` is the volume label.

    Args:
        threshold: a volume is called positive when its score exceeds it.
        reduction: ``"mean"``, ``"max"`` or ``"top"`` (the mean of the ``top_fraction`` highest, as
            :class:`~monai_tonno.engines.SliceMILLoss` pools a positive volume) over the last axis of ``y_pred``
            items with more than one value.
        top_fraction: the share of slices of ``"top"``.
    """

    def __init__(self, threshold: float = 0.5, reduction: str = "mean", top_fraction: float = 0.25) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}.")
        self.threshold = threshold
        self.reduction = reduction
        self.top_fraction = top_fraction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        logits = y_pred.float().reshape(y_pred.shape[0], -1)
        if self.reduction == "mean":
            score = torch.sigmoid(logits).mean(dim=1)
        elif self.reduction == "max":
            score = torch.sigmoid(logits).amax(dim=1)
        else:
            top = max(1, round(self.top_fraction * logits.shape[1]))
            score = torch.sigmoid(logits.topk(top, dim=1).values.mean(dim=1))
        return torch.stack([score, torch.as_tensor(y, device=score.device).float().reshape(-1)], dim=1)

    def aggregate(self) -> float:  # type: ignore[override]
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError("no prediction was accumulated.")
        return balanced_accuracy(data[:, 0] > self.threshold, data[:, 1] > 0.5)


class BalancedAccuracy(IgniteMetricHandler):
    """Ignite handler of :class:`BalancedAccuracyMetric` for MONAI evaluators.

    Args:
        threshold: see :class:`BalancedAccuracyMetric`.
        reduction: see :class:`BalancedAccuracyMetric`.
        top_fraction: see :class:`BalancedAccuracyMetric`.
        output_transform: maps the engine output to ``(y_pred, y)``.
        save_details: keep per-item values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        reduction: str = "mean",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        top_fraction: float = 0.25,
    ) -> None:
        super().__init__(
            metric_fn=BalancedAccuracyMetric(threshold, reduction, top_fraction),
            output_transform=output_transform,
            save_details=save_details,
        )
