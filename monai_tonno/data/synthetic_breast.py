# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A synthetic breast DCE-MRI phantom written as DICOM series in the Duke layout: the Duke bundle's default.

Every patient has a torso (chest wall, lungs, a heart), two breasts of fat with fibroglandular tissue, vessels,
and one tumour in one breast. Two series are written, ``ax dyn pre`` and ``ax dyn 1st pass``: after contrast
the heart, the vessels and the tumour brighten (fibroglandular tissue a little), so "enhances" alone does not
mean "tumour", as in real breast MRI. The body sits off the array centre by a random shift and the breasts
differ in size, so the left-right split must find the midline. In half of the patients the instance numbers run
against the slice positions. ``Annotation_Boxes.xlsx`` holds the tumour's bounding box in the collection's
conventions (1-based rows, columns and acquisition-ordered slices, inclusive).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from monai_tonno.data.dicom_writer import new_uid, write_dicom_series
from monai_tonno.data.duke import BOX_COLUMNS, DUKE_FOLDER
from monai_tonno.data.manifest import complete_dataset, mark_complete
from monai_tonno.data.synthetic_petct import existing_dataset_dir

__all__ = ["SyntheticBreastConfig", "duke_or_synthetic", "generate_synthetic_duke", "synthetic_breast_case"]

#                  pre    post1 (first post-contrast)
_TISSUES = {
    "fat": (70.0, 75.0),
    "muscle": (110.0, 135.0),
    "lung": (15.0, 18.0),
    "heart": (160.0, 650.0),
    "gland": (150.0, 185.0),
    "vessel": (150.0, 550.0),
    "tumour": (140.0, 520.0),
}


@dataclass(frozen=True)
class SyntheticBreastConfig:
    """Size and make-up of the synthetic Duke dataset.

    Args:
        num_patients: patients (each with one tumour, hence one positive and one negative breast).
        shape: ``(columns, rows, slices)`` of every series.
        spacing_mm: ``(column, row, slice)`` spacing.
        tumour_radius: ``(low, high)`` tumour radius in mm.
        seed: random seed; the same seed writes the same files.
    """

    num_patients: int = 40
    shape: tuple[int, int, int] = (96, 96, 36)
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 3.5)
    tumour_radius: tuple[float, float] = (12.0, 20.0)
    seed: int = 0


def _inside(points: np.ndarray, centre, semi_axes) -> np.ndarray:
    return (((points - np.asarray(centre)) / np.asarray(semi_axes)) ** 2).sum(-1) <= 1.0


def _tube(points: np.ndarray, start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
    axis = end - start
    t = np.clip(((points - start) @ axis) / float(axis @ axis), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[..., None] * axis), axis=-1) <= radius


