# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Dictionary transforms of the body: heatmaps restricted to it."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import TransformBackends

from monai_tonno.transforms.body.array import BodyMask

__all__ = ["RestrictToBodyd"]


class RestrictToBodyd(MapTransform):
    """Set heatmaps to zero outside the body found in ``image_key``'s CT channel (before binarisation).

    A zero is never foreground (binarisation keeps values above a threshold of at least 0), so nothing outside
    the body can become a lesion. Apply it on the grid of the preprocessed image, before ``Invertd``.

    Args:
        keys: heatmap keys, ``(1, X, Y, Z)`` on the image's grid.
        image_key: the preprocessed ``(C, X, Y, Z)`` image.
        channel: the CT channel of the image.
        threshold: body above it, in the channel's normalised units.
        margin: voxels of dilation around the body.
        allow_missing_keys: do not raise for missing keys.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        channel: int = 1,
        threshold: float = 0.5,
        margin: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.body = BodyMask(channel, threshold, margin)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        body = torch.as_tensor(np.asarray(self.body(d[self.image_key])) > 0)
        for key in self.key_iterator(d):
            heatmap = d[key]
            if tuple(heatmap.shape[-3:]) != tuple(body.shape[-3:]):
                raise ValueError(
                    f"{key} {tuple(heatmap.shape)} is not on the grid of {self.image_key} {tuple(body.shape)}; "
                    "restrict to the body before Invertd."
                )
            d[key] = heatmap * body.to(device=heatmap.device, dtype=heatmap.dtype)
        return d
