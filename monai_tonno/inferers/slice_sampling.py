# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``SliceSamplingInferer``: a network's logits on a fixed set of random oblique slices of each volume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import deprecated_arg

from monai_tonno._version import __version__
from monai_tonno.networks.dtype import to_network_dtype
from monai_tonno.transforms.slicing.array import RandObliqueSlice
from monai_tonno.validation import check_int

__all__ = ["SliceSamplingInferer"]


class SliceSamplingInferer(Inferer):
    """Score ``slices_per_volume`` random oblique slices of every volume; the same planes at every call (seeded).

    Validation of a slice classifier during training: the logits, each slice labelled with its volume's label,
    give a slice-level AUC, and their mean probability a volume-level call.

    Args:
        slices_per_volume: slices per volume (formerly ``num_slices``, which means the offsets per direction in
            :class:`~monai_tonno.inferers.TomographicInferer`).
        slice_size: pixels per side.
        seed: seed of the planes; the same seed cuts the same planes in every call.
        sw_batch_size: slices per network call.
        offset_range: ``(low, high)`` offsets in normalised units.
        fov: ``"inscribed"`` or ``"circumscribed"``.
        num_slices: deprecated name of ``slices_per_volume``.
    """

    @deprecated_arg(
        "num_slices", since="0.1.0", new_name="slices_per_volume", version_val=__version__,
        msg_suffix="num_slices is M, the offsets per direction, in TomographicInferer; here it is slices_per_volume.",
    )  # fmt: skip
    def __init__(
        self,
        slices_per_volume: int = 64,
        slice_size: int = 224,
        seed: int = 0,
        sw_batch_size: int = 64,
        offset_range: tuple[float, float] = (-1.0, 1.0),
        fov: str = "inscribed",
        num_slices: int | None = None,
    ) -> None:
        super().__init__()
        self.slices_per_volume = check_int("slices_per_volume", slices_per_volume, 1)
        self.slice_size = check_int("slice_size", slice_size, 2)
        self.seed = int(seed)
        self.sw_batch_size = check_int("sw_batch_size", sw_batch_size, 1)
        self.offset_range = offset_range
        self.fov = fov

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """``(B, C, X, Y, Z)`` volumes to ``(B, slices_per_volume)`` logits."""
        if inputs.ndim != 5:
            raise ValueError(f"inputs must have shape (B, C, X, Y, Z), got shape {tuple(inputs.shape)}.")
        slicer = RandObliqueSlice(self.slice_size, self.offset_range, fov=self.fov)
        slicer.set_random_state(seed=self.seed)
        slicer.randomize(self.slices_per_volume)
        logits = []
        for index in range(inputs.shape[0]):
            volume = inputs[index]
            if isinstance(inputs, MetaTensor) and inputs.affine.ndim == 3:
                volume = MetaTensor(volume.as_tensor(), affine=inputs.affine[index])
            slices = torch.stack(slicer.cut(volume))
            slices = to_network_dtype(network, slices.as_tensor() if isinstance(slices, MetaTensor) else slices)
            scores = [
                network(slices[s : s + self.sw_batch_size], *args, **kwargs)
                for s in range(0, len(slices), self.sw_batch_size)
            ]
            logits.append(torch.cat(scores).reshape(self.slices_per_volume))
        return torch.stack(logits)
