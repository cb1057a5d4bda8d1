# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``tomographic_inference``: the algorithm of ToNNO and the tomographic CAMs, slices cut, scored and reconstructed.

:class:`~monai_tonno.inferers.TomographicInferer` is its thin wrapper, as MONAI's ``SlidingWindowInferer`` is of
``sliding_window_inference``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from monai.data import MetaTensor
from monai.utils import convert_to_dst_type
from tqdm.auto import tqdm

from monai_tonno.inferers.convergence import UntilConverged, angle_schedule
from monai_tonno.networks.dtype import to_network_dtype
from monai_tonno.tomography.geometry import (
    FOV_MODES,
    VolumeGeometry,
    fibonacci_directions,
    orthonormal_frames,
    spacing_from_affine,
)
from monai_tonno.tomography.radon import profile_offsets, profile_slices
from monai_tonno.tomography.reconstruction import Reconstructor, ReconstructorFactory
from monai_tonno.validation import check_device, check_int, check_volume_batch, warn_default_spacing

__all__ = ["check_tomographic_settings", "slice_logits", "tomographic_inference"]

logger = logging.getLogger(__name__)


def _spacing_of(inputs: torch.Tensor, index: int) -> tuple[float, float, float]:
    """Voxel spacing of batch item ``index``: from the ``MetaTensor``'s affine, else 1 mm (with a warning)."""
    if not isinstance(inputs, MetaTensor):
        warn_default_spacing("TomographicInferer")
        return (1.0, 1.0, 1.0)
    affine = inputs.affine
    return spacing_from_affine(affine[index] if affine.ndim == 3 else affine)


def check_tomographic_settings(
    num_slices: int, slice_size: int, sw_batch_size: int, directions_per_update: int, fov: str,
    spacing: Sequence[float] | None,
) -> None:  # fmt: skip
    """Refuse settings shared by the function and the inferer that are not what they must be, naming the value."""
    check_int("num_slices (M)", num_slices, 2)
    check_int("slice_size", slice_size, 2)
    check_int("sw_batch_size", sw_batch_size, 1)
    check_int("directions_per_update", directions_per_update, 1)
    if fov not in FOV_MODES:
        raise ValueError(f"fov must be one of {FOV_MODES}, got {fov!r}.")
    if spacing is not None and (len(spacing) != 3 or not all(float(x) > 0 for x in spacing)):
        raise ValueError(f"spacing must be three positive millimetre values, got {spacing!r}.")


