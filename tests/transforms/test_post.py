# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_tonno.transforms import Binarize, Binarized, ConnectedComponents, ConnectedComponentsd, otsu_threshold


def test_otsu_separates_two_populations():
    values = torch.cat([torch.full((500,), 1.0), torch.full((300,), 5.0)]) + 0.1 * torch.randn(800)
    assert 1.5 < otsu_threshold(values) < 4.5


def test_binarize_strategies_and_polarity():
    heatmap = MetaTensor(
        torch.linspace(-1, 1, 1000).reshape(1, 10, 10, 10), affine=torch.diag(torch.tensor([2.0, 2, 2, 1]))
    )
    fixed = Binarize("fixed", 0.5)(heatmap)
    assert isinstance(fixed, MetaTensor) and fixed.dtype == torch.uint8
    assert int(fixed.sum()) == int((heatmap > 0.5).sum())
    torch.testing.assert_close(fixed.affine, heatmap.affine)
    assert int(Binarize("quantile", 0.9, min_threshold=None)(heatmap).sum()) == 100
    assert int(Binarize("fixed", 0.5, polarity="negative")(heatmap).sum()) == int((heatmap < -0.5).sum())
    # a heatmap without any positive voxel stays empty whatever the strategy
    assert int(Binarize("otsu")(-heatmap.abs()).sum()) == 0
    assert int(Binarize("quantile", 0.5)(-heatmap.abs()).sum()) == 0
    with pytest.raises(ValueError, match="strategy"):
        Binarize("mean")
    with pytest.raises(ValueError, match="quantile"):
        Binarize("quantile", 2.0)


