# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Output transforms from an evaluator's decollated output of :class:`SliceSamplingInferer` (slice logits) or
:class:`ValidationInferer` (``{"slices", "peak"}``) to metric inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["slice_predictions", "volume_peaks", "volume_predictions"]


def _items(output: Sequence[dict] | dict) -> list[dict]:
    return [output] if isinstance(output, dict) else list(output)


def _slice_logits(item: Mapping) -> torch.Tensor:
    pred = item["pred"]
    return torch.as_tensor(pred["slices"] if isinstance(pred, Mapping) else pred).float()


def _label(item: Mapping) -> torch.Tensor:
    return torch.as_tensor(item["label"]).reshape(-1)[:1].float()


def slice_predictions(output: Sequence[dict] | dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Every slice's logit and its volume's label, flattened: ``(N,)`` and ``(N,)`` for slice-level ROC AUC."""
    preds, labels = [], []
    for item in _items(output):
        logits = _slice_logits(item).reshape(-1)
        preds.append(logits)
        labels.append(torch.full_like(logits, float(_label(item))))
    return torch.cat(preds), torch.cat(labels)


def volume_predictions(output: Sequence[dict] | dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each volume's slice logits and its label, for volume-level metrics."""
    items = _items(output)
    return [_slice_logits(item).reshape(1, -1) for item in items], [_label(item) for item in items]


def volume_peaks(output: Sequence[dict] | dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each volume's ToNNO detection peak (of :class:`~monai_tonno.inferers.ValidationInferer`) and its label:
    ``(n,)`` and ``(n,)``, for :class:`~monai_tonno.metrics.VolumeSeparation`."""
    items = _items(output)
    missing = [index for index, item in enumerate(items) if not isinstance(item["pred"], Mapping)]
    if missing:
        raise ValueError("volume_peaks reads the 'peak' of a ValidationInferer's output; the evaluator's pred is a "
                         f"{type(items[missing[0]]['pred']).__name__}.")  # fmt: skip
    peaks = torch.cat([torch.as_tensor(item["pred"]["peak"]).reshape(1).double() for item in items])
    return peaks, torch.cat([_label(item).double() for item in items])
