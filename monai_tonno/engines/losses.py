# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Losses of slice logits against the volume label carried to every slice (per-slice BCE, multiple-instance), and
the distilled segmenter's Dice + cross-entropy that skips the voxels its pseudo-label marks as uncertain."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss
from torch import nn

from monai_tonno.transforms.pseudo_label import IGNORE_VALUE

__all__ = ["DiceCEIgnoreLoss", "SliceBCEWithLogitsLoss", "SliceMILLoss"]


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


class SliceMILLoss(nn.Module):
    """A multiple-instance loss over the slices of each volume: positives pooled, negatives slice by slice.

    Most slices of a positive volume miss its lesions, so the paper's per-slice BCE tells the network that
    normal anatomy seen in a positive volume is positive. Under the multiple-instance assumption only *some*
    slice of a positive volume must score high, and *every* slice of a negative volume must score low: for each
    positive volume the mean of its ``top_fraction`` highest logits is pushed up (BCE with label 1); every
    slice of a negative volume is pushed down (BCE with label 0, averaged over the volume's slices). The two
    kinds of volume weigh equally per volume.

    Slices must arrive volume by volume, ``slices_per_volume`` at a time, as ``RandObliqueSliced`` with
    ``list_data_collate`` delivers them.

    Args:
        slices_per_volume: slices cut from each volume per step (``num_samples`` of ``RandObliqueSliced``).
        top_fraction: share of a positive volume's slices whose logits are pooled (at least one slice).
    """

    def __init__(self, slices_per_volume: int, top_fraction: float = 0.25) -> None:
        super().__init__()
        if int(slices_per_volume) < 1:
            raise ValueError(f"slices_per_volume must be at least 1, got {slices_per_volume}.")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}.")
        self.slices_per_volume = int(slices_per_volume)
        self.top = max(1, round(top_fraction * self.slices_per_volume))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        count = input.numel()
        if target.numel() != count or count % self.slices_per_volume:
            raise ValueError(
                f"expected whole volumes of {self.slices_per_volume} slices with one label per slice: got "
                f"{count} logits and labels of shape {tuple(target.shape)}."
            )
        logits = input.reshape(-1, self.slices_per_volume).float()
        labels = target.reshape(-1, self.slices_per_volume).to(logits.dtype)
        positive = labels[:, 0] > 0.5
        if bool((labels != labels[:, :1]).any()):
            raise ValueError(
                "the slices of a volume must share its label; are slices_per_volume and the batch aligned?"
            )
        losses = []
        if bool(positive.any()):
            pooled = logits[positive].topk(self.top, dim=1).values.mean(1)
            losses.append(F.binary_cross_entropy_with_logits(pooled, torch.ones_like(pooled), reduction="none"))
        if bool((~positive).any()):
            negatives = logits[~positive]
            per_volume = F.binary_cross_entropy_with_logits(negatives, torch.zeros_like(negatives), reduction="none")
            losses.append(per_volume.mean(1))
        return torch.cat(losses).mean()


class DiceCEIgnoreLoss(nn.Module):
    """MONAI's ``DiceCELoss(sigmoid=True, batch=True)`` for binary logits ``(B, 1, X, Y, Z)``, except that the
    voxels whose target is ``ignore_value`` count in neither term (:class:`~monai_tonno.transforms.IgnoreBandd`
    marks them). Without such voxels it is ``DiceCELoss``'s value.

    Args:
        ignore_value: the target value of the voxels to skip.
        lambda_dice: the weight of the Dice term.
        lambda_ce: the weight of the binary cross-entropy term (the mean over the kept voxels).
    """

    def __init__(self, ignore_value: float = IGNORE_VALUE, lambda_dice: float = 1.0, lambda_ce: float = 1.0) -> None:
        super().__init__()
        if lambda_dice < 0 or lambda_ce < 0:
            raise ValueError(f"lambda_dice and lambda_ce must be >= 0, got {lambda_dice} and {lambda_ce}.")
        self.ignore_value, self.lambda_dice, self.lambda_ce = float(ignore_value), lambda_dice, lambda_ce
        self.dice = MaskedDiceLoss(sigmoid=True, batch=True)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        if input.shape != target.shape or input.shape[1] != 1:
            raise ValueError(
                f"expected one-channel logits and a target of the same shape, got {tuple(input.shape)} and "
                f"{tuple(target.shape)}."
            )
        keep = (target != self.ignore_value).to(input.dtype)
        target = target.to(input.dtype) * keep
        dice = self.dice(input, target, mask=keep)
        cross_entropy = F.binary_cross_entropy_with_logits(input, target, weight=keep, reduction="sum")
        return self.lambda_dice * dice + self.lambda_ce * cross_entropy / keep.sum().clamp(min=1)
