# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Phantoms and dataset readers."""

from monai_tonno.data.ellipsoids import SHEPP_LOGAN_3D, ellipsoid_phantom

__all__ = ["SHEPP_LOGAN_3D", "ellipsoid_phantom"]
