# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Datalists with volume-level labels from the folder layouts of public datasets, and a patient-level split.

Each item is a dictionary for MONAI datasets: ``image`` (one path, or a list of paths to stack as channels),
``label`` (0 or 1, the volume label), ``mask`` (ground-truth segmentation path, for evaluation only, when the
dataset has one) and ``patient``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from monai_tonno.atomic import file_stamp, write_json_atomic
from monai_tonno.paths import require_dir, require_file

__all__ = [
    "alternate_by_label",
    "autopet_datalist",
    "check_training_split",
    "mosmed_datalist",
    "require_file",
    "select_items",
    "split_by_patient",
]

logger = logging.getLogger(__name__)

AUTOPET_FOLDER = "FDG-PET-CT-Lesions"
AUTOPET_FILES = ("SUV.nii.gz", "CTres.nii.gz", "SEG.nii.gz")
MOSMED_CATEGORIES = ("CT-0", "CT-1", "CT-2", "CT-3", "CT-4")


def _mask_is_nonempty(path: Path) -> bool:
    try:
        return bool(np.asarray(nib.load(str(path)).dataobj).any())
    except Exception as error:
        raise ValueError(f"could not read the segmentation {str(path)!r}: {error}") from error


def autopet_datalist(
    dataset_dir: str | Path, label_cache: str | Path | None = None, progress: bool = True
) -> list[dict]:
    """Studies of AutoPET-II: ``FDG-PET-CT-Lesions/<patient>/<study>/{SUV,CTres,SEG}.nii.gz``.

    The label of a study is 1 when its segmentation ``SEG.nii.gz`` is non-empty. Reading a thousand masks takes
    minutes, so the labels can be cached in ``label_cache`` (a JSON file, written on first use).

    Args:
        dataset_dir: the folder that holds ``FDG-PET-CT-Lesions`` (or that folder itself).
        label_cache: optional JSON file of ``{study path: label}``.
        progress: show a progress bar while reading masks.

    Returns:
        items with ``image`` = ``[SUV, CTres]`` (two channels), ``label``, ``mask``, ``patient``, ``study``.
    """
    root = require_dir(dataset_dir, "AutoPET")
    if (root / AUTOPET_FOLDER).is_dir():
        root = root / AUTOPET_FOLDER
    studies = sorted(p for p in root.glob("*/*") if p.is_dir())
    if not studies:
        raise ValueError(
            f"{str(dataset_dir)!r} does not look like AutoPET-II: expected "
            f"{AUTOPET_FOLDER}/<patient>/<study>/{{{','.join(AUTOPET_FILES)}}}."
        )
    cache_path = Path(label_cache) if label_cache else None
    cache = _read_cache(cache_path)
    items, skipped = [], []
    for study in tqdm(studies, desc="reading AutoPET labels", disable=not progress or len(cache) >= len(studies)):
        missing = [name for name in AUTOPET_FILES if not (study / name).is_file()]
        if missing:
            skipped.append(f"{study.parent.name}/{study.name} (missing {', '.join(missing)})")
            continue
        key, stamp = str(study), file_stamp(study / "SEG.nii.gz")
        entry = cache.get(key)
        if not isinstance(entry, dict) or entry.get("seg") != stamp or entry.get("label") not in (0, 1):
            cache[key] = {"label": int(_mask_is_nonempty(study / "SEG.nii.gz")), "seg": stamp}
        items.append(
            {
                "image": [str(study / "SUV.nii.gz"), str(study / "CTres.nii.gz")],
                "label": cache[key]["label"],
                "mask": str(study / "SEG.nii.gz"),
                "patient": study.parent.name,
                "study": study.name,
            }
        )
    if skipped:
        logger.warning("skipped %d AutoPET studies with missing files: %s", len(skipped), "; ".join(skipped))
    if not items:
        raise ValueError(f"no complete AutoPET study under {str(dataset_dir)!r}; every study lacked files.")
    if cache_path:
        write_json_atomic(cache_path, cache, indent=1)
    return items


def _read_cache(path: Path | None) -> dict:
    """A JSON cache, or an empty one (with a warning) when it is missing, unreadable or not a mapping."""
    if path is None or not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text())
    except ValueError as error:
        logger.warning("ignoring the unreadable cache %s (%s); it will be rebuilt", path, error)
        return {}
    if not isinstance(cache, dict):
        logger.warning("ignoring the cache %s: it holds no mapping; it will be rebuilt", path)
        return {}
    return cache


