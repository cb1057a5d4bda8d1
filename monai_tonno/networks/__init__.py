# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The slice classifier factory."""

from monai_tonno.networks.classifier import (
    NORM_TYPES,
    create_slice_classifier,
    load_pretrained_file,
    replace_batch_norm_with_group_norm,
)
from monai_tonno.networks.fold import fold_batch_norm

__all__ = [
    "NORM_TYPES",
    "create_slice_classifier",
    "fold_batch_norm",
    "load_pretrained_file",
    "replace_batch_norm_with_group_norm",
]
