# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Phantoms and dataset readers."""

from monai_tonno.data.ellipsoids import SHEPP_LOGAN_3D, ellipsoid_phantom
from monai_tonno.data.readers import autopet_datalist, mosmed_datalist, require_file, select_items, split_by_patient
from monai_tonno.data.synthetic_petct import (
    SyntheticPETCTConfig,
    autopet_or_synthetic,
    generate_synthetic_autopet,
    synthetic_petct_case,
)

__all__ = [
    "SHEPP_LOGAN_3D",
    "SyntheticPETCTConfig",
    "autopet_datalist",
    "autopet_or_synthetic",
    "ellipsoid_phantom",
    "generate_synthetic_autopet",
    "mosmed_datalist",
    "require_file",
    "select_items",
    "split_by_patient",
    "synthetic_petct_case",
]
