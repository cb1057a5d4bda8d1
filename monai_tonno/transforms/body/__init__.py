# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The body from a CT channel, and heatmaps restricted to it."""

from monai_tonno.transforms.body.array import BodyMask, body_mask
from monai_tonno.transforms.body.dictionary import RestrictToBodyd

__all__ = ["BodyMask", "RestrictToBodyd", "body_mask"]
