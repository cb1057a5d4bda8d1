# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Duke breast cancer MRI (TCIA ``Duke-Breast-Cancer-MRI``): one sample per breast, the one with the box positive.

Layout: ``<dataset_dir>/Duke-Breast-Cancer-MRI/Breast_MRI_NNN/<study>/<series>/*.dcm`` (folder names carry
dates, descriptions and spaces) and ``<dataset_dir>/Annotation_Boxes.xlsx`` (or a CSV export of it). Every
patient has cancer, so the paper (Section 4.1) splits each patient into a left and a right breast and calls the
breast holding the tumour's box positive. The split follows the body's midline, found from the image
(:func:`find_midline`), not the array centre.

Box conventions (``Start Row``, ``End Row``, ``Start Column``, ``End Column``, ``Start Slice``, ``End Slice``):
1-based and inclusive; rows along the image's y (the DICOM row index, second array axis here), columns along x
(first array axis); slices numbered in acquisition order, i.e. by ``InstanceNumber``, which in part of the
collection runs against the slice positions. What was verified and how: the collection's own description page
could not be reached from here; these conventions are those of public code that reads this file into world
boxes (rows and columns swapped into ITK's (column, row, slice) index, slices flipped when the instance numbers
run against the positions), and the reader places the box through the instance numbers stored with the series
(``slice_instance_numbers``), so a series whose numbering runs either way gets its box on the slices it names.
The tests check the convention end to end on hand-made series in both numberings.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage
from scipy import ndimage
from tqdm.auto import tqdm

from monai_tonno.atomic import write_json_atomic
from monai_tonno.data.datalists import _read_cache
from monai_tonno.data.sitk_reader import SimpleITKReader, find_dicom_series, instance_numbers
from monai_tonno.paths import require_dir, require_file

__all__ = [
    "BOX_COLUMNS",
    "DUKE_FOLDER",
    "PHASE_PATTERNS",
    "alternate_patients",
    "box_voxels",
    "duke_datalist",
    "find_midline",
    "parse_phases",
    "read_boxes",
]

logger = logging.getLogger(__name__)

DUKE_FOLDER = "Duke-Breast-Cancer-MRI"
BOX_COLUMNS = ("Start Row", "End Row", "Start Column", "End Column", "Start Slice", "End Slice")
BOX_FILES = ("Annotation_Boxes.xlsx", "Annotation_Boxes.csv")
DYNAMIC_PATTERN = r"dyn"
PHASE_PATTERNS = {
    "pre": r"\bpre\b",
    "post1": r"1st|\bph1\b|first",
    "post2": r"2nd|\bph2\b|second",
    "post3": r"3rd|\bph3\b|third",
    "post4": r"4th|\bph4\b|fourth",
}


def parse_phases(phases: Sequence[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The series a channel list needs and each channel as ``(phase, subtracted phase or None)``.

    ``["pre", "post1-pre"]`` needs ``["pre", "post1"]`` and gives ``[("pre", None), ("post1", "pre")]``.
    """
    if isinstance(phases, str) or not phases:
        raise ValueError(f"phases must be a non-empty list such as ['pre', 'post1-pre'], got {phases!r}.")
    channels, needed = [], []
    for phase in phases:
        parts = phase.split("-")
        if len(parts) > 2 or any(p not in PHASE_PATTERNS for p in parts):
            raise ValueError(
                f"unknown phase {phase!r}: expected one of {sorted(PHASE_PATTERNS)} or a difference such as "
                "'post1-pre'."
            )
        channels.append((parts[0], parts[1] if len(parts) == 2 else None))
        needed += [p for p in parts if p not in needed]
    return needed, channels


def _cell(value) -> str:
    return "" if value is None else str(value).strip()


def _rows(path: Path) -> list[list[str]]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [[_cell(v) for v in row] for row in csv.reader(handle)]
    try:
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:
        raise ValueError(f"could not read the boxes spreadsheet {str(path)!r}: {error}") from error
    rows = [[_cell(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    return rows


def read_boxes(path: str | Path) -> dict[str, list[int]]:
    """``{patient: [start row, end row, start column, end column, start slice, end slice]}`` from the boxes file.

    Args:
        path: ``Annotation_Boxes.xlsx`` or a CSV export; the header row holds ``Patient ID`` and ``BOX_COLUMNS``
            (it may follow title rows).
    """
    path = require_file(path, "boxes file, Annotation_Boxes.xlsx or .csv")
    rows = _rows(path)
    header_index = next((i for i, row in enumerate(rows[:10]) if "Patient ID" in row), None)
    if header_index is None:
        raise ValueError(f"{str(path)!r} has no 'Patient ID' header in its first rows; expected {BOX_COLUMNS}.")
    header = rows[header_index]
    missing = [c for c in BOX_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{str(path)!r} lacks the columns {missing}; its header is {header}.")
    columns = [header.index(c) for c in BOX_COLUMNS]
    boxes = {}
    for number, row in enumerate(rows[header_index + 1 :], start=header_index + 2):
        patient = row[header.index("Patient ID")] if len(row) > header.index("Patient ID") else ""
        if not patient:
            continue
        try:
            box = [int(float(row[c])) for c in columns]
        except (ValueError, IndexError) as error:
            raise ValueError(f"row {number} of {str(path)!r} ({patient}) has a box that is not 6 integers.") from error
        if any(box[2 * a] > box[2 * a + 1] for a in range(3)) or min(box) < 1:
            raise ValueError(f"row {number} of {str(path)!r} ({patient}): box {box} is not 1-based start <= end.")
        boxes[patient] = box
    return boxes


def box_voxels(box: Sequence[int], shape: Sequence[int], instance_numbers: Sequence[int] | None = None):
    """Array index ranges ``(x, y, z)`` of a Duke box on a volume read by :class:`SimpleITKReader`.

    Columns run along x, rows along y, both 1-based inclusive; slices count in ``InstanceNumber`` order
    (``instance_numbers``: the instance number of each array slice; by array order when not given).

    Returns:
        ``(x slice, y slice, z index array)``: the voxels ``array[x, y, z]`` of the box.
    """
    start_row, end_row, start_column, end_column, start_slice, end_slice = (int(v) for v in box)
    numbers = np.arange(1, shape[2] + 1) if instance_numbers is None else np.asarray(instance_numbers)
    if len(numbers) != shape[2]:
        raise ValueError(f"{len(numbers)} instance numbers for {shape[2]} slices.")
    if end_column > shape[0] or end_row > shape[1] or end_slice > shape[2]:
        raise ValueError(
            f"box {list(box)} (rows, columns, slices, 1-based) does not fit a volume of {shape[1]} rows, "
            f"{shape[0]} columns and {shape[2]} slices."
        )
    acquisition_rank = np.argsort(np.argsort(numbers, kind="stable"), kind="stable")  # 0 for the first acquired
    z = np.nonzero((acquisition_rank >= start_slice - 1) & (acquisition_rank <= end_slice - 1))[0]
    return slice(start_column - 1, end_column), slice(start_row - 1, end_row), z


def alternate_patients(items: Sequence[dict]) -> list[dict]:
    """The items reordered so that every other item (``items[0::2]``, ``items[1::2]``) splits them by patient.

    The evaluation fits thresholds on the even items and scores the odd ones; with two breasts per patient in a
    row, that would fit on left breasts and score right ones. Here patients go in pairs ``(A, B)`` as
    ``A0, B0, A1, B1``, so the even items hold patients A and the odd ones patients B, both sides in each.
    """
    by_patient: dict[str, list[dict]] = {}
    for item in items:
        by_patient.setdefault(item["patient"], []).append(item)
    groups = list(by_patient.values())
    ordered = []
    for first, second in zip(groups[0::2], groups[1::2], strict=False):
        for pair in zip(first, second, strict=False):
            ordered.extend(pair)
        longer = first if len(first) > len(second) else second
        ordered.extend(longer[min(len(first), len(second)) :])
    if len(groups) % 2:
        ordered.extend(groups[-1])
    return ordered


def find_midline(volume: np.ndarray, affine: np.ndarray, window: float = 0.3, body_fraction: float = 0.15) -> float:
    """The body's left-right midline, in RAS x (mm), from a ``(x, y, z)`` breast MRI volume.

    The breasts reach furthest forward and the cleft between them least: for every left-right position the
    body's most anterior point is found in each slice, its median over slices is the front profile, and the
    midline is the middle of the profile's lowest stretch within the central part of the body (``window`` of
    the body's width left out on each side), so a body off the array centre, or asymmetric breasts, move it.

    Args:
        volume: ``(x, y, z)`` intensities (a pre-contrast series).
        affine: its RAS affine.
        window: share of the body's width excluded at each side from the search.
        body_fraction: the body is what exceeds this fraction of the (smoothed) volume's 99th percentile.
    """
    volume = np.asarray(volume, dtype=np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    if volume.ndim != 3:
        raise ValueError(f"find_midline expects an (x, y, z) volume, got shape {volume.shape}.")
    lr_axis = int(np.argmax(np.abs(affine[0, :3])))
    ap_axis = int(np.argmax(np.abs(affine[1, :3])))
    if lr_axis == ap_axis:
        raise ValueError(f"the affine has no distinct left-right and front-back axes:\n{affine}")
    other = 3 - lr_axis - ap_axis
    array = np.transpose(ndimage.uniform_filter(volume, 3), (lr_axis, ap_axis, other))
    body = array > body_fraction * float(np.percentile(array, 99))  # air is dark in every MRI sequence
    labels, count = ndimage.label(body)
    if count == 0:
        raise ValueError("find_midline found no body in the volume (is it empty?).")
    body = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    anterior_to_high = affine[1, ap_axis] > 0  # RAS +y is anterior
    ap_index = np.arange(body.shape[1])[None, :, None]
    ap_index = ap_index if anterior_to_high else body.shape[1] - 1 - ap_index
    front = np.where(body, ap_index, -1).max(axis=1).astype(np.float64)  # (lr, other)
    front[front < 0] = np.nan
    present = ~np.all(np.isnan(front), axis=1)
    profile = np.full(body.shape[0], np.nan)
    profile[present] = np.nanmedian(front[present], axis=1)
    columns = np.nonzero(present)[0]
    low, high = columns.min(), columns.max()
    margin = int(window * (high - low))
    search = np.arange(low + margin, high - margin + 1)
    smooth = ndimage.uniform_filter1d(np.nan_to_num(profile, nan=0.0), 3)
    if search.size:
        # the middle of the lowest stretch, since a cleft can be flat over several columns
        values = smooth[search]
        lowest = np.nonzero(values <= values.min() + 0.5)[0]
        run_start = run_end = int(lowest[np.argmin(values[lowest])])
        while run_start - 1 in lowest:
            run_start -= 1
        while run_end + 1 in lowest:
            run_end += 1
        index = float(search[run_start] + search[run_end]) / 2
    else:
        index = (low + high) / 2
    centre = (np.asarray(volume.shape, dtype=np.float64) - 1) / 2
    centre[lr_axis] = index
    return float((affine[:3, :3] @ centre + affine[:3, 3])[0])


def _series_by_phase(patient_dir: Path, needed: Sequence[str], dynamic: str) -> tuple[dict[str, str], list[str]]:
    """The series folder of every needed phase (by ``SeriesDescription``, falling back to the folder name), all
    from one study.

    The rule for repeated acquisitions: the phases come from the one study (the folder above the series folders)
    that holds every needed phase. Two studies that each hold them all, or two series of one study that fit one
    phase, are refused with a ``ValueError`` naming them (the caller skips the patient and says why), since
    mixing a pre-contrast series of one visit with a post-contrast series of another would subtract unrelated
    images.
    """
    studies: dict[str, dict[str, list[str]]] = {}
    for series in find_dicom_series(patient_dir):
        folder = str(Path(series.files[0]).parent)
        text = series.description or Path(folder).name
        if not re.search(dynamic, text, re.IGNORECASE):
            continue
        for phase in needed:
            if re.search(PHASE_PATTERNS[phase], text, re.IGNORECASE):
                studies.setdefault(str(Path(folder).parent), {}).setdefault(phase, []).append(folder)
                break
    complete = {study: phases for study, phases in studies.items() if all(p in phases for p in needed)}
    if len(complete) > 1:
        names = ", ".join(repr(Path(study).name) for study in sorted(complete))
        raise ValueError(f"{len(complete)} studies hold every needed phase ({names}); keep one study per patient")
    if not complete:
        found = {phase for phases in studies.values() for phase in phases}
        missing = [p for p in needed if p not in found]
        if not missing:  # every phase exists, but no study has them all
            raise ValueError(f"the needed phases {list(needed)} are spread over {len(studies)} studies, none has all")
        return {}, missing
    phases = next(iter(complete.values()))
    repeated = {phase: folders for phase, folders in phases.items() if len(set(folders)) > 1}
    if repeated:
        phase, folders = next(iter(repeated.items()))
        names = ", ".join(repr(Path(f).name) for f in sorted(set(folders)))
        raise ValueError(f"the {phase} phase has {len(set(folders))} series in one study ({names}); keep one")
    return {phase: folders[0] for phase, folders in phases.items() if phase in needed}, []


def _box_side(box: Sequence[int], image, midline: float) -> str:
    meta = image.meta
    x, y, z = box_voxels(box, image.shape[1:], instance_numbers(meta))
    centre = np.array([(x.start + x.stop - 1) / 2, (y.start + y.stop - 1) / 2, float(np.mean(z))])
    affine = np.asarray(meta["affine"], dtype=np.float64)
    world_x = float((affine[:3, :3] @ centre + affine[:3, 3])[0])
    return "left" if world_x < midline else "right"  # RAS: x grows towards the patient's right


def _locate(dataset_dir: str | Path, boxes_file: str | Path | None) -> tuple[Path, Path]:
    root = require_dir(dataset_dir, "Duke")
    images = root / DUKE_FOLDER if (root / DUKE_FOLDER).is_dir() else root
    if boxes_file:
        return images, Path(boxes_file).expanduser()
    for folder in (root, images, images.parent):
        for name in BOX_FILES:
            if (folder / name).is_file():
                return images, folder / name
    raise FileNotFoundError(
        f"no {' or '.join(BOX_FILES)} beside {str(images)!r}; download it from the collection's page or pass "
        "boxes_file."
    )


def duke_datalist(
    dataset_dir: str | Path,
    phases: Sequence[str] = ("pre", "post1-pre"),
    boxes_file: str | Path | None = None,
    cache_file: str | Path | None = None,
    dynamic_pattern: str = DYNAMIC_PATTERN,
    progress: bool = True,
) -> list[dict]:
    """Two items per patient of the Duke collection, its left and its right breast.

    Each patient's series are found by description (``dynamic_pattern`` and :data:`PHASE_PATTERNS`), its
    midline from the pre-contrast series (or the first needed one) and the side of its box from the box's
    centre; this takes a second or so per patient, so it is cached in ``cache_file`` (JSON) when given.
    Patients without a box or without a needed series are skipped, with a warning that lists them.

    Args:
        dataset_dir: the folder holding ``Duke-Breast-Cancer-MRI`` and the boxes file (or that folder itself).
        phases: channels, each a phase (``pre``, ``post1`` .. ``post4``) or a difference (``post1-pre``).
        boxes_file: the boxes spreadsheet or CSV (by default ``Annotation_Boxes.xlsx``/``.csv`` beside the
            images).
        cache_file: JSON cache of each patient's series, midline and box side.
        dynamic_pattern: regular expression a dynamic series' description (or folder name) contains.
        progress: show a progress bar.

    Returns:
        items with ``image`` (the needed series folders, stacked as channels on loading), ``series_phases``,
        ``phases``, ``box``, ``side`` (``"left"``/``"right"``), ``midline`` (RAS x, mm), ``label`` (1 for the
        breast with the box), ``patient`` and ``breast`` (``<patient>_<side>``).
    """
    images, boxes_path = _locate(dataset_dir, boxes_file)
    needed, _ = parse_phases(phases)
    boxes = read_boxes(boxes_path)
    patients = sorted(p for p in images.iterdir() if p.is_dir())
    if not patients:
        raise ValueError(f"{str(images)!r} holds no patient folder; expected {DUKE_FOLDER}/Breast_MRI_NNN/...")
    cache_path = Path(cache_file).expanduser() if cache_file else None
    cache = _read_cache(cache_path)
    reader = SimpleITKReader()
    items, skipped = [], []
    for patient_dir in tqdm(patients, desc="reading Duke series", disable=not progress):
        patient = patient_dir.name
        if patient not in boxes:
            skipped.append(f"{patient} (no box)")
            continue
        key = f"{patient_dir}|{_folder_stamp(patient_dir)}|{','.join(needed)}|{dynamic_pattern}"
        if key not in cache:
            try:
                series, missing = _series_by_phase(patient_dir, needed, dynamic_pattern)
            except ValueError as error:
                skipped.append(f"{patient} ({error})")
                continue
            if missing:
                skipped.append(f"{patient} (no {', '.join(missing)} series)")
                continue
            image = LoadImage(reader=reader, ensure_channel_first=True)(series[needed[0]])
            midline = find_midline(np.asarray(image[0]), np.asarray(image.meta["affine"]))
            cache[key] = {"series": series, "midline": midline, "box_side": _box_side(boxes[patient], image, midline)}
        entry = cache[key]
        for side in ("left", "right"):
            items.append(
                {
                    "image": [entry["series"][p] for p in needed],
                    "series_phases": list(needed),
                    "phases": list(phases),
                    "box": boxes[patient],
                    "side": side,
                    "midline": entry["midline"],
                    "label": int(entry["box_side"] == side),
                    "patient": patient,
                    "breast": f"{patient}_{side}",
                }
            )
    if skipped:
        logger.warning("skipped %d Duke patients: %s", len(skipped), "; ".join(skipped))
    if not items:
        raise ValueError(f"no usable Duke patient under {str(images)!r}; every patient was skipped: {skipped}.")
    if cache_path:
        write_json_atomic(cache_path, cache, indent=1)
    return items


def _folder_stamp(folder: Path) -> str:
    """Count, total size and latest modification of every file under ``folder``: a cache entry about a patient's
    series is stale once a file was added, removed or rewritten anywhere below (a folder's own modification time
    only sees its direct entries)."""
    count = size = latest = 0
    for path in folder.rglob("*"):
        if path.is_file():
            status = path.stat()
            count, size, latest = count + 1, size + status.st_size, max(latest, status.st_mtime_ns)
    return f"{count}:{size}:{latest}"
