# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The paper's evaluation protocol (Sections 4.3-4.5): every method, fitted thresholds, a Table-2 report.

Methods: slice-wise GradCAM and LayerCAM, ToNNO, Averaged LayerCAM and Tomographic LayerCAM, the CAM ones at
each of ``layers``. The volumes are split into a *fitting* half, on which each method's binarisation
threshold and each CAM family's best layer are chosen, and an *evaluation* half, on which the numbers are
reported (so that no number is fitted on the volumes it is reported on). Other methods (e.g. the segmenter
distilled from ToNNO, :func:`~monai_tonno.engines.student_methods`) join the table as ``extra_methods`` and are
fitted and scored by the same protocol.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from monai_tonno.atomic import atomic_write, write_json_atomic
from monai_tonno.engines.studies import StudyFailures, describe_error, study_name
from monai_tonno.engines.threshold_fitting import fit_threshold
from monai_tonno.inferers import SliceCAMInferer, TomographicInferer
from monai_tonno.metrics import LesionDetectionMetric, MaxIoUMetric, VolumeDetectionMetric
from monai_tonno.transforms import Binarize, ConnectedComponents, body_mask, save_threshold
from monai_tonno.visualize.methods_figure import methods_figure

__all__ = [
    "TABLE_COLUMNS",
    "MethodHeatmaps",
    "collect_heatmaps",
    "evaluate_methods",
    "method_families",
    "method_heatmaps",
    "score_methods",
    "table_columns",
    "write_figures",
    "write_report",
    "add_inference_masks",
]

TABLE_COLUMNS = ("precision", "recall", "f1", "f1_pooled", "f1_msseg", "dice", "dice_positive", "balanced_accuracy")
COLUMN_NAMES = {
    "f1_pooled": "F1 pooled",
    "f1_msseg": "F1 MSSEG",
    "dice_positive": "Dice (lesion volumes)",
    "max_iou": "MaxIoU",
}


def columns_note(overlap: str = "dice") -> str:
    """What each column of the report averages."""
    if overlap == "max_iou":
        return (
            "Precision, recall and F1 are means over volumes, in which a volume without lesions and without "
            "components scores 1 (a method that predicts nothing scores the share of such volumes); F1 pooled is "
            "from the lesion counts of all volumes together, in which predicting nothing scores 0; F1 MSSEG pools "
            "the counts of the MSSEG-2016 rule, under which a component that lies mostly outside every lesion finds "
            "none; MaxIoU is the "
            "mean over the volumes with a box; balanced accuracy calls a volume positive when a component survives."
        )
    return (
        "Precision, recall, F1 and Dice are means over volumes, in which a volume without lesions and without "
        "components scores 1 (a method that predicts nothing scores the share of such volumes); F1 pooled is from "
        "the lesion counts of all volumes together and Dice (lesion volumes) the mean over the volumes with "
        "lesions, in both of which predicting nothing scores 0; F1 MSSEG pools the counts of the MSSEG-2016 rule, "
        "under which a component that lies mostly outside every lesion finds none (one mask over a whole organ "
        "then scores 0, not 1); balanced accuracy calls a volume positive when a component survives."
    )


OVERLAPS = ("dice", "max_iou")
FAMILIES = ("GradCAM", "LayerCAM", "ToNNO", "Averaged LayerCAM", "Tomographic LayerCAM")

logger = logging.getLogger(__name__)


def method_heatmaps(
    volume: torch.Tensor,
    network: nn.Module,
    tomographic: TomographicInferer,
    layers: Sequence[str],
    axis: int | str = 2,
) -> dict[tuple[str, str], np.ndarray]:
    """Heatmaps ``(X, Y, Z)`` of every method for one ``(1, C, X, Y, Z)`` volume, keyed ``(family, layer)``."""
    requests = [("tonno", None, None)]
    requests += [(mode, "layercam", layer) for mode in ("averaged_cam", "tomographic_cam") for layer in layers]
    many = tomographic.reconstruct_many(volume, network, requests)
    result = {("ToNNO", ""): many["tonno", None, None]}
    for layer in layers:
        result["Averaged LayerCAM", layer] = many["averaged_cam", "layercam", layer]
        result["Tomographic LayerCAM", layer] = many["tomographic_cam", "layercam", layer]
        for family, method in (("GradCAM", "gradcam"), ("LayerCAM", "layercam")):
            slicewise = SliceCAMInferer(method, layer, axis, tomographic.slice_size, sw_device=tomographic.sw_device)
            result[family, layer] = slicewise(volume, network)
    return {key: np.asarray(value.detach().cpu().float())[0, 0] for key, value in result.items()}


