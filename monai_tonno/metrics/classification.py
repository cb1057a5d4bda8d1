# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Classification metrics for validating a slice classifier: volume-level balanced accuracy."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

__all__ = ["BalancedAccuracy", "BalancedAccuracyMetric", "balanced_accuracy"]


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
        reduction: ``"mean"`` or ``"max"`` over the last axis of ``y_pred`` items with more than one value.
    """

    def __init__(self, threshold: float = 0.5, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "max"):
            raise ValueError(f"reduction must be 'mean' or 'max', got {reduction!r}.")
        self.threshold = threshold
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        scores = torch.sigmoid(y_pred.float().reshape(y_pred.shape[0], -1))
        score = scores.mean(dim=1) if self.reduction == "mean" else scores.amax(dim=1)
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
        output_transform: maps the engine output to ``(y_pred, y)``.
        save_details: keep per-item values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        reduction: str = "mean",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=BalancedAccuracyMetric(threshold, reduction),
            output_transform=output_transform,
            save_details=save_details,
        )
