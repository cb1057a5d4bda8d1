# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Postprocessing of heatmaps: binarisation, connected components, the detection peak."""

from monai_tonno.transforms.post.array import (
    BINARIZE_STRATEGIES,
    Binarize,
    ConnectedComponents,
    detection_peak,
    otsu_threshold,
)
from monai_tonno.transforms.post.dictionary import Binarized, ConnectedComponentsd

__all__ = [
    "BINARIZE_STRATEGIES",
    "Binarize",
    "Binarized",
    "ConnectedComponents",
    "ConnectedComponentsd",
    "detection_peak",
    "otsu_threshold",
]
