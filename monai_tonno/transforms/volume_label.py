# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""What a volume label says for sure: a study without a lesion has no foreground anywhere."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import TransformBackends

__all__ = ["EmptyNegatived"]


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
        if self.label_key not in d:
            raise KeyError(f"{self.label_key!r} (the volume label) is not in the item; its keys are {sorted(d)}.")
        label = float(torch.as_tensor(d[self.label_key]).reshape(-1)[0])
        if label not in (0.0, 1.0):
            raise ValueError(f"the volume label {self.label_key!r} must be 0 or 1, got {label}.")
        if label == 0.0:
            for key in self.key_iterator(d):
                d[key] = d[key] * 0
        return d
