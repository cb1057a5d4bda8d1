# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Pieces that MONAI engines and the bundles need to train a slice classifier from volume labels."""

from monai_tonno.engines.checkpoints import check_resumable, latest_checkpoint, resume_handlers
from monai_tonno.engines.evaluation import TABLE_COLUMNS, evaluate_methods, method_heatmaps, write_report
from monai_tonno.engines.losses import SliceBCEWithLogitsLoss, SliceMILLoss
from monai_tonno.engines.outputs import slice_predictions, volume_predictions
from monai_tonno.engines.samplers import DistributedReplacementSampler

__all__ = [
    "TABLE_COLUMNS",
    "DistributedReplacementSampler",
    "SliceBCEWithLogitsLoss",
    "SliceMILLoss",
    "check_resumable",
    "evaluate_methods",
    "method_heatmaps",
    "write_report",
    "latest_checkpoint",
    "resume_handlers",
    "slice_predictions",
    "volume_predictions",
]
