# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""``num_angles="auto"``: per volume, Fibonacci lattices of doubling size until the heatmap settles."""

import logging

import pytest
import torch
from helpers import gaussian_blobs, relative_error
from monai.data import MetaTensor

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.inferers import UntilConverged, tomographic_inference
from monai_tonno.inferers.convergence import angle_schedule
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.reconstruction import FilteredBackprojection

SETTINGS = {"num_slices": 16, "slice_size": 24, "sw_batch_size": 200}
GEOMETRY = VolumeGeometry((20, 20, 20))
SMOOTH = [((0.0, 0.0, 0.0), 0.3, 1.0)]  # one wide blob: few directions resolve it
DETAILED = [((0.3, -0.2, 0.25), 0.12, 1.0), ((-0.3, 0.25, -0.1), 0.1, 0.8), ((0.1, 0.35, -0.3), 0.14, 1.2)]


def volumes() -> MetaTensor:
    stack = torch.stack([gaussian_blobs(GEOMETRY, blobs).float() for blobs in (SMOOTH, DETAILED)])
    return MetaTensor(stack, affine=torch.eye(4))


def first_settled_level(volume: torch.Tensor, schedule: UntilConverged) -> int:
    """The level the rule picks, found from fixed-L runs: the first whose change from the one before is small."""
    heatmaps = {level: TomographicInferer(level, **SETTINGS)(volume, SliceSum()) for level in schedule.levels()}
    for coarse, fine in zip(schedule.levels(), schedule.levels()[1:], strict=False):
        if relative_error(heatmaps[coarse], heatmaps[fine]) <= schedule.tolerance:  # |fine - coarse| / |fine|
            return fine
    return schedule.levels()[-1]


def test_each_volume_stops_at_its_first_settled_level_with_that_levels_heatmap():
    schedule = UntilConverged(start=8, max_angles=256, tolerance=0.35)
    batch = volumes()
    heatmaps = TomographicInferer(schedule, **SETTINGS)(batch, SliceSum())
    expected = [first_settled_level(batch[i : i + 1], schedule) for i in range(2)]
    assert heatmaps.meta["tomographic_num_angles"] == expected
    # the wide blob settles with fewer directions than the small ones, and both before the last level
    assert expected[0] < expected[1] < schedule.levels()[-1]
    assert heatmaps.meta["tomographic_directions_scored"] == [2 * level - 8 for level in expected]
    for i, level in enumerate(expected):
        fixed = TomographicInferer(level, **SETTINGS)(batch[i : i + 1], SliceSum())
        torch.testing.assert_close(heatmaps[i : i + 1].as_tensor(), fixed.as_tensor())


def test_auto_is_the_default_schedule_and_an_unsettled_volume_is_named(caplog):
    assert TomographicInferer("auto", **SETTINGS).num_angles == UntilConverged()
    assert angle_schedule("auto") == UntilConverged() and angle_schedule(12) == 12
    tight = UntilConverged(start=8, max_angles=16, tolerance=1e-6)
    with caplog.at_level(logging.WARNING, logger="monai_tonno"):
        heatmap = TomographicInferer(tight, **SETTINGS)(volumes()[1:], SliceSum())
    assert heatmap.meta["tomographic_num_angles"] == [16]
    assert "did not settle by L = 16" in caplog.text and "raise max_angles" in caplog.text


def test_several_outputs_stop_together_when_all_have_settled():
    schedule = UntilConverged(start=8, max_angles=64, tolerance=0.2)
    volume = volumes()[1:]
    both = tomographic_inference(
        volume,
        lambda s: {"sum": SliceSum()(s), "double": 2 * SliceSum()(s)},
        {"sum": FilteredBackprojection, "double": FilteredBackprojection},
        schedule,
        **SETTINGS,
    )
    alone = TomographicInferer(schedule, **SETTINGS)(volume, SliceSum())
    assert both["sum"].meta["tomographic_num_angles"] == alone.meta["tomographic_num_angles"]
    torch.testing.assert_close(both["double"].as_tensor(), 2 * alone.as_tensor(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UntilConverged(start=0), "start must be"),
        (lambda: UntilConverged(start=64, max_angles=32), "max_angles must be"),
        (lambda: UntilConverged(tolerance=0.0), "tolerance must be a positive"),
        (lambda: UntilConverged(tolerance=float("nan")), "tolerance must be a positive"),
        (lambda: TomographicInferer("many"), "'auto' or UntilConverged"),
        (lambda: TomographicInferer(0), "num_angles"),
        (lambda: tomographic_inference(volumes(), SliceSum(), FilteredBackprojection, "many", 4, 8), "'auto' or"),
    ],
)
def test_bad_schedules_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
