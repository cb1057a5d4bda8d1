# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Heatmap postprocessing: binarisation and connected components (array transforms)."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from scipy import ndimage

from monai_tonno.metrics.lesion import STRUCTURE_26
from monai_tonno.transforms.threshold_file import load_threshold

__all__ = ["BINARIZE_STRATEGIES", "Binarize", "ConnectedComponents", "detection_peak", "otsu_threshold"]

BINARIZE_STRATEGIES = ("fixed", "quantile", "otsu", "fitted", "hysteresis")


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold: the cut of a histogram of ``values`` that maximises the between-class variance.

    Not scikit-image's ``threshold_otsu``: that one returns the centre of the first bin of highest variance, which
    for a heatmap whose lesion voxels sit far above the rest (empty bins between them, a plateau of equal
    variance) hugs the background and grows every mask; this one cuts in the middle of the plateau. It also
    runs on torch tensors and keeps scikit-image an optional dependency.
    """
    values = values.reshape(-1).double()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return high
    counts = torch.histc(values, bins=bins, min=low, max=high)
    centres = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    centres = (centres[:-1] + centres[1:]) / 2
    weight = torch.cumsum(counts, 0)
    mass = torch.cumsum(counts * centres, 0)
    total, total_mass = weight[-1], mass[-1]
    below_mean = mass / weight.clamp(min=1)
    above_mean = (total_mass - mass) / (total - weight).clamp(min=1)
    between = (weight * (total - weight) * (below_mean - above_mean) ** 2)[:-1]
    # empty bins between two populations give a plateau of equal scores: cut in its middle, not at its start
    best = torch.nonzero(between >= between.max() * (1 - 1e-9)).reshape(-1)
    edge = (int(best[0]) + int(best[-1]) + 1) / 2
    return float(low + edge * (high - low) / bins)


def detection_peak(heatmap, min_size: float = 0) -> float:
    """The highest threshold at which ``heatmap > threshold`` still keeps a component of ``min_size`` voxels.

    The volume is called positive at any threshold below it; ``-inf`` when no component is ever that large.

    Args:
        heatmap: an ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) heatmap.
        min_size: the smallest component kept, in voxels, as at inference.
    """
    array = np.asarray(torch.as_tensor(heatmap).detach().cpu(), dtype=np.float64)
    array = array.reshape(array.shape[-3:])
    values = np.unique(array)  # sorted; {heatmap >= values[k]} shrinks as k grows

    def has_component(k: int) -> bool:
        labels, count = ndimage.label(array >= values[k], structure=STRUCTURE_26)
        return count > 0 and int(np.bincount(labels.ravel())[1:].max()) >= max(min_size, 1)

    if not has_component(0):
        return float("-inf")
    low, high = 0, len(values) - 1  # has_component(low) holds; find the last k where it does
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if has_component(middle) else (low, middle - 1)
    # {heatmap > t} equals {heatmap >= values[low]} for t just below values[low]
    return float(values[low])


class Binarize(Transform):
    """Binarise a heatmap: voxels above a threshold are foreground.

    ToNNO heatmaps are signed: positive where the network sees the positive class, negative where it is sure of
    absence. ``polarity="positive"`` (default) thresholds the heatmap as is; ``"negative"`` flips its sign first.
    A ``(C, X, Y, Z)`` heatmap gets one threshold; a batch ``(B, C, X, Y, Z)`` one threshold per volume, so that
    a quiet volume beside a loud one is not thresholded by the loud one's scale.

    Args:
        strategy: ``"fixed"`` (``value`` is the threshold), ``"quantile"`` (``value`` in ``[0, 1]`` is a quantile
            of the heatmap's voxels), ``"otsu"`` (Otsu's threshold of the positive voxels) or ``"fitted"`` (the
            threshold fitted on validation volumes and saved in ``threshold_file``, see
            :func:`~monai_tonno.engines.fit_threshold`), or ``"hysteresis"``: the components above Otsu's
            threshold that reach the *detection* threshold (``value``, or the one in ``threshold_file``, e.g.
            calibrated from volume labels by :func:`~monai_tonno.engines.fit_detection_threshold`) in a
            component of at least ``seed_min_size`` voxels. The detection threshold decides whether there is a
            lesion, Otsu's (never above it) how far it extends; a volume without a detection stays empty.
        value: the threshold or the quantile.
        polarity: ``"positive"`` or ``"negative"``.
        min_threshold: the threshold never goes below this (e.g. 0, so that a negative volume stays empty).
        threshold_file: the JSON file of the ``"fitted"`` and ``"hysteresis"`` strategies.
        model_file: the model whose heatmaps are binarised; the threshold file must have been fitted for it (its
            SHA-256 is recorded there), so a threshold copied from another run is refused. ``None`` checks nothing.
        seed_min_size: the ``"hysteresis"`` strategy's smallest component above the detection threshold, in voxels
            (inference's ``min_component_voxels``, as the calibration counts them).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        strategy: str = "otsu",
        value: float = 0.0,
        polarity: str = "positive",
        min_threshold: float | None = 0.0,
        threshold_file: str | None = None,
        seed_min_size: float = 0,
        model_file: str | None = None,
    ) -> None:
        if strategy not in BINARIZE_STRATEGIES:
            raise ValueError(f"strategy must be one of {BINARIZE_STRATEGIES}, got {strategy!r}.")
        if strategy == "quantile" and not 0.0 <= value <= 1.0:
            raise ValueError(f"a quantile must be in [0, 1], got {value}.")
        if polarity not in ("positive", "negative"):
            raise ValueError(f"polarity must be 'positive' or 'negative', got {polarity!r}.")
        if strategy == "fitted" and not threshold_file:
            raise ValueError("the 'fitted' strategy needs threshold_file, the JSON written by save_threshold.")
        if strategy in ("fitted", "hysteresis") and threshold_file:
            value = load_threshold(threshold_file, model_file)
        self.strategy = strategy
        self.value = float(value)
        self.polarity = polarity
        self.min_threshold = min_threshold
        self.seed_min_size = seed_min_size

    def threshold(self, heatmap: torch.Tensor) -> float:
        """The threshold this transform would apply to ``heatmap`` (after the polarity flip)."""
        if self.strategy in ("fixed", "fitted", "hysteresis"):  # hysteresis: the detection threshold
            threshold = self.value
        elif self.strategy == "quantile":
            # numpy's quantile is exact at any size (torch.quantile refuses inputs of over 16 million values)
            threshold = float(np.quantile(heatmap.detach().reshape(-1).cpu().double().numpy(), self.value))
        else:
            positive = heatmap[heatmap > 0]
            threshold = otsu_threshold(positive) if positive.numel() > 1 else float("inf")
        return max(threshold, self.min_threshold) if self.min_threshold is not None else threshold

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``(C, X, Y, Z)`` or ``(B, C, X, Y, Z)`` heatmap to a ``uint8`` mask of the same shape."""
        heatmap = convert_to_tensor(img, track_meta=False).float()
        if heatmap.ndim not in (4, 5):
            raise ValueError(
                f"Binarize expects a channel-first heatmap (C, X, Y, Z) or a batch (B, C, X, Y, Z), got shape "
                f"{tuple(heatmap.shape)}."
            )
        if self.polarity == "negative":
            heatmap = -heatmap
        volumes = heatmap if heatmap.ndim == 5 else heatmap[None]
        threshold = self._hysteresis if self.strategy == "hysteresis" else lambda v: v > self.threshold(v)
        mask = torch.stack([threshold(volume) for volume in volumes]).to(torch.uint8)
        return convert_to_dst_type(mask.reshape(heatmap.shape), img, dtype=torch.uint8)[0]

    def _hysteresis(self, volume: torch.Tensor) -> torch.Tensor:
        """``(C, X, Y, Z)``: per channel, the components above the growing threshold that hold a large seed.

        scikit-image's ``apply_hysteresis_threshold`` keeps a component that reaches the high threshold in one
        voxel, with 6-connectivity; the calibration counted detections as 26-connected components of at least
        ``seed_min_size`` voxels above it, so the seeds here are those components.
        """
        high = self.threshold(volume)
        positive = volume[volume > 0]
        low = min(otsu_threshold(positive) if positive.numel() > 1 else high, high)
        if self.min_threshold is not None:
            low = max(low, self.min_threshold)
        masks = []
        for channel in volume.detach().cpu().numpy():
            seeds, _ = ndimage.label(channel > high, structure=STRUCTURE_26)
            sizes = np.bincount(seeds.ravel())
            seeds = (sizes >= max(self.seed_min_size, 1))[seeds] & (seeds > 0)
            grown, _ = ndimage.label(channel > low, structure=STRUCTURE_26)
            masks.append(np.isin(grown, np.unique(grown[seeds])) & (grown > 0))
        return torch.as_tensor(np.stack(masks), device=volume.device)


class ConnectedComponents(Transform):
    """Label the connected components of a binary mask; optionally drop those smaller than ``min_size``.

    Takes a channel-first mask ``(C, X, Y, Z)`` (each channel labelled on its own) or a batch
    ``(B, C, X, Y, Z)``, such as :class:`Binarize` returns.

    Args:
        connectivity: 6, 18 or 26 (3D neighbourhoods).
        min_size: drop components with fewer voxels (or fewer mm^3 with ``min_size_unit="mm3"``).
        min_size_unit: ``"voxels"`` or ``"mm3"`` (voxel volume from the ``MetaTensor`` affine; a plain tensor has
            no affine, so ``"mm3"`` raises a ``ValueError`` for it).
        relabel: return labels ``1..K`` (True) or a binary mask of the kept components (False).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self, connectivity: int = 26, min_size: float = 0, min_size_unit: str = "voxels", relabel: bool = True
    ) -> None:
        if connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}.")
        if min_size_unit not in ("voxels", "mm3"):
            raise ValueError(f"min_size_unit must be 'voxels' or 'mm3', got {min_size_unit!r}.")
        self.structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
        self.min_size = min_size
        self.min_size_unit = min_size_unit
        self.relabel = relabel

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        array = np.asarray(convert_to_tensor(img, track_meta=False).cpu())
        if array.ndim not in (4, 5):
            raise ValueError(
                f"expected a channel-first mask (C, X, Y, Z) or a batch (B, C, X, Y, Z), got shape {array.shape}."
            )
        volumes = array if array.ndim == 5 else array[None]
        voxels = [1.0] * len(volumes)
        if self.min_size_unit == "mm3" and self.min_size > 0:
            if not isinstance(img, MetaTensor):
                raise ValueError(
                    "min_size_unit='mm3' needs the voxel size, but the mask is a plain tensor without an affine; "
                    "pass a MetaTensor or use min_size_unit='voxels'."
                )
            affines = img.affine if img.affine.ndim == 3 else img.affine[None].expand(len(volumes), 4, 4)
            voxels = [float(torch.linalg.det(affine[:3, :3].double()).abs()) for affine in affines]
        labels = np.zeros(volumes.shape, dtype=np.int32)
        for index, (volume, voxel) in enumerate(zip(volumes, voxels, strict=True)):
            for channel, mask in enumerate(volume):
                labels[index, channel] = self._label(mask, voxel)
        return convert_to_dst_type(torch.as_tensor(labels.reshape(array.shape)), img, dtype=torch.int32)[0]

    def _label(self, mask: np.ndarray, voxel: float) -> np.ndarray:
        # MONAI's RemoveSmallObjects(by_measure=True) does the mm^3 cut through scikit-image and does not relabel;
        # one scipy labelling gives both here
        labelled, count = ndimage.label(mask > 0, structure=self.structure)
        if count and self.min_size > 0:
            sizes = np.bincount(labelled.ravel())[1:] * voxel
            keep = np.concatenate([[0], np.cumsum(sizes >= self.min_size) * (sizes >= self.min_size)])
            labelled = keep[labelled]
        return labelled if self.relabel else labelled > 0
