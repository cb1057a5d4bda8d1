# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``TomographicInferer``: a 3D heatmap from a 2D slice classifier by tomographic reconstruction (ToNNO)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from torch import nn
from tqdm.auto import tqdm

from monai_tonno.networks.dtype import to_network_dtype
from monai_tonno.tomography.geometry import (
    FOV_MODES,
    VolumeGeometry,
    fibonacci_directions,
    orthonormal_frames,
    spacing_from_affine,
)
from monai_tonno.tomography.radon import profile_offsets, profile_slices
from monai_tonno.tomography.reconstruction import (
    BACKPROJECTIONS,
    FilteredBackprojection,
    IterativeReconstruction,
    Reconstructor,
    ReconstructorFactory,
    StackBackprojection,
    check_iterative_options,
)
from monai_tonno.validation import check_device, check_int, check_volume_batch, warn_default_spacing
from monai_tonno.visualize import CAM_METHODS, SliceCAM

__all__ = ["BACKPROJECTIONS", "RECONSTRUCTIONS", "TOMOGRAPHIC_MODES", "TomographicInferer", "tomographic_inference"]


def _spacing_of(inputs: torch.Tensor, index: int) -> tuple[float, float, float]:
    """Voxel spacing of batch item ``index``: from the ``MetaTensor``'s affine, else 1 mm (with a warning)."""
    if not isinstance(inputs, MetaTensor):
        warn_default_spacing("TomographicInferer")
        return (1.0, 1.0, 1.0)
    affine = inputs.affine
    return spacing_from_affine(affine[index] if affine.ndim == 3 else affine)


