# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""MONAI transforms of monai_tonno."""

from monai_tonno.transforms.array import ObliqueSlice, RandObliqueSlice
from monai_tonno.transforms.dictionary import Binarized, ConnectedComponentsd, ObliqueSliced, RandObliqueSliced
from monai_tonno.transforms.postprocess import BINARIZE_STRATEGIES, Binarize, ConnectedComponents, otsu_threshold

__all__ = [
    "BINARIZE_STRATEGIES",
    "Binarize",
    "Binarized",
    "ConnectedComponents",
    "ConnectedComponentsd",
    "ObliqueSlice",
    "ObliqueSliced",
    "RandObliqueSlice",
    "RandObliqueSliced",
    "otsu_threshold",
]
