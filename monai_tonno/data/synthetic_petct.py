# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A synthetic whole-body PET/CT phantom written in the AutoPET-II folder layout: the embedded default dataset.

Every patient has a body with organs of normal physiological FDG uptake (brain, heart, kidneys, bladder, liver),
so that "bright on PET" alone does not mean "lesion"; lungs are dark on CT and a spine is bright. Positive
patients carry 1-5 hot lesions of random size, place and contrast inside the body; negatives carry none. PET is
blurred (scanner resolution) and noisy, CT is noisy. The lesion masks are written as ``SEG.nii.gz`` for
evaluation only; training sees the volume label alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from monai_tonno.data.datalists import AUTOPET_FOLDER
from monai_tonno.data.manifest import complete_dataset, mark_complete

__all__ = ["SyntheticPETCTConfig", "autopet_or_synthetic", "generate_synthetic_autopet", "synthetic_petct_case"]


@dataclass(frozen=True)
class SyntheticPETCTConfig:
    """Size and make-up of the synthetic dataset.

    Args:
        num_patients: patients (one study each).
        positive_fraction: fraction of patients with lesions.
        size: voxels per side (lesion radii scale with ``size / 64``).
        spacing_mm: isotropic voxel spacing written in the affine.
        min_lesions: fewest lesions in a positive case.
        max_lesions: most lesions in a positive case.
        lesion_radius: ``(low, high)`` lesion radius in voxels at 64^3, drawn log-uniformly (small lesions are common).
        lesion_contrast: ``(low, high)`` lesion SUV added to the background.
        seed: random seed; the same seed writes the same files.
    """

    num_patients: int = 40
    positive_fraction: float = 0.5
    size: int = 64
    spacing_mm: float = 4.0
    min_lesions: int = 1
    max_lesions: int = 5
    lesion_radius: tuple[float, float] = (2.0, 10.0)
    lesion_contrast: tuple[float, float] = (3.0, 10.0)
    seed: int = 0


def _ellipsoid(grid: torch.Tensor, centre, semi_axes) -> torch.Tensor:
    scaled = (grid - torch.tensor(centre, dtype=grid.dtype)) / torch.tensor(semi_axes, dtype=grid.dtype)
    return (scaled**2).sum(-1) <= 1.0


