# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A synthetic chest CT with COVID-19 ground-glass opacities in the MosMedData layout: the MosMed bundle's
embedded default.

MosMedData grades a study by the share of lung parenchyma that its findings involve (S. P. Morozov et al.,
*MosMedData: Chest CT Scans with COVID-19 Related Findings Dataset*, 2020): CT-0 none, CT-1 up to 25 %, CT-2
25-50 %, CT-3 50-75 %, CT-4 over 75 %, and of its 1110 studies 254, 684, 125, 45 and 2 fall in those grades. The
phantom draws a positive study's grade with the release's frequencies among its positives, an involvement
uniformly within the grade (CT-1 from 2 %), and grows ground-glass opacities, in both lungs and mostly at their
periphery as in COVID-19 pneumonia, until they cover that share of the lungs. The lesions are therefore large and
diffuse, unlike the PET/CT phantom's focal ones. Vessels are bright specks in the lungs of every study, so that a
bright spot alone does not make a study positive. Voxels are anisotropic, as MosMed's 8 mm slices are.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from monai_tonno.data.datalists import MOSMED_CATEGORIES
from monai_tonno.data.manifest import complete_dataset, mark_complete
from monai_tonno.data.synthetic_petct import existing_dataset_dir

__all__ = [
    "MOSMED_GRADE_COUNTS",
    "SyntheticChestCTConfig",
    "generate_synthetic_mosmed",
    "mosmed_or_synthetic",
    "synthetic_chest_case",
]


MOSMED_GRADE_COUNTS = {"CT-0": 254, "CT-1": 684, "CT-2": 125, "CT-3": 45, "CT-4": 2}
"""Studies per grade in the MosMedData release (Morozov et al., 2020)."""

_INVOLVEMENT = {"CT-1": (0.02, 0.25), "CT-2": (0.25, 0.5), "CT-3": (0.5, 0.75), "CT-4": (0.75, 0.9)}


@dataclass
class SyntheticChestCTConfig:
    """Size and make-up of the synthetic chest CT dataset.

    Args:
        num_patients: patients (one study each).
        positive_fraction: fraction of patients with findings (grades CT-1 to CT-4).
        size: voxels per side in-plane; slices are ``round(0.625 * size)``, so 64 gives 64 x 64 x 40 voxels of
            5.6 x 5.6 x 8 mm over MosMed's field of view of about 358 x 358 x 320 mm.
        masked_fraction: share of the CT-1 studies written with a lesion mask (the release masks 50 of its CT-1
            studies; the bundles keep masked studies for validation and score them).
        seed: random seed; the same seed writes the same files.
    """

    num_patients: int = 40
    positive_fraction: float = 0.5
    size: int = 64
    masked_fraction: float = 0.3
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size, self.size, max(8, round(0.625 * self.size))

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return 358.0 / self.size, 358.0 / self.size, 320.0 / self.shape[2]


def _ellipsoid(grid: np.ndarray, centre, semi_axes) -> np.ndarray:
    return (((grid - np.asarray(centre)) / np.asarray(semi_axes)) ** 2).sum(-1) <= 1.0


