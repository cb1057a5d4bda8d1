# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Distillation: ToNNO's masks of the training studies as the labels of a 3D segmenter.

The pseudo-labels are written once by :func:`~monai_tonno.engines.infer_studies` (so they resume after a kill and
are redone when the teacher, its threshold or the settings change); :func:`pseudo_labelled` reads the records
back, checks that every label came from this teacher with these settings, and gives the segmenter's datalist in
MONAI's convention (``image`` and ``label``, the volume label kept as ``volume_label``). A student resumes only
from checkpoints of the same teacher (:func:`check_student_resumable`), and its ``model.pt`` is written once
training has completed (:func:`save_student`), so a killed run never leaves a half-trained model under the name
segmentation loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer, SlidingWindowInferer
from torch import nn

from monai_tonno.atomic import torch_save_atomic
from monai_tonno.engines.checkpoints import latest_checkpoint, planned_iterations_differ
from monai_tonno.engines.studies import completed_outputs, run_fingerprint, study_name

__all__ = [
    "SigmoidSlidingWindowInferer",
    "check_student_resumable",
    "pseudo_labelled",
    "save_student",
    "student_methods",
]


def pseudo_labelled(
    items: Sequence[Mapping[str, Any]],
    record_dir: str | Path,
    depends_on: Sequence[str | Path | None] = (),
    settings: Mapping[str, Any] | None = None,
    postfix: str = "mask",
    label_key: str = "label",
    heatmap_postfix: str = "heatmap",
) -> list[dict]:
    """The items with their pseudo-label: ``label`` the mask file, ``heatmap`` the teacher's heatmap file (when
    the run wrote one), ``volume_label`` the study's class.

    Args:
        items: the datalist items that were pseudo-labelled.
        record_dir: the ``record_dir`` of the :func:`~monai_tonno.engines.infer_studies` run that wrote them.
        depends_on: that run's ``depends_on`` (the teacher's model and threshold files).
        settings: that run's ``settings``.
        postfix: the ``output_postfix`` of the mask's ``SaveImaged``.
        label_key: the items' volume-label key.
        heatmap_postfix: the ``output_postfix`` of the heatmap's ``SaveImaged``.

    Raises:
        ValueError: naming every study without a complete pseudo-label from this teacher and these settings (a
            label from another teacher would silently train the student on the wrong masks).
    """
    fingerprint = run_fingerprint(depends_on, settings)
    labelled, missing = [], []
    for item in items:
        outputs = completed_outputs(record_dir, item, fingerprint)
        if outputs is None:
            missing.append(study_name(item))
            continue
        masks, heatmaps = ([path for path in outputs if Path(path).name.split(".")[0].endswith(f"_{end}")]
                           for end in (postfix, heatmap_postfix))  # fmt: skip
        if len(masks) != 1:
            missing.append(f"{study_name(item)} (its record lists {len(masks)} files ending in _{postfix})")
            continue
        heatmap = {"heatmap": heatmaps[0]} if len(heatmaps) == 1 else {}
        labelled.append({**item, **heatmap, "volume_label": item[label_key], "label": masks[0]})
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(items)} studies have no pseudo-label from this teacher and these settings in "
            f"{str(record_dir)!r}: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; run the "
            "pseudo-labelling step (it resumes) before training the segmenter."
        )
    return labelled


def check_student_resumable(
    segmenter_dir: str | Path, config: Mapping[str, Any], resume: bool = True, total_iterations: int | None = None
) -> None:
    """Before a student resumes from ``segmenter_dir/checkpoints``, check that it continues the same run: the same
    network, crop size, teacher (the fingerprint of its pseudo-labels) and planned iterations.

    Raises:
        ValueError: naming what differs (resuming a student of another teacher would mix two sets of labels).
    """
    from monai_tonno.networks.segmenter import load_segmenter_config

    folder = Path(segmenter_dir)
    latest = latest_checkpoint(folder / "checkpoints") if resume else None
    if latest is None:
        return
    differences = []
    if (folder / "network.json").is_file():
        saved = load_segmenter_config(folder / "network.json")
        differences += [
            f"{key}: trained with {saved.get(key)!r}, now {config.get(key)!r}"
            for key in ("network", "roi_size", "preprocessing", "teacher", "ignore_band")
            if saved.get(key) != json.loads(json.dumps(config.get(key)))
        ]
    differences += planned_iterations_differ(latest, total_iterations)
    if differences:
        raise ValueError(
            f"cannot resume the segmenter from {str(latest)!r}, which belongs to another run "
            f"({'; '.join(differences)}). Pass the same settings, or start afresh with --resume false or another "
            "--output_dir."
        )


def save_student(network: nn.Module, segmenter_dir: str | Path) -> Path:
    """Write the trained student's weights as ``segmenter_dir/model.pt`` (atomically)."""
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    return torch_save_atomic(state, Path(segmenter_dir) / "model.pt")


class SigmoidSlidingWindowInferer(Inferer):
    """A segmenter's foreground probability: one sliding-window pass over a ``(B, C, X, Y, Z)`` volume, then the
    sigmoid, ``(B, 1, X, Y, Z)`` on the volume's device (what ``segment.json`` infers, as one inferer, so that the
    student's calibration and evaluation see exactly its probabilities).

    Args:
        roi_size: the window, the crop size the segmenter was trained on.
        sw_batch_size: windows per forward pass.
        overlap: the windows' overlap.
        sw_device: where the network runs.
    """

    def __init__(
        self,
        roi_size: Sequence[int],
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        sw_device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.window = SlidingWindowInferer(list(roi_size), sw_batch_size, overlap, mode="gaussian", sw_device=sw_device)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        with torch.no_grad():
            return torch.sigmoid(self.window(inputs, network, *args, **kwargs).float())


def student_methods(
    ckpt_path: str | Path,
    preprocessing: Mapping[str, Any],
    device: str | torch.device = "cpu",
    sw_batch_size: int = 4,
    overlap: float = 0.25,
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The distilled segmenter of ``ckpt_path`` as one more method of
    :func:`~monai_tonno.engines.evaluate_methods`: ``{"ToNNO -> <network>": its probability}``.

    Args:
        ckpt_path: the segmenter's ``model.pt`` (its ``network.json`` beside it).
        preprocessing: the preprocessing of the volumes it will be given (the classifier's ``network.json``'s).

    Raises:
        ValueError: when the segmenter was trained on other preprocessing (other voxels or intensities would give
            it inputs it never saw, and a silently wrong row).
    """
    from monai_tonno.networks.segmenter import load_segmenter, load_segmenter_config

    config = load_segmenter_config(ckpt_path)
    trained_on = json.loads(json.dumps(config["preprocessing"]))
    if trained_on != json.loads(json.dumps(dict(preprocessing))):
        raise ValueError(
            f"the segmenter {str(ckpt_path)!r} was trained on preprocessing {trained_on}, but the volumes are "
            f"preprocessed with {dict(preprocessing)}; distil it again from this classifier (distill.json)."
        )
    network = load_segmenter(ckpt_path, config).to(device)
    inferer = SigmoidSlidingWindowInferer(config["roi_size"], sw_batch_size, overlap, sw_device=device)
    name = {"unet": "UNet", "segresnet": "SegResNet"}.get(config["network"]["name"], config["network"]["name"])
    return {f"ToNNO -> {name}": lambda volume: inferer(volume, network)}