def _gaussian_blur(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return volume
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=volume.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = volume[None, None]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = -1
        padding = [0, 0, 0]
        padding[axis] = radius
        out = F.conv3d(out, kernel.reshape(shape), padding=tuple(padding))
    return out[0, 0]


def synthetic_petct_case(
    rng: np.random.Generator, config: SyntheticPETCTConfig, positive: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One patient: ``(SUV, CT in HU, lesion mask)``, each ``(size, size, size)``; axis 2 runs feet to head."""
    n = config.size
    axis = torch.linspace(-1.0, 1.0, n, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    u = rng.uniform

    scale = u(0.9, 1.1)
    body = _ellipsoid(grid, (0, 0, -0.15), (0.42 * scale, 0.3 * scale, 0.72)) | _ellipsoid(
        grid, (0, 0, 0.72), (0.16, 0.18, 0.17)
    )
    suv = torch.where(body, torch.tensor(u(0.8, 1.2)), torch.tensor(0.0))
    hu = torch.where(body, torch.tensor(30.0), torch.tensor(-1000.0))

    def organ(centre, semi_axes, organ_suv, organ_hu=None):
        jitter = rng.normal(0.0, 0.02, size=3)
        mask = _ellipsoid(grid, tuple(np.add(centre, jitter)), tuple(np.multiply(semi_axes, u(0.85, 1.15)))) & body
        suv[mask] = organ_suv
        if organ_hu is not None:
            hu[mask] = organ_hu
        return mask

    lungs = organ((0.17, 0.0, 0.28), (0.13, 0.16, 0.22), 0.4, -800.0) | organ(
        (-0.17, 0.0, 0.28), (0.13, 0.16, 0.22), 0.4, -800.0
    )
    organ((-0.15, -0.02, 0.0), (0.17, 0.15, 0.11), u(1.8, 2.8), 60.0)  # liver
    organ((0.04, -0.08, 0.22), (0.08, 0.08, 0.08), u(3.0, 8.0), 45.0)  # heart
    organ((0.0, 0.0, 0.74), (0.11, 0.13, 0.11), u(6.0, 12.0), 35.0)  # brain
    organ((0.16, 0.12, -0.15), (0.05, 0.04, 0.08), u(4.0, 9.0), 35.0)  # kidneys
    organ((-0.16, 0.12, -0.15), (0.05, 0.04, 0.08), u(4.0, 9.0), 35.0)
    organ((0.0, -0.08, -0.62), (0.07, 0.06, 0.06), u(8.0, 20.0), 10.0)  # bladder
    spine = ((grid[..., 0] ** 2 + (grid[..., 1] - 0.2) ** 2) <= 0.045**2) & (grid[..., 2].abs() < 0.6)
    hu[spine] = 700.0

    mask = torch.zeros(n, n, n, dtype=torch.bool)
    if positive:
        count = int(rng.integers(config.min_lesions, config.max_lesions + 1))
        inside = torch.nonzero(body & ~spine).numpy()
        for _ in range(count):
            centre_voxel = inside[rng.integers(len(inside))]
            centre = axis[torch.as_tensor(centre_voxel)].tolist()
            radius = math.exp(u(*np.log(config.lesion_radius))) * (n / 64.0) * 2.0 / (n - 1)  # log-uniform
            semi_axes = tuple(radius * u(0.8, 1.2) for _ in range(3))
            lesion = _ellipsoid(grid, centre, semi_axes) & body
            suv[lesion] += u(*config.lesion_contrast)
            hu[lesion] = torch.where(lungs[lesion], torch.tensor(20.0), hu[lesion] + 15.0)
            mask |= lesion

    suv = _gaussian_blur(suv, 1.2 * n / 64.0)
    suv = torch.clamp(suv * (1 + 0.12 * torch.as_tensor(rng.standard_normal(suv.shape), dtype=suv.dtype)), min=0)
    hu = _gaussian_blur(hu, 0.5) + 15.0 * torch.as_tensor(rng.standard_normal(hu.shape), dtype=hu.dtype)
    return suv.numpy().astype(np.float32), hu.numpy().astype(np.float32), mask.numpy().astype(np.uint8)


def generate_synthetic_autopet(
    root: str | Path, config: SyntheticPETCTConfig | None = None, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write the synthetic dataset under ``root/FDG-PET-CT-Lesions/<patient>/<study>/{SUV,CTres,SEG}.nii.gz``.

    A manifest records the configuration; an existing dataset made with the same configuration is reused.

    Returns:
        ``root`` as a ``Path``.
    """
    config = config or SyntheticPETCTConfig()
    if config.num_patients < 2:
        raise ValueError(
            f"num_patients must be at least 2 (a training and a validation patient), got {config.num_patients}."
        )
    if config.size < 16:
        raise ValueError(f"size must be at least 16 voxels, got {config.size}.")
    root = Path(root)
    if complete_dataset(root, config, overwrite):
        return root
    rng = np.random.default_rng(config.seed)
    positives = set(
        rng.permutation(config.num_patients)[: round(config.positive_fraction * config.num_patients)].tolist()
    )
    affine = np.diag([config.spacing_mm] * 3 + [1.0])
    affine[:3, 3] = -config.spacing_mm * (config.size - 1) / 2
    for index in tqdm(range(config.num_patients), desc="synthetic PET/CT", disable=not progress):
        suv, hu, mask = synthetic_petct_case(rng, config, index in positives)
        study = root / AUTOPET_FOLDER / f"PETCT_{index:04d}" / "01-01-2000-NA-PET-CT Ganzkoerper-00001"
        study.mkdir(parents=True, exist_ok=True)
        for name, array in (("SUV", suv), ("CTres", hu), ("SEG", mask)):
            nib.save(nib.Nifti1Image(array, affine), study / f"{name}.nii.gz")
    mark_complete(root, config)
    return root


def existing_dataset_dir(dataset_dir: str | Path) -> Path:
    """A user's dataset folder as a ``Path``, or an error that says it is missing and how to get the default."""
    path = Path(dataset_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset_dir {str(path)!r} does not exist (leave it empty for the synthetic default).")
    return path


def autopet_or_synthetic(
    dataset_dir: str | Path | None,
    synthetic_dir: str | Path,
    num_patients: int = 40,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """``dataset_dir`` when given; otherwise the synthetic PET/CT dataset, generated once into a sub-folder of
    ``synthetic_dir`` named by its parameters (``patients80_size64_seed0``), so that asking for another number of
    patients, size or seed never reuses or mixes with the files of another.

    Args:
        dataset_dir: a real AutoPET-II folder, or ``None`` / ``""`` for the embedded default.
        synthetic_dir: cache folder of the synthetic datasets.
        num_patients: synthetic patients.
        size: voxels per side of the synthetic volumes.
        seed: seed of the synthetic dataset.
    """
    if dataset_dir:
        return existing_dataset_dir(dataset_dir)
    config = SyntheticPETCTConfig(num_patients=int(num_patients), size=int(size), seed=int(seed))
    folder = Path(synthetic_dir).expanduser() / f"patients{config.num_patients}_size{config.size}_seed{config.seed}"
    return generate_synthetic_autopet(folder, config)
