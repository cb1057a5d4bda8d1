# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""MONAI transforms of monai_tonno."""

from monai_tonno.transforms.array import ObliqueSlice, RandObliqueSlice
from monai_tonno.transforms.dictionary import ObliqueSliced, RandObliqueSliced

__all__ = ["ObliqueSlice", "ObliqueSliced", "RandObliqueSlice", "RandObliqueSliced"]
