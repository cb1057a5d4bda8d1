# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``ValidationInferer``: what a validation during training needs to tell whether ToNNO's masks will find lesions.

A slice classifier can score slices better than chance long before the profiles of its logits single out the
lesions, and one slice AUC is reached both by classifiers whose ToNNO masks find every lesion and by classifiers
whose masks find none (``benchmarks/README.md``). What predicts the masks is the masks' own decision: the
:func:`~monai_tonno.transforms.detection_peak` of each volume's ToNNO heatmap, which is what the calibrated
threshold cuts. Validation computes it at a few directions, where it costs about as much as scoring the slices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer

from monai_tonno.inferers.slice_sampling import SliceSamplingInferer
from monai_tonno.inferers.tomographic import TomographicInferer
from monai_tonno.transforms import detection_peak
from monai_tonno.transforms.body import body_mask

__all__ = ["ValidationInferer", "detection_peaks"]


def detection_peaks(
    inputs: torch.Tensor,
    network: Callable[..., Any],
    inferer: Callable[[torch.Tensor, Callable[..., Any]], torch.Tensor],
    min_size: float = 8,
    body_channel: int | None = None,
    body_threshold: float = 0.5,
) -> list[float]:
    """Each volume's :func:`~monai_tonno.transforms.detection_peak`: the highest threshold at which its ToNNO
    heatmap, restricted to the body as inference restricts it, keeps a component of ``min_size`` voxels.

    Args:
        inputs: ``(B, C, X, Y, Z)`` preprocessed volumes.
        network: the slice classifier.
        inferer: a ToNNO ``TomographicInferer`` (or any ``(inputs, network) -> (B, 1, X, Y, Z)`` heatmaps).
        min_size: the smallest component kept, in voxels, as at inference.
        body_channel: the channel the body is found in (``None``: the whole volume), as ``RestrictToBodyd``.
        body_threshold: the body's threshold in that channel's normalised units.
    """
    mode = getattr(inferer, "mode", "tonno")  # any callable returning (B, 1, X, Y, Z) heatmaps will do
    if mode != "tonno":
        raise ValueError(f"detection peaks are read from ToNNO heatmaps, got an inferer of mode {mode!r}.")
    with torch.no_grad():
        heatmaps = inferer(inputs, network)
    peaks = []
    for index in range(heatmaps.shape[0]):
        heatmap = np.asarray(heatmaps[index, 0].detach().float().cpu(), dtype=np.float32)
        if body_channel is not None:
            heatmap = heatmap * body_mask(inputs[index], body_channel, body_threshold)  # as RestrictToBodyd
        peaks.append(detection_peak(heatmap, min_size))
    return peaks


class ValidationInferer(Inferer):
    """Both scores of a validation: slice logits and each volume's ToNNO detection peak.

    Returns ``{"slices": (B, N) logits of slice_inferer, "peak": (B, 1)}``; the evaluator's output transforms
    :func:`~monai_tonno.engines.slice_predictions`, :func:`~monai_tonno.engines.volume_predictions` and
    :func:`~monai_tonno.engines.volume_peaks` read them.

    Args:
        slice_inferer: the random oblique slices scored for the slice-level metrics.
        tomographic_inferer: the ToNNO inferer of the peaks (a few directions suffice to rank the volumes).
        min_size: the smallest component kept, in voxels, as at inference.
        body_channel: the channel the body is found in (``None``: the whole volume).
        body_threshold: the body's threshold in that channel's normalised units.
    """

    def __init__(
        self,
        slice_inferer: SliceSamplingInferer,
        tomographic_inferer: TomographicInferer,
        min_size: float = 8,
        body_channel: int | None = None,
        body_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if tomographic_inferer.mode != "tonno":
            raise ValueError(f"tomographic_inferer must be a ToNNO inferer, got mode {tomographic_inferer.mode!r}.")
        self.slice_inferer = slice_inferer
        self.tomographic_inferer = tomographic_inferer
        self.min_size = float(min_size)
        self.body_channel = body_channel
        self.body_threshold = float(body_threshold)

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """``(B, C, X, Y, Z)`` volumes to ``{"slices": (B, N), "peak": (B, 1)}``."""
        slices = self.slice_inferer(inputs, network, *args, **kwargs)
        peaks = detection_peaks(
            inputs, network, self.tomographic_inferer, self.min_size, self.body_channel, self.body_threshold
        )
        return {"slices": slices, "peak": torch.tensor(peaks, dtype=torch.float64, device=slices.device)[:, None]}