def synthetic_breast_case(
    rng: np.random.Generator, config: SyntheticBreastConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One patient: ``(pre, post1, tumour mask)`` arrays ``(x, y, z)`` on an LPS grid centred on the origin.

    x points to the patient's left, y to the back, z up (an axial series, identity direction).
    """
    shape, spacing = np.asarray(config.shape), np.asarray(config.spacing_mm)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    half_width = (shape[0] - 1) / 2 * spacing[0]
    cx = rng.uniform(-0.12, 0.12) * half_width  # the body off the array centre
    cz = rng.uniform(-0.1, 0.1) * (shape[2] - 1) / 2 * spacing[2]
    width = rng.uniform(0.78, 0.88) * half_width
    chest_y = rng.uniform(-0.15, -0.05) * half_width  # the front of the chest wall (y grows backwards)
    torso_depth = 0.55 * half_width
    labels = np.zeros(shape, dtype=np.int8)  # 0 air, then tissue codes in _TISSUES order + 1
    code = {name: i + 1 for i, name in enumerate(_TISSUES)}
    torso_centre = (cx, chest_y + torso_depth, cz)
    labels[_inside(points, torso_centre, (width, torso_depth, 1e6))] = code["muscle"]
    inner = (width - 12.0, torso_depth - 10.0, 1e6)
    labels[_inside(points, torso_centre, inner)] = code["fat"]
    for sign in (-1, 1):
        lung = (cx + sign * 0.45 * width, chest_y + 1.1 * torso_depth, cz)
        labels[_inside(points, lung, (0.32 * width, 0.55 * torso_depth, 1e6))] = code["lung"]
    heart = (cx + 0.15 * width, chest_y + 0.75 * torso_depth, cz + rng.uniform(-10, 10))
    labels[_inside(points, heart, (0.3 * width, 0.38 * torso_depth, 40.0))] = code["heart"]
    tumour_mask = np.zeros(shape, dtype=bool)
    breasts = []
    for sign in (-1, 1):
        size = rng.uniform(0.85, 1.15)
        centre = np.array([cx + sign * rng.uniform(0.5, 0.6) * width, chest_y, cz + rng.uniform(-8, 8)])
        semi = np.array([0.38 * width, 0.6 * half_width, 0.5 * (shape[2] - 1) / 2 * spacing[2] + 10]) * size
        breast = _inside(points, centre, semi) & (points[..., 1] < chest_y)
        labels[breast] = code["fat"]
        field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
        inner_breast = _inside(points, centre, 0.75 * semi) & breast
        gland = inner_breast & (field > np.quantile(field[inner_breast], rng.uniform(0.4, 0.75)))
        labels[gland] = code["gland"]
        for _ in range(int(rng.integers(2, 5))):
            start = centre + rng.uniform(-0.6, 0.6, 3) * semi * [1, 0, 1]
            end = centre + rng.uniform(-0.8, 0.8, 3) * semi * [1, 1, 1] - [0, 0.5 * semi[1], 0]
            labels[_tube(points, start, end, rng.uniform(1.2, 2.2)) & breast] = code["vessel"]
        breasts.append((centre, semi, inner_breast))
    for sign in (-1, 1):  # internal mammary vessels beside the sternum
        start = np.array([cx + sign * 18.0, chest_y + 6.0, -1e3])
        labels[_tube(points, start, start + [0, 0, 2e3], 2.0)] = code["vessel"]
    centre, semi, inner_breast = breasts[int(rng.integers(2))]
    candidates = np.argwhere(inner_breast & _inside(points, centre, 0.6 * semi))
    seed_point = points[tuple(candidates[int(rng.integers(len(candidates)))])]
    radius = float(np.exp(rng.uniform(*np.log(config.tumour_radius))))
    for _ in range(3):
        lobe = seed_point + rng.normal(0, 0.35 * radius, 3)
        tumour_mask |= _inside(points, lobe, radius * rng.uniform(0.6, 1.0, 3))
    labels[tumour_mask] = code["tumour"]
    volumes = []
    for phase in range(2):
        levels = np.array([0.0] + [value[phase] for value in _TISSUES.values()])
        clean = levels[labels] * (1 + 0.1 * (labels == code["tumour"]) * rng.standard_normal(shape))
        clean = ndimage.gaussian_filter(clean, 0.6)
        field = ndimage.gaussian_filter(rng.standard_normal(shape), 12.0)
        bias = np.clip(1 + 0.08 * field / field.std(), 0.8, 1.2)  # the coil's smooth shading
        noisy = np.hypot(clean * bias + rng.normal(0, 6, shape), rng.normal(0, 6, shape))  # Rician noise
        volumes.append(noisy.astype(np.float32))
    return volumes[0], volumes[1], tumour_mask


def _write_boxes(path: Path, boxes: dict[str, list[int]]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Patient ID", *BOX_COLUMNS])
    for patient, box in boxes.items():
        sheet.append([patient, *box])
    book.save(path)


def _box(mask: np.ndarray, reverse_instances: bool) -> list[int]:
    x, y, z = (np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3))
    slices = mask.shape[2]
    z_first, z_last = (slices - z[-1], slices - z[0]) if reverse_instances else (z[0] + 1, z[-1] + 1)
    return [int(y[0]) + 1, int(y[-1]) + 1, int(x[0]) + 1, int(x[-1]) + 1, int(z_first), int(z_last)]


def generate_synthetic_duke(
    root: str | Path, config: SyntheticBreastConfig | None = None, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write the synthetic dataset as ``root/Duke-Breast-Cancer-MRI/Breast_MRI_NNN/<study>/<series>/*.dcm`` and
    ``root/Annotation_Boxes.xlsx`` (with ``tumours.json``, the tumours' voxels, for checks).

    A manifest records the configuration; an existing dataset made with the same configuration is reused.
    """
    config = config or SyntheticBreastConfig()
    if config.num_patients < 2:
        raise ValueError(f"num_patients must be at least 2, got {config.num_patients}.")
    if min(config.shape) < 8:
        raise ValueError(f"every side of shape must be at least 8 voxels, got {config.shape}.")
    root = Path(root)
    if complete_dataset(root, config, overwrite):
        return root
    shutil.rmtree(root / DUKE_FOLDER, ignore_errors=True)  # no series of another configuration left behind
    rng = np.random.default_rng(config.seed)
    spacing = np.asarray(config.spacing_mm)
    origin = -(np.asarray(config.shape) - 1) / 2 * spacing
    boxes, tumours = {}, {}
    for index in tqdm(range(config.num_patients), desc="synthetic breast MRI", disable=not progress):
        patient = f"Breast_MRI_{index + 1:03d}"
        pre, post, tumour = synthetic_breast_case(rng, config)
        reverse = bool(index % 2)
        study = root / DUKE_FOLDER / patient / f"01-01-1990-NA-MRI BREAST BILATERAL W  WO-{10000 + index}"
        study_uid = new_uid(rng)
        for number, (name, volume) in enumerate((("ax dyn pre", pre), ("ax dyn 1st pass", post)), start=3):
            write_dicom_series(
                volume, study / f"{number}.000000-{name}-{20000 + 7 * index + number}", tuple(spacing), tuple(origin),
                description=name, patient_id=patient, study_uid=study_uid, series_number=number,
                reverse_instance_numbers=reverse, seed=int(rng.integers(2**31)),
            )  # fmt: skip
        boxes[patient] = _box(tumour, reverse)
        tumours[patient] = int(tumour.sum())
    _write_boxes(root / "Annotation_Boxes.xlsx", boxes)
    (root / "tumours.json").write_text(json.dumps(tumours, indent=1))
    mark_complete(root, config)
    return root


def duke_or_synthetic(dataset_dir: str | Path | None, synthetic_dir: str | Path, num_patients: int = 40, seed: int = 0):
    """``dataset_dir`` when given; otherwise the synthetic Duke dataset, generated once into a sub-folder of
    ``synthetic_dir`` named by its parameters (``patients40_seed0``).

    Args:
        dataset_dir: a real Duke folder, or ``None`` / ``""`` for the embedded default.
        synthetic_dir: cache folder of the synthetic datasets.
        num_patients: synthetic patients.
        seed: seed of the synthetic dataset.
    """
    if dataset_dir:
        return existing_dataset_dir(dataset_dir)
    config = SyntheticBreastConfig(num_patients=int(num_patients), seed=int(seed))
    return generate_synthetic_duke(
        Path(synthetic_dir).expanduser() / f"patients{config.num_patients}_seed{config.seed}", config
    )
