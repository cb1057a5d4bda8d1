# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Binarisation thresholds fitted on validation volumes (saved beside the model by
:func:`~monai_tonno.transforms.save_threshold` and reused at inference by :class:`~monai_tonno.transforms.Binarize`).

Two fits: :func:`fit_threshold` needs lesion masks (the evaluation's), :func:`fit_detection_threshold` only the
volume labels that training already has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from monai_tonno.metrics.classification import balanced_accuracy
from monai_tonno.metrics.lesion import (
    STRUCTURE_26,
    counts_from_labels,
    dice,
    msseg_counts_from_labels,
    precision_recall_f1,
)
from monai_tonno.transforms import ConnectedComponents, detection_peak

__all__ = ["FIT_SCORES", "fit_detection_threshold", "fit_threshold", "threshold_from_peaks"]

FIT_SCORES = ("dice", "f1", "f1_msseg")


def _score(
    heatmap: np.ndarray, truth: tuple[np.ndarray, int], threshold: float, score: str, components: ConnectedComponents
) -> float:
    """Dice or lesion F1 (overlap or MSSEG rule) of ``heatmap > threshold`` after ``components`` (which drops the
    small ones).

    The truth comes labelled once, ``(labels, count)``, since it is scored against many thresholds.
    """
    labels = np.asarray(components(torch.as_tensor(heatmap > threshold)[None]))[0]
    truth_labels, truth_count = truth
    if score == "dice":
        return dice(labels > 0, truth_labels > 0)
    if score == "f1_msseg":
        return precision_recall_f1(msseg_counts_from_labels(labels, truth_labels))[2]
    return precision_recall_f1(counts_from_labels(labels, truth_labels, truth_count))[2]


def fit_threshold(
    heatmaps: Sequence,
    masks: Sequence,
    score: str = "dice",
    num_candidates: int = 64,
    min_size: float = 0,
    polarity: str = "positive",
) -> tuple[float, float]:
    """The threshold that maximises the mean ``score`` (Dice or lesion F1) over the fitting volumes.

    Candidates are quantiles (from the 50th to the 99.9th percentile) of the pooled positive heatmap values, so
    the search adapts to the heatmaps' scale, refined by a finer grid around the best one; components smaller
    than ``min_size`` voxels are dropped first, as at inference.

    Args:
        heatmaps: ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) heatmaps of the fitting volumes.
        masks: their ground-truth masks.
        score: ``"dice"``, ``"f1"`` (the overlap rule) or ``"f1_msseg"`` (the MSSEG-2016 detection rule).
        num_candidates: thresholds tried in each of the two searches.
        min_size: smallest component kept, in voxels.
        polarity: ``"negative"`` flips the heatmaps' sign first.

    Returns:
        ``(threshold, best mean score)``; the threshold is ``inf`` (an empty mask) when no heatmap has a
        positive value.
    """
    if score not in FIT_SCORES:
        raise ValueError(f"score must be one of {FIT_SCORES}, got {score!r}.")
    if len(heatmaps) != len(masks) or not heatmaps:
        raise ValueError(f"need as many masks as heatmaps (at least one), got {len(heatmaps)} and {len(masks)}.")
    sign = -1.0 if polarity == "negative" else 1.0
    maps = [
        sign * np.asarray(torch.as_tensor(h).detach().cpu(), dtype=np.float32).reshape(np.shape(t)[-3:])
        for h, t in zip(heatmaps, masks, strict=True)
    ]
    truths = [
        ndimage.label(np.asarray(torch.as_tensor(t).cpu()).reshape(np.shape(t)[-3:]) > 0, structure=STRUCTURE_26)
        for t in masks
    ]
    positive = np.concatenate([m[m > 0] for m in maps])
    components = ConnectedComponents(26, min_size=min_size, relabel=True)

    def mean_score(threshold: float) -> float:
        return float(np.mean([_score(m, t, threshold, score, components) for m, t in zip(maps, truths, strict=True)]))

    if positive.size == 0:  # e.g. CAMs of an untrained network, all zero: nothing can be found above any threshold
        return float("inf"), mean_score(float("inf"))

    # a coarse search over quantiles, then a fine one between the best candidate's neighbours
    candidates = np.unique(np.quantile(positive, np.linspace(0.5, 0.999, num_candidates)))
    means = [mean_score(float(c)) for c in candidates]
    best = int(np.argmax(means))
    fine = np.linspace(candidates[max(best - 2, 0)], candidates[min(best + 2, len(candidates) - 1)], num_candidates)
    fine_means = [mean_score(float(c)) for c in fine]
    if max(fine_means) > means[best]:
        index = int(np.argmax(fine_means))
        return float(fine[index]), float(fine_means[index])
    return float(candidates[best]), float(means[best])


def fit_detection_threshold(heatmaps: Sequence, labels: Sequence[int], min_size: float = 0) -> tuple[float, float]:
    """A threshold from volume labels alone: the one that best tells the positive volumes from the negative.

    A volume is called positive when a component of ``min_size`` voxels survives the threshold, i.e. when the
    threshold lies below its :func:`detection_peak`. Among the thresholds of highest volume-level balanced
    accuracy (an interval between two volumes' peaks), the middle one is returned, as far as the data allow from
    the volumes on either side. Weak labels are enough: no lesion mask is needed.

    Args:
        heatmaps: ``(X, Y, Z)`` heatmaps of labelled validation volumes, restricted as at inference.
        labels: their volume labels (1: has a lesion).
        min_size: the smallest component kept, in voxels, as at inference.

    Returns:
        ``(threshold, balanced accuracy)``.
    """
    labels = [int(label) for label in labels]
    if len(heatmaps) != len(labels) or not heatmaps:
        raise ValueError(f"need one label per heatmap (at least one), got {len(heatmaps)} and {len(labels)}.")
    if set(labels) != {0, 1}:
        raise ValueError(f"need positive and negative volumes to fit a detection threshold, got labels {labels}.")
    return threshold_from_peaks([detection_peak(h, min_size) for h in heatmaps], labels)


def threshold_from_peaks(peaks: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """:func:`fit_detection_threshold` from the volumes' :func:`detection_peak` values: ``(threshold, balanced
    accuracy)``."""
    labels = [int(label) for label in labels]
    if set(labels) != {0, 1} or len(peaks) != len(labels):
        raise ValueError(f"need one label per peak and both labels, got {len(peaks)} peaks and labels {labels}.")
    peaks = np.asarray(peaks, dtype=np.float64)
    truth = np.array(labels, dtype=bool)
    finite = np.unique(peaks[np.isfinite(peaks)])
    if finite.size == 0:
        raise ValueError("no heatmap has a component of the smallest size kept above any threshold.")
    # one candidate inside each interval between consecutive peaks, and one beyond each end
    spread = float(finite[-1] - finite[0]) or 1.0
    candidates = np.concatenate([[finite[0] - spread], (finite[:-1] + finite[1:]) / 2, [finite[-1]]])
    accuracy = np.array(
        [float(balanced_accuracy(torch.as_tensor(peaks > t), torch.as_tensor(truth))) for t in candidates]
    )
    best = np.flatnonzero(accuracy == accuracy.max())
    index = int(best[len(best) // 2])
    return float(candidates[index]), float(accuracy[index])
