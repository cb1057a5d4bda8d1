# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Random and fixed oblique slices of a volume, for training and inference."""

from monai_tonno.transforms.slicing.array import ObliqueSlice, RandObliqueSlice
from monai_tonno.transforms.slicing.dictionary import ObliqueSliced, RandObliqueSliced

__all__ = ["ObliqueSlice", "ObliqueSliced", "RandObliqueSlice", "RandObliqueSliced"]