def mosmed_datalist(dataset_dir: str | Path) -> list[dict]:
    """Studies of MosMedData COVID-19: ``studies/CT-0 .. CT-4/*.nii.gz``; CT-0 is negative, CT-1 to CT-4 positive.

    Masks ``masks/<study>_mask.nii.gz`` are attached where present (50 studies of CT-1 in the release).

    Args:
        dataset_dir: the folder that holds ``studies`` (and ``masks``).

    Returns:
        items with ``image``, ``label``, ``mask`` (or ``None``), ``patient``, ``category``.
    """
    root = require_dir(dataset_dir, "MosMedData")
    studies_dir = root / "studies"
    categories = [c for c in MOSMED_CATEGORIES if (studies_dir / c).is_dir()]
    if not categories:
        raise ValueError(
            f"{str(dataset_dir)!r} does not look like MosMedData: expected studies/CT-0 .. studies/CT-4 "
            "holding .nii.gz files."
        )
    items = []
    for category in categories:
        for path in sorted((studies_dir / category).glob("*.nii.gz")):
            patient = path.name.removesuffix(".nii.gz")
            mask = root / "masks" / f"{patient}_mask.nii.gz"
            items.append(
                {
                    "image": str(path),
                    "label": int(category != "CT-0"),
                    "mask": str(mask) if mask.is_file() else None,
                    "patient": patient,
                    "category": category,
                }
            )
    if not items:
        raise ValueError(f"no .nii.gz study under {str(studies_dir)!r}/CT-*.")
    return items


def split_by_patient(
    items: Sequence[dict],
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    always_validation: Sequence[str] = (),
) -> tuple[list[dict], list[dict]]:
    """Split a datalist into training and validation sets with no patient in both.

    Args:
        items: datalist items with ``patient`` and ``label``.
        val_fraction: share of the other patients for validation (at least one patient each side).
        seed: seed of the shuffle.
        stratify: split positive and negative patients separately so both sets keep the label balance.
        always_validation: patients put in validation whatever the draw (e.g. those with masks, as the paper
            does for MosMed), on top of ``val_fraction`` of the others.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    patients: dict[str, int] = {}
    for item in items:
        patients[item["patient"]] = max(patients.get(item["patient"], 0), int(item["label"]))
    if len(patients) < 2:
        raise ValueError(f"need at least 2 patients to split, got {len(patients)}.")
    rng = np.random.default_rng(seed)
    validation: set[str] = {p for p in always_validation if p in patients}
    free = {p: y for p, y in patients.items() if p not in validation}
    groups = [sorted(p for p, y in free.items() if y == label) for label in (0, 1)] if stratify else [sorted(free)]
    for group in groups:
        shuffled = [group[i] for i in rng.permutation(len(group))]
        validation.update(shuffled[: int(round(val_fraction * len(group)))])
    if not validation:
        validation.add(sorted(patients)[int(rng.integers(len(patients)))])
    if len(validation) == len(patients):
        validation.discard(sorted(validation)[0])
    train = [item for item in items if item["patient"] not in validation]
    val = [item for item in items if item["patient"] in validation]
    return train, val


def check_training_split(split: tuple[Sequence[dict], Sequence[dict]]) -> tuple[list[dict], list[dict]]:
    """``split`` if a slice classifier can be trained on it, else an error naming the counts.

    Weak supervision learns what tells volumes with lesions from volumes without: with one label in the training
    split there is nothing to learn, so training is refused before it starts. A validation split of one label
    is only warned about (a tiny dataset may have no other choice): its slice AUC is undefined, so the best model
    is not chosen by it, and no mask threshold can be calibrated on it.
    """
    counts = {}
    for name, items in (("training", split[0]), ("validation", split[1])):
        labels = [int(item["label"]) for item in items]
        counts[name] = (sum(labels), len(labels) - sum(labels))
    positives, negatives = counts["training"]
    if not positives or not negatives:
        raise ValueError(
            f"cannot train from volume labels: the training split has {positives} volumes with lesions and "
            f"{negatives} without (validation: {counts['validation'][0]} and {counts['validation'][1]}). Both labels "
            "are needed; check the dataset folder (and its label source), or add patients of the missing label."
        )
    if not all(counts["validation"]):
        logger.warning(
            "the validation split has %d volumes with lesions and %d without: its slice AUC is undefined and no "
            "mask threshold can be calibrated on it; raise val_fraction or add patients of the missing label",
            *counts["validation"],
        )
    return list(split[0]), list(split[1])


def alternate_by_label(items: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Two halves of ``items`` with the same label balance: the 1st, 3rd, ... item of each label, and the others."""
    seen: dict[int, int] = {}
    halves: tuple[list[dict], list[dict]] = ([], [])
    for item in items:
        label = int(item["label"])
        halves[seen.get(label, 0) % 2].append(item)
        seen[label] = seen.get(label, 0) + 1
    return halves


def select_items(
    items: Sequence[dict], split: tuple[Sequence[dict], Sequence[dict]], which: str = "validation", limit: int = 0
) -> list[dict]:
    """Pick ``"all"`` items, the ``"training"`` or ``"validation"`` half of ``split``, or one half of the validation
    items: ``"calibration"`` (every other item of each label, which training calibrates the mask threshold on) or
    ``"held_out"`` (the others); at most ``limit`` (0: all)."""
    calibration, held_out = alternate_by_label(split[1])
    choices = {"all": list(items), "training": list(split[0]), "validation": list(split[1]),
               "calibration": calibration, "held_out": held_out}  # fmt: skip
    if which not in choices:
        raise ValueError(f"the split must be one of {sorted(choices)}, got {which!r}.")
    chosen = choices[which]
    return chosen[:limit] if limit and limit > 0 else chosen
