# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The "network" of the paper's correctness check: ToNNO with it returns the input volume."""

from __future__ import annotations

import torch
from torch import nn

from monai_tonno.tomography.radon import slice_integral

__all__ = ["SliceSum"]


class SliceSum(nn.Module):
    """:func:`~monai_tonno.tomography.radon.slice_integral` as a network: ``(N, C, H, W)`` slices to ``(N, 1)``
    plane integrals, so that :class:`~monai_tonno.TomographicInferer` with it reconstructs the volume itself."""

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return slice_integral(slices)