def _scores(
    heatmaps: list[np.ndarray], masks: list[np.ndarray], threshold: float, min_size: float, overlap: str = "dice"
) -> dict:
    components = ConnectedComponents(26, min_size=min_size, relabel=False)
    predictions = [components(torch.as_tensor(h > threshold)[None]) for h in heatmaps]
    truths = [torch.as_tensor(m > 0)[None] for m in masks]
    lesions, volumes, boxes = LesionDetectionMetric(), VolumeDetectionMetric(), MaxIoUMetric()
    for prediction, truth in zip(predictions, truths, strict=True):
        lesions(prediction[None], truth[None])
        volumes(prediction[None], truth[None])
        if overlap == "max_iou":
            boxes(prediction[None], truth[None])
    scores = {**lesions.aggregate(), "balanced_accuracy": volumes.aggregate()}
    if overlap == "max_iou":  # the truth is a box: the overlap of boxes replaces Dice (Section 4.3)
        scores["max_iou"] = boxes.aggregate()  # over the volumes with a box already
        del scores["dice"], scores["dice_positive"]
    return scores


def table_columns(overlap: str = "dice") -> tuple[str, ...]:
    """The report's columns: Table 2's, with MaxIoU in place of Dice when the truths are boxes."""
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}.")
    if overlap == "max_iou":
        return tuple("max_iou" if c == "dice" else c for c in TABLE_COLUMNS if c != "dice_positive")
    return TABLE_COLUMNS


@dataclass
class MethodHeatmaps:
    """Every method's heatmaps of a set of volumes, with their truths: what the protocol scores."""

    heatmaps: dict[tuple[str, str], list[np.ndarray]]
    masks: list[np.ndarray]
    images: list[np.ndarray]
    names: list[str]
    failures: dict[str, str] = field(default_factory=dict)  # volumes that could not be read, and why


