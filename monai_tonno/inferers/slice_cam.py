# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``SliceCAMInferer``: the slice-wise CAM baselines of the paper (Section 4.3, Appendix A.8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from torch import nn
from tqdm.auto import tqdm

from monai_tonno.validation import check_device, check_int, check_volume_batch
from monai_tonno.visualize import CAM_METHODS, SliceCAM

__all__ = ["SliceCAMInferer"]


class SliceCAMInferer(Inferer):
    """Class activation maps of every slice along an array axis, stacked back into a volume.

    Each slice is resampled to ``slice_size x slice_size`` (the network's input size), its CAM computed at
    ``layer``, upsampled back to the slice's own shape, and the maps stacked along the axis. ``axis="mean"``
    averages the volumes of the three axes (paper Appendix A.8).

    Example::

        baseline = SliceCAMInferer(method="layercam", layer="layer2", axis=2, slice_size=224)
        heatmap = baseline(volume, classifier)  # (B, 1, X, Y, Z)

    Args:
        method: ``"gradcam"``, ``"gradcampp"`` (the paper's formula), ``"gradcampp_monai"`` (MONAI's) or
            ``"layercam"`` (:mod:`monai_tonno.visualize.cam` gives the formulas).
        layer: the layer to explain (``"layer1"`` .. ``"layer4"`` for timm ResNets).
        axis: 0, 1 or 2 (the axial axis of RAS-oriented volumes is 2), or ``"mean"`` for all three averaged.
        slice_size: the network's input size.
        sw_batch_size: slices per network call.
        progress: show a progress bar over slices.
        sw_device: device where the slices are scored (the network's device); defaults to the input's device.
        device: device of the output; defaults to the input's device.
    """

    def __init__(
        self,
        method: str = "layercam",
        layer: str = "layer2",
        axis: int | str = 2,
        slice_size: int = 224,
        sw_batch_size: int = 64,
        progress: bool = False,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if method not in CAM_METHODS:
            raise ValueError(f"method must be one of {CAM_METHODS}, got {method!r}.")
        if isinstance(axis, bool) or axis not in (0, 1, 2, "mean"):
            raise ValueError(f"axis must be 0, 1, 2 or 'mean', got {axis!r}.")
        self.method = method
        self.layer = layer
        self.axis = axis
        self.slice_size = check_int("slice_size", slice_size, 2)
        self.sw_batch_size = check_int("sw_batch_size", sw_batch_size, 1)
        self.progress = progress
        self.sw_device = check_device("sw_device", sw_device)
        self.device = check_device("device", device)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """``(B, C, X, Y, Z)`` volumes to ``(B, 1, X, Y, Z)`` CAM volumes."""
        check_volume_batch(inputs)
        if not isinstance(network, nn.Module):
            raise TypeError(f"the network must be an nn.Module, got {type(network).__name__}.")
        cam = SliceCAM(network, self.layer, self.method)
        volumes = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        sw_device = self.sw_device if self.sw_device is not None else volumes.device
        device = self.device if self.device is not None else inputs.device
        axes = (0, 1, 2) if self.axis == "mean" else (self.axis,)
        output = torch.stack(
            [torch.stack([self._along(cam, v.to(sw_device).float(), a) for a in axes]).mean(0) for v in volumes]
        )
        output = output[:, None].to(device)
        if isinstance(inputs, MetaTensor):
            output = convert_to_dst_type(output, inputs, device=device, dtype=output.dtype)[0]
        return output

    def _along(self, cam: SliceCAM, volume: torch.Tensor, axis: int) -> torch.Tensor:
        """CAM volume ``(X, Y, Z)`` of one ``(C, X, Y, Z)`` volume from its slices along ``axis``."""
        slices = volume.movedim(axis + 1, 0)  # (K, C, H, W)
        height, width = slices.shape[-2:]
        maps = []
        for start in tqdm(range(0, len(slices), self.sw_batch_size), disable=not self.progress, leave=False):
            batch = slices[start : start + self.sw_batch_size]
            resized = F.interpolate(batch, size=(self.slice_size,) * 2, mode="bilinear", align_corners=False)
            raw = cam(resized)[:, None]
            maps.append(F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)[:, 0])
        return torch.cat(maps).movedim(0, axis)
