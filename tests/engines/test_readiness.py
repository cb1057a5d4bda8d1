# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Readiness: volume separation metrics, the validation inferer, early stopping and the record in model.pt."""

import json
import logging
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import ROCAUC

from monai_tonno.engines import (
    READINESS_KEY,
    TrainingReadiness,
    read_readiness,
    readiness_note,
    slice_predictions,
    volume_peaks,
    warn_if_unready,
)
from monai_tonno.inferers import SliceSamplingInferer, TomographicInferer, ValidationInferer, detection_peaks
from monai_tonno.metrics import (
    VolumeSeparation,
    VolumeSeparationMetric,
    readiness_score,
    separation_p_value,
    volume_auc,
)
from monai_tonno.networks import SliceSum


def test_volume_auc_counts_ordered_pairs_and_half_the_ties():
    assert volume_auc([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0]) == 1.0
    assert volume_auc([0.0, 1.0, 2.0, 3.0], [1, 1, 0, 0]) == 0.0
    assert volume_auc([3.0, 1.0, 2.0, 0.0], [1, 1, 0, 0]) == 0.75  # 3 of the 4 pairs in order
    assert volume_auc([1.0, 1.0], [1, 0]) == 0.5
    assert volume_auc([-math.inf, 0.2, -math.inf], [0, 1, 1]) == 0.75  # no component: the lowest score, tied
    assert math.isnan(volume_auc([1.0, 2.0], [1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        volume_auc([float("nan"), 1.0], [0, 1])
    with pytest.raises(ValueError, match="one label per score"):
        volume_auc([1.0, 2.0, 3.0], [0, 1])


def test_volume_separation_metric_accumulates_batches():
    scores, labels = [0.9, -math.inf, 0.4, 0.1, 0.8, 0.3], [1, 0, 1, 0, 1, 0]
    metrics = {statistic: VolumeSeparationMetric(statistic) for statistic in ("auc", "p_value")}
    for metric in metrics.values():
        for start in (0, 2, 4):
            metric(torch.tensor(scores[start : start + 2]), torch.tensor(labels[start : start + 2]))
    assert metrics["auc"].aggregate() == pytest.approx(volume_auc(scores, labels)) == 1.0
    assert metrics["p_value"].aggregate() == pytest.approx(separation_p_value(scores, labels)) == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match="statistic"):
        VolumeSeparationMetric("accuracy")


def test_readiness_ranks_ready_models_above_the_others():
    """1 when the separation beats chance at the significance, else half the AUC: 3 + 3 volumes perfectly
    separated are ready at 0.05 (p = 1/20), not at 0.01; 6 of the 9 pairs in order are not ready."""

    def readiness(scores, labels, significance):
        metric = VolumeSeparationMetric("readiness", significance)
        metric(torch.tensor(scores), torch.tensor(labels))
        return metric.aggregate()

    separated = ([6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1, 1, 1, 0, 0, 0])
    assert readiness(*separated, 0.05) == 1.0
    assert readiness(*separated, 0.01) == 0.5  # AUC 1, not ready
    assert readiness([6.0, 2.0, 4.0, 3.0, 5.0, 1.0], [1, 1, 1, 0, 0, 0], 0.05) == pytest.approx(6 / 9 / 2)


def _blob(size: int = 24, amplitude: float = 1.0) -> MetaTensor:
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    centre = torch.tensor([9.0, 13.0, 12.0]).reshape(3, 1, 1, 1)
    blob = amplitude * torch.exp(-((grid - centre) ** 2).sum(0) / (2 * 2.0**2))
    return MetaTensor(blob[None], affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))


def test_detection_peaks_of_the_slice_sum_find_the_blob():
    """SliceSum in place of the network gives the volume back, blurred by the sampling of the profiles: a Gaussian
    blob of amplitude 1 and sigma 4 mm, profiled at M = 16 offsets 3 mm apart, peaks at about 0.65 (0.79 at M = 32,
    0.88 at M = 64), at 16 directions as at 64; an empty volume peaks at exactly 0."""
    inferer = TomographicInferer(num_angles=16, num_slices=16, slice_size=24)
    volumes = torch.stack([_blob(), _blob(amplitude=0.0)])
    peaks = detection_peaks(volumes, SliceSum(), inferer, min_size=4)
    assert 0.55 < peaks[0] < 0.75 and peaks[1] == 0.0
    with pytest.raises(ValueError, match="ToNNO"):
        detection_peaks(volumes, SliceSum(), TomographicInferer(num_angles=4, num_slices=4, mode="averaged_cam"))


class _BlobDetector(torch.nn.Module):
    """A slice 'classifier' whose logit is the slice's sum: a volume with a blob has slices that score."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(1, 2, 3))[:, None]


def test_a_validation_evaluator_ranks_volumes_by_their_detection_peaks():
    """The dictionary output of ValidationInferer goes through MONAI's decollation to the metrics."""
    items = [{"image": _blob(amplitude=float(a)), "label": int(a > 0)} for a in (1.0, 0.0, 0.8, 0.0)]
    loader = DataLoader(Dataset(items), batch_size=2)
    inferer = ValidationInferer(
        SliceSamplingInferer(slices_per_volume=8, slice_size=24),
        TomographicInferer(num_angles=8, num_slices=8, slice_size=24),
        min_size=4,
    )
    evaluator = SupervisedEvaluator(
        torch.device("cpu"),
        loader,
        _BlobDetector(),
        inferer=inferer,
        key_val_metric={"val_volume_auc": VolumeSeparation("auc", output_transform=volume_peaks)},
        additional_metrics={
            "val_volume_separation_p": VolumeSeparation("p_value", output_transform=volume_peaks),
            "val_slice_auc": ROCAUC(output_transform=slice_predictions),
        },
    )
    evaluator.run()
    metrics = evaluator.state.metrics
    assert metrics["val_volume_auc"] == 1.0
    assert metrics["val_volume_separation_p"] == pytest.approx(1 / 6)  # C(4, 2) assignments; only one separates
    assert 0.5 < metrics["val_slice_auc"] <= 1.0
    with pytest.raises(ValueError, match="ValidationInferer"):
        volume_peaks([{"pred": torch.zeros(3), "label": 1}])


def _train(scores_and_p: list[tuple[float, float]], readiness: TrainingReadiness, max_epochs: int | None = None):
    """A trainer whose every epoch ends with a validation reporting the next (score, p-value)."""
    trainer = Engine(lambda engine, batch: None)
    evaluator = Engine(lambda engine, batch: None)
    results = iter(scores_and_p)

    @evaluator.on(Events.EPOCH_COMPLETED)  # attached first: the metrics are set when readiness reads them
    def set_metrics(engine):
        score, p_value = next(results)
        engine.state.metrics = {"val_volume_auc": score, "val_volume_separation_p": p_value}

    readiness.attach(evaluator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: evaluator.run([0]))
    readiness.set_trainer(trainer)
    trainer.run([0], max_epochs=max_epochs or len(scores_and_p))
    return trainer


def test_training_stops_once_ready_and_plateaued(caplog):
    readiness = TrainingReadiness(patience=2)
    with caplog.at_level(logging.INFO, logger="monai_tonno.engines.readiness"):
        trainer = _train([(0.5, 0.6), (0.9, 0.01), (0.9, 0.01), (0.9, 0.02), (1.0, 0.001), (1.0, 0.001)], readiness)
    assert trainer.state.iteration == 4 and readiness.stopped_at == 4
    assert readiness.best["iteration"] == 4  # the latest ready model, as the saver of model.pt keeps
    assert [entry["ready"] for entry in readiness.history] == [False, True, True, True]
    assert "ready for ToNNO" in caplog.text and "stopped at iteration 4 of 6" in caplog.text


def test_better_than_chance_is_not_ready_below_min_auc():
    """AUC 0.79 at p = 0.02 separates 20 studies better than chance, yet its masks scored a lesion F1 of 0.35."""
    readiness = TrainingReadiness(patience=1, min_auc=0.9)
    _train([(0.79, 0.02), (0.79, 0.02), (0.85, 0.01)], readiness)
    assert [entry["ready"] for entry in readiness.history] == [False, False, False] and readiness.stopped_at is None
    assert readiness.best["iteration"] == 3  # before any is ready: the best AUC
    with pytest.raises(ValueError, match="min_auc"):
        TrainingReadiness(min_auc=0.3)
    metric = VolumeSeparationMetric("readiness", 0.05, min_auc=0.9)
    metric(torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0, 1.0] * 3), torch.tensor([1, 1, 0, 1, 0, 0] * 3))
    assert metric.aggregate() < 0.5  # p = 0.008 for 18 volumes, but the AUC is 0.89


