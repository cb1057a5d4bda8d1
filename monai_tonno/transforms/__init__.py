# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""MONAI transforms of monai_tonno."""

from monai_tonno.transforms.array import ObliqueSlice, RandObliqueSlice
from monai_tonno.transforms.body import BodyMask, RestrictToBodyd, body_mask
from monai_tonno.transforms.breast import BoxMaskd, BreastSided, DCEChannelsd, breast_output_name
from monai_tonno.transforms.dictionary import Binarized, ConnectedComponentsd, ObliqueSliced, RandObliqueSliced
from monai_tonno.transforms.postprocess import BINARIZE_STRATEGIES, Binarize, ConnectedComponents, otsu_threshold
from monai_tonno.transforms.pseudo_label import IGNORE_VALUE, EmptyNegatived, IgnoreBandd
from monai_tonno.transforms.threshold import (
    FIT_SCORES,
    detection_peak,
    fit_detection_threshold,
    fit_threshold,
    load_threshold,
    save_threshold,
    separation_p_value,
    threshold_from_peaks,
)

__all__ = [
    "BINARIZE_STRATEGIES",
    "FIT_SCORES",
    "IGNORE_VALUE",
    "Binarize",
    "Binarized",
    "BodyMask",
    "BoxMaskd",
    "BreastSided",
    "ConnectedComponents",
    "ConnectedComponentsd",
    "DCEChannelsd",
    "EmptyNegatived",
    "IgnoreBandd",
    "ObliqueSlice",
    "ObliqueSliced",
    "RandObliqueSlice",
    "RandObliqueSliced",
    "RestrictToBodyd",
    "body_mask",
    "breast_output_name",
    "detection_peak",
    "fit_detection_threshold",
    "separation_p_value",
    "threshold_from_peaks",
    "fit_threshold",
    "load_threshold",
    "otsu_threshold",
    "save_threshold",
]
