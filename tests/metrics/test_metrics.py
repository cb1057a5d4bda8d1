# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest
import torch

from monai_tonno.metrics import (
    LesionCounts,
    LesionDetectionMetric,
    MaxIoUMetric,
    VolumeDetectionMetric,
    dice,
    lesion_counts,
    max_iou,
    precision_recall_f1,
)


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """Two lesions, one found (by a component that spills over), one missed; one false positive component."""
    truth = np.zeros((12, 12, 12), dtype=np.uint8)
    truth[1:4, 1:4, 1:4] = 1  # lesion A: 27 voxels
    truth[8:10, 8:10, 8:10] = 1  # lesion B: 8 voxels
    pred = np.zeros_like(truth)
    pred[2:5, 2:5, 2:5] = 1  # overlaps A on 8 voxels: 27 voxels
    pred[1:3, 9:11, 1:3] = 1  # false positive: 8 voxels
    return pred, truth


def test_counts_and_scores_by_hand():
    pred, truth = hand_made()
    counts = lesion_counts(pred, truth)
    assert counts == LesionCounts(predicted=2, true_positive=1, ground_truth=2, detected=1)
    assert precision_recall_f1(counts) == (0.5, 0.5, 0.5)
    assert dice(pred, truth) == pytest.approx(2 * 8 / (35 + 35))


def test_empty_conventions():
    empty = np.zeros((5, 5, 5))
    lesion = empty.copy()
    lesion[2, 2, 2] = 1
    assert precision_recall_f1(lesion_counts(empty, empty)) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(lesion_counts(empty, lesion)) == (1.0, 0.0, 0.0)
    assert precision_recall_f1(lesion_counts(lesion, empty)) == (0.0, 1.0, 0.0)
    assert dice(empty, empty) == 1.0 and dice(lesion, empty) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        lesion_counts(empty, np.zeros((4, 5, 5)))


def test_max_iou_takes_the_best_component():
    pred, truth = hand_made()
    box = np.zeros_like(truth)
    box[1:4, 1:4, 1:4] = 1
    assert max_iou(pred, box) == pytest.approx(8 / (27 + 27 - 8))
    assert max_iou(np.zeros_like(pred), box) == 0.0


def test_metric_classes_accumulate_over_batches():
    pred, truth = hand_made()
    batch_pred = torch.as_tensor(np.stack([pred, np.zeros_like(pred)]))[:, None]
    batch_truth = torch.as_tensor(np.stack([truth, np.zeros_like(truth)]))[:, None]
    metric = LesionDetectionMetric()
    metric(batch_pred, batch_truth)
    result = metric.aggregate()
    assert result["precision"] == pytest.approx(0.75) and result["f1"] == pytest.approx(0.75)  # (0.5 + 1) / 2
    assert result["dice"] == pytest.approx((16 / 70 + 1) / 2)
    pooled = LesionDetectionMetric("pooled")
    pooled(batch_pred, batch_truth)
    assert pooled.aggregate()["precision"] == pytest.approx(0.5)
    detection = VolumeDetectionMetric()
    detection(batch_pred, batch_truth)
    assert detection.aggregate() == 1.0
    boxes = MaxIoUMetric()
    boxes(batch_pred, batch_truth)
    assert boxes.aggregate() == pytest.approx(max_iou(pred, truth > 0))  # the empty volume is skipped


def test_predicting_nothing_scores_the_share_of_negatives_in_the_means_and_zero_in_pooled_f1_and_lesion_dice():
    """The issue's reading of a table of zeros: F1 0.60 for a method that finds nothing, on 3 negatives of 5."""
    pred, truth = hand_made()
    truths = torch.as_tensor(np.stack([truth, truth, np.zeros_like(truth), np.zeros_like(truth), np.zeros_like(truth)]))
    nothing = torch.zeros_like(truths)
    metric = LesionDetectionMetric()
    metric(nothing[:, None], truths[:, None])
    result = metric.aggregate()
    assert result["f1"] == pytest.approx(0.6) and result["dice"] == pytest.approx(0.6)
    assert result["f1_pooled"] == 0.0 and result["dice_positive"] == 0.0
    found = LesionDetectionMetric()
    found(
        torch.as_tensor(np.stack([pred, np.zeros_like(pred)]))[:, None], torch.as_tensor(np.stack([truth] * 2))[:, None]
    )
    both = found.aggregate()
    assert both["dice_positive"] == pytest.approx(16 / 70 / 2)  # the volume with lesions and no component counts 0
    only_negatives = LesionDetectionMetric()
    only_negatives(nothing[2:, None], truths[2:, None])
    assert np.isnan(only_negatives.aggregate()["dice_positive"])
