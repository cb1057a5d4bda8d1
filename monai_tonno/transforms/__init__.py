# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""MONAI transforms of monai_tonno, by family as MONAI's own (each an ``array.py`` and a ``dictionary.py``):
``slicing`` (oblique slices), ``post`` (binarisation, connected components), ``body`` (the body mask); and the
pseudo-label transforms of distillation and the threshold file."""

import importlib
import warnings

from monai_tonno.transforms.body import BodyMask, RestrictToBodyd, body_mask
from monai_tonno.transforms.post import (
    BINARIZE_STRATEGIES,
    Binarize,
    Binarized,
    ConnectedComponents,
    ConnectedComponentsd,
    detection_peak,
    otsu_threshold,
)
from monai_tonno.transforms.pseudo_label import IGNORE_VALUE, EmptyNegatived, IgnoreBandd
from monai_tonno.transforms.slicing import ObliqueSlice, ObliqueSliced, RandObliqueSlice, RandObliqueSliced
from monai_tonno.transforms.threshold_file import load_threshold, save_threshold

__all__ = [
    "BINARIZE_STRATEGIES",
    "IGNORE_VALUE",
    "Binarize",
    "Binarized",
    "BodyMask",
    "ConnectedComponents",
    "ConnectedComponentsd",
    "EmptyNegatived",
    "IgnoreBandd",
    "ObliqueSlice",
    "ObliqueSliced",
    "RandObliqueSlice",
    "RandObliqueSliced",
    "RestrictToBodyd",
    "body_mask",
    "detection_peak",
    "load_threshold",
    "otsu_threshold",
    "save_threshold",
]

# Names that lived here before they moved to the package of their job: the breast transforms beside the Duke
# reader they need, the threshold fitting beside the engines that fit, the p-value among the metrics.
_MOVED = {
    "BoxMaskd": "monai_tonno.data",
    "BreastSided": "monai_tonno.data",
    "DCEChannelsd": "monai_tonno.data",
    "breast_output_name": "monai_tonno.data",
    "FIT_SCORES": "monai_tonno.engines",
    "fit_detection_threshold": "monai_tonno.engines",
    "fit_threshold": "monai_tonno.engines",
    "threshold_from_peaks": "monai_tonno.engines",
    "separation_p_value": "monai_tonno.metrics",
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module 'monai_tonno.transforms' has no attribute {name!r}")
    warnings.warn(
        f"monai_tonno.transforms.{name} moved to {_MOVED[name]}.{name}; import it from there.",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(_MOVED[name]), name)
