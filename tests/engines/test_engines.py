# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import json

import numpy as np
import pytest
import torch

from monai_tonno.engines import (
    DistributedReplacementSampler,
    SliceBCEWithLogitsLoss,
    class_balanced_weights,
    ema_handler,
    slice_predictions,
    volume_predictions,
)
from monai_tonno.inferers import SliceSamplingInferer
from monai_tonno.metrics import BalancedAccuracyMetric, balanced_accuracy


def test_slice_loss_takes_integer_volume_labels():
    logits = torch.tensor([[2.0], [-1.0]])
    loss = SliceBCEWithLogitsLoss()(logits, torch.tensor([1, 0]))
    torch.testing.assert_close(
        loss, torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0], [0.0]]))
    )
    with pytest.raises(ValueError, match="one label per slice"):
        SliceBCEWithLogitsLoss()(logits, torch.tensor([1, 0, 1]))


def test_balanced_accuracy_by_hand():
    assert balanced_accuracy(torch.tensor([1, 1, 0, 0, 1]), torch.tensor([1, 0, 0, 0, 1])) == pytest.approx(
        (1 + 2 / 3) / 2
    )
    metric = BalancedAccuracyMetric()
    metric(
        *volume_predictions(
            [{"pred": torch.tensor([3.0, 3.0]), "label": 1}, {"pred": torch.tensor([-3.0, 1.0]), "label": 0}]
        )
    )
    assert metric.aggregate() == 1.0


def test_slice_predictions_repeat_the_volume_label():
    preds, labels = slice_predictions(
        [{"pred": torch.tensor([0.1, 0.2]), "label": torch.tensor(1)}, {"pred": torch.tensor([0.3]), "label": 0}]
    )
    torch.testing.assert_close(labels, torch.tensor([1.0, 1.0, 0.0]))
    assert preds.shape == (3,)


def test_slice_sampling_inferer_is_repeatable():
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(1))
    inferer = SliceSamplingInferer(slices_per_volume=5, slice_size=8, seed=3, sw_batch_size=2)
    volumes = torch.rand(2, 1, 6, 6, 6)
    first = inferer(volumes, network)
    assert first.shape == (2, 5)
    torch.testing.assert_close(inferer(volumes, network), first)


def test_slice_sampling_num_slices_is_deprecated_for_slices_per_volume():
    """``num_slices`` is M per direction in TomographicInferer; here the old name still works, with a warning."""
    with pytest.warns(FutureWarning, match="slices_per_volume"):
        old = SliceSamplingInferer(num_slices=5, slice_size=8)
    assert old.slices_per_volume == 5


def test_distributed_sampler_splits_the_draws_over_ranks():
    dataset = list(range(10))
    ranks = [DistributedReplacementSampler(dataset, 12, num_replicas=3, rank=r, seed=1) for r in range(3)]
    draws = [list(sampler) for sampler in ranks]
    assert all(len(d) == 4 for d in draws) and draws[0] != draws[1]
    assert list(ranks[0]) == draws[0]
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != draws[0]


def test_balanced_weights_draw_both_labels_equally_often():
    items = [{"label": 1}] + [{"label": 0}] * 3
    weights = class_balanced_weights(items)
    torch.testing.assert_close(weights, torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3], dtype=torch.double))
    draws = list(DistributedReplacementSampler(items, 4000, num_replicas=1, rank=0, weights=weights))
    # one positive in four: uniform draws give 25 % positives; balanced ones 50 % (binomial sd 0.8 %)
    assert abs(draws.count(0) / len(draws) - 0.5) < 0.04
    with pytest.raises(ValueError, match="at least two label values; every item has label=0"):
        class_balanced_weights([{"label": 0}] * 3)
    with pytest.raises(ValueError, match=r"items \[1\] have no 'label'"):
        class_balanced_weights([{"label": 0}, {"image": "x"}])
    with pytest.raises(ValueError, match="weights must be 4 non-negative numbers"):
        DistributedReplacementSampler(items, 8, num_replicas=1, rank=0, weights=[1.0, -1.0, 1.0, 1.0])


def test_ema_handler_is_off_at_zero_and_checks_its_momentum():
    network = torch.nn.Linear(2, 1)
    assert ema_handler(network, 0.0) is None
    assert ema_handler(network, 0.01).momentum == 0.01
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(ValueError, match=f"ema_momentum must be a number in \\[0, 1\\).*got {bad!r}"):
            ema_handler(network, bad)


