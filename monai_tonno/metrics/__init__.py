# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Metrics of monai_tonno."""

from monai_tonno.metrics.classification import (
    BalancedAccuracy,
    BalancedAccuracyMetric,
    VolumeSeparation,
    VolumeSeparationMetric,
    balanced_accuracy,
    readiness_score,
    separation_p_value,
    volume_auc,
)
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
    "VolumeSeparation",
    "VolumeSeparationMetric",
    "balanced_accuracy",
    "dice",
    "lesion_counts",
    "max_iou",
    "precision_recall_f1",
    "readiness_score",
    "separation_p_value",
    "volume_auc",
]
