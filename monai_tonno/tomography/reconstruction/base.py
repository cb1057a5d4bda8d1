# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""What every reconstruction does: chunks of directions and their scores in, one volume per output out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch
import torch.distributed as dist

from monai_tonno.tomography.geometry import VolumeGeometry

__all__ = ["Frames", "Reconstructor", "ReconstructorFactory"]

Frames = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (n, u, v), each (l, 3)


class Reconstructor(ABC):
    """A running reconstruction from the scores of the slices of ``num_directions`` directions.

    The caller cuts, for each direction, the ``M + 2`` slices at :func:`~monai_tonno.tomography.radon.profile_offsets`,
    scores them, and hands over whole directions in any number of chunks, in any order; :meth:`result` gives the
    volume once all (or all of this process' share) have been added.

    Args:
        geometry: the output grid.
        num_slices: ``M``; each direction comes with ``M + 2`` scores (per output, or maps).
        num_directions: ``L``, all the directions of the reconstruction, also those added by other processes:
            the inverse's weights depend on it.
        device: device of the reconstruction.
    """

    def __init__(
        self,
        geometry: VolumeGeometry,
        num_slices: int,
        num_directions: int,
        device: torch.device | str | None = None,
    ) -> None:
        if num_slices < 2:
            raise ValueError(f"num_slices (M) must be at least 2, got {num_slices}.")
        if num_directions < 1:
            raise ValueError(f"num_directions (L) must be at least 1, got {num_directions}.")
        self.geometry = geometry
        self.num_slices = int(num_slices)
        self.num_directions = int(num_directions)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @abstractmethod
    def add(self, scores: torch.Tensor, frames: Frames) -> None:
        """Add directions ``frames`` with their scores ``(l, M + 2, ...)`` (per-slice outputs or maps)."""

    @abstractmethod
    def result(self) -> torch.Tensor:
        """The ``(K, X, Y, Z)`` volume of the directions added so far (``K`` outputs, 1 for maps)."""

    def result_of_all_processes(self) -> torch.Tensor:
        """The volume of every process' directions in a ``torch.distributed`` run where each process added its
        share (on every process); :meth:`result` without a process group.

        The default sums the processes' results, which is right for the reconstructions that are sums over
        directions whose weights already use the total ``num_directions``; a reconstruction that needs all the
        directions at once (the iterative one) gathers them instead.
        """
        result = self.result()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(result)
        return result

    def _check_scores(self, scores: torch.Tensor, frames: Frames) -> None:
        if scores.ndim < 2 or scores.shape[1] != self.num_slices + 2 or frames[0].shape != (scores.shape[0], 3):
            raise ValueError(
                f"expected scores (l, M + 2 = {self.num_slices + 2}, ...) for l directions of shape (l, 3), got "
                f"{tuple(scores.shape)} and {tuple(frames[0].shape)}."
            )


class ReconstructorFactory(Protocol):
    """Makes the :class:`Reconstructor` of one volume; a reconstructor class, or a ``functools.partial`` of one
    with its own options (``"_mode_": "callable"`` in a bundle config), is one."""

    def __call__(
        self, *, geometry: VolumeGeometry, num_slices: int, num_directions: int, device: torch.device
    ) -> Reconstructor: ...