def collect_heatmaps(
    items: Sequence[dict],
    network: nn.Module,
    tomographic: TomographicInferer,
    layers: Sequence[str] = ("layer1", "layer2", "layer3", "layer4"),
    axis: int | str = 2,
    progress: bool = True,
    body_channel: int | None = None,
    body_threshold: float = 0.5,
    extra_methods: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> MethodHeatmaps:
    """Run every method on ``items`` (see :func:`evaluate_methods` for the arguments).

    A volume that cannot be read is named in ``failures`` (and logged) and the others are evaluated.
    """
    if len(items) < 2:
        raise ValueError(f"need at least 2 volumes (a fitting and an evaluation one), got {len(items)}.")
    network.eval()
    collected = MethodHeatmaps({}, [], [], [])
    raw = getattr(items, "data", None)  # a MONAI Dataset: the datalist items, to name a volume it cannot read
    for index in tqdm(range(len(items)), desc="evaluating methods", disable=not progress):
        try:
            item = items[index]
        except Exception as error:  # one unreadable volume is named; the others are evaluated
            name = study_name(raw[index]) if raw is not None else f"volume {index}"
            collected.failures[name] = describe_error(error)
            logger.error("could not read %s: %s", name, collected.failures[name])
            continue
        image = torch.as_tensor(item["image"]).float()[None]
        collected.images.append(np.asarray(image[0].cpu()))
        collected.names.append(f"{index:03d}_{item.get('breast') or item.get('patient', 'volume')}")
        body = 1.0 if body_channel is None else body_mask(image[0], body_channel, body_threshold)
        heatmaps = method_heatmaps(image, network, tomographic, layers, axis)
        for name, method in (extra_methods or {}).items():
            heatmaps[name, ""] = _extra_heatmap(name, method, image)
        for key, heatmap in heatmaps.items():
            collected.heatmaps.setdefault(key, []).append(heatmap * body)
        mask = np.asarray(torch.as_tensor(item["mask"]).cpu())
        collected.masks.append(mask.reshape(mask.shape[-3:]))
    if len(collected.names) < 2:
        raise StudyFailures("evaluation needs at least 2 readable volumes", collected.failures, len(collected.names))
    return collected


def _extra_heatmap(name: str, method: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        heatmap = torch.as_tensor(method(image)).detach().cpu().float()
    if tuple(heatmap.shape[-3:]) != tuple(image.shape[-3:]) or heatmap.numel() != image[0, 0].numel():
        raise ValueError(
            f"the method {name!r} gave a heatmap of shape {tuple(heatmap.shape)} for a volume of shape "
            f"{tuple(image.shape)}; expected one value per voxel, (1, 1, X, Y, Z)."
        )
    return np.asarray(heatmap.reshape(image.shape[-3:]))


def method_families(rows: Sequence[dict]) -> list[str]:
    """The families of ``rows`` in the table's order: the paper's methods, then any other method in order."""
    present = dict.fromkeys(row["family"] for row in rows)
    return [family for family in FAMILIES if family in present] + [f for f in present if f not in FAMILIES]


CALIBRATED_TONNO = "ToNNO (inference masks)"


def score_methods(
    collected: MethodHeatmaps,
    fit_score: str = "f1",
    min_size: float = 8,
    overlap: str = "dice",
    fixed_thresholds: Mapping[str, float] | None = None,
) -> list[dict]:
    """Fit each method's threshold on the even volumes, score it on the odd ones, mark each family's best layer.

    ``overlap="max_iou"`` when the truths are boxes (Duke): MaxIoU replaces Dice among the scores. A family in
    ``fixed_thresholds`` is not fitted: its heatmaps are cut at that value (masks already made, e.g. the masks
    inference writes, at 0.5), and its fitting score is NaN.
    """
    table_columns(overlap)
    masks = collected.masks
    fit, held = slice(0, None, 2), slice(1, None, 2)
    rows = []
    for (family, layer), maps in collected.heatmaps.items():
        if family in (fixed_thresholds or {}):
            threshold, fitted = float(fixed_thresholds[family]), float("nan")
        else:
            threshold, fitted = fit_threshold(maps[fit], masks[fit], score=fit_score, min_size=min_size)
        rows.append({"family": family, "layer": layer, "threshold": threshold, f"fit_{fit_score}": fitted,
                     **_scores(maps[held], masks[held], threshold, min_size, overlap)})  # fmt: skip
    for family in method_families(rows):
        candidates = [row for row in rows if row["family"] == family]
        best = max(candidates, key=lambda row: np.nan_to_num(row[f"fit_{fit_score}"], nan=-np.inf))
        for row in candidates:
            row["best_layer"] = row is best
    return rows


def add_inference_masks(
    collected: MethodHeatmaps, threshold_file: str | Path | None, model_file: str | Path | None, min_size: float = 8
) -> dict[str, float]:
    """Add the masks inference makes from ToNNO's heatmaps (hysteresis from the calibrated detection threshold)
    as the family ``ToNNO (inference masks)``; returns its fixed threshold for :func:`score_methods` (none when
    ``threshold_file`` does not exist: training did not calibrate)."""
    if threshold_file is None or not Path(threshold_file).is_file():
        if threshold_file is not None:
            logger.info("no calibrated threshold at %s: the masks inference writes are not scored", threshold_file)
        return {}
    binarize = Binarize("hysteresis", threshold_file=str(threshold_file), seed_min_size=min_size,
                        model_file=None if model_file is None else str(model_file))  # fmt: skip
    tonno = collected.heatmaps["ToNNO", ""]
    collected.heatmaps[CALIBRATED_TONNO, ""] = [np.asarray(binarize(torch.as_tensor(h)[None]))[0] for h in tonno]
    return {CALIBRATED_TONNO: 0.5}


def evaluate_methods(
    items: Sequence[dict],
    network: nn.Module,
    tomographic: TomographicInferer,
    layers: Sequence[str] = ("layer1", "layer2", "layer3", "layer4"),
    fit_score: str = "f1",
    min_size: float = 8,
    axis: int | str = 2,
    output_dir: str | Path | None = None,
    progress: bool = True,
    body_channel: int | None = None,
    body_threshold: float = 0.5,
    overlap: str = "dice",
    raise_on_failure: bool = True,
    model_note: str | None = None,
    extra_methods: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    threshold_file: str | Path | None = None,
    model_file: str | Path | None = None,
) -> list[dict]:
    """Run every method on ``items`` and score it on the evaluation half with thresholds fitted on the other.

    Args:
        items: dictionaries with ``image`` ``(C, X, Y, Z)`` and ``mask`` ``(X, Y, Z)`` (or ``(1, X, Y, Z)``),
            preprocessed as for inference; alternate items go to the fitting and the evaluation halves.
        network: the trained slice classifier (put in eval mode here).
        tomographic: the inferer whose L, M and slice size are used (its ``slice_size`` is also the slice-wise
            baselines' input size, and its ``sw_device``, e.g. ``"cuda"``, where every method runs the network).
        layers: the layers of the CAM methods.
        fit_score: ``"f1"``, ``"f1_msseg"`` or ``"dice"``, the score the thresholds and layers are chosen by.
        min_size: components smaller than this many voxels are dropped before scoring.
        axis: the slicing axis of the slice-wise baselines (``"mean"`` for the three axes).
        output_dir: where to write ``methods.csv``, ``table.md``, ``table.json``, ``threshold.json`` (ToNNO's) and
            ``figures/``: one PNG per evaluated volume, three views through its largest lesion of the input and of
            every family's best-layer heatmap with its mask outlined against the truth.
        progress: show a progress bar over volumes.
        body_channel: when given, every method's heatmap is set to zero outside the body found in this channel
            of the image (:func:`~monai_tonno.transforms.body_mask`), as inference does with ``RestrictToBodyd``.
        body_threshold: the body's threshold in that channel's normalised units.
        overlap: ``"dice"``, or ``"max_iou"`` when the masks are boxes (the IoU of the truth's box and the best
            matching predicted component's box replaces Dice; lesion precision is then pessimistic, since a
            second tumour outside the one box counts as a false positive).
        model_note: a line written above the table (e.g. :func:`~monai_tonno.engines.readiness_note`: whether
            the model was ready).
        raise_on_failure: when volumes could not be read, end with
            :class:`~monai_tonno.engines.StudyFailures` naming them, once the others are scored and the report
            written (so that the command exits non-zero).

        extra_methods: more methods, by name: each maps a ``(1, C, X, Y, Z)`` volume to its ``(1, 1, X, Y, Z)``
            heatmap on the same grid (e.g. :func:`~monai_tonno.engines.student_methods`). Their thresholds are
            fitted like the others'.
        threshold_file: the detection threshold calibrated at the end of training (``threshold.json`` beside the
            model). When it exists, a row ``ToNNO (inference masks)`` scores the masks inference makes from
            ToNNO's heatmaps (the volume-label hysteresis, :class:`~monai_tonno.transforms.Binarize`), with no
            threshold fitted on the evaluation's masks.
        model_file: the model ``threshold_file`` must have been calibrated for.

    Returns:
        one row per method and layer: family, layer, the threshold, the fitting score, the table's columns and
        whether the layer is its family's best.
    """
    table_columns(overlap)
    collected = collect_heatmaps(
        items, network, tomographic, layers, axis, progress, body_channel, body_threshold, extra_methods
    )
    fixed = add_inference_masks(collected, threshold_file, model_file, min_size)
    rows = score_methods(collected, fit_score, min_size, overlap, fixed)
    if output_dir is not None:
        write_report(rows, output_dir, fit_score, overlap, model_note)
        write_figures(collected, rows, Path(output_dir) / "figures", min_size)
        tonno = next(row for row in rows if row["family"] == "ToNNO")
        save_threshold(
            Path(output_dir) / "threshold.json",
            tonno["threshold"],
            fit_score,
            tonno[f"fit_{fit_score}"],
            method="ToNNO",
        )
    if collected.failures and raise_on_failure:
        where = f"; the report of the {len(collected.names)} others is in {str(output_dir)!r}" if output_dir else ""
        raise StudyFailures(f"evaluation{where}", collected.failures, len(collected.names))
    return rows


def write_figures(collected: MethodHeatmaps, rows: Sequence[dict], folder: Path, min_size: float = 8) -> None:
    """One PNG per evaluated (odd) volume: the input and each family's best heatmap with its mask and the truth."""
    best = [row for row in rows if row.get("best_layer", True)]
    components = ConnectedComponents(26, min_size=min_size, relabel=False)
    for index in range(len(collected.masks))[1::2]:
        methods = {}
        for row in best:
            heatmap = collected.heatmaps[row["family"], row["layer"]][index]
            mask = np.asarray(components(torch.as_tensor(heatmap > row["threshold"])[None]))[0]
            methods[f"{row['family']} ({row['layer']})" if row["layer"] else row["family"]] = (heatmap, mask)
        methods_figure(
            collected.images[index], collected.masks[index], methods, folder / f"{collected.names[index]}.png"
        )


def write_report(
    rows: Sequence[dict],
    output_dir: str | Path,
    fit_score: str = "f1",
    overlap: str = "dice",
    model_note: str | None = None,
) -> str:
    """Write ``methods.csv`` (every row), ``table.json`` and ``table.md`` (best layer per family, Table 2's shape,
    under ``model_note`` when given)."""
    columns = table_columns(overlap)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "methods.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best = [row for row in rows if row.get("best_layer", True)]
    write_json_atomic(folder / "table.json", best)
    baseline = next((row for row in best if row["family"] == "LayerCAM"), None)
    names = COLUMN_NAMES
    lines = [model_note, ""] if model_note else []
    lines += ["| Method | " + " | ".join(names.get(c, c.replace("_", " ").capitalize()) for c in columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for family in method_families(best):
        row = next(r for r in best if r["family"] == family)
        name = f"{family} ({row['layer']})" if row["layer"] else family
        cells = []
        for column in columns:
            cell = f"{row[column]:.2f}"
            if baseline is not None and row is not baseline:
                cell += f" ({row[column] - baseline[column]:+.2f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + f"\n\nThresholds and layers fitted on alternate volumes by {fit_score}; "
    table += "differences with slice-wise LayerCAM in brackets. " + columns_note(overlap) + "\n"
    with atomic_write(folder / "table.md") as handle:
        handle.write(table)
    return table
