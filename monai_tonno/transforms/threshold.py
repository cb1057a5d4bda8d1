# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A binarisation threshold fitted on validation volumes, saved beside the model and reused at inference."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from monai_tonno.metrics.lesion import counts_from_labels, dice, precision_recall_f1
from monai_tonno.transforms.postprocess import ConnectedComponents

__all__ = ["FIT_SCORES", "fit_threshold", "load_threshold", "save_threshold"]

FIT_SCORES = ("dice", "f1")


_STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity, as the lesion metrics


def _score(
    heatmap: np.ndarray, truth: tuple[np.ndarray, int], threshold: float, score: str, components: ConnectedComponents
) -> float:
    """Dice or lesion F1 of ``heatmap > threshold`` after ``components`` (which drops the small ones).

    The truth comes labelled once, ``(labels, count)``, since it is scored against many thresholds.
    """
    labels = np.asarray(components(torch.as_tensor(heatmap > threshold)[None]))[0]
    truth_labels, truth_count = truth
    if score == "dice":
        return dice(labels > 0, truth_labels > 0)
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
        score: ``"dice"`` or ``"f1"``.
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
        ndimage.label(np.asarray(torch.as_tensor(t).cpu()).reshape(np.shape(t)[-3:]) > 0, structure=_STRUCTURE)
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


def save_threshold(path: str | Path, threshold: float, score: str, value: float, **details) -> Path:
    """Write ``{"threshold", "score", "value", ...}`` as JSON (next to the model it belongs to)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": threshold, "score": score, "value": value, **details}, indent=2))
    return path


def load_threshold(path: str | Path) -> float:
    """The threshold saved by :func:`save_threshold`; a clear error when the file is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fitted threshold at {str(path)!r}: fit one on validation volumes first.")
    try:
        return float(json.loads(path.read_text())["threshold"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{str(path)!r} holds no fitted threshold: {error}") from error
