# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The body from a CT channel: where any reader of a PET/CT heatmap would look (``RestrictToBodyd`` applies it)."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from scipy import ndimage

__all__ = ["BodyMask", "body_mask"]


def body_mask(image: NdarrayOrTensor, channel: int = 1, threshold: float = 0.5, margin: int = 1) -> np.ndarray:
    """The body of a ``(C, X, Y, Z)`` volume: its largest component above ``threshold`` in ``channel``, holes filled.

    Holes are filled in 3D and in every slice along the last (axial, after RAS orientation) axis, so that lungs
    count as body even when the airways connect them to the air outside.

    Args:
        image: ``(C, X, Y, Z)`` volume.
        channel: the channel to threshold (CT).
        threshold: body above it (0.5 is -500 HU after the AutoPET bundle's ``(HU + 1000) / 1000``).
        margin: voxels of dilation around the body, so that the blur of a lesion at the skin is kept.

    Returns:
        ``(X, Y, Z)`` boolean mask (empty when nothing exceeds the threshold).
    """
    array = np.asarray(convert_to_tensor(image, track_meta=False).detach().cpu())
    if array.ndim != 4:
        raise ValueError(f"body_mask expects a channel-first volume (C, X, Y, Z), got shape {array.shape}.")
    if not -array.shape[0] <= channel < array.shape[0]:
        raise ValueError(f"channel {channel} is not one of the volume's {array.shape[0]} channels.")
    labels, count = ndimage.label(array[channel] > threshold)
    if count == 0:
        return np.zeros(array.shape[1:], dtype=bool)
    body = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    body = ndimage.binary_fill_holes(body)
    for index in range(body.shape[-1]):
        body[..., index] = ndimage.binary_fill_holes(body[..., index])
    if margin > 0:
        body = ndimage.binary_dilation(body, iterations=int(margin))
    return body


class BodyMask(Transform):
    """``(C, X, Y, Z)`` volume to its ``(1, X, Y, Z)`` body mask (see :func:`body_mask`).

    Args:
        channel: the channel to threshold (CT).
        threshold: body above it, in the channel's (normalised) units.
        margin: voxels of dilation.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, channel: int = 1, threshold: float = 0.5, margin: int = 1) -> None:
        self.channel, self.threshold, self.margin = int(channel), float(threshold), int(margin)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        mask = body_mask(img, self.channel, self.threshold, self.margin)
        return convert_to_dst_type(torch.as_tensor(mask[None], dtype=torch.uint8), img, dtype=torch.uint8)[0]
