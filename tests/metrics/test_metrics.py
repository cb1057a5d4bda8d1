# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest
import torch
from scipy import ndimage

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
from monai_tonno.metrics.lesion import STRUCTURE_26, msseg_counts_from_labels


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


def _msseg(pred: np.ndarray, truth: np.ndarray, **rule) -> LesionCounts:
    return msseg_counts_from_labels(ndimage.label(pred, STRUCTURE_26)[0], ndimage.label(truth, STRUCTURE_26)[0], **rule)


def test_the_msseg_rule_finds_no_lesion_with_a_component_that_lies_mostly_outside():
    pred, truth = hand_made()
    # the spilling component covers 8 / 27 of A (over alpha) but lies 19 / 27 = 0.70 outside every lesion (over
    # beta), and A stays 19 / 27 uncovered: neither A is detected nor the component true; the other is a false one
    assert _msseg(pred, truth) == LesionCounts(predicted=2, true_positive=0, ground_truth=2, detected=0)
    assert _msseg(truth, truth) == LesionCounts(predicted=2, true_positive=2, ground_truth=2, detected=2)
    blanket = np.ones_like(truth)  # the overlap rule credits it with both lesions
    assert lesion_counts(blanket, truth) == LesionCounts(predicted=1, true_positive=1, ground_truth=2, detected=2)
    assert _msseg(blanket, truth) == LesionCounts(predicted=1, true_positive=0, ground_truth=2, detected=0)
    loose = _msseg(pred, truth, beta=0.75)  # 0.70 outside is allowed: A detected, the component true
    assert loose == LesionCounts(predicted=2, true_positive=1, ground_truth=2, detected=1)
    assert _msseg(np.zeros_like(truth), truth) == LesionCounts(0, 0, 2, 0)


def test_the_msseg_rule_checks_only_the_components_that_make_up_gamma_of_the_cover():
    truth = np.zeros((20, 20, 30), dtype=bool)
    truth[5:15, 5:15, 5:15] = True  # one lesion of 1000 voxels
    pred = np.zeros_like(truth)
    pred[5:15, 5:15, 5:13] = True  # 800 voxels inside it
    pred[5:7, 5:7, 14:25] = True  # 44 voxels, 4 inside and 40 outside, not touching the first
    assert _msseg(pred, truth).detected == 1  # the first component alone makes up over 70 % of the cover
    assert _msseg(pred, truth, gamma=1.0).detected == 0  # checking every one, the second lies 0.91 outside
    assert _msseg(pred, truth).true_positive == 1  # the second is a false positive under the swapped rule


def test_lesion_metric_reports_the_msseg_f1_from_pooled_counts():
    pred, truth = hand_made()
    metric = LesionDetectionMetric()
    metric(torch.as_tensor(truth)[None, None], torch.as_tensor(truth)[None, None])
    metric(torch.as_tensor(pred)[None, None], torch.as_tensor(truth)[None, None])
    # pooled: 4 predicted, 2 true, 4 lesions, 2 detected under the MSSEG rule
    assert metric.aggregate()["f1_msseg"] == pytest.approx(0.5)
