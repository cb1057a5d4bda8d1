# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Slices in the floating point type of the network that scores them."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

__all__ = ["to_network_dtype"]


def to_network_dtype(network: Any, slices: torch.Tensor) -> torch.Tensor:
    """``slices`` cast to the dtype of ``network``'s first floating point parameter (a float64 network gets
    float64 slices); unchanged for a plain callable, a network without parameters, or under autocast, which
    chooses the arithmetic itself."""
    if not isinstance(network, nn.Module) or torch.is_autocast_enabled(slices.device.type):
        return slices
    tensors = itertools.chain(network.parameters(), network.buffers())
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), None)
    return slices if dtype is None or dtype == slices.dtype else slices.to(dtype)
