# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Metrics of monai_tonno."""

from monai_tonno.metrics.classification import BalancedAccuracy, BalancedAccuracyMetric, balanced_accuracy

__all__ = ["BalancedAccuracy", "BalancedAccuracyMetric", "balanced_accuracy"]
