# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Class activation maps of slice classifiers, and small figures of volumes."""

from monai_tonno.visualize.cam import CAM_METHODS, SliceCAM, average_pooling_cam, cam_layer_names
from monai_tonno.visualize.figures import diverging, grey, labelled_grid, orthogonal_views

__all__ = [
    "CAM_METHODS",
    "SliceCAM",
    "average_pooling_cam",
    "cam_layer_names",
    "diverging",
    "grey",
    "labelled_grid",
    "orthogonal_views",
]
