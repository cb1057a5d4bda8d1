# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Dictionary versions of the postprocessing transforms."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import ensure_tuple_rep

from monai_tonno.transforms.post.array import Binarize, ConnectedComponents

__all__ = ["Binarized", "ConnectedComponentsd"]


class Binarized(MapTransform):
    """Dictionary version of :class:`~monai_tonno.transforms.Binarize`, writing the mask to ``output_keys``.

    Args:
        keys: heatmap keys.
        output_keys: where to write each mask (default: in place).
        strategy: ``"fixed"``, ``"quantile"``, ``"otsu"``, ``"fitted"`` or ``"hysteresis"``.
        value: threshold or quantile.
        polarity: ``"positive"`` or ``"negative"``.
        min_threshold: lower bound of the threshold.
        threshold_file: the JSON file of the ``"fitted"`` and ``"hysteresis"`` strategies.
        seed_min_size: the ``"hysteresis"`` strategy's smallest detection, in voxels.
        model_file: the model the threshold file must have been fitted for (``None``: not checked).
        allow_missing_keys: do not raise for missing keys.
    """

    backend = Binarize.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: KeysCollection | None = None,
        strategy: str = "otsu",
        value: float = 0.0,
        polarity: str = "positive",
        min_threshold: float | None = 0.0,
        threshold_file: str | None = None,
        seed_min_size: float = 0,
        model_file: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = ensure_tuple_rep(output_keys, len(self.keys)) if output_keys else self.keys
        self.binarize = Binarize(strategy, value, polarity, min_threshold, threshold_file, seed_min_size, model_file)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, output_key in self.key_iterator(d, self.output_keys):
            d[output_key] = self.binarize(d[key])
        return d


class ConnectedComponentsd(MapTransform):
    """Dictionary version of :class:`~monai_tonno.transforms.ConnectedComponents`.

    Args:
        keys: mask keys.
        connectivity: 6, 18 or 26.
        min_size: drop smaller components.
        min_size_unit: ``"voxels"`` or ``"mm3"``.
        relabel: labels ``1..K`` (True) or a binary mask of kept components (False).
        allow_missing_keys: do not raise for missing keys.
    """

    backend = ConnectedComponents.backend

    def __init__(
        self,
        keys: KeysCollection,
        connectivity: int = 26,
        min_size: float = 0,
        min_size_unit: str = "voxels",
        relabel: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.components = ConnectedComponents(connectivity, min_size, min_size_unit, relabel)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.components(d[key])
        return d
