# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Lesion-wise detection metrics from connected components, Dice, MaxIoU and volume-level detection.

Conventions (paper Section 4.4, written down here because the paper's appendix is missing):

- components are 26-connected; a predicted component is a *true positive* if it overlaps a ground-truth
  component; a ground-truth component is *detected* if a predicted component overlaps it;
- precision = TP predicted components / predicted components, and 1 when nothing is predicted (no false
  claim); recall = detected / ground-truth components, and 1 when there is nothing to find; F1 is their harmonic
  mean, 0 when either is 0 (so an empty prediction of a lesion volume scores F1 = 0, and any component in a
  lesion-free volume scores F1 = 0; an empty prediction of an empty volume scores 1);
- Dice of empty prediction and empty ground truth is 1;
- MaxIoU is the IoU between the ground-truth box and the bounding box of the predicted component that overlaps
  it best (0 when no component);
- a volume is called positive when any predicted component survives postprocessing.

The overlap rule lets one component that covers a whole organ "detect" every lesion in it. The stricter
detection rule of the MSSEG-2016 evaluation (Commowick et al., *Objective evaluation of multiple sclerosis lesion
segmentation using a data management and processing infrastructure*, Sci. Rep. 2018) is
:func:`msseg_counts_from_labels`: a lesion is detected when the predicted components cover more than ``alpha``
of it and those that make up the first ``gamma`` of that cover each lie at most ``beta`` outside every lesion;
a predicted component is a true positive by the same rule with the roles swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from scipy import ndimage

from monai_tonno.metrics.classification import balanced_accuracy

__all__ = [
    "LesionCounts",
    "LesionDetectionMetric",
    "MaxIoUMetric",
    "VolumeDetectionMetric",
    "counts_from_labels",
    "dice",
    "lesion_counts",
    "max_iou",
    "msseg_counts_from_labels",
    "precision_recall_f1",
]

STRUCTURE_26 = ndimage.generate_binary_structure(3, 3)  # 26-connectivity: how lesions and components are counted


@dataclass(frozen=True)
class LesionCounts:
    """Component counts of one volume."""

    predicted: int
    true_positive: int
    ground_truth: int
    detected: int


def _labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask > 0, structure=STRUCTURE_26)


