# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Arguments ``TomographicInferer`` no longer takes, refused with their new home (the reconstructions carry their
own options since the inferer became a wrapper of ``tomographic_inference``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["refuse_retired_arguments"]

_ITERATIVE = ("iterations", "tolerance", "regularization", "sparsity", "nonnegative", "support")
_MOVED_OPTIONS = {
    **{name: "reconstruction=functools.partial(IterativeReconstruction, {}={!r})" for name in _ITERATIVE},
    "backprojection": "reconstruction=functools.partial(FilteredBackprojection, {}={!r})",
    "backprojection_chunk": "directions_per_update={1!r}",
}


def refuse_retired_arguments(moved: Mapping[str, Any]) -> None:
    """Name the new home of an option the inferer took before the reconstructions carried their own."""
    for name, value in moved.items():
        if name not in _MOVED_OPTIONS:
            raise TypeError(f"TomographicInferer got an unexpected keyword argument {name!r}.")
        raise TypeError(
            f"TomographicInferer no longer takes {name}=; a reconstruction's options go with it: pass "
            f"{_MOVED_OPTIONS[name].format(name, value)} (from monai_tonno.tomography.reconstruction)."
        )
