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

from monai_tonno.inferers.convergence import UntilConverged
from monai_tonno.inferers.tomographic_inference import check_tomographic_settings, tomographic_inference
from monai_tonno.networks.dtype import to_network_dtype
from monai_tonno.tomography.reconstruction import (
    FilteredBackprojection,
    IterativeReconstruction,
    ReconstructorFactory,
    StackBackprojection,
)
from monai_tonno.validation import check_device
from monai_tonno.visualize import CAM_METHODS, SliceCAM

__all__ = ["RECONSTRUCTIONS", "TOMOGRAPHIC_MODES", "TomographicInferer", "tomographic_inference"]


TOMOGRAPHIC_MODES = ("tonno", "averaged_cam", "tomographic_cam")
RECONSTRUCTIONS: dict[str, ReconstructorFactory] = {
    "filtered_backprojection": FilteredBackprojection,
    "iterative": IterativeReconstruction,
}
CAMCallable = Callable[[Callable[..., Any], torch.Tensor], torch.Tensor]


class TomographicInferer(Inferer):
    """ToNNO (Schmidt-Mengin et al., arXiv 2404.13103): reconstruct a 2D network's slice outputs into 3D.

    A thin wrapper of :func:`tomographic_inference` that holds the settings and picks the reconstruction of
    each ``mode``.

    For each of ``num_angles`` Fibonacci directions ``n_l``, a stack of ``num_slices + 2`` parallel slices is cut
    through the volume (paper Eq. 4) and given to the network. Then, by ``mode``:

    - ``"tonno"``: the slice logits form a profile along ``n_l``; its second difference is backprojected
      (inverse Radon transform, Eq. 8-11). Positive values mark where the network sees the positive class.
    - ``"averaged_cam"``: each slice's class activation map (``cam_method`` at ``cam_layer``) is placed back
      where the slice was cut; the maps of a direction form a small volume in its frame ``(n, u, v)``, which is
      resampled onto the output grid and averaged over directions (Eq. 12, with the weight ``1 / L`` of an
      average).
    - ``"tomographic_cam"``: as Averaged CAM, after a second difference along ``n`` per map pixel, with the
      inverse Radon weight ``c |S^2| / L`` (Eq. 13): sharp maps even from deep, coarse layers.

    With :class:`~monai_tonno.networks.SliceSum` as the network, ToNNO returns the input volume (the paper's
    correctness check). Under ``torch.no_grad()`` (inference) memory grows with ``num_angles`` only by the
    profiles (``L (M + 2) K`` numbers; the CAM stacks are backprojected as they come): each batch's activations
    are freed once it is scored. With gradients enabled
    autograd keeps every slice's activations for the backward pass, so memory grows linearly with
    ``num_angles * (num_slices + 2)``.

    Nearly all the time is the network's. To speed it up, give a network with its frozen batch normalisation
    folded (:func:`~monai_tonno.networks.fold_batch_norm`), in ``channels_last``, and on a GPU compiled
    (``torch.compile``) with a larger ``sw_batch_size``. An enclosing ``torch.autocast`` reaches the network
    only; slicing and reconstruction stay in float32. Reduced precision is costly here, since the second
    difference amplifies the logits' rounding (``benchmarks/network_precision.py`` measures how much).

    Example::

        inferer = TomographicInferer(num_slices=100, slice_size=224, sw_batch_size=256)  # L = 1000, hemisphere
        evaluator = SupervisedEvaluator(device, val_loader, network=classifier, inferer=inferer)
        cams = TomographicInferer(mode="tomographic_cam", cam_layer="layer2", slice_size=224)

    Args:
        num_angles: ``L``, the number of slice directions. Default for ToNNO: 1000 on the hemisphere, which cuts
            the planes of the paper's 2000 full-sphere directions with half the forward passes (on a trained
            classifier it segments as well as the full sphere; ``benchmarks/README.md``), or 2000 on the full
            sphere. Default for the CAM modes: 1000. ``"auto"`` or an
            :class:`~monai_tonno.inferers.UntilConverged`: per volume, directions doubled until the heatmap
            settles.
        num_slices, slice_size, fov, hemisphere, sw_batch_size, sw_device, device, progress, spacing,
            directions_per_update, shard_angles: as in :func:`tomographic_inference` (``M`` slices per direction;
            pixels per slice side; ``"inscribed"`` or ``"circumscribed"`` field of view; hemisphere or full-sphere
            directions; slices per network call; where slices are cut and scored; where the heatmap goes; a
            progress bar; millimetres, by default from the ``MetaTensor`` affine; directions per reconstruction
            update; directions shared among the ranks of a ``torch.distributed`` run).
        mode: ``"tonno"``, ``"averaged_cam"`` or ``"tomographic_cam"``.
        cam_method: ``"layercam"``, ``"gradcam"``, ``"gradcampp"`` (the paper's formula) or ``"gradcampp_monai"``
            (MONAI's); or a callable ``(network, slices) -> maps``
            returning ``(N, h, w)`` maps (e.g. average pooling, for the paper's Figure 4).
        cam_layer: the layer of the CAM modes (``"layer1"`` .. ``"layer4"`` for timm ResNets).
        reconstruction: ToNNO's profiles to a volume: a reconstructor factory (a
            :class:`~monai_tonno.tomography.reconstruction.Reconstructor` class or a ``functools.partial`` of one
            with its options, e.g. ``functools.partial(IterativeReconstruction, iterations=50)``; in a bundle
            config an object with ``"_mode_": "callable"``), or one named with its defaults:
            ``"filtered_backprojection"`` (the paper, Fourier backprojection) or ``"iterative"`` (the heatmap that
            best explains the profiles under a prior: fewer directions, fewer streaks). The CAM modes use
            :class:`~monai_tonno.tomography.reconstruction.StackBackprojection`.
        moved: refused with the new home of options the inferer took before (``iterations=`` and the other
            iterative options, ``backprojection=``, ``backprojection_chunk=``).

    A network with ``K`` outputs per slice (``(N, K)`` logits: several classes, regression targets, the features
    of an encoder) gives a ``(B, K, X, Y, Z)`` ToNNO heatmap, channel ``k`` the heatmap of output ``k`` alone.
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
        _refuse_moved_options(moved)
        if mode not in TOMOGRAPHIC_MODES:
            raise ValueError(f"mode must be one of {TOMOGRAPHIC_MODES}, got {mode!r}.")
        if num_angles is None:
            num_angles = (1000 if hemisphere else 2000) if mode == "tonno" else 1000
        if isinstance(num_angles, str):
            if num_angles != "auto":
                raise ValueError(
                    f"num_angles must be a number of directions, 'auto' or UntilConverged, got {num_angles!r}."
                )
            num_angles = UntilConverged()
        check_tomographic_settings(
            num_angles, num_slices, slice_size, sw_batch_size, directions_per_update, fov, spacing
        )
        if not callable(reconstruction) and reconstruction not in RECONSTRUCTIONS:
            raise ValueError(
                f"reconstruction must be one of {tuple(RECONSTRUCTIONS)} or a reconstructor factory "
                f"(a Reconstructor class or a functools.partial of one), got {reconstruction!r}."
            )
        if reconstruction != "filtered_backprojection" and mode != "tonno":
            raise ValueError(
                f"reconstruction={reconstruction!r} reconstructs ToNNO's profiles (mode='tonno'), got mode={mode!r}: "
                "the CAM modes backproject their maps with StackBackprojection."
            )
        if isinstance(cam_method, str) and cam_method not in CAM_METHODS:
            raise ValueError(f"cam_method must be one of {CAM_METHODS} or a callable, got {cam_method!r}.")
        self.num_angles = num_angles if isinstance(num_angles, UntilConverged) else int(num_angles)
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
        self.reconstruction = RECONSTRUCTIONS[reconstruction] if isinstance(reconstruction, str) else reconstruction

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Reconstruct the heatmap of every volume in the batch (:func:`tomographic_inference` with this
        inferer's settings).

        Args:
            inputs: ``(B, C, X, Y, Z)`` volumes (a ``MetaTensor`` keeps its metadata in the output).
            network: maps ``(N, C, S, S)`` slices to ``(N,)`` or ``(N, K)`` logits.
            args: extra positional arguments for ``network`` (ToNNO mode).
            kwargs: extra keyword arguments for ``network`` (ToNNO mode).

        Returns:
            ``(B, K, X, Y, Z)`` float heatmap on ``device`` (``K = 1`` for the CAM modes), with the input's
            metadata.
        """
        score = self._scorer(network, *args, **kwargs)
        return tomographic_inference(inputs, score, self.reconstructor_factory(self.mode), **self._settings())

    def reconstruct_many(
        self, inputs: torch.Tensor, network: nn.Module, outputs: Sequence[tuple[str, str | None, str | None]]
    ) -> dict[tuple[str, str | None, str | None], torch.Tensor]:
        """Several heatmaps from one pass over the slices: ToNNO and CAM modes at several layers and methods.

        Every slice goes through the network once forward and once backward, whatever the number of outputs, so
        comparing methods costs little more than the most expensive of them (the evaluation protocol of the
        paper's Table 2 does this).

        Args:
            inputs: ``(B, C, X, Y, Z)`` volumes.
            network: the slice classifier.
            outputs: ``(mode, cam_method, cam_layer)`` triples, e.g. ``("tonno", None, None)``,
                ``("tomographic_cam", "layercam", "layer3")``.

        Returns:
            one ``(B, 1, X, Y, Z)`` heatmap per requested triple.
        """
        for mode, method, layer in outputs:
            if mode not in TOMOGRAPHIC_MODES:
                raise ValueError(f"mode must be one of {TOMOGRAPHIC_MODES}, got {mode!r}.")
            if mode != "tonno" and (method not in CAM_METHODS or not layer):
                raise ValueError(
                    f"{mode} needs a CAM method from {CAM_METHODS} and a layer, got {method!r}, {layer!r}."
                )
        methods = sorted({m for mode, m, _ in outputs if mode != "tonno"})
        layers = sorted({layer for mode, _, layer in outputs if mode != "tonno"})
        cams = SliceCAM(network, layers, methods) if methods else None

        def score(slices: torch.Tensor) -> dict:
            if cams is None:
                return {("tonno", None, None): _logits(network, slices)}
            maps, logits = cams.all_maps(slices)
            return {key: logits if key[0] == "tonno" else maps[key[1], key[2]] for key in outputs}

        factories = {key: self.reconstructor_factory(key[0]) for key in outputs}
        return tomographic_inference(inputs, score, factories, **self._settings())

    def reconstructor_factory(self, mode: str) -> ReconstructorFactory:
        """What reconstructs ``mode``'s scores with this inferer's settings."""
        if mode != "tonno":
            filtered = mode == "tomographic_cam"
            return functools.partial(StackBackprojection, slice_size=self.slice_size, filtered=filtered)
        return self.reconstruction

    def _settings(self) -> dict[str, Any]:
        return {
            "num_angles": self.num_angles, "num_slices": self.num_slices, "slice_size": self.slice_size,
            "fov": self.fov, "hemisphere": self.hemisphere, "sw_batch_size": self.sw_batch_size,
            "sw_device": self.sw_device, "device": self.device, "spacing": self.spacing,
            "directions_per_update": self.directions_per_update, "shard_angles": self.shard_angles,
            "progress": self.progress,
        }  # fmt: skip

    def _scorer(self, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        """The function from a batch of slices to what is reconstructed: logits ``(N,)`` or maps ``(N, h, w)``."""
        if self.mode == "tonno":
            return lambda slices: _logits(network, slices, *args, **kwargs)
        if callable(self.cam_method):
            method = self.cam_method
            return lambda slices: method(network, slices)
        if not isinstance(network, nn.Module):
            raise TypeError(f"the CAM modes need an nn.Module network, got {type(network).__name__}.")
        return SliceCAM(network, self.cam_layer, self.cam_method)


_ITERATIVE_OPTIONS = ("iterations", "tolerance", "regularization", "sparsity", "nonnegative", "support")


def _refuse_moved_options(moved: dict[str, Any]) -> None:
    """Name the new home of an option the inferer took before the reconstructions carried their own."""
    for name, value in moved.items():
        if name in _ITERATIVE_OPTIONS:
            fix = f"reconstruction=functools.partial(IterativeReconstruction, {name}={value!r})"
        elif name == "backprojection":
            fix = f"reconstruction=functools.partial(FilteredBackprojection, backprojection={value!r})"
        elif name == "backprojection_chunk":
            fix = f"directions_per_update={value!r}"
        else:
            raise TypeError(f"TomographicInferer got an unexpected keyword argument {name!r}.")
        raise TypeError(
            f"TomographicInferer no longer takes {name}=; a reconstruction's options go with it: pass {fix} "
            "(from monai_tonno.tomography.reconstruction)."
        )


def _logits(network: Callable[..., Any], slices: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """The network's ``(N, K)`` outputs for ``N`` slices (``K = 1`` for ``(N,)``)."""
    logits = network(to_network_dtype(network, slices), *args, **kwargs)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the network must return a tensor of logits, got {type(logits).__name__}.")
    count = slices.shape[0]
    if logits.ndim not in (1, 2) or logits.shape[0] != count or logits.shape[-1] < 1:
        raise ValueError(
            f"the network must return its outputs per slice, shape ({count},) or ({count}, K) for {count} slices, "
            f"got shape {tuple(logits.shape)}."
        )
    return logits.reshape(count, -1).float()
