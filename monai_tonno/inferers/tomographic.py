# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``TomographicInferer``: a 3D heatmap from a 2D slice classifier by tomographic reconstruction (ToNNO)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

from monai_tonno.inferers.convergence import UntilConverged, angle_schedule
from monai_tonno.inferers.retired_arguments import refuse_retired_arguments
from monai_tonno.inferers.tomographic_inference import check_tomographic_settings, slice_logits, tomographic_inference
from monai_tonno.tomography.reconstruction import (
    RECONSTRUCTIONS,
    ReconstructorFactory,
    StackBackprojection,
    reconstructor_factory,
)
from monai_tonno.validation import check_device
from monai_tonno.visualize import CAM_METHODS, SliceCAM

__all__ = ["RECONSTRUCTIONS", "TOMOGRAPHIC_MODES", "TomographicInferer", "tomographic_inference"]


TOMOGRAPHIC_MODES = ("tonno", "averaged_cam", "tomographic_cam")
CAMCallable = Callable[[Callable[..., Any], torch.Tensor], torch.Tensor]
_SHARED_SETTINGS = (
    "num_angles", "num_slices", "slice_size", "fov", "hemisphere", "sw_batch_size", "sw_device", "device", "spacing",
    "directions_per_update", "shard_angles", "progress",
)  # fmt: skip