TOMOGRAPHIC_MODES = ("tonno", "averaged_cam", "tomographic_cam")
RECONSTRUCTIONS = ("filtered_backprojection", "iterative")
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
            sphere. Default for the CAM modes: 1000.
        num_slices: ``M``, slices per direction inside the field of view (two more are cut for the second
            difference).
        slice_size: pixels per side of each slice given to the network.
        fov: ``"inscribed"`` (the paper) or ``"circumscribed"`` (corners covered); see
            :class:`~monai_tonno.tomography.geometry.VolumeGeometry`.
        hemisphere: directions on a hemisphere (the default): ``n`` and ``-n`` cut the same planes, so each plane
            family is cut once. At equal ``L`` it is at least as accurate as the full sphere; ``False`` for the
            paper's full-sphere sampling.
        sw_batch_size: slices per network call.
        sw_device: device where slices are cut and the network runs; defaults to the input's device.
        device: device of the output heatmap; defaults to the input's device.
        progress: show a progress bar over directions.
        spacing: voxel spacing in millimetres; by default read from the input's ``MetaTensor`` affine (a plain
            tensor is taken as 1 mm isotropic, with a warning). Slices are cut in physical planes, so anisotropic
            volumes are handled.
        mode: ``"tonno"``, ``"averaged_cam"`` or ``"tomographic_cam"``.
        cam_method: ``"layercam"``, ``"gradcam"``, ``"gradcampp"`` (the paper's formula) or ``"gradcampp_monai"``
            (MONAI's); or a callable ``(network, slices) -> maps``
            returning ``(N, h, w)`` maps (e.g. average pooling, for the paper's Figure 4).
        cam_layer: the layer of the CAM modes (``"layer1"`` .. ``"layer4"`` for timm ResNets).
        backprojection_chunk: directions reconstructed at once; bounds the memory of that step.
        backprojection: how ToNNO's profiles go back into the volume. ``"fourier"`` (default): all directions
            through one non-uniform FFT (:class:`~monai_tonno.tomography.fourier_backprojection.FourierBackprojection`),
            much faster and as accurate against closed forms (``benchmarks/README.md``); the two interpolate the
            coarse profiles of a small M differently, so they differ most there; ``"linear"``: the
            straightforward linear interpolation of every profile at every voxel, the reference.
        shard_angles: in a ``torch.distributed`` run (e.g. under ``torchrun``), each rank cuts and scores only
            every ``world_size``-th direction and an all-reduce sums the partial heatmaps (the iterative
            reconstruction gathers the profiles and solves on every rank); every rank returns the whole heatmap.
            Ignored when no process group is initialised.
        reconstruction: ToNNO's profiles to a volume. ``"filtered_backprojection"`` (default, the paper) or
            ``"iterative"``: the heatmap that best explains the profiles under a prior
            (:class:`~monai_tonno.tomography.reconstruction.IterativeReconstruction`), for fewer directions (fewer
            forward passes) with fewer streaks, with the options below; or any reconstructor factory
            (:class:`~monai_tonno.tomography.reconstruction.ReconstructorFactory`), e.g.
            ``functools.partial(IterativeReconstruction, iterations=50, sparsity=1.0)``, or in a bundle config
            ``{"_target_": "monai_tonno.tomography.reconstruction.IterativeReconstruction", "_mode_": "callable",
            ...}`` (a ``functools.partial`` of the class).
            The CAM modes use their own backprojections.
        iterations: the most iterations of the iterative reconstruction.
        tolerance: the iterative reconstruction stops when an iteration changes the heatmap by less than this
            fraction of its norm.
        regularization: the iterative reconstruction's weight of staying near filtered backprojection where the
            profiles determine the heatmap poorly (see
            :class:`~monai_tonno.tomography.reconstruction.IterativeReconstruction`).
        sparsity: the iterative reconstruction's L1 weight on the heatmap's departure from its background, in
            units of its median absolute deviation (0: plain least squares).
        nonnegative: the iterative reconstruction's heatmap is non-negative (for images of a density, such as
            ``SliceSum`` profiles; not for a network's signed logits).
        support: ``"volume"`` or ``"ball"``: where the iterative reconstruction's heatmap may be non-zero.

    A network with ``K`` outputs per slice (``(N, K)`` logits: several classes, regression targets, the features
    of an encoder) gives a ``(B, K, X, Y, Z)`` ToNNO heatmap, channel ``k`` the heatmap of output ``k`` alone.
    """

    def __init__(
        self,
        num_angles: int | None = None,
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
        backprojection_chunk: int = 8,
        shard_angles: bool = False,
        backprojection: str = "fourier",
        reconstruction: str | ReconstructorFactory = "filtered_backprojection",
        iterations: int = 30,
        tolerance: float = 1e-3,
        regularization: float = 0.3,
        sparsity: float = 0.0,
        nonnegative: bool = False,
        support: str = "volume",
    ) -> None:
        super().__init__()
        if mode not in TOMOGRAPHIC_MODES:
            raise ValueError(f"mode must be one of {TOMOGRAPHIC_MODES}, got {mode!r}.")
        if num_angles is None:
            num_angles = (1000 if hemisphere else 2000) if mode == "tonno" else 1000
        _check_settings(num_angles, num_slices, slice_size, sw_batch_size, backprojection_chunk, fov, spacing)
        if backprojection not in BACKPROJECTIONS:
            raise ValueError(f"backprojection must be one of {BACKPROJECTIONS}, got {backprojection!r}.")
        if not callable(reconstruction) and reconstruction not in RECONSTRUCTIONS:
            raise ValueError(
                f"reconstruction must be one of {RECONSTRUCTIONS} or a reconstructor factory, got {reconstruction!r}."
            )
        if (reconstruction == "iterative" or callable(reconstruction)) and mode != "tonno":
            raise ValueError(
                f"reconstruction={reconstruction!r} reconstructs ToNNO's profiles (mode='tonno'), got mode={mode!r}: "
                "the CAM modes backproject their maps with StackBackprojection."
            )
        check_iterative_options(iterations, tolerance, regularization, sparsity, support)
        if isinstance(cam_method, str) and cam_method not in CAM_METHODS:
            raise ValueError(f"cam_method must be one of {CAM_METHODS} or a callable, got {cam_method!r}.")
        self.num_angles = int(num_angles)
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
        self.backprojection_chunk = int(backprojection_chunk)
        self.shard_angles = bool(shard_angles)
        self.backprojection = backprojection
        self.reconstruction = reconstruction
        self.iterative_options = {
            "iterations": int(iterations),
            "tolerance": float(tolerance),
            "regularization": float(regularization),
            "sparsity": float(sparsity),
            "nonnegative": bool(nonnegative),
            "support": support,
        }

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
        if callable(self.reconstruction):
            return self.reconstruction
        if self.reconstruction == "iterative":
            return functools.partial(IterativeReconstruction, **self.iterative_options)
        return functools.partial(
            FilteredBackprojection, backprojection=self.backprojection, chunk_size=self.backprojection_chunk
        )

    def _settings(self) -> dict[str, Any]:
        return {
            "num_angles": self.num_angles, "num_slices": self.num_slices, "slice_size": self.slice_size,
            "fov": self.fov, "hemisphere": self.hemisphere, "sw_batch_size": self.sw_batch_size,
            "sw_device": self.sw_device, "device": self.device, "spacing": self.spacing,
            "directions_per_update": self.backprojection_chunk, "shard_angles": self.shard_angles,
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


def _check_settings(
    num_angles: int, num_slices: int, slice_size: int, sw_batch_size: int, directions_per_update: int, fov: str,
    spacing: Sequence[float] | None,
) -> None:  # fmt: skip
    check_int("num_angles (L)", num_angles, 1)
    check_int("num_slices (M)", num_slices, 2)
    check_int("slice_size", slice_size, 2)
    check_int("sw_batch_size", sw_batch_size, 1)
    check_int("backprojection_chunk", directions_per_update, 1)
    if fov not in FOV_MODES:
        raise ValueError(f"fov must be one of {FOV_MODES}, got {fov!r}.")
    if spacing is not None and (len(spacing) != 3 or not all(float(x) > 0 for x in spacing)):
        raise ValueError(f"spacing must be three positive millimetre values, got {spacing!r}.")


def tomographic_inference(
    inputs: torch.Tensor,
    score: Callable[[torch.Tensor], Any],
    reconstructor: ReconstructorFactory | Mapping[Hashable, ReconstructorFactory],
    num_angles: int,
    num_slices: int,
    slice_size: int,
    fov: str = "inscribed",
    hemisphere: bool = True,
    sw_batch_size: int = 64,
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    spacing: Sequence[float] | None = None,
    directions_per_update: int = 8,
    shard_angles: bool = False,
    progress: bool = False,
) -> torch.Tensor | dict[Hashable, torch.Tensor]:
    """Reconstruct what ``score`` says of slices along ``num_angles`` directions into a volume, for every volume.

    The algorithm of :class:`TomographicInferer` as a function, as MONAI's ``sliding_window_inference`` is the
    algorithm of ``SlidingWindowInferer``. For each Fibonacci direction, the ``num_slices + 2`` slices at
    :func:`~monai_tonno.tomography.radon.profile_offsets` are cut
    (:func:`~monai_tonno.tomography.radon.profile_slices`), scored ``sw_batch_size`` at a time, and handed in whole
    directions to a :class:`~monai_tonno.tomography.reconstruction.Reconstructor` made by ``reconstructor`` for each
    volume. Slicing and reconstruction run in float32; an enclosing ``torch.autocast`` reaches ``score`` only.

    Example::

        heatmap = tomographic_inference(volumes, classifier, FilteredBackprojection, 250, 32, 64)
        iterative = functools.partial(IterativeReconstruction, iterations=50)
        heatmap = tomographic_inference(volumes, classifier, iterative, 125, 32, 64)

    Args:
        inputs: ``(B, C, X, Y, Z)`` volumes (a ``MetaTensor`` keeps its metadata in the outputs).
        score: maps ``(N, C, S, S)`` slices to their scores: ``(N, K)`` outputs or ``(N, h, w)`` maps; a mapping
            of them when ``reconstructor`` is a mapping, with the same keys.
        reconstructor: makes the reconstruction of one volume, called with the keywords ``geometry``,
            ``num_slices``, ``num_directions`` and ``device`` (a reconstructor class, or a ``functools.partial``
            of one with its options); or a mapping of such, one per output.
        num_angles: ``L``, the number of directions.
        num_slices: ``M``, slices per direction inside the field of view (two more are cut).
        slice_size: pixels per side of each slice.
        fov: ``"inscribed"`` or ``"circumscribed"`` (:class:`~monai_tonno.tomography.geometry.VolumeGeometry`).
        hemisphere: directions on a hemisphere (each plane family cut once) or, ``False``, the full sphere.
        sw_batch_size: slices per call of ``score``.
        sw_device: where slices are cut and scored; defaults to the input's device.
        device: device of the outputs; defaults to the input's device.
        spacing: voxel spacing in millimetres; by default from the ``MetaTensor`` affine (else 1 mm, warned).
        directions_per_update: whole directions handed to the reconstruction at once; bounds the memory of
            the scores held.
        shard_angles: in a ``torch.distributed`` run, each rank cuts and scores every ``world_size``-th
            direction and the reconstructions combine the shares
            (:meth:`~monai_tonno.tomography.reconstruction.Reconstructor.result_of_all_processes`); every rank returns
            the whole volume. Ignored without a process group.
        progress: show a progress bar over directions.

    Returns:
        ``(B, K, X, Y, Z)`` float volumes, or a dict of them, one per key of ``reconstructor``.
    """
    check_volume_batch(inputs)
    _check_settings(num_angles, num_slices, slice_size, sw_batch_size, directions_per_update, fov, spacing)
    sw_device = check_device("sw_device", sw_device)
    output_device = torch.device(check_device("device", device) or inputs.device)
    single = not isinstance(reconstructor, Mapping)
    factories = {None: reconstructor} if single else dict(reconstructor)
    scorer = (lambda slices: {None: score(slices)}) if single else score
    directions = fibonacci_directions(int(num_angles), hemisphere)
    rank, world = _shard() if shard_angles else (0, 1)
    directions = directions[rank::world]
    volumes = []
    for index in range(len(inputs)):
        volume = inputs[index]
        volume = volume.as_tensor() if isinstance(volume, MetaTensor) else volume
        volume_spacing = spacing if spacing is not None else _spacing_of(inputs, index)
        geometry = VolumeGeometry(tuple(volume.shape[1:]), volume_spacing, fov)
        where = torch.device(sw_device) if sw_device is not None else volume.device
        network_precision = _caller_autocast(where.type)
        with torch.autocast(where.type, enabled=False):  # geometry and reconstruction in float32
            reconstructors = {
                key: factory(geometry=geometry, num_slices=int(num_slices), num_directions=int(num_angles),
                             device=where)
                for key, factory in factories.items()
            }  # fmt: skip
            _score_directions(volume.to(where).float(), geometry, directions, scorer, reconstructors,
                              network_precision, int(num_slices), int(slice_size), int(sw_batch_size),
                              int(directions_per_update), progress)  # fmt: skip
            volumes.append({
                key: (r.result_of_all_processes() if world > 1 else r.result()) for key, r in reconstructors.items()
            })  # fmt: skip
    results = {}
    for key in factories:
        moved = [volume.pop(key).to(output_device) for volume in volumes]  # popped: no second reference to free
        output = moved[0][None] if len(moved) == 1 else torch.stack(moved)  # one volume: a view, not a copy
        if isinstance(inputs, MetaTensor):
            output = convert_to_dst_type(output, inputs, device=output_device, dtype=output.dtype)[0]
        results[key] = output
    return results[None] if single else results


def _score_directions(
    volume: torch.Tensor,
    geometry: VolumeGeometry,
    directions: torch.Tensor,
    score: Callable[[torch.Tensor], Mapping[Hashable, torch.Tensor]],
    reconstructors: Mapping[Hashable, Reconstructor],
    network_precision: contextlib.AbstractContextManager,
    num_slices: int,
    slice_size: int,
    sw_batch_size: int,
    directions_per_update: int,
    progress: bool,
) -> None:
    """Cut, score and add every direction's slices of one float32 volume; only ``score`` runs under
    ``network_precision``."""
    frames = tuple(axis.to(device=volume.device, dtype=volume.dtype) for axis in orthonormal_frames(directions))
    offsets, _ = profile_offsets(num_slices, device=volume.device)
    per_direction = offsets.shape[0]
    total = len(directions) * per_direction
    pending: dict[Hashable, list[torch.Tensor]] = {key: [] for key in reconstructors}  # not yet reconstructed
    done = 0  # directions reconstructed so far
    with tqdm(total=len(directions), unit="direction", disable=not progress, leave=False) as bar:
        for start in range(0, total, sw_batch_size):
            stop = min(start + sw_batch_size, total)
            slices = profile_slices(volume, geometry, frames, offsets, start, stop, slice_size)
            with network_precision:
                scored = score(slices)
            for key in reconstructors:
                pending[key].append(scored[key].float())
            complete = stop // per_direction - done
            if complete >= directions_per_update or stop == total:
                used = complete * per_direction
                chunk = tuple(axis[done : done + complete] for axis in frames)
                for key, reconstructor in reconstructors.items():
                    outputs = torch.cat(pending[key])
                    reconstructor.add(outputs[:used].reshape(complete, per_direction, *outputs.shape[1:]), chunk)
                    pending[key] = [outputs[used:]]
                done += complete
                bar.update(complete)


def _caller_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """The caller's autocast on ``device_type``, to re-enter around the network alone.

    Reduced precision speeds up the network, but plane positions and backprojection in bfloat16 would be off
    by about a voxel, so the inferer turns autocast off for them.
    """
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, dtype=torch.get_autocast_dtype(device_type))
    return contextlib.nullcontext()


def _shard() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