def _as_array(mask, name: str = "mask") -> np.ndarray:
    """An ``(X, Y, Z)`` mask or label map (a leading axis of size 1 is dropped), checked to be one."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim > 3 and int(np.prod(array.shape[:-3])) == 1:
        array = array.reshape(array.shape[-3:])
    if array.ndim != 3:
        raise ValueError(f"{name} must be one (X, Y, Z) volume (or (1, X, Y, Z)), got shape {array.shape}.")
    _check_mask(name, array)
    return array


def _check_mask(name: str, array: np.ndarray) -> None:
    """A binary mask or a label map: booleans, or whole numbers >= 0 (a heatmap must be binarised first)."""
    if array.dtype == bool:
        return
    if np.issubdtype(array.dtype, np.floating):
        bad = (array < 0) | (array != np.round(array)) | ~np.isfinite(array)
    elif np.issubdtype(array.dtype, np.integer):
        bad = array < 0
    else:
        raise TypeError(f"{name} must be a boolean or numeric mask, got dtype {array.dtype}.")
    if bad.any():
        example = array[bad].reshape(-1)[0]
        raise ValueError(
            f"{name} must be a binary mask or a label map (whole numbers >= 0), but holds {example!r}: binarise "
            "heatmaps first (Binarize / Binarized) and label them with ConnectedComponents."
        )


def lesion_counts(prediction, ground_truth) -> LesionCounts:
    """Count the predicted and ground-truth components of two ``(X, Y, Z)`` masks and their matches."""
    pred, truth = _as_array(prediction, "prediction"), _as_array(ground_truth, "ground truth")
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {pred.shape} and {truth.shape}.")
    return counts_from_labels(_labels(pred)[0], *_labels(truth))


def counts_from_labels(pred_labels: np.ndarray, truth_labels: np.ndarray, num_truth: int) -> LesionCounts:
    """:func:`lesion_counts` of masks already labelled into components (label 0 is background; the predicted
    labels need not be consecutive), for callers that score one truth against many predictions."""
    overlap = (pred_labels > 0) & (truth_labels > 0)
    return LesionCounts(
        predicted=len(np.unique(pred_labels[pred_labels > 0])),
        true_positive=len(np.unique(pred_labels[overlap])),
        ground_truth=int(num_truth),
        detected=len(np.unique(truth_labels[overlap])),
    )


def msseg_counts_from_labels(
    pred_labels: np.ndarray,
    truth_labels: np.ndarray,
    alpha: float = 0.1,
    beta: float = 0.65,
    gamma: float = 0.7,
) -> LesionCounts:
    """Component counts under the MSSEG-2016 detection rule (see the module's docstring), from label maps.

    Args:
        pred_labels: predicted components (label 0 is background; labels need not be consecutive).
        truth_labels: ground-truth components, labelled the same way.
        alpha: the share of a component that the other side must cover for it to count.
        beta: the largest share of a covering component that may lie outside the other side's components.
        gamma: the share of the cover, taken from the largest overlaps down, whose components are checked.
    """
    pred, truth = _consecutive(pred_labels), _consecutive(truth_labels)
    num_pred, num_truth = int(pred.max(initial=0)), int(truth.max(initial=0))
    table = np.bincount(truth * (num_pred + 1) + pred, minlength=(num_truth + 1) * (num_pred + 1))
    table = table.reshape(num_truth + 1, num_pred + 1).astype(np.float64)  # [truth label, predicted label]
    detected = _msseg_found(table, alpha, beta, gamma)
    true_positive = _msseg_found(table.T, alpha, beta, gamma)
    return LesionCounts(predicted=num_pred, true_positive=true_positive, ground_truth=num_truth, detected=detected)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..K in order, background (0) kept 0, flattened."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1) + (0 if values.size and values[0] == 0 else 1)


def _msseg_found(table: np.ndarray, alpha: float, beta: float, gamma: float) -> int:
    """How many components of the rows' side the columns' side finds (row and column 0 are background)."""
    sizes_of_columns = table.sum(0)
    outside = np.divide(table[0], sizes_of_columns, out=np.zeros_like(sizes_of_columns), where=sizes_of_columns > 0)
    found = 0
    for row in table[1:]:
        covered = row[1:].sum()
        if covered <= alpha * row.sum():
            continue
        order = 1 + np.argsort(-row[1:], kind="stable")
        order = order[row[order] > 0]
        shares = np.cumsum(row[order]) / covered
        checked = order[: int(np.searchsorted(shares, gamma, side="right")) + 1]  # up to the first past gamma
        found += bool((outside[checked] <= beta).all())
    return found


def precision_recall_f1(counts: LesionCounts) -> tuple[float, float, float]:
    """Lesion-wise precision, recall and F1 of one volume, with the conventions of this module."""
    precision = counts.true_positive / counts.predicted if counts.predicted else 1.0
    recall = counts.detected / counts.ground_truth if counts.ground_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def dice(prediction, ground_truth) -> float:
    """Dice of two binary masks; 1 when both are empty."""
    pred, truth = _as_array(prediction, "prediction") > 0, _as_array(ground_truth, "ground truth") > 0
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (pred & truth).sum() / total)


def _box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    where = np.nonzero(mask)
    return np.array([w.min() for w in where]), np.array([w.max() + 1 for w in where])


def _box_iou(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    low, high = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    intersection = float(np.prod(np.clip(high - low, 0, None)))
    union = float(np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - intersection)
    return intersection / union if union else 0.0


def max_iou(prediction, box_mask) -> float:
    """IoU of the ground-truth box (the bounding box of ``box_mask``) and the best predicted component's box."""
    pred, truth = _as_array(prediction, "prediction"), _as_array(box_mask, "box mask") > 0
    if not truth.any():
        raise ValueError("MaxIoU needs a ground-truth box; the box mask is empty.")
    labels, count = _labels(pred)
    target = _box(truth)
    return max((_box_iou(_box(labels == k), target) for k in range(1, count + 1)), default=0.0)


class _PerVolumeMetric(CumulativeIterationMetric):
    """Accumulates one row of numbers per volume of a batch of ``(B, 1, X, Y, Z)`` predictions.

    ``y_pred`` and ``y`` are binary masks or label maps (e.g. from :class:`~monai_tonno.transforms.Binarize` and
    :class:`~monai_tonno.transforms.ConnectedComponents`), batch first as in every MONAI metric.
    """

    def _row(self, prediction: np.ndarray, ground_truth: np.ndarray) -> list[float]:
        raise NotImplementedError

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("a ground truth is needed.")
        for name, value in (("y_pred", y_pred), ("y", y)):
            if value.ndim != 5 or value.shape[1] != 1:
                raise ValueError(
                    f"{name} must be a batch of one-channel masks (B, 1, X, Y, Z), got shape {tuple(value.shape)}; "
                    "add the batch axis of a single volume with mask[None]."
                )
        if y_pred.shape != y.shape:
            raise ValueError(f"y_pred and y differ in shape: {tuple(y_pred.shape)} and {tuple(y.shape)}.")
        rows = [self._row(_as_array(p, "y_pred"), _as_array(t, "y")) for p, t in zip(y_pred, y, strict=True)]
        return torch.tensor(rows, dtype=torch.float64)

    def _buffer(self) -> torch.Tensor:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError("no volume was accumulated.")
        return data


class LesionDetectionMetric(_PerVolumeMetric):
    """Lesion-wise precision, recall, F1 and Dice, each the mean over volumes (``reduction="mean"``) or, for
    precision, recall and F1, from counts pooled over all volumes (``reduction="pooled"``).

    ``aggregate()`` returns ``{"precision", "recall", "f1", "dice"}`` by ``reduction``, and whatever the reduction
    ``"f1_pooled"`` (from the lesion counts of all volumes), ``"f1_msseg"`` (the same under the MSSEG detection
    rule, :func:`msseg_counts_from_labels`) and ``"dice_positive"`` (the mean Dice over the volumes whose truth
    has a lesion; NaN without one). The per-volume means score a volume without lesions and without
    components 1, so a method that predicts nothing scores the share of negative volumes there; it scores 0 in
    these two.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "pooled"):
            raise ValueError(f"reduction must be 'mean' or 'pooled', got {reduction!r}.")
        self.reduction = reduction

    def _row(self, prediction: np.ndarray, ground_truth: np.ndarray) -> list[float]:
        counts = lesion_counts(prediction, ground_truth)
        strict = msseg_counts_from_labels(_labels(prediction)[0], _labels(ground_truth)[0])
        has_lesion = float(np.asarray(ground_truth).any())
        scores = [*precision_recall_f1(counts), dice(prediction, ground_truth)]
        return [*scores, *vars(counts).values(), *vars(strict).values(), has_lesion]

    def aggregate(self) -> dict[str, float]:  # type: ignore[override]
        data = self._buffer()
        positive = data[:, -1] > 0
        result = {"dice": float(data[:, 3].mean())}
        totals = data[:, 4:8].sum(0).long().tolist()
        pooled = precision_recall_f1(LesionCounts(*totals))
        result["f1_msseg"] = precision_recall_f1(LesionCounts(*data[:, 8:12].sum(0).long().tolist()))[2]
        if self.reduction == "mean":
            result.update(
                precision=float(data[:, 0].mean()), recall=float(data[:, 1].mean()), f1=float(data[:, 2].mean())
            )
        else:
            result.update(precision=pooled[0], recall=pooled[1], f1=pooled[2])
        result["f1_pooled"] = pooled[2]
        result["dice_positive"] = float(data[positive, 3].mean()) if bool(positive.any()) else float("nan")
        return result


class MaxIoUMetric(_PerVolumeMetric):
    """Mean MaxIoU over volumes whose ground truth is a box mask (volumes without a box are skipped)."""

    def _row(self, prediction: np.ndarray, ground_truth: np.ndarray) -> list[float]:
        return [max_iou(prediction, ground_truth) if ground_truth.any() else float("nan")]

    def aggregate(self) -> float:  # type: ignore[override]
        values = self._buffer()[:, 0]
        values = values[~torch.isnan(values)]
        return float(values.mean()) if values.numel() else float("nan")


class VolumeDetectionMetric(_PerVolumeMetric):
    """Balanced accuracy of calling a volume positive when any predicted component survives."""

    def _row(self, prediction: np.ndarray, ground_truth: np.ndarray) -> list[float]:
        return [float(prediction.any()), float(ground_truth.any())]

    def aggregate(self) -> float:  # type: ignore[override]
        data = self._buffer()
        return balanced_accuracy(data[:, 0] > 0, data[:, 1] > 0)
