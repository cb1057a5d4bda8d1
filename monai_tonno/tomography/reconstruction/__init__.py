# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Reconstructions: the scores of slices cut along many directions in, a volume out.

The inferer cuts slices and scores them; a :class:`Reconstructor` knows the formulas. One small class per
method: :class:`FilteredBackprojection` (ToNNO's inverse Radon transform, Fourier or linear backprojection),
:class:`StackBackprojection` (Averaged and Tomographic CAM) and :class:`IterativeReconstruction` (the volume
that best explains ToNNO's profiles, under a prior). The constants of the inverse live in
:func:`~monai_tonno.tomography.radon.inverse_radon_weight`.
"""

from monai_tonno.tomography.reconstruction.base import Frames, Reconstructor, ReconstructorFactory
from monai_tonno.tomography.reconstruction.filtered import BACKPROJECTIONS, FilteredBackprojection
from monai_tonno.tomography.reconstruction.iterative import SUPPORTS, IterativeReconstruction, check_iterative_options
from monai_tonno.tomography.reconstruction.stacks import StackBackprojection

__all__ = [
    "BACKPROJECTIONS",
    "RECONSTRUCTIONS",
    "SUPPORTS",
    "FilteredBackprojection",
    "Frames",
    "IterativeReconstruction",
    "Reconstructor",
    "ReconstructorFactory",
    "StackBackprojection",
    "check_iterative_options",
    "reconstructor_factory",
]

RECONSTRUCTIONS: dict[str, ReconstructorFactory] = {
    "filtered_backprojection": FilteredBackprojection,
    "iterative": IterativeReconstruction,
}


def reconstructor_factory(reconstruction: str | ReconstructorFactory) -> ReconstructorFactory:
    """A reconstructor factory as given, or the one a shorthand of :data:`RECONSTRUCTIONS` names (its defaults)."""
    if callable(reconstruction):
        return reconstruction
    if reconstruction not in RECONSTRUCTIONS:
        raise ValueError(
            f"reconstruction must be one of {tuple(RECONSTRUCTIONS)} or a reconstructor factory "
            f"(a Reconstructor class or a functools.partial of one), got {reconstruction!r}."
        )
    return RECONSTRUCTIONS[reconstruction]