def test_connected_components_26_connectivity_and_min_size():
    mask = np.zeros((1, 8, 8, 8), dtype=np.uint8)
    mask[0, 1, 1, 1] = mask[0, 2, 2, 2] = 1  # touch by a corner: one component at 26-connectivity
    mask[0, 5:8, 5:8, 5:8] = 1  # 27 voxels
    labels = ConnectedComponents(26)(torch.as_tensor(mask))
    assert sorted(torch.unique(labels).tolist()) == [0, 1, 2]
    assert len(torch.unique(ConnectedComponents(6)(torch.as_tensor(mask)))) == 4
    kept = ConnectedComponents(26, min_size=3)(torch.as_tensor(mask))
    assert sorted(torch.unique(kept).tolist()) == [0, 1] and int((kept > 0).sum()) == 27
    in_mm3 = MetaTensor(torch.as_tensor(mask), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    assert int((ConnectedComponents(min_size=16, min_size_unit="mm3")(in_mm3) > 0).sum()) == 29  # 2 voxels = 16 mm3


def test_dictionary_versions_write_the_mask_beside_the_heatmap():
    heatmap = torch.zeros(1, 6, 6, 6)
    heatmap[0, 1:3, 1:3, 1:3] = 2.0
    heatmap[0, 4, 4, 4] = 1.0
    data = Binarized(keys="pred", output_keys="mask", strategy="fixed", value=0.5)({"pred": heatmap})
    data = ConnectedComponentsd(keys="mask", min_size=2)(data)
    assert int((data["mask"] > 0).sum()) == 8 and torch.equal(data["pred"], heatmap)


def blob_heatmaps(count: int = 3, seed: int = 0):
    """Heatmaps that are smooth bumps around ball lesions, plus noise, and the lesion masks."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1)
    heatmaps, masks = [], []
    for _ in range(count):
        centre = rng.integers(4, 12, size=3)
        distance = np.linalg.norm(grid - centre, axis=-1)
        masks.append((distance <= 3).astype(np.uint8))
        heatmaps.append(np.exp(-(distance**2) / 18) + 0.05 * rng.standard_normal(distance.shape))
    return heatmaps, masks


def test_fitted_threshold_maximises_the_score_and_is_reused(tmp_path):
    from monai_tonno.engines import fit_threshold
    from monai_tonno.metrics import dice
    from monai_tonno.transforms import save_threshold

    heatmaps, masks = blob_heatmaps()
    threshold, best = fit_threshold(heatmaps, masks, score="dice")
    brute_force = max(
        np.mean([dice(h > other, m) for h, m in zip(heatmaps, masks, strict=True)])
        for other in np.linspace(0.05, 0.95, 361)
    )
    assert best >= brute_force - 0.01  # a search over 2 x 64 candidates, against 361 thresholds tried one by one
    assert best > 0.8
    path = save_threshold(tmp_path / "models" / "threshold.json", threshold, "dice", best)
    binarize = Binarized(keys="pred", output_keys="mask", strategy="fitted", threshold_file=str(path))
    out = binarize({"pred": torch.as_tensor(heatmaps[0])[None]})["mask"]
    assert torch.equal(out[0], torch.as_tensor(heatmaps[0] > threshold).to(torch.uint8))
    with pytest.raises(FileNotFoundError, match="fit one on validation volumes"):
        Binarize("fitted", threshold_file=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="threshold_file"):
        Binarize("fitted")


def test_a_batch_is_thresholded_one_volume_at_a_time():
    """A quiet volume beside a loud one keeps its own threshold, and ConnectedComponents takes the batch."""
    quiet = torch.full((1, 12, 12, 12), 0.01)
    quiet[0, 2:5, 2:5, 2:5] = 0.1
    loud = torch.zeros(1, 12, 12, 12)
    loud[0, 6:10, 6:10, 6:10] = 100.0
    loud[0, 0:2, 0:2, 0:2] = 5.0
    batch = torch.stack([quiet, loud])
    for strategy, value in (("otsu", 0.0), ("quantile", 0.97)):
        masks = Binarize(strategy, value)(batch)
        assert masks.shape == batch.shape
        for mask, single in zip(masks, batch, strict=True):
            torch.testing.assert_close(mask, Binarize(strategy, value)(single))
        assert int(masks[0].sum()) == 27  # the quiet lesion survives: a threshold pooled over both would drop it
    labels = ConnectedComponents(26, min_size=2)(Binarize("otsu")(batch))
    assert labels.shape == batch.shape
    assert [int(labels[i].max()) for i in range(2)] == [1, 1]  # the loud volume's 8-voxel blob is below Otsu


def test_quantile_threshold_is_exact_above_a_million_voxels():
    heatmap = torch.rand(1, 128, 128, 96, generator=torch.Generator().manual_seed(0))  # 1.57 million voxels
    threshold = Binarize("quantile", 0.999, min_threshold=None).threshold(heatmap)
    assert threshold == pytest.approx(float(np.quantile(heatmap.double().numpy(), 0.999)), abs=0)


def test_connected_components_in_mm3_read_each_volume_affine():
    mask = torch.zeros(2, 1, 8, 8, 8)
    mask[:, 0, 1:3, 1:3, 1:3] = 1  # 8 voxels in each volume
    affines = torch.stack([torch.diag(torch.tensor([1.0, 1, 1, 1])), torch.diag(torch.tensor([2.0, 2, 2, 1]))])
    batch = MetaTensor(mask, affine=affines)
    batch.is_batch = True
    kept = ConnectedComponents(min_size=20, min_size_unit="mm3", relabel=False)(batch)
    assert int(kept[0].sum()) == 0 and int(kept[1].sum()) == 8  # 8 mm^3 against 64 mm^3


def test_body_mask_keeps_lungs_and_drops_air_outside():
    from monai_tonno.transforms import RestrictToBodyd, body_mask

    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 24)] * 3, indexing="ij"))
    ct = np.where((grid**2 / np.array([0.7, 0.5, 0.9])[:, None, None, None] ** 2).sum(0) <= 1, 1.03, 0.0)
    lung = ((grid - np.array([0.25, 0, 0.2])[:, None, None, None]) ** 2).sum(0) <= 0.2**2
    ct[lung] = 0.2  # -800 HU after (HU + 1000) / 1000
    ct[(np.abs(grid[0] - 0.25) < 0.06) & (np.abs(grid[1]) < 0.06) & (grid[2] > 0.2)] = 0.0  # a trachea to the air
    image = np.stack([np.ones_like(ct), ct])  # PET, CT
    body = body_mask(image, channel=1, margin=0)
    assert body[lung].all() and not body[0, 0, 0] and body.sum() < body.size
    data = {"image": MetaTensor(torch.as_tensor(image)), "pred": MetaTensor(torch.ones(1, 24, 24, 24))}
    restricted = RestrictToBodyd("pred", margin=0)(data)["pred"]
    assert isinstance(restricted, MetaTensor)
    torch.testing.assert_close(restricted[0], torch.as_tensor(body, dtype=torch.float32))
    with pytest.raises(ValueError, match="before Invertd"):
        RestrictToBodyd("pred")({"image": data["image"], "pred": torch.ones(1, 20, 24, 24)})


def test_threshold_search_scores_as_the_metrics_do():
    """The search labels the truth once; its score equals ConnectedComponents + the lesion metrics."""
    from scipy import ndimage

    from monai_tonno.engines.threshold_fitting import _score
    from monai_tonno.metrics import dice, lesion_counts, precision_recall_f1
    from monai_tonno.metrics.lesion import STRUCTURE_26

    generator = np.random.default_rng(0)
    heatmap = ndimage.gaussian_filter(generator.normal(size=(20, 20, 20)), 1.5)
    truth = ndimage.gaussian_filter(generator.normal(size=(20, 20, 20)), 1.5) > 0.1
    labelled = ndimage.label(truth, structure=STRUCTURE_26)
    for threshold in (0.05, 0.1, 0.2):
        for min_size in (0, 8):
            mask = ConnectedComponents(26, min_size=min_size, relabel=False)(torch.as_tensor(heatmap > threshold)[None])
            mask = mask.numpy()[0]
            components = ConnectedComponents(26, min_size=min_size)
            assert _score(heatmap, labelled, threshold, "dice", components) == pytest.approx(dice(mask, truth))
            f1 = precision_recall_f1(lesion_counts(mask, truth))[2]
            assert _score(heatmap, labelled, threshold, "f1", components) == pytest.approx(f1)


def test_detection_peak_is_where_the_last_large_component_vanishes():
    from monai_tonno.transforms import detection_peak

    heatmap = np.zeros((12, 12, 12), dtype=np.float32)
    heatmap[1:4, 1:4, 1:4] = 2.0  # 27 voxels at 2
    heatmap[8, 8, 8] = 5.0  # one voxel at 5
    assert detection_peak(heatmap, min_size=0) == 5.0  # any component: the maximum
    assert detection_peak(heatmap, min_size=8) == 2.0  # the single voxel is too small
    assert detection_peak(heatmap, min_size=28) == 0.0  # only the whole volume, at its background level, is that large
    assert detection_peak(heatmap, min_size=12**3 + 1) == float("-inf")
    # above the peak no component of 8 voxels survives; just below it one does
    components = ConnectedComponents(26, min_size=8, relabel=True)
    assert not np.asarray(components(torch.as_tensor(heatmap > 2.0)[None])).any()
    assert np.asarray(components(torch.as_tensor(heatmap > 1.999)[None])).any()


def test_detection_threshold_separates_volumes_by_their_labels_alone():
    from monai_tonno.engines import fit_detection_threshold

    rng = np.random.default_rng(0)

    def volume(level: float) -> np.ndarray:
        heatmap = rng.uniform(0.0, 0.5, (16, 16, 16)).astype(np.float32)
        heatmap[4:8, 4:8, 4:8] += level  # a lesion at this level (0: none)
        return heatmap

    peaks_positive, peaks_negative = [3.0, 4.0, 2.5], [0.0, 0.0, 1.0]  # one negative has a bright structure
    heatmaps = [volume(p) for p in peaks_positive] + [volume(n) for n in peaks_negative]
    threshold, accuracy = fit_detection_threshold(heatmaps, [1, 1, 1, 0, 0, 0], min_size=8)
    assert accuracy == 1.0
    # midway between the brightest negative's peak (1.0 plus noise below 0.5) and the faintest positive's (2.5 plus)
    assert 1.5 < threshold < 2.5
    calls = [bool(np.asarray(ConnectedComponents(26, min_size=8)(torch.as_tensor(h > threshold)[None])).any())
             for h in heatmaps]  # fmt: skip
    assert calls == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="need positive and negative volumes"):
        fit_detection_threshold(heatmaps[:3], [1, 1, 1])
    with pytest.raises(ValueError, match="one label per heatmap"):
        fit_detection_threshold(heatmaps, [1, 0])


def test_hysteresis_keeps_the_extent_of_detected_components_only():
    heatmap = np.full((1, 20, 20, 20), 0.1, dtype=np.float32)  # a faint positive background, as heatmaps have
    heatmap[0, 2:8, 2:8, 2:8] = 1.0  # a lesion's extent ...
    heatmap[0, 4:6, 4:6, 4:6] = 3.0  # ... with a core above the detection threshold (8 voxels)
    heatmap[0, 12:18, 12:18, 12:18] = 1.0  # as wide, but never reaches the detection threshold
    heatmap[0, 15, 15, 15] = 3.0  # one bright voxel: too small to count as a detection
    mask = Binarize("hysteresis", value=2.0, seed_min_size=8)(torch.as_tensor(heatmap))[0].numpy().astype(bool)
    expected = np.zeros((20, 20, 20), dtype=bool)
    expected[2:8, 2:8, 2:8] = True  # the whole extent above Otsu's threshold, not only the core
    np.testing.assert_array_equal(mask, expected)
    # without a detection the volume stays empty, where Otsu alone finds both blobs
    quiet = np.where(heatmap > 2.0, 1.0, heatmap)
    assert not Binarize("hysteresis", value=2.0, seed_min_size=8)(torch.as_tensor(quiet)).any()
    assert Binarize("otsu")(torch.as_tensor(quiet)).sum() == 2 * 6**3


def test_hysteresis_reads_the_calibrated_threshold(tmp_path):
    from monai_tonno.transforms import save_threshold

    path = save_threshold(tmp_path / "threshold.json", 2.5, "volume_balanced_accuracy", 1.0)
    assert Binarize("hysteresis", threshold_file=str(path)).value == 2.5


def test_separation_p_value_counts_the_label_assignments_that_separate_as_well():
    from monai_tonno.metrics import separation_p_value

    peaks = [3.0, 2.0, 1.0, 0.0, -1.0, -2.0]
    assert separation_p_value(peaks, [1, 1, 1, 0, 0, 0]) == pytest.approx(1 / 20)  # only this one of C(6, 3)
    # one swap in the middle: best balanced accuracy 5/6 at the cut after 2 or 4; 6 of 20 assignments reach it
    assert separation_p_value(peaks, [1, 1, 0, 1, 0, 0]) == pytest.approx(6 / 20)
    assert separation_p_value(peaks, [0, 0, 0, 1, 1, 1]) == 1.0  # reversed: every assignment does as well
    assert separation_p_value([1.0, 1.0, 0.0, 0.0], [1, 0, 1, 0]) == 1.0  # tied peaks cannot be cut apart


@pytest.mark.parametrize(
    "name, home",
    [("fit_threshold", "monai_tonno.engines"), ("fit_detection_threshold", "monai_tonno.engines"),
     ("BoxMaskd", "monai_tonno.data"), ("separation_p_value", "monai_tonno.metrics")],
)  # fmt: skip
def test_moved_names_still_import_from_transforms_with_a_warning(name, home):
    import importlib

    import monai_tonno.transforms

    with pytest.warns(FutureWarning, match=f"moved to {home}.{name}"):
        moved = getattr(monai_tonno.transforms, name)
    assert moved is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        monai_tonno.transforms.not_a_name  # noqa: B018
