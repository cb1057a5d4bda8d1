# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""What a pseudo-label can be trusted with.

The volume label is certain: a study without a lesion has no foreground anywhere (:class:`EmptyNegatived`). The
teacher's mask is not, least of all where its heatmap is high but no component reached the detection threshold:
:class:`IgnoreBandd` marks those voxels so that the student's loss (:class:`~monai_tonno.engines.DiceCEIgnoreLoss`)
neither rewards nor punishes what it predicts there.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import TransformBackends

from monai_tonno.transforms.post.array import otsu_threshold

__all__ = ["IGNORE_VALUE", "EmptyNegatived", "IgnoreBandd", "volume_label"]

IGNORE_VALUE = -1.0


def volume_label(data: Mapping[Hashable, Any], label_key: str) -> float:
    """The item's volume label, 0 or 1; a missing or other value raises (a study of unknown class is not known to
    be empty)."""
    if label_key not in data:
        raise KeyError(f"{label_key!r} (the volume label) is not in the item; its keys are {sorted(data)}.")
    label = float(torch.as_tensor(data[label_key]).reshape(-1)[0])
    if label not in (0.0, 1.0):
        raise ValueError(f"the volume label {label_key!r} must be 0 or 1, got {label}.")
    return label


class EmptyNegatived(MapTransform):
    """Set masks to zero in the studies whose volume label is 0.

    ToNNO's masks of a negative study should be empty, and when a false component survives, the volume label
    overrules it: a pseudo-label that teaches a student to see a lesion in a healthy scan is certainly wrong.
    Positive studies keep their masks (the label does not say where the lesion is).

    Args:
        keys: the mask keys.
        label_key: the item's volume label (0 or 1; a missing one raises: a study of unknown class is not known
            to be empty).
        allow_missing_keys: do not raise for missing mask keys.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, keys: KeysCollection, label_key: str = "label", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if volume_label(d, self.label_key) == 0.0:
            for key in self.key_iterator(d):
                d[key] = d[key] * 0
        return d


class IgnoreBandd(MapTransform):
    """Mark the teacher's uncertain voxels of a positive study's binary pseudo-label as ``ignore_value``.

    ToNNO's hysteresis mask keeps the components above Otsu's threshold of the heatmap's positive voxels that
    hold a seed above the calibrated detection threshold. A component above Otsu's threshold without such a seed
    is the band between the two thresholds: perhaps a faint lesion, perhaps a streak. Its voxels become
    ``ignore_value``; the mask's foreground and the background below Otsu's threshold are kept. A negative study
    keeps its empty label whole: there the volume label is certain.

    Args:
        keys: the binary pseudo-label keys (0 and 1, on the heatmap's grid).
        heatmap_key: the teacher's heatmap the mask was cut from.
        label_key: the item's volume label.
        ignore_value: the value of the ignored voxels (what the loss skips).
        allow_missing_keys: do not raise for missing label keys.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        heatmap_key: str = "heatmap",
        label_key: str = "volume_label",
        ignore_value: float = IGNORE_VALUE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.heatmap_key, self.label_key, self.ignore_value = heatmap_key, label_key, float(ignore_value)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if volume_label(d, self.label_key) == 0.0:
            return d
        if self.heatmap_key not in d:
            raise KeyError(f"{self.heatmap_key!r} (the teacher's heatmap) is not in the item; its keys: {sorted(d)}.")
        heatmap = torch.as_tensor(d[self.heatmap_key]).float()
        positive = heatmap[heatmap > 0]
        if positive.numel() < 2:
            return d
        band = heatmap > otsu_threshold(positive)
        for key in self.key_iterator(d):
            label = torch.as_tensor(d[key])
            label = label if label.is_floating_point() else label.float()  # an integer mask cannot hold -1 safely
            if tuple(label.shape) != tuple(heatmap.shape):
                raise ValueError(
                    f"{key} has shape {tuple(label.shape)} but the heatmap {self.heatmap_key!r} has "
                    f"{tuple(heatmap.shape)}; load both from the same teacher run, before any resampling."
                )
            values = torch.unique(label.as_tensor() if isinstance(label, MetaTensor) else label)
            if not all(float(v) in (0.0, 1.0) for v in values):
                raise ValueError(f"{key} must be a binary mask (0 and 1), got values {values.tolist()[:5]}.")
            d[key] = label.masked_fill(band.to(label.device) & (label == 0), self.ignore_value)
        return d