def test_resume_takes_the_checkpoint_furthest_into_training(tmp_path):
    """By the trainer iteration inside: copies without -p (newer file times) and file prefixes change nothing."""
    import os

    from monai_tonno.engines import latest_checkpoint

    for name, iteration, mtime in (
        ("run1_checkpoint_epoch=3.pt", 300, 1_000),
        ("checkpoint_epoch=1.pt", 100, 3_000),  # copied last: the newest file time
        ("checkpoint_final.pt", 200, 2_000),
    ):
        torch.save({"trainer": {"iteration": iteration, "epoch_length": 100, "max_epochs": 3}}, tmp_path / name)
        os.utime(tmp_path / name, (mtime, mtime))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "model.pt")  # no trainer: not a training checkpoint
    os.utime(tmp_path / "model.pt", (9_000, 9_000))
    assert latest_checkpoint(tmp_path).name == "run1_checkpoint_epoch=3.pt"
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_mil_loss_pools_positives_and_pushes_every_negative_slice_down():
    from monai_tonno.engines import SliceMILLoss

    logits = torch.tensor([3.0, -1.0, -2.0, 0.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    loss = SliceMILLoss(slices_per_volume=4, top_fraction=0.5)(logits[:, None], labels)
    softplus = torch.nn.functional.softplus
    positive = softplus(-torch.tensor((3.0 + 0.0) / 2))  # BCE of the mean of the two highest logits, label 1
    negative = softplus(torch.tensor([-1.0, 0.0, 1.0, 2.0])).mean()  # BCE of every slice, label 0
    torch.testing.assert_close(loss, (positive + negative) / 2)
    loss.backward()
    # a positive volume's slices outside its top half (normal anatomy, most likely) are not pushed either way
    assert logits.grad[1] == 0 and logits.grad[2] == 0 and logits.grad[0] < 0 and logits.grad[3] < 0
    assert bool((logits.grad[4:] > 0).all())
    with pytest.raises(ValueError, match="share its label"):
        SliceMILLoss(4)(logits[:, None], torch.tensor([1, 1, 0, 0, 0, 0, 1, 1]))
    with pytest.raises(ValueError, match="whole volumes of 3"):
        SliceMILLoss(3)(logits[:, None], labels)


def test_volume_call_pooled_over_the_top_slices():
    """MIL's volume score: one slice of four clearly positive calls the volume positive; the mean would not."""
    logits = torch.tensor([[4.0, -3.0, -3.0, -3.0], [-3.0, -3.0, -3.0, -3.0]])
    for reduction, expected in (("top", 1.0), ("mean", 0.5)):
        metric = BalancedAccuracyMetric(reduction=reduction, top_fraction=0.25)
        metric(logits, torch.tensor([1, 0]))
        assert metric.aggregate() == expected
    with pytest.raises(ValueError, match="reduction"):
        BalancedAccuracyMetric(reduction="median")


def test_max_iou_replaces_dice_when_the_truths_are_boxes(tmp_path):
    """Duke's protocol: a predicted component half as deep as the truth's box scores MaxIoU 0.5."""
    from monai_tonno.engines import MethodHeatmaps, score_methods, write_report
    from monai_tonno.engines.evaluation import FAMILIES

    box, heatmap = np.zeros((16, 16, 16), np.float32), np.full((16, 16, 16), 0.5, np.float32)
    box[4:10, 4:10, 4:10] = 1
    heatmap[4:10, 4:10, 4:7] = 2.0  # the component's box: 6 x 6 x 3 inside the 6 x 6 x 6 truth
    negative = np.zeros_like(box)
    masks = [box, box, negative, negative]  # even volumes fit the threshold, odd ones are scored
    maps = [heatmap, heatmap, negative + 0.5, negative + 0.5]
    collected = MethodHeatmaps(
        {(family, ""): maps for family in FAMILIES}, masks, [m[None] for m in maps], list("abcd")
    )
    rows = score_methods(collected, "f1", min_size=8, overlap="max_iou")
    tonno = next(row for row in rows if row["family"] == "ToNNO")
    assert tonno["max_iou"] == pytest.approx(0.5) and "dice" not in tonno
    assert tonno["f1"] == 1.0 and tonno["balanced_accuracy"] == 1.0
    table = write_report(rows, tmp_path, overlap="max_iou")
    assert "| MaxIoU |" in table and "Dice" not in table and "| F1 pooled |" in table
    assert "MaxIoU is the mean over the volumes with a box" in table
    dice_rows = score_methods(MethodHeatmaps(collected.heatmaps, masks, collected.images, collected.names), "f1", 8)
    dice_table = write_report(dice_rows, tmp_path / "dice")
    assert (
        "| F1 pooled | F1 MSSEG | Dice | Dice (lesion volumes) |" in dice_table
        and "predicting nothing scores 0" in dice_table
    )
    with pytest.raises(ValueError, match="overlap must be one of"):
        score_methods(collected, overlap="iou")


class _ChannelZero:
    """Stands in for the tomographic inferer: the heatmap is the image's first channel."""

    num_angles, num_slices = 1, 1

    def __call__(self, image: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        return image[:, :1]


def test_calibration_writes_a_separating_threshold_or_removes_a_stale_one(tmp_path, caplog):
    from monai_tonno.engines import calibrate_detection_threshold

    def item(level: float, label: int) -> dict:
        image = torch.zeros(1, 10, 10, 10)
        image[0, 2:5, 2:5, 2:5] = level
        return {"image": image, "label": label}

    network, output = torch.nn.Identity(), tmp_path / "threshold.json"
    items = [item(level, 1) for level in (3.0, 2.5, 2.2, 2.0)] + [item(level, 0) for level in (0.5, 0.3, 0.1, 0.0)]
    threshold = calibrate_detection_threshold(items, network, _ChannelZero(), output, min_size=8, progress=False)
    assert 0.5 < threshold < 2.0 and output.is_file()  # between the brightest negative and the faintest positive
    assert json.loads(output.read_text())["p_value"] == pytest.approx(1 / 70)  # one assignment of 4 in 8
    # a model that cannot tell them apart: no threshold, and the earlier one is not left for inference to use
    same = [item(1.0, 1), item(1.0, 0)]
    assert calibrate_detection_threshold(same, network, _ChannelZero(), output, min_size=8, progress=False) is None
    assert not output.exists() and "train longer" in caplog.text
    assert calibrate_detection_threshold(items[:2], network, _ChannelZero(), output, progress=False) is None
    assert "labels [1]" in caplog.text
    # perfectly separated, but two volumes of each label are separated so by chance once in six: not enough
    few = [items[0], items[1], items[4], items[5]]
    assert calibrate_detection_threshold(few, network, _ChannelZero(), output, min_size=8, progress=False) is None
    assert "which chance reaches with probability 0.17" in caplog.text


def test_a_calibration_no_better_than_chance_writes_no_threshold(tmp_path, caplog):
    """The issue's case: a model at chance, 16 calibration volumes, the best threshold's balanced accuracy above
    0.5 by luck. The permutation test accounts for the threshold being the best of 16 cuts."""
    from monai_tonno.engines import calibrate_detection_threshold

    labels = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0]  # by falling peak: no order a classifier learnt
    items = []
    for index, label in enumerate(labels):
        image = torch.zeros(1, 10, 10, 10)
        image[0, 2:5, 2:5, 2:5] = 2.0 - 0.05 * index
        items.append({"image": image, "label": label})
    peaks_accuracy = calibrate_detection_threshold(
        items, torch.nn.Identity(), _ChannelZero(), tmp_path / "t.json", min_size=8, progress=False
    )
    assert peaks_accuracy is None and not (tmp_path / "t.json").exists()
    assert "balanced accuracy of 0.62, which chance reaches with probability 0.62" in caplog.text
    # the old rule (balanced accuracy above 0.5) would have written a threshold at 0.62


def test_the_masks_inference_writes_are_scored_without_a_threshold_fitted_on_the_evaluation(tmp_path):
    from monai_tonno.engines import MethodHeatmaps, score_methods
    from monai_tonno.engines.evaluation import CALIBRATED_TONNO, add_inference_masks
    from monai_tonno.transforms import save_threshold

    truth = np.zeros((16, 16, 16), np.float32)
    truth[2:7, 2:7, 2:7] = 1
    heatmap = np.full_like(truth, 0.1)  # Otsu's threshold falls between the background and the blobs
    heatmap[2:7, 2:7, 2:7] = 1.0
    heatmap[3:5, 3:5, 3:5] = 3.0  # the lesion's component reaches the detection threshold on 8 voxels
    heatmap[10:14, 10:14, 10:14] = 1.0  # a blob as bright as the lesion, without a peak over it
    maps, masks = [heatmap] * 4, [truth] * 4
    collected = MethodHeatmaps({("ToNNO", ""): list(maps)}, masks, [m[None] for m in maps], list("abcd"))
    model = tmp_path / "model.pt"
    model.write_bytes(b"a model")
    assert add_inference_masks(collected, tmp_path / "threshold.json", model) == {}  # not calibrated: no row
    save_threshold(tmp_path / "threshold.json", 2.5, "balanced_accuracy", 1.0, model_file=model)
    fixed = add_inference_masks(collected, tmp_path / "threshold.json", model)
    assert fixed == {CALIBRATED_TONNO: 0.5}
    np.testing.assert_array_equal(collected.heatmaps[CALIBRATED_TONNO, ""][0], truth)
    rows = {row["family"]: row for row in score_methods(collected, "f1", 8, "dice", fixed)}
    assert rows[CALIBRATED_TONNO]["threshold"] == 0.5 and np.isnan(rows[CALIBRATED_TONNO]["fit_f1"])
    assert rows[CALIBRATED_TONNO]["f1"] == 1.0 and rows[CALIBRATED_TONNO]["dice"] == 1.0
    # the threshold fitted for F1 keeps the peak alone (it must cut the blob off): 8 of the lesion's 125 voxels
    assert rows["ToNNO"]["f1"] == 1.0 and rows["ToNNO"]["dice"] == pytest.approx(2 * 8 / (8 + 125))
