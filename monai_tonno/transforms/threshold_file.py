# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The threshold file beside a model: written by the calibration, read back by inference's binarisation, and
checked against the model it is applied with."""

from __future__ import annotations

import json
import math
from pathlib import Path

from monai_tonno.atomic import file_digest, write_json_atomic
from monai_tonno.paths import require_file

__all__ = ["load_threshold", "save_threshold"]


def save_threshold(
    path: str | Path, threshold: float, score: str, value: float, model_file: str | Path | None = None, **details
) -> Path:
    """Write ``{"threshold", "score", "value", ...}`` as JSON (next to the model it belongs to), atomically.

    Args:
        path: the JSON file.
        threshold: the threshold.
        score: the name of the score it was chosen by, and ``value`` its value.
        model_file: the model whose heatmaps the threshold was fitted on: its SHA-256 is recorded, and
            :func:`load_threshold` refuses the threshold for another model.
        details: anything else worth recording (e.g. the directions used).
    """
    if not math.isfinite(float(threshold)):
        raise ValueError(f"refusing to save a threshold of {threshold} to {str(path)!r}: it must be finite.")
    record = {"threshold": float(threshold), "score": score, "value": value, **details}
    if model_file is not None:
        record["model_sha256"] = file_digest(model_file)
    return write_json_atomic(path, record)


def load_threshold(path: str | Path, model_file: str | Path | None = None) -> float:
    """The threshold saved by :func:`save_threshold`; a clear error when the file is missing or malformed, or when
    it was fitted for another model than ``model_file``.

    Args:
        path: the JSON file.
        model_file: the model the threshold is about to be applied with; ``None`` checks nothing.
    """
    path = Path(path)
    require_file(path, "fitted threshold file; fit one on validation volumes first")
    try:
        record = json.loads(path.read_text())
        threshold = record["threshold"]
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{str(path)!r} holds no fitted threshold: {error}") from error
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"{str(path)!r} holds the threshold {threshold!r}; a finite number was expected.")
    if model_file is not None:
        recorded = record.get("model_sha256")
        if recorded is None:
            raise ValueError(
                f"{str(path)!r} does not say which model it was calibrated for, so it cannot be checked against "
                f"{str(model_file)!r}. Rerun the training command (it resumes at its end and calibrates again) or "
                "delete the file to binarise with Otsu's threshold."
            )
        if recorded != file_digest(model_file):
            raise ValueError(
                f"{str(path)!r} was calibrated for another model than {str(model_file)!r} (the model's content "
                "differs from the one it was fitted on: a model copied from another run, or retrained since). Rerun "
                "the training command to calibrate this model, or delete the file to binarise with Otsu's threshold."
            )
    return float(threshold)