def synthetic_chest_case(
    rng: np.random.Generator, config: SyntheticChestCTConfig, grade: str
) -> tuple[np.ndarray, np.ndarray]:
    """One patient of grade ``grade`` (``"CT-0"`` .. ``"CT-4"``): ``(CT in HU, lesion mask)``, each of
    ``config.shape``; axes run right to left, front to back and feet to head, in millimetres of the same scale."""
    shape, spacing = config.shape, np.asarray(config.spacing_mm)
    extent = spacing * (np.asarray(shape) - 1) / 2
    axes = [np.linspace(-e, e, n, dtype=np.float32) / 179.0 for e, n in zip(extent, shape, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # about [-1, 1] in-plane, [-0.9, 0.9] along z
    u = rng.uniform

    scale = u(0.9, 1.1)
    body = ((grid[..., 0] / (0.86 * scale)) ** 2 + (grid[..., 1] / (0.62 * scale)) ** 2) <= 1.0
    hu = np.where(body, -90.0, -1000.0).astype(np.float32)  # fat
    muscle = ((grid[..., 0] / (0.8 * scale)) ** 2 + (grid[..., 1] / (0.56 * scale)) ** 2) <= 1.0
    hu[muscle] = 45.0
    lungs = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        jitter = rng.normal(0.0, 0.02, size=3)
        lung = _ellipsoid(grid, (side * 0.36 + jitter[0], 0.02 + jitter[1], 0.08 + jitter[2]),
                          (0.3 * u(0.9, 1.1), 0.44 * u(0.9, 1.1), 0.85))  # fmt: skip
        lungs |= lung
    mediastinum = _ellipsoid(grid, (-0.05, -0.12, -0.1), (0.2 * u(0.9, 1.1), 0.3, 0.5))
    lungs &= ~mediastinum & muscle
    hu[lungs] = -860.0
    hu[mediastinum & muscle] = 40.0
    spine = ((grid[..., 0] ** 2 + (grid[..., 1] - 0.42) ** 2) <= 0.09**2) & muscle
    hu[spine] = 650.0
    inside = np.argwhere(lungs)
    for _ in range(int(rng.integers(25, 45))):  # vessels: small bright specks in every study
        centre = _axes_point(axes, inside[rng.integers(len(inside))])
        vessel = _ellipsoid(grid, centre, (u(0.015, 0.03),) * 2 + (u(0.03, 0.08),)) & lungs
        hu[vessel] = u(-150.0, 40.0)

    mask = np.zeros(shape, dtype=bool)
    if grade != "CT-0":
        target = u(*_INVOLVEMENT[grade]) * lungs.sum()
        # peripheral opacities: centres drawn with weight growing with the distance from the lung's core
        depth = ndimage.distance_transform_edt(lungs, sampling=spacing)[lungs]
        weights = np.exp(-depth / max(float(depth.max()) / 4, 1e-6))
        weights /= weights.sum()
        while mask.sum() < target:
            centre = _axes_point(axes, inside[rng.choice(len(inside), p=weights)])
            radius = math.exp(u(math.log(0.05), math.log(0.16)))
            mask |= _ellipsoid(grid, centre, tuple(radius * u(0.7, 1.3, size=3))) & lungs
        ggo = ndimage.gaussian_filter(mask.astype(np.float32), sigma=1.0) * u(280.0, 450.0)
        hu[lungs] += ggo[lungs]
    hu = ndimage.gaussian_filter(hu, sigma=0.5) + rng.normal(0.0, 20.0, size=shape).astype(np.float32)
    return hu.astype(np.float32), mask.astype(np.uint8)


def _axes_point(axes: list[np.ndarray], index: np.ndarray) -> tuple[float, float, float]:
    """The coordinates of voxel ``index`` on the grid spanned by ``axes``."""
    return tuple(float(axis[i]) for axis, i in zip(axes, index, strict=True))


def _grades(rng: np.random.Generator, config: SyntheticChestCTConfig) -> list[str]:
    positives = set(
        rng.permutation(config.num_patients)[: round(config.positive_fraction * config.num_patients)].tolist()
    )
    names = [name for name in MOSMED_CATEGORIES if name != "CT-0"]
    counts = np.asarray([MOSMED_GRADE_COUNTS[name] for name in names], dtype=np.float64)
    return [
        str(rng.choice(names, p=counts / counts.sum())) if index in positives else "CT-0"
        for index in range(config.num_patients)
    ]


def generate_synthetic_mosmed(
    root: str | Path, config: SyntheticChestCTConfig | None = None, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write the synthetic dataset under ``root/studies/CT-k/study_XXXX.nii.gz`` (and ``root/masks``).

    A manifest records the configuration; an existing dataset made with the same configuration is reused.

    Returns:
        ``root`` as a ``Path``.
    """
    config = config or SyntheticChestCTConfig()
    if config.num_patients < 4:
        raise ValueError(f"num_patients must be at least 4 (training and validation of both labels), got "
                         f"{config.num_patients}.")  # fmt: skip
    if config.size < 16:
        raise ValueError(f"size must be at least 16 voxels, got {config.size}.")
    if not 0.0 <= config.masked_fraction <= 1.0:
        raise ValueError(f"masked_fraction must be in [0, 1], got {config.masked_fraction}.")
    root = Path(root)
    if complete_dataset(root, config, overwrite):
        return root
    for folder in ("studies", "masks"):  # no study of another configuration left under another grade
        shutil.rmtree(root / folder, ignore_errors=True)
    rng = np.random.default_rng(config.seed)
    grades = _grades(rng, config)
    spacing = config.spacing_mm
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.asarray(spacing) * (np.asarray(config.shape) - 1) / 2
    ct1 = [index for index, grade in enumerate(grades) if grade == "CT-1"]
    masked = set(ct1[: round(config.masked_fraction * len(ct1))])
    for index in tqdm(range(config.num_patients), desc="synthetic chest CT", disable=not progress):
        hu, mask = synthetic_chest_case(rng, config, grades[index])
        study = root / "studies" / grades[index] / f"study_{index:04d}.nii.gz"
        study.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(hu, affine), study)
        if index in masked:
            (root / "masks").mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(mask, affine), root / "masks" / f"study_{index:04d}_mask.nii.gz")
    mark_complete(root, config)
    return root


def mosmed_or_synthetic(
    dataset_dir: str | Path | None, synthetic_dir: str | Path, num_patients: int = 40, size: int = 64, seed: int = 0
) -> Path:
    """``dataset_dir`` when given; otherwise the synthetic chest CT dataset, generated once into a sub-folder of
    ``synthetic_dir`` named by its parameters (``patients40_size64_seed0``).

    Args:
        dataset_dir: a real MosMedData folder, or ``None`` / ``""`` for the embedded default.
        synthetic_dir: cache folder of the synthetic datasets.
        num_patients: synthetic patients.
        size: in-plane voxels per side of the synthetic volumes.
        seed: seed of the synthetic dataset.
    """
    if dataset_dir:
        return existing_dataset_dir(dataset_dir)
    config = SyntheticChestCTConfig(num_patients=int(num_patients), size=int(size), seed=int(seed))
    folder = Path(synthetic_dir).expanduser() / f"patients{config.num_patients}_size{config.size}_seed{config.seed}"
    return generate_synthetic_mosmed(folder, config)
