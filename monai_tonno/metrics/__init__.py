# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Metrics of monai_tonno."""

from monai_tonno.metrics.classification import BalancedAccuracy, BalancedAccuracyMetric, balanced_accuracy
from monai_tonno.metrics.lesion import (
    LesionCounts,
    LesionDetectionMetric,
    MaxIoUMetric,
    VolumeDetectionMetric,
    dice,
    lesion_counts,
    max_iou,
    precision_recall_f1,
)

__all__ = [
    "BalancedAccuracy",
    "BalancedAccuracyMetric",
    "LesionCounts",
    "LesionDetectionMetric",
    "MaxIoUMetric",
    "VolumeDetectionMetric",
    "balanced_accuracy",
    "dice",
    "lesion_counts",
    "max_iou",
    "precision_recall_f1",
]
