# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Pieces that MONAI engines and the bundles need to train a slice classifier from volume labels."""

from monai_tonno.engines.averaging import ema_handler
from monai_tonno.engines.calibration import calibrate_detection_threshold, warn_uncalibrated
from monai_tonno.engines.checkpoints import (
    AtomicCheckpointSaver,
    RandomStates,
    check_resumable,
    latest_checkpoint,
    resume_handlers,
)
from monai_tonno.engines.distillation import (
    SigmoidSlidingWindowInferer,
    check_student_resumable,
    pseudo_labelled,
    save_student,
    student_methods,
)
from monai_tonno.engines.evaluation import (
    TABLE_COLUMNS,
    MethodHeatmaps,
    collect_heatmaps,
    evaluate_methods,
    method_families,
    method_heatmaps,
    score_methods,
    write_figures,
    write_report,
)
from monai_tonno.engines.losses import DiceCEIgnoreLoss, SliceBCEWithLogitsLoss, SliceMILLoss
from monai_tonno.engines.outputs import slice_predictions, volume_peaks, volume_predictions
from monai_tonno.engines.readiness import (
    READINESS_KEY,
    ReadinessRecord,
    TrainingReadiness,
    read_readiness,
    readiness_note,
    warn_if_unready,
)
from monai_tonno.engines.samplers import DistributedReplacementSampler, class_balanced_weights
from monai_tonno.engines.studies import (
    StudyFailures,
    StudyReport,
    completed_outputs,
    infer_studies,
    run_fingerprint,
    study_name,
)
from monai_tonno.engines.threshold_fitting import (
    FIT_SCORES,
    fit_detection_threshold,
    fit_threshold,
    threshold_from_peaks,
)

__all__ = [
    "FIT_SCORES",
    "fit_detection_threshold",
    "fit_threshold",
    "threshold_from_peaks",
    "READINESS_KEY",
    "TABLE_COLUMNS",
    "ReadinessRecord",
    "TrainingReadiness",
    "read_readiness",
    "readiness_note",
    "warn_if_unready",
    "volume_peaks",
    "AtomicCheckpointSaver",
    "RandomStates",
    "DiceCEIgnoreLoss",
    "DistributedReplacementSampler",
    "MethodHeatmaps",
    "SliceBCEWithLogitsLoss",
    "StudyFailures",
    "StudyReport",
    "completed_outputs",
    "SliceMILLoss",
    "calibrate_detection_threshold",
    "check_resumable",
    "class_balanced_weights",
    "collect_heatmaps",
    "ema_handler",
    "evaluate_methods",
    "method_families",
    "infer_studies",
    "pseudo_labelled",
    "check_student_resumable",
    "save_student",
    "SigmoidSlidingWindowInferer",
    "student_methods",
    "run_fingerprint",
    "study_name",
    "warn_uncalibrated",
    "method_heatmaps",
    "write_report",
    "latest_checkpoint",
    "resume_handlers",
    "score_methods",
    "slice_predictions",
    "volume_predictions",
    "write_figures",
]
