# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The mask threshold of inference, calibrated at the end of training from the validation volumes' labels."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from monai_tonno.engines.readiness import read_readiness
from monai_tonno.engines.threshold_fitting import threshold_from_peaks
from monai_tonno.inferers import TomographicInferer, UntilConverged, detection_peaks
from monai_tonno.metrics import separation_p_value
from monai_tonno.transforms import save_threshold

__all__ = ["calibrate_detection_threshold", "warn_uncalibrated"]

logger = logging.getLogger(__name__)

OTSU_FALLBACK = "Otsu's threshold per study, which finds components in every study, with or without a lesion"


def calibrate_detection_threshold(
    items: Sequence[dict],
    network: nn.Module,
    inferer: TomographicInferer | Callable[[torch.Tensor, nn.Module], torch.Tensor],
    output_file: str | Path,
    min_size: float = 8,
    body_channel: int | None = None,
    body_threshold: float = 0.5,
    progress: bool = True,
    model_file: str | Path | None = None,
    significance: float = 0.05,
    method: str = "ToNNO",
    fallback: str = OTSU_FALLBACK,
) -> float | None:
    """Fit ToNNO's detection threshold on labelled validation volumes and save it for inference's ``hysteresis``
    (or ``fitted``) binarisation.

    Each volume's ToNNO heatmap is restricted to the body (as inference does) and the threshold that best
    separates the volumes with a lesion from those without (:func:`~monai_tonno.engines.fit_detection_threshold`)
    is written to ``output_file``. Only the volume labels are used, so no lesion mask is needed. A per-volume
    threshold such as Otsu's always finds something, so without this every lesion-free volume gets components.

    Args:
        items: preprocessed validation items with ``image`` ``(C, X, Y, Z)`` and ``label``.
        network: the trained slice classifier (the one inference will load), or the distilled segmenter.
        inferer: the tomographic inferer, with inference's L, M and slice size; or any ``(inputs, network)`` to
            ``(B, 1, X, Y, Z)`` heatmap inferer (the segmenter's
            :class:`~monai_tonno.engines.SigmoidSlidingWindowInferer`).
        output_file: where to write the threshold JSON.
        min_size: the smallest component kept at inference, in voxels.
        body_channel: the channel the body is found in (``None``: no restriction), as ``RestrictToBodyd``.
        body_threshold: the body's threshold in that channel's normalised units.
        progress: show a progress bar over volumes.
        model_file: the file ``network`` was loaded from; its SHA-256 goes into the threshold file, so that
            inference refuses the threshold with any other model.
        significance: the largest chance of reaching the observed separation by luck
            (:func:`~monai_tonno.metrics.separation_p_value`, which accounts for how few volumes there are and
            for the threshold being the best of many) at which a threshold is still written.
        method: the heatmaps' method, recorded in the file (``"ToNNO"``, or the segmenter's).
        fallback: what inference cuts the heatmaps at without a threshold, for the warning.

    Returns:
        The threshold, or ``None`` (with a warning, and any earlier ``output_file`` removed so that inference does
        not use a stale one) when the volumes are all of one label or no threshold separates them.
    """
    output_file = Path(output_file)
    labels = [int(item["label"]) for item in items]
    if set(labels) != {0, 1}:
        return _no_threshold(
            output_file,
            fallback,
            f"the {len(labels)} calibration volumes have labels {sorted(set(labels))}, and both a volume with and "
            "one without a lesion are needed",
        )
    network.eval()
    peaks = [
        detection_peaks(torch.as_tensor(item["image"]).float()[None], network, inferer, min_size, body_channel,
                        body_threshold)[0]
        for item in tqdm(items, desc="calibrating the mask threshold", disable=not progress)
    ]  # fmt: skip
    if not any(np.isfinite(peaks)):
        return _no_threshold(output_file, fallback, f"no calibration heatmap has a component of {min_size} voxels")
    threshold, accuracy = threshold_from_peaks(peaks, labels)
    chance = separation_p_value(peaks, labels)
    if accuracy <= 0.5 or chance > significance:
        return _no_threshold(
            output_file,
            fallback,
            f"the {len(labels)} calibration volumes ({sum(labels)} with lesions) are told apart with a balanced "
            f"accuracy of {accuracy:.2f}, which chance reaches with probability {chance:.2f} (more than "
            f"{significance}): the classifier has not learnt to find lesions; train longer (more --max_iterations) "
            "or calibrate on more volumes (a larger --val_fraction)",
        )
    readiness = read_readiness(model_file) if model_file is not None else None
    directions = {key: getattr(inferer, key) for key in ("num_angles", "num_slices") if hasattr(inferer, key)}
    if isinstance(directions.get("num_angles"), UntilConverged):  # recorded as its settings
        directions["num_angles"] = dataclasses.asdict(directions["num_angles"])
    save_threshold(output_file, threshold, "volume_balanced_accuracy", accuracy, model_file, method=method,
                   volumes=len(items), p_value=chance, readiness=readiness, **directions)  # fmt: skip
    logger.info("mask threshold %.4g (volume balanced accuracy %.2f on %d volumes, chance %.3g) -> %s", threshold,
                accuracy, len(items), chance, output_file)  # fmt: skip
    return threshold


def _no_threshold(output_file: Path, fallback: str, why: str) -> None:
    if output_file.is_file():
        output_file.unlink()  # an earlier training's threshold does not belong to this model
    logger.warning(
        "no mask threshold calibrated: %s. Inference will use %s.",
        why,
        fallback,
    )


def warn_uncalibrated(threshold_file: str | Path, fallback: str = OTSU_FALLBACK) -> None:
    """Inference's warning before it writes masks without a calibrated threshold beside the model."""
    logger.warning(
        "no calibrated mask threshold at %s: the masks are cut at %s. Training writes it when its model tells the "
        "calibration studies apart better than chance; when training warned 'no mask threshold calibrated', "
        "train longer before trusting these masks.",
        threshold_file,
        fallback,
    )
