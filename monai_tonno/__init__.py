# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""monai_tonno: weakly supervised 3D segmentation by tomographic reconstruction of a 2D network's output."""

from monai_tonno._version import __version__
from monai_tonno.inferers import TomographicInferer
from monai_tonno.networks import SliceSum
from monai_tonno.transforms import ObliqueSlice, ObliqueSliced, RandObliqueSlice, RandObliqueSliced

__all__ = [
    "ObliqueSlice",
    "ObliqueSliced",
    "RandObliqueSlice",
    "RandObliqueSliced",
    "SliceSum",
    "TomographicInferer",
    "__version__",
]
