# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The slice classifier factory, and the 3D segmenter that learns from ToNNO's masks."""

from monai_tonno.networks.classifier import (
    NORM_TYPES,
    create_slice_classifier,
    describe_mismatch,
    load_pretrained_file,
    replace_batch_norm_with_group_norm,
)
from monai_tonno.networks.dtype import to_network_dtype
from monai_tonno.networks.fold import fold_batch_norm
from monai_tonno.networks.segmenter import (
    SEGMENTERS,
    create_segmenter,
    load_segmenter,
    load_segmenter_config,
    save_segmenter_config,
)
from monai_tonno.networks.slice_sum import SliceSum
from monai_tonno.networks.trained import (
    NETWORK_CONFIG_FILE,
    NetworkConfigRecord,
    load_network_config,
    load_trained_classifier,
    save_network_config,
)

__all__ = [
    "SliceSum",
    "NETWORK_CONFIG_FILE",
    "NORM_TYPES",
    "NetworkConfigRecord",
    "SEGMENTERS",
    "create_segmenter",
    "load_segmenter",
    "load_segmenter_config",
    "save_segmenter_config",
    "create_slice_classifier",
    "describe_mismatch",
    "fold_batch_norm",
    "load_network_config",
    "load_pretrained_file",
    "load_trained_classifier",
    "replace_batch_norm_with_group_norm",
    "save_network_config",
    "to_network_dtype",
]
