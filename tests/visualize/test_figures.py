# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest

from monai_tonno.visualize.methods_figure import MASK_COLOUR, TRUTH_COLOUR, largest_lesion_centre, methods_figure


def test_views_pass_through_the_largest_lesion_and_outline_truth_and_masks(tmp_path):
    truth = np.zeros((10, 12, 14), dtype=np.uint8)
    truth[1:3, 1:3, 1:3] = 1  # small lesion
    truth[5:9, 6:10, 7:11] = 1  # largest lesion, centre (6.5, 7.5, 8.5)
    assert largest_lesion_centre(truth) == [6, 8, 8]  # round(6.5), round(7.5), round(8.5)
    heatmap = np.where(truth > 0, 1.0, -0.2).astype(np.float32)
    mask = np.zeros_like(truth)
    mask[5:9, 6:10, 7:11] = 1
    figure = methods_figure(np.stack([heatmap, heatmap]), truth, {"ToNNO": (heatmap, mask)}, tmp_path / "a.png")
    assert (tmp_path / "a.png").is_file()
    pixels = np.asarray(figure).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert TRUTH_COLOUR in colours  # the truth outline is drawn (on top of the mask's, which coincides here)
    # three rows (two channels, one method), each three views wide: 3 * (12 + 10 + 10) zoomed pixels, 2 gaps
    assert figure.width == 3 * (12 + 10 + 10) + 2 * 6 and figure.height == 3 * (16 + 3 * 14)
    views_of_method = np.asarray(figure)[-3 * 14 :]  # the last row's views, below its black title
    assert not (views_of_method == MASK_COLOUR).all(-1).any()  # the mask coincides with the truth: green wins
    shifted = np.roll(mask, 2, axis=1)  # a mask beside the truth shows its own black outline
    beside = np.asarray(methods_figure(heatmap[None], truth, {"m": (heatmap, shifted)}))[-3 * 14 :]
    assert (beside == MASK_COLOUR).all(-1).any() and (beside == TRUTH_COLOUR).all(-1).any()
    with pytest.raises(ValueError, match="differ"):
        methods_figure(heatmap[None], truth, {"m": (heatmap[:-1], mask)})