class TomographicInferer(Inferer):
    """ToNNO (Schmidt-Mengin et al., arXiv 2404.13103): reconstruct a 2D network's slice outputs into 3D.

    A thin wrapper of :func:`~monai_tonno.inferers.tomographic_inference` (the algorithm, its memory and its speed
    are documented there) that holds the settings and picks what scores the slices and what reconstructs the
    scores of each ``mode``:

    - ``"tonno"``: the logits of the ``num_slices + 2`` slices of a direction form a profile; ``reconstruction``
      backprojects its second difference (paper Eq. 4-11), one channel per network output. With
      :class:`~monai_tonno.networks.SliceSum` as the network, the input volume comes back.
    - ``"averaged_cam"``: each slice's class activation map (``cam_method`` at ``cam_layer``) is put back where
      the slice was cut and the directions are averaged (Eq. 12).
    - ``"tomographic_cam"``: as Averaged CAM after a second difference along the direction, with the inverse
      Radon weight (Eq. 13): sharp maps even from deep, coarse layers.

    Example::

        inferer = TomographicInferer(num_slices=100, slice_size=224, sw_batch_size=256)  # L = 1000, hemisphere
        evaluator = SupervisedEvaluator(device, val_loader, network=classifier, inferer=inferer)
        cams = TomographicInferer(mode="tomographic_cam", cam_layer="layer2", slice_size=224)

    Args:
        num_angles: ``L``, the number of directions; ``None``: 1000 (ToNNO on the hemisphere, the planes of the
            paper's 2000 full-sphere directions), 2000 (ToNNO on the full sphere) or 1000 (the CAM modes).
            ``"auto"`` or an :class:`~monai_tonno.inferers.UntilConverged`: per volume, directions doubled until
            the heatmap settles.
        num_slices, slice_size, fov, hemisphere, sw_batch_size, sw_device, device, progress, spacing,
            directions_per_update, shard_angles: as in :func:`~monai_tonno.inferers.tomographic_inference`.
        mode: ``"tonno"``, ``"averaged_cam"`` or ``"tomographic_cam"``.
        cam_method: ``"layercam"``, ``"gradcam"``, ``"gradcampp"`` (the paper's formula) or ``"gradcampp_monai"``
            (MONAI's); or a callable ``(network, slices) -> (N, h, w) maps`` (e.g. average pooling, the paper's
            Figure 4).
        cam_layer: the layer of the CAM modes (``"layer1"`` .. ``"layer4"`` for timm ResNets).
        reconstruction: ToNNO's reconstructor factory, a
            :class:`~monai_tonno.tomography.reconstruction.Reconstructor` class or a ``functools.partial`` of one
            with its options (``functools.partial(IterativeReconstruction, iterations=50)``; in a bundle, an
            object with ``"_mode_": "callable"``); or ``"filtered_backprojection"`` (the paper) or
            ``"iterative"`` (fewer directions, fewer streaks) with their defaults. The CAM modes use
            :class:`~monai_tonno.tomography.reconstruction.StackBackprojection`.
        moved: options the inferer took before (``iterations=`` and the other iterative options,
            ``backprojection=``, ``backprojection_chunk=``), refused with their new home.
    """

    def __init__(
        self,
        num_angles: int | str | UntilConverged | None = None,
        num_slices: int = 100,
        slice_size: int = 224,
        fov: str = "inscribed",
        hemisphere: bool = True,
        sw_batch_size: int = 64,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        spacing: tuple[float, float, float] | None = None,
        mode: str = "tonno",
        cam_method: str | CAMCallable = "layercam",
        cam_layer: str = "layer2",
        directions_per_update: int = 8,
        shard_angles: bool = False,
        reconstruction: str | ReconstructorFactory = "filtered_backprojection",
        **moved: Any,
    ) -> None:
        super().__init__()
        refuse_retired_arguments(moved)
        _check_mode(mode, cam_method, cam_layer)
        if num_angles is None:
            num_angles = (1000 if hemisphere else 2000) if mode == "tonno" else 1000
        num_angles = angle_schedule(num_angles)
        check_tomographic_settings(num_slices, slice_size, sw_batch_size, directions_per_update, fov, spacing)
        if reconstruction != "filtered_backprojection" and mode != "tonno":
            raise ValueError(
                f"reconstruction={reconstruction!r} reconstructs ToNNO's profiles (mode='tonno'), got mode={mode!r}: "
                "the CAM modes backproject their maps with StackBackprojection."
            )
        self.num_angles = num_angles
        self.num_slices = int(num_slices)
        self.slice_size = int(slice_size)
        self.fov = fov
        self.hemisphere = bool(hemisphere)
        self.sw_batch_size = int(sw_batch_size)
        self.sw_device = check_device("sw_device", sw_device)
        self.device = check_device("device", device)
        self.progress = progress
        self.spacing = spacing
        self.mode = mode
        self.cam_method = cam_method
        self.cam_layer = cam_layer
        self.directions_per_update = int(directions_per_update)
        self.shard_angles = bool(shard_angles)
        self.reconstruction = reconstructor_factory(reconstruction)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """The heatmap of every volume: :func:`tomographic_inference` with this inferer's settings.

        Args:
            inputs: ``(B, C, X, Y, Z)`` volumes; a ``MetaTensor`` keeps its metadata in the output.
            network: maps ``(N, C, S, S)`` slices to ``(N,)`` or ``(N, K)`` logits.
            args, kwargs: more arguments for ``network`` (ToNNO mode).

        Returns:
            ``(B, K, X, Y, Z)`` float heatmaps on ``device`` (``K = 1`` for the CAM modes).
        """
        score = self._scorer(network, *args, **kwargs)
        return tomographic_inference(inputs, score, self._factory_for(self.mode), **self._settings())

    def reconstruct_many(
        self, inputs: torch.Tensor, network: nn.Module, outputs: Sequence[tuple[str, str | None, str | None]]
    ) -> dict[tuple[str, str | None, str | None], torch.Tensor]:
        """Several heatmaps from one pass over the slices: ToNNO and CAM modes at several layers and methods.

        Every slice goes through the network once forward and once backward, whatever the number of outputs
        (the evaluation protocol of the paper's Table 2).

        Args:
            inputs: ``(B, C, X, Y, Z)`` volumes.
            network: the slice classifier.
            outputs: ``(mode, cam_method, cam_layer)`` triples, e.g. ``("tonno", None, None)``,
                ``("tomographic_cam", "layercam", "layer3")``.

        Returns:
            one ``(B, 1, X, Y, Z)`` heatmap per requested triple.
        """
        for mode, method, layer in outputs:
            _check_mode(mode, method, layer, named=True)
        methods = sorted({m for mode, m, _ in outputs if mode != "tonno"})
        layers = sorted({layer for mode, _, layer in outputs if mode != "tonno"})
        cams = SliceCAM(network, layers, methods) if methods else None

        def score(slices: torch.Tensor) -> dict:
            if cams is None:
                return {("tonno", None, None): slice_logits(network, slices)}
            maps, logits = cams.all_maps(slices)
            return {key: logits if key[0] == "tonno" else maps[key[1], key[2]] for key in outputs}

        factories = {key: self._factory_for(key[0]) for key in outputs}
        return tomographic_inference(inputs, score, factories, **self._settings())

    def _factory_for(self, mode: str) -> ReconstructorFactory:
        """What reconstructs ``mode``'s scores with this inferer's settings."""
        if mode != "tonno":
            filtered = mode == "tomographic_cam"
            return functools.partial(StackBackprojection, slice_size=self.slice_size, filtered=filtered)
        return self.reconstruction

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SHARED_SETTINGS}

    def _scorer(self, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        """The function from a batch of slices to what is reconstructed: logits ``(N,)`` or maps ``(N, h, w)``."""
        if self.mode == "tonno":
            return lambda slices: slice_logits(network, slices, *args, **kwargs)
        if callable(self.cam_method):
            method = self.cam_method
            return lambda slices: method(network, slices)
        if not isinstance(network, nn.Module):
            raise TypeError(f"the CAM modes need an nn.Module network, got {type(network).__name__}.")
        return SliceCAM(network, self.cam_layer, self.cam_method)


def _check_mode(mode: str, cam_method: str | CAMCallable | None, cam_layer: str | None, named: bool = False) -> None:
    if mode not in TOMOGRAPHIC_MODES:
        raise ValueError(f"mode must be one of {TOMOGRAPHIC_MODES}, got {mode!r}.")
    if named and mode != "tonno" and cam_method not in CAM_METHODS:
        raise ValueError(f"{mode} needs a CAM method named from {CAM_METHODS}, got {cam_method!r}.")
    if isinstance(cam_method, str) and cam_method not in CAM_METHODS:
        raise ValueError(f"cam_method must be one of {CAM_METHODS} or a callable, got {cam_method!r}.")
    if mode != "tonno" and not cam_layer:
        raise ValueError(f"{mode} needs a layer for its CAMs (cam_layer), got {cam_layer!r}.")
