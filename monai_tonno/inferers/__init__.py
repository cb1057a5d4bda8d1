# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Inferers of monai_tonno."""

from monai_tonno.inferers.convergence import UntilConverged
from monai_tonno.inferers.slice_cam import SliceCAMInferer
from monai_tonno.inferers.slice_sampling import SliceSamplingInferer
from monai_tonno.inferers.tomographic import TOMOGRAPHIC_MODES, TomographicInferer, tomographic_inference
from monai_tonno.inferers.validation import ValidationInferer, detection_peaks

__all__ = [
    "TOMOGRAPHIC_MODES",
    "SliceCAMInferer",
    "SliceSamplingInferer",
    "TomographicInferer",
    "UntilConverged",
    "ValidationInferer",
    "detection_peaks",
    "tomographic_inference",
]
