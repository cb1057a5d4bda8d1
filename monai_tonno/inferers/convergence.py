# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``UntilConverged``: as many directions as a volume needs, doubled until its heatmap stops changing."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import torch

from monai_tonno.validation import check_int

__all__ = ["UntilConverged", "angle_schedule"]


@dataclass(frozen=True)
class UntilConverged:
    """Directions for ToNNO chosen per volume: ``start``, ``2 start``, ``4 start``, ... until the heatmap settles.

    Each level is a whole Fibonacci lattice of its size, reconstructed alone: a prefix of one ordering is never as
    uniform as the lattice of its length (``benchmarks/direction_order.py``), and a mix of the levels is no better
    than the last one (``benchmarks/README.md``). The inferer stops a volume at the first level whose heatmap differs
    from the level before by at most ``tolerance`` (relative L2 over the volume, every output and channel); that
    level's heatmap is the result. The two levels are independent reconstructions, so their difference measures the
    error of the coarser one; a volume whose network output is simple stops early, one that needs many directions
    goes on, up to ``max_angles``. The cost is every level scored: at most twice the last level's forward passes.

    Used as ``TomographicInferer(num_angles=UntilConverged(...))`` or ``num_angles="auto"`` (these defaults); the
    directions each volume used are logged and written in the output's metadata
    (``"tomographic_num_angles"``, ``"tomographic_directions_scored"``, one entry per volume).

    Args:
        start: directions of the first level.
        max_angles: the most directions of a level (rounded down to ``start`` times a power of two).
        tolerance: the largest relative change between consecutive levels at which a volume stops.
    """

    start: int = 32
    max_angles: int = 1024
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        check_int("start", self.start, 1)
        check_int("max_angles", self.max_angles, self.start)
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"tolerance must be a positive relative change, e.g. 0.05, got {self.tolerance!r}.")

    def levels(self) -> list[int]:
        """Directions per level, in the order they are tried."""
        sizes = [self.start]
        while 2 * sizes[-1] <= self.max_angles:
            sizes.append(2 * sizes[-1])
        return sizes

    @staticmethod
    def change(previous: Mapping[Hashable, torch.Tensor], current: Mapping[Hashable, torch.Tensor]) -> float:
        """The largest relative L2 difference ``|current - previous| / |current|`` over the outputs."""
        changes = []
        for key, now in current.items():
            scale = torch.linalg.vector_norm(now)
            difference = torch.linalg.vector_norm(now - previous[key])
            changes.append(float(difference / scale) if scale > 0 else (0.0 if difference == 0 else math.inf))
        return max(changes)

    def converged(self, previous: Mapping[Hashable, torch.Tensor], current: Mapping[Hashable, torch.Tensor]) -> bool:
        return self.change(previous, current) <= self.tolerance


def angle_schedule(num_angles: int | str | UntilConverged) -> int | UntilConverged:
    """``num_angles`` as the inferer uses it: a number of directions, or ``"auto"`` as :class:`UntilConverged`."""
    if isinstance(num_angles, str):
        if num_angles != "auto":
            raise ValueError(
                f"num_angles must be a number of directions, 'auto' or UntilConverged, got {num_angles!r}."
            )
        return UntilConverged()
    if isinstance(num_angles, UntilConverged):
        return num_angles
    check_int("num_angles (L)", num_angles, 1)
    return int(num_angles)
