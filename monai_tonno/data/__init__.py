# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Phantoms and dataset readers."""

from monai_tonno.data.breast import BoxMaskd, BreastSided, DCEChannelsd, breast_output_name
from monai_tonno.data.datalists import (
    alternate_by_label,
    autopet_datalist,
    check_training_split,
    mosmed_datalist,
    require_file,
    select_items,
    split_by_patient,
)
from monai_tonno.data.dicom_writer import write_dicom_series
from monai_tonno.data.duke import alternate_patients, box_voxels, duke_datalist, find_midline, parse_phases, read_boxes
from monai_tonno.data.ellipsoids import SHEPP_LOGAN_3D, ellipsoid_phantom
from monai_tonno.data.fitting import DatasetGeometry, FittedPreprocessing, dataset_geometry, fit_preprocessing
from monai_tonno.data.loading import StrictLoadImaged
from monai_tonno.data.sitk_reader import SimpleITKReader, find_dicom_series
from monai_tonno.data.synthetic_breast import (
    SyntheticBreastConfig,
    duke_or_synthetic,
    generate_synthetic_duke,
    synthetic_breast_case,
)
from monai_tonno.data.synthetic_chest import (
    SyntheticChestCTConfig,
    generate_synthetic_mosmed,
    mosmed_or_synthetic,
    synthetic_chest_case,
)
from monai_tonno.data.synthetic_petct import (
    SyntheticPETCTConfig,
    autopet_or_synthetic,
    generate_synthetic_autopet,
    synthetic_petct_case,
)
from monai_tonno.data.writers import AtomicNibabelWriter

__all__ = [
    "BoxMaskd",
    "BreastSided",
    "DCEChannelsd",
    "breast_output_name",
    "AtomicNibabelWriter",
    "DatasetGeometry",
    "FittedPreprocessing",
    "dataset_geometry",
    "fit_preprocessing",
    "alternate_by_label",
    "SHEPP_LOGAN_3D",
    "SimpleITKReader",
    "StrictLoadImaged",
    "SyntheticBreastConfig",
    "SyntheticChestCTConfig",
    "SyntheticPETCTConfig",
    "alternate_patients",
    "autopet_datalist",
    "autopet_or_synthetic",
    "box_voxels",
    "check_training_split",
    "duke_datalist",
    "duke_or_synthetic",
    "ellipsoid_phantom",
    "find_dicom_series",
    "find_midline",
    "generate_synthetic_autopet",
    "generate_synthetic_duke",
    "generate_synthetic_mosmed",
    "mosmed_datalist",
    "mosmed_or_synthetic",
    "parse_phases",
    "read_boxes",
    "require_file",
    "select_items",
    "split_by_patient",
    "synthetic_breast_case",
    "synthetic_chest_case",
    "synthetic_petct_case",
    "write_dicom_series",
]