def test_one_lucky_validation_is_not_a_plateau():
    """Ready, then not, then ready again: no stop until patience + 1 validations in a row are ready."""
    readiness = TrainingReadiness(patience=2)
    trainer = _train([(0.96, 0.04), (0.84, 0.18), (0.9, 0.04), (0.9, 0.04), (0.92, 0.03), (0.9, 0.04)], readiness)
    assert readiness.stopped_at == 5 and trainer.state.iteration == 5
    assert readiness.best["iteration"] == 5 and readiness.best["ready"]


def test_training_goes_on_to_its_budget_while_not_ready(caplog):
    readiness = TrainingReadiness(patience=1)
    with caplog.at_level(logging.INFO, logger="monai_tonno.engines.readiness"):
        trainer = _train([(0.6, 0.3), (0.6, 0.3), (0.55, 0.5), (0.6, 0.3)], readiness)
    assert trainer.state.iteration == 4 and readiness.stopped_at is None
    assert "NOT READY" in caplog.text and "best val_volume_auc 0.600 at iteration 4" in caplog.text


def test_an_early_stopped_training_stays_stopped_when_resumed():
    readiness = TrainingReadiness(patience=1)
    _train([(1.0, 0.01), (1.0, 0.01), (1.0, 0.01)], readiness)
    assert readiness.stopped_at == 2
    resumed = TrainingReadiness(patience=1)
    resumed.load_state_dict(readiness.state_dict())
    assert resumed.history == readiness.history and resumed.best == readiness.best
    trainer = _train([(1.0, 0.01)], resumed, max_epochs=3)
    assert trainer.state.iteration == 0 and resumed.history == readiness.history


