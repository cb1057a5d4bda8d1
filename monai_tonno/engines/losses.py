# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Binary cross-entropy of slice logits against the volume label carried to every slice."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SliceBCEWithLogitsLoss"]


class SliceBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """``BCEWithLogitsLoss`` that accepts integer labels of shape ``(N,)`` for ``(N, 1)`` logits.

    Args:
        pos_weight: weight of positive slices (e.g. the negative-to-positive volume ratio).
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__(pos_weight=None if pos_weight is None else torch.tensor([float(pos_weight)]))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        if target.numel() != input.numel():
            raise ValueError(
                f"expected one label per slice: {input.numel()} logits, got labels of shape {tuple(target.shape)}."
            )
        return super().forward(input, target.reshape(input.shape).to(input.dtype))
