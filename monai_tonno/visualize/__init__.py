# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Class activation maps of slice classifiers."""

from monai_tonno.visualize.cam import CAM_METHODS, SliceCAM, average_pooling_cam, cam_layer_names

__all__ = ["CAM_METHODS", "SliceCAM", "average_pooling_cam", "cam_layer_names"]
