# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``TomographicInferer``: a 3D heatmap from a 2D slice classifier by tomographic reconstruction (ToNNO)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from tqdm.auto import tqdm

from monai_tonno.geometry import FOV_MODES, VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.radon import filtered_backprojection, profile_offsets, profile_slices

__all__ = ["TomographicInferer"]


def _spacing_of(inputs: torch.Tensor, index: int) -> tuple[float, float, float]:
    """Voxel spacing of batch item ``index``: from the ``MetaTensor``'s affine, else 1 mm."""
    if not isinstance(inputs, MetaTensor):
        return (1.0, 1.0, 1.0)
    affine = inputs.affine
    if affine.ndim == 3:
        affine = affine[index]
    spacing = torch.linalg.vector_norm(affine[:3, :3].double(), dim=0)
    return tuple(float(s) for s in spacing)  # type: ignore[return-value]


def _check_inputs(inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor of shape (B, C, X, Y, Z), got {type(inputs).__name__}.")
    if inputs.ndim != 5:
        raise ValueError(f"inputs must have shape (B, C, X, Y, Z) (5 dimensions), got shape {tuple(inputs.shape)}.")
    if 0 in inputs.shape:
        raise ValueError(f"inputs must not be empty, got shape {tuple(inputs.shape)}.")
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or infinite values; clean or mask them before inference.")


class TomographicInferer(Inferer):
    """ToNNO (Schmidt-Mengin et al., arXiv 2404.13103): reconstruct a 2D network's slice logits into 3D.

    For each of ``num_angles`` Fibonacci directions ``n_l``, a stack of ``num_slices + 2`` parallel slices is cut
    through the volume (paper Eq. 4), the network scores each slice, and the inverse Radon transform (second
    difference along the stack, then backprojection, Eq. 8-11) turns the scores into a heatmap on the input's
    voxel grid. Positive values mark where the network sees the positive class.

    With :class:`~monai_tonno.radon.SliceSum` as the network the heatmap is the input volume itself (the paper's
    correctness check).

    Example::

        inferer = TomographicInferer(num_angles=2000, num_slices=100, slice_size=224, sw_batch_size=64)
        evaluator = SupervisedEvaluator(device, val_loader, network=classifier, inferer=inferer)

    Args:
        num_angles: ``L``, the number of slice directions.
        num_slices: ``M``, slices per direction inside the field of view (two more are cut for the second
            difference).
        slice_size: pixels per side of each slice given to the network.
        fov: ``"inscribed"`` (the paper) or ``"circumscribed"`` (corners covered); see
            :class:`~monai_tonno.geometry.VolumeGeometry`.
        hemisphere: use directions on a hemisphere only; each plane family is then cut once instead of twice.
        sw_batch_size: slices per network call.
        sw_device: device where slices are cut and the network runs; defaults to the input's device.
        device: device of the output heatmap; defaults to the input's device.
        progress: show a progress bar over directions.
        spacing: voxel spacing in millimetres; by default read from the input's ``MetaTensor`` affine (1 mm for
            plain tensors). Slices are cut in physical planes, so anisotropic volumes are handled.
        backprojection_chunk: directions backprojected at once; bounds the memory of that step.
    """

    def __init__(
        self,
        num_angles: int = 2000,
        num_slices: int = 100,
        slice_size: int = 224,
        fov: str = "inscribed",
        hemisphere: bool = False,
        sw_batch_size: int = 64,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        spacing: tuple[float, float, float] | None = None,
        backprojection_chunk: int = 8,
    ) -> None:
        super().__init__()
        if num_angles < 1:
            raise ValueError(f"num_angles (L) must be at least 1, got {num_angles}.")
        if num_slices < 2:
            raise ValueError(f"num_slices (M) must be at least 2, got {num_slices}.")
        if slice_size < 2:
            raise ValueError(f"slice_size must be at least 2 pixels, got {slice_size}.")
        if fov not in FOV_MODES:
            raise ValueError(f"fov must be one of {FOV_MODES}, got {fov!r}.")
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}.")
        if backprojection_chunk < 1:
            raise ValueError(f"backprojection_chunk must be at least 1, got {backprojection_chunk}.")
        self.num_angles = int(num_angles)
        self.num_slices = int(num_slices)
        self.slice_size = int(slice_size)
        self.fov = fov
        self.hemisphere = bool(hemisphere)
        self.sw_batch_size = int(sw_batch_size)
        self.sw_device = sw_device
        self.device = device
        self.progress = progress
        self.spacing = spacing
        self.backprojection_chunk = int(backprojection_chunk)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Reconstruct the heatmap of every volume in the batch.

        Args:
            inputs: ``(B, C, X, Y, Z)`` volumes (a ``MetaTensor`` keeps its metadata in the output).
            network: maps ``(N, C, S, S)`` slices to ``(N,)`` or ``(N, 1)`` logits.
            args: extra positional arguments for ``network``.
            kwargs: extra keyword arguments for ``network``.

        Returns:
            ``(B, 1, X, Y, Z)`` float heatmap on ``device``, with the input's metadata.
        """
        _check_inputs(inputs)
        device = torch.device(self.device) if self.device is not None else inputs.device
        heatmaps = [
            self._reconstruct(inputs, index, network, *args, **kwargs).to(device) for index in range(len(inputs))
        ]
        output = torch.stack(heatmaps)[:, None]
        if isinstance(inputs, MetaTensor):
            output = convert_to_dst_type(output, inputs, device=device, dtype=output.dtype)[0]
        return output

    def profiles(
        self, volume: torch.Tensor, geometry: VolumeGeometry, network: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's logit profiles of one ``(C, X, Y, Z)`` volume: ``(L, M + 2)`` logits and ``(L, 3)`` normals."""
        sw_device = torch.device(self.sw_device) if self.sw_device is not None else volume.device
        volume = torch.as_tensor(volume, device=sw_device).float()
        directions = fibonacci_directions(self.num_angles, self.hemisphere)
        frames = tuple(axis.to(device=sw_device, dtype=volume.dtype) for axis in orthonormal_frames(directions))
        offsets, _ = profile_offsets(self.num_slices, device=sw_device)
        per_direction = offsets.shape[0]
        total = self.num_angles * per_direction
        logits = []
        with tqdm(total=self.num_angles, unit="direction", disable=not self.progress, leave=False) as bar:
            for start in range(0, total, self.sw_batch_size):
                stop = min(start + self.sw_batch_size, total)
                slices = profile_slices(volume, geometry, frames, offsets, start, stop, self.slice_size)
                logits.append(self._score(network, slices, *args, **kwargs))
                bar.update(stop // per_direction - bar.n)
        return torch.cat(logits).reshape(self.num_angles, per_direction), frames[0]

    def _reconstruct(
        self, inputs: torch.Tensor, index: int, network: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        volume = inputs[index]
        volume = volume.as_tensor() if isinstance(volume, MetaTensor) else volume
        spacing = self.spacing if self.spacing is not None else _spacing_of(inputs, index)
        geometry = VolumeGeometry(tuple(volume.shape[1:]), spacing, self.fov)
        profiles, directions = self.profiles(volume, geometry, network, *args, **kwargs)
        points = geometry.voxel_points(dtype=profiles.dtype, device=profiles.device)
        heatmap = filtered_backprojection(profiles, directions, points, self.backprojection_chunk)
        return heatmap.reshape(geometry.shape)

    @staticmethod
    def _score(network: Callable[..., Any], slices: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        logits = network(slices, *args, **kwargs)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the network must return a tensor of logits, got {type(logits).__name__}.")
        count = slices.shape[0]
        if logits.shape not in ((count,), (count, 1)):
            raise ValueError(
                f"the network must return one logit per slice, shape ({count},) or ({count}, 1) for {count} slices, "
                f"got shape {tuple(logits.shape)}."
            )
        return logits.reshape(count).float()
