# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Classification metrics for validating a slice classifier: volume-level balanced accuracy, and how well volume
scores separate the labels (ROC AUC, and the chance of separating as well by luck)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

__all__ = [
    "REDUCTIONS",
    "SEPARATION_STATISTICS",
    "BalancedAccuracy",
    "BalancedAccuracyMetric",
    "VolumeSeparation",
    "VolumeSeparationMetric",
    "balanced_accuracy",
    "readiness_score",
    "separation_p_value",
    "volume_auc",
]

REDUCTIONS = ("mean", "max", "top")


def balanced_accuracy(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean of sensitivity and specificity of binary calls; a class absent from ``target`` is left out."""
    predicted, target = predicted.reshape(-1).bool(), target.reshape(-1).bool()
    rates = [float((predicted[target == c] == c).float().mean()) for c in (True, False) if bool((target == c).any())]
    return sum(rates) / len(rates) if rates else float("nan")


def _best_balanced_accuracy(ordered_labels: np.ndarray, group_ends: np.ndarray) -> np.ndarray:
    """Per row of ``ordered_labels`` ``(R, n)`` (volumes sorted by falling peak), the best balanced accuracy of
    calling the first volumes positive, cutting only between groups of equal peaks (ends in ``group_ends``)."""
    positives = ordered_labels.sum(axis=1, keepdims=True)
    negatives = ordered_labels.shape[1] - positives
    called = np.concatenate([np.zeros((len(ordered_labels), 1)), np.cumsum(ordered_labels, axis=1)], axis=1)
    cuts = np.concatenate([[0], group_ends])  # how many volumes are called positive
    true_positive = called[:, cuts]
    true_negative = negatives - (cuts[None, :] - true_positive)
    return (0.5 * (true_positive / positives + true_negative / negatives)).max(axis=1)


def separation_p_value(
    peaks: Sequence[float], labels: Sequence[int], permutations: int = 20000, seed: int = 0
) -> float:
    """How often chance separates the volumes as well as ``peaks`` do: the permutation p-value of the best
    balanced accuracy over thresholds.

    A threshold chosen as the best of many on a handful of volumes looks good by luck (the best of the cuts of 16
    random peaks easily reaches a balanced accuracy of 0.6), so the statistic is the *best* balanced accuracy,
    and its null distribution is that of the labels shuffled among the volumes: exact (every assignment of the
    positive labels) when there are at most ``permutations`` of them, else ``permutations`` random shuffles.
    With 3 + 3 volumes only a perfect separation reaches 0.05 (1 assignment in 20).

    Args:
        peaks: each volume's score, e.g. its :func:`~monai_tonno.transforms.detection_peak`.
        labels: the volume labels.
        permutations: the most assignments enumerated, and the number of random ones beyond.
        seed: seed of the random shuffles.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    labels = np.asarray([int(label) for label in labels])
    order = np.argsort(-peaks, kind="stable")
    ordered = peaks[order]
    group_ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True)) + 1
    observed = _best_balanced_accuracy(labels[order][None].astype(np.float64), group_ends)[0]
    count, positives = len(labels), int(labels.sum())
    if math.comb(count, positives) <= permutations:
        rows = np.zeros((math.comb(count, positives), count))
        for row, chosen in enumerate(itertools.combinations(range(count), positives)):
            rows[row, list(chosen)] = 1.0
    else:
        rng = np.random.default_rng(seed)
        rows = np.array([rng.permutation(labels) for _ in range(permutations)], dtype=np.float64)
        null = _best_balanced_accuracy(rows, group_ends)
        return float((np.sum(null >= observed - 1e-12) + 1) / (permutations + 1))  # the observed one counts
    null = _best_balanced_accuracy(rows, group_ends)
    return float(np.mean(null >= observed - 1e-12))


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


def volume_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC of volume scores: the chance that a volume with a lesion scores above one without (ties count
    half). Scores may be ``-inf`` (a volume with nothing above any threshold); ``nan`` when a label is missing."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    truth = np.asarray([int(label) for label in labels]).reshape(-1).astype(bool)
    if scores.shape != truth.shape:
        raise ValueError(f"need one label per score, got {scores.size} scores and {truth.size} labels.")
    if np.isnan(scores).any():
        raise ValueError(f"the volume scores hold NaN: {scores.tolist()}.")
    positive, negative = scores[truth], scores[~truth]
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    above = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(above / (positive.size * negative.size))