def test_the_early_stop_ranks_validations_as_the_key_metric_does():
    """The handler's choice of model.pt and the saver's key metric come from one rule (``readiness_score``)."""
    scores, labels = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1, 1, 1, 0, 0, 0]
    metrics = {}
    for statistic in ("auc", "p_value", "readiness"):
        metric = VolumeSeparationMetric(statistic, 0.05, 0.9)
        metric(torch.tensor(scores), torch.tensor(labels))
        metrics[statistic] = metric.aggregate()
    readiness = TrainingReadiness(significance=0.05, min_auc=0.9)
    _train([(metrics["auc"], metrics["p_value"])], readiness)
    assert readiness.history[0]["rank"] == metrics["readiness"] == readiness_score(1.0, 1 / 20) == 1.0


def test_a_checkpoint_without_ranks_resumes():
    """A readiness state saved before the ranks were saved gets them from the same rule on loading."""
    readiness = TrainingReadiness(patience=3)
    _train([(0.8, 0.1), (0.95, 0.01)], readiness)
    state = json.loads(readiness.state_dict()["json"])
    for entry in [*state["history"], state["best"]]:
        del entry["rank"]
    resumed = TrainingReadiness(patience=3)
    resumed.load_state_dict({"json": json.dumps(state)})
    assert resumed.history == readiness.history and resumed.best == readiness.best


def test_bad_readiness_settings_are_named():
    with pytest.raises(ValueError, match="significance"):
        TrainingReadiness(significance=0.0)
    with pytest.raises(ValueError, match="patience"):
        TrainingReadiness(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        TrainingReadiness(min_delta=-0.1)
    evaluator = Engine(lambda engine, batch: None)
    evaluator.state.metrics = {"val_slice_auc": 0.7}
    with pytest.raises(KeyError, match="val_volume_auc"):
        TrainingReadiness()._validated(evaluator)


def test_the_best_model_records_its_readiness_and_inference_warns(tmp_path, caplog):
    readiness = TrainingReadiness()
    _train([(0.7, 0.2)], readiness)
    model_file = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.zeros(1)}, READINESS_KEY: readiness.record.state_dict()}, model_file)
    record = read_readiness(model_file)
    assert record["ready"] is False and record["score"] == 0.7 and record["measure"] == "val_volume_auc"
    with caplog.at_level(logging.WARNING, logger="monai_tonno.engines.readiness"):
        warn_if_unready(model_file)
    assert "NOT READY" in caplog.text and "iteration 1" in caplog.text
    caplog.clear()
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "old.pt")
    with caplog.at_level(logging.WARNING, logger="monai_tonno.engines.readiness"):
        assert warn_if_unready(tmp_path / "old.pt") is None
    assert "records no readiness" in caplog.text
    assert np.isfinite(record["p_value"])
    note = readiness_note(model_file)
    assert note.startswith("Model model.pt: NOT READY (val_volume_auc 0.700 on the validation studies at iteration 1")
    assert readiness_note(tmp_path / "old.pt") == (
        "Model old.pt: no readiness recorded (a model from an older or another training)."
    )
    ready = TrainingReadiness()
    _train([(0.95, 0.01)], ready)
    torch.save({"model": {}, READINESS_KEY: ready.record.state_dict()}, tmp_path / "ready.pt")
    assert readiness_note(tmp_path / "ready.pt") == (
        "Model ready.pt: ready (val_volume_auc 0.950 on the validation studies at iteration 1, chance p = 0.01)."
    )