def tomographic_inference(
    inputs: torch.Tensor,
    score: Callable[[torch.Tensor], Any],
    reconstructor: ReconstructorFactory | Mapping[Hashable, ReconstructorFactory],
    num_angles: int | str | UntilConverged,
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

    The algorithm of :class:`~monai_tonno.inferers.TomographicInferer` as a function, as MONAI's
    ``sliding_window_inference`` is the algorithm of ``SlidingWindowInferer``. For each Fibonacci direction, the
    ``num_slices + 2`` slices at :func:`~monai_tonno.tomography.radon.profile_offsets` are cut
    (:func:`~monai_tonno.tomography.radon.profile_slices`), scored ``sw_batch_size`` at a time, and handed in
    whole directions to a :class:`~monai_tonno.tomography.reconstruction.Reconstructor` made by ``reconstructor``
    for each volume. Slicing and reconstruction run in float32; an enclosing ``torch.autocast`` reaches ``score``
    only (reduced precision costs accuracy here: the second difference amplifies the logits' rounding,
    ``benchmarks/network_precision.py``).

    Under ``torch.no_grad()`` memory grows with ``num_angles`` only by the scores held for the reconstruction
    (``L (M + 2) K`` numbers for ToNNO; CAM stacks are backprojected as they come), since each batch's
    activations are freed once it is scored; with gradients enabled autograd keeps every slice's activations, so
    memory grows with ``L (M + 2)``. Nearly all the time is the network's: fold its frozen batch normalisation
    (:func:`~monai_tonno.networks.fold_batch_norm`), use ``channels_last``, and on a GPU compile it with a larger
    ``sw_batch_size``.

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
        num_angles: ``L``, the number of directions; or ``"auto"`` or
            :class:`~monai_tonno.inferers.UntilConverged`: per volume, Fibonacci lattices of doubling size until
            the heatmap settles (the directions used are logged and, for a ``MetaTensor`` input, written in the
            outputs' metadata).
        num_slices: ``M``, slices per direction inside the field of view (two more are cut).
        slice_size: pixels per side of each slice.
        fov: ``"inscribed"`` (the paper) or ``"circumscribed"`` (corners covered)
            (:class:`~monai_tonno.tomography.geometry.VolumeGeometry`).
        hemisphere: directions on a hemisphere (the default): ``n`` and ``-n`` cut the same planes, so each plane
            family is cut once; at equal ``L`` at least as accurate as the full sphere. ``False`` for the paper's
            full-sphere sampling.
        sw_batch_size: slices per call of ``score``.
        sw_device: where slices are cut and scored; defaults to the input's device.
        device: device of the outputs; defaults to the input's device.
        spacing: voxel spacing in millimetres; by default from the ``MetaTensor`` affine (a plain tensor is taken
            as 1 mm isotropic, with a warning). Slices are cut in physical planes, so anisotropic volumes are
            handled.
        directions_per_update: whole directions handed to the reconstruction at once; bounds the memory of
            the scores held.
        shard_angles: in a ``torch.distributed`` run (e.g. under ``torchrun``), each rank cuts and scores every
            ``world_size``-th direction and the reconstructions combine the shares (filtered backprojection sums
            the partial heatmaps, the iterative reconstruction gathers the profiles and solves on every rank)
            (:meth:`~monai_tonno.tomography.reconstruction.Reconstructor.result_of_all_processes`); every rank returns
            the whole volume. Ignored without a process group.
        progress: show a progress bar over directions.

    Returns:
        ``(B, K, X, Y, Z)`` float volumes, or a dict of them, one per key of ``reconstructor``.
    """
    check_volume_batch(inputs)
    num_angles = angle_schedule(num_angles)
    check_tomographic_settings(num_slices, slice_size, sw_batch_size, directions_per_update, fov, spacing)
    sw_device = check_device("sw_device", sw_device)
    output_device = torch.device(check_device("device", device) or inputs.device)
    single = not isinstance(reconstructor, Mapping)
    factories = {None: reconstructor} if single else dict(reconstructor)
    scorer = (lambda slices: {None: score(slices)}) if single else score
    levels = num_angles.levels() if isinstance(num_angles, UntilConverged) else [int(num_angles)]
    rank, world = _shard() if shard_angles else (0, 1)
    volumes, used = [], []
    for index in range(len(inputs)):
        volume = inputs[index]
        volume = volume.as_tensor() if isinstance(volume, MetaTensor) else volume
        volume_spacing = spacing if spacing is not None else _spacing_of(inputs, index)
        geometry = VolumeGeometry(tuple(volume.shape[1:]), volume_spacing, fov)
        where = torch.device(sw_device) if sw_device is not None else volume.device
        network_precision = _caller_autocast(where.type)
        volume = volume.to(where).float()
        previous, scored = None, 0
        for level in levels:
            with torch.autocast(where.type, enabled=False):  # geometry and reconstruction in float32
                reconstructors = {
                    key: factory(geometry=geometry, num_slices=int(num_slices), num_directions=level, device=where)
                    for key, factory in factories.items()
                }
                directions = fibonacci_directions(level, hemisphere)[rank::world]
                _score_directions(volume, geometry, directions, scorer, reconstructors, network_precision,
                                  int(num_slices), int(slice_size), int(sw_batch_size), int(directions_per_update),
                                  progress)  # fmt: skip
                current = {
                    key: r.result_of_all_processes() if world > 1 else r.result() for key, r in reconstructors.items()
                }
            scored += level
            if previous is not None and _settled(
                num_angles, previous, current, index, level, scored, level == levels[-1]
            ):
                break
            previous = current
        volumes.append(current)
        used.append((level, scored))
    results = {}
    for key in factories:
        moved = [volume.pop(key).to(output_device) for volume in volumes]  # popped: no second reference to free
        output = moved[0][None] if len(moved) == 1 else torch.stack(moved)  # one volume: a view, not a copy
        if isinstance(inputs, MetaTensor):
            output = convert_to_dst_type(output, inputs, device=output_device, dtype=output.dtype)[0]
            if isinstance(num_angles, UntilConverged):
                output.meta["tomographic_num_angles"] = [level for level, _ in used]
                output.meta["tomographic_directions_scored"] = [scored for _, scored in used]
        results[key] = output
    return results[None] if single else results


def slice_logits(network: Callable[..., Any], slices: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """ToNNO's scores: the network's ``(N, K)`` outputs for ``N`` slices (``K = 1`` for ``(N,)``), checked.

    ``functools.partial(slice_logits, network)`` is the ``score`` of :func:`tomographic_inference` for ToNNO.
    """
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


def _settled(
    schedule: UntilConverged,
    previous: Mapping[Hashable, torch.Tensor],
    current: Mapping[Hashable, torch.Tensor],
    index: int,
    level: int,
    scored: int,
    last: bool,
) -> bool:
    """Whether volume ``index`` stops at ``level``; logs the outcome when it does."""
    change = schedule.change(previous, current)
    if change <= schedule.tolerance:
        logger.info("volume %d: heatmap settled at L = %d (change %.3g <= %.3g from L = %d; %d directions scored)",
                    index, level, change, schedule.tolerance, level // 2, scored)  # fmt: skip
        return True
    if last:
        logger.warning(
            "volume %d: the heatmap did not settle by L = %d (it changed by %.3g from L = %d, tolerance %.3g); it is "
            "returned as it is: raise max_angles or the tolerance, or check the network (an untrained one never "
            "settles).", index, level, change, level // 2, schedule.tolerance,
        )  # fmt: skip
    return last


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
