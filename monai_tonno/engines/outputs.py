# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Output transforms from an evaluator's decollated output of :class:`SliceSamplingInferer` to metric inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["slice_predictions", "volume_predictions"]


def _items(output: Sequence[dict] | dict) -> list[dict]:
    return [output] if isinstance(output, dict) else list(output)


def slice_predictions(output: Sequence[dict] | dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Every slice's logit and its volume's label, flattened: ``(N,)`` and ``(N,)`` for slice-level ROC AUC."""
    preds, labels = [], []
    for item in _items(output):
        logits = torch.as_tensor(item["pred"]).reshape(-1).float()
        preds.append(logits)
        labels.append(torch.full_like(logits, float(torch.as_tensor(item["label"]).reshape(-1)[0])))
    return torch.cat(preds), torch.cat(labels)


def volume_predictions(output: Sequence[dict] | dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each volume's slice logits and its label, for volume-level metrics."""
    items = _items(output)
    preds = [torch.as_tensor(item["pred"]).reshape(1, -1).float() for item in items]
    labels = [torch.as_tensor(item["label"]).reshape(1).float() for item in items]
    return preds, labels
