# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""One PNG per evaluated volume: the input, and each method's heatmap with its mask outlined against the truth."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from monai_tonno.visualize.figures import diverging, grey, labelled_grid, orthogonal_views

__all__ = ["largest_lesion_centre", "methods_figure"]

TRUTH_COLOUR = (0, 170, 0)  # green
MASK_COLOUR = (0, 0, 0)  # black


def largest_lesion_centre(truth: np.ndarray) -> list[int]:
    """The voxel at the centre of mass of the largest 26-connected component of ``truth`` (the middle if empty)."""
    labels, count = ndimage.label(truth > 0, structure=np.ones((3, 3, 3)))
    if count == 0:
        return [n // 2 for n in truth.shape]
    largest = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return [int(round(c)) for c in ndimage.center_of_mass(largest)]


def methods_figure(
    image: np.ndarray,
    truth: np.ndarray,
    methods: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path | None = None,
    zoom: int = 3,
) -> Image.Image:
    """Three orthogonal views through the truth's largest lesion: each input channel, then every method.

    Each method's heatmap is drawn blue-white-red (symmetric about zero, saturating at its largest magnitude),
    with its binary mask outlined in black and the ground truth in green, so that a reader sees where a method
    finds the lesion, where it claims one that is not there, and what it misses.

    Args:
        image: ``(C, X, Y, Z)`` input.
        truth: ``(X, Y, Z)`` ground-truth mask.
        methods: ``{name: (heatmap (X, Y, Z), mask (X, Y, Z))}``.
        path: where to save the PNG.
        zoom: pixel replication factor.

    Raises:
        ValueError: a heatmap, mask or image whose spatial shape differs from the truth's.
    """
    truth = np.asarray(truth) > 0
    if np.shape(image)[1:] != truth.shape:
        raise ValueError(f"image {np.shape(image)} and truth {truth.shape} differ in their spatial shape.")
    centre = largest_lesion_centre(truth)
    rows: list[tuple[str, Image.Image]] = []
    for channel, values in enumerate(np.asarray(image, dtype=np.float32)):
        low, high = (float(v) for v in np.percentile(values, [1, 99.5]))
        views = orthogonal_views(values, lambda v, a=low, b=high: grey(v, a, b), zoom, centre, [(truth, TRUTH_COLOUR)])
        rows.append((f"input channel {channel}; truth in green", views))
    for name, (heatmap, mask) in methods.items():
        heatmap = np.asarray(heatmap, dtype=np.float32)
        if heatmap.shape != truth.shape or np.shape(mask) != truth.shape:
            raise ValueError(f"{name}: heatmap {heatmap.shape} and mask {np.shape(mask)} differ from {truth.shape}.")
        limit = float(np.abs(heatmap).max()) or 1.0
        outlines = [(np.asarray(mask) > 0, MASK_COLOUR), (truth, TRUTH_COLOUR)]
        views = orthogonal_views(heatmap, lambda v, s=limit: diverging(v, s), zoom, centre, outlines)
        rows.append((f"{name}; its mask in black", views))
    return labelled_grid(rows, path)