SEPARATION_STATISTICS = ("auc", "p_value", "readiness")


def readiness_score(auc: float, p_value: float, significance: float = 0.05, min_auc: float = 0.9) -> float:
    """The readiness of a classifier whose ToNNO detection peaks separate the validation volumes at ``auc`` with
    chance ``p_value``: 1 when it is ready (the p-value at most ``significance`` and the AUC at least ``min_auc``),
    else half the AUC, so that any ready model outranks every unready one. The one rule that the key metric
    (:class:`VolumeSeparationMetric`) and the early stop (:class:`~monai_tonno.engines.TrainingReadiness`) apply."""
    return 1.0 if p_value <= significance and auc >= min_auc else auc / 2


class VolumeSeparationMetric(CumulativeIterationMetric):
    """How well one score per volume tells the volumes with a lesion from those without.

    Each ``y_pred`` item is one volume's score (e.g. the :func:`~monai_tonno.transforms.detection_peak` of its
    ToNNO heatmap), ``y`` its label. ``statistic``:

    - ``"auc"``: the ROC AUC (:func:`volume_auc`);
    - ``"p_value"``: the chance that labels shuffled among the volumes are separated as well
      (:func:`separation_p_value`), which accounts for how few volumes there are;
    - ``"readiness"``: 1 when that chance is at most ``significance`` and the AUC at least ``min_auc`` (the scores
      separate the volumes better than chance, and well), else half the AUC. As a key metric compared with
      ``>=``, it picks the latest model that does (training longer localises better once a model separates the
      volumes, and the AUC of a few volumes is too noisy to rank two such models), or, before any does, the one
      with the best AUC.

    Args:
        statistic: ``"auc"``, ``"p_value"`` or ``"readiness"``.
        significance: the p-value at or under which ``"readiness"`` can be 1.
        min_auc: the AUC at or over which ``"readiness"`` can be 1.
    """

    def __init__(self, statistic: str = "auc", significance: float = 0.05, min_auc: float = 0.9) -> None:
        super().__init__()
        if statistic not in SEPARATION_STATISTICS:
            raise ValueError(f"statistic must be one of {SEPARATION_STATISTICS}, got {statistic!r}.")
        if not 0.0 < float(significance) < 1.0:
            raise ValueError(f"significance must be in (0, 1), got {significance!r}.")
        self.statistic = statistic
        if not 0.5 <= float(min_auc) <= 1.0:
            raise ValueError(f"min_auc must be in [0.5, 1], got {min_auc!r}.")
        self.significance = float(significance)
        self.min_auc = float(min_auc)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        score = torch.as_tensor(y_pred).double().reshape(-1)
        label = torch.as_tensor(y, device=score.device).double().reshape(-1)
        if score.shape != label.shape:
            raise ValueError(f"need one score per volume label, got {score.numel()} scores and {label.numel()} labels.")
        return torch.stack([score, label], dim=1)

    def aggregate(self) -> float:  # type: ignore[override]
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError("no volume score was accumulated.")
        scores, labels = data[:, 0].cpu().numpy(), (data[:, 1] > 0.5).int().cpu().numpy()
        if self.statistic == "auc":
            return volume_auc(scores, labels)
        if len(set(labels.tolist())) < 2:
            return float("nan")
        p_value = separation_p_value(scores, labels)
        if self.statistic == "p_value":
            return p_value
        return readiness_score(volume_auc(scores, labels), p_value, self.significance, self.min_auc)


class VolumeSeparation(IgniteMetricHandler):
    """Ignite handler of :class:`VolumeSeparationMetric` for MONAI evaluators.

    Args:
        statistic: see :class:`VolumeSeparationMetric`.
        significance: see :class:`VolumeSeparationMetric`.
        min_auc: see :class:`VolumeSeparationMetric`.
        output_transform: maps the engine output to ``(y_pred, y)``, e.g.
            :func:`~monai_tonno.engines.volume_peaks`.
        save_details: keep per-item values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        statistic: str = "auc",
        significance: float = 0.05,
        min_auc: float = 0.9,
        output_transform: Callable = lambda x: x,
        save_details: bool = False,
    ) -> None:
        super().__init__(
            metric_fn=VolumeSeparationMetric(statistic, significance, min_auc),
            output_transform=output_transform,
            save_details=save_details,
        )
