# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The 2D slice classifier: a timm backbone with one logit, its normalisation chosen as in paper Section 3.6."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from timm.utils.model import freeze_batch_norm_2d
from torch import nn

from monai_tonno.paths import require_file

__all__ = [
    "NORM_TYPES",
    "create_slice_classifier",
    "describe_mismatch",
    "load_pretrained_file",
    "read_state_dict",
    "replace_batch_norm_with_group_norm",
]

NORM_TYPES = ("frozen_batch", "group", "batch")
_BATCH_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
_WRAPPER_KEYS = ("state_dict", "model", "network", "state_dict_ema", "model_state_dict")


def _group_count(channels: int, groups: int) -> int:
    return math.gcd(channels, groups)


def replace_batch_norm_with_group_norm(module: nn.Module, groups: int = 32) -> nn.Module:
    """Replace every ``BatchNorm2d`` by a ``GroupNorm`` (in place), starting from the BN's affine parameters.

    Every other weight is left as it is. A layer whose channel count ``groups`` does not divide gets
    ``gcd(channels, groups)`` groups.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            norm = nn.GroupNorm(_group_count(child.num_features, groups), child.num_features, child.eps, child.affine)
            if child.affine:
                norm.weight.data.copy_(child.weight.data)
                norm.bias.data.copy_(child.bias.data)
            setattr(module, name, norm)
        else:
            replace_batch_norm_with_group_norm(child, groups)
    return module


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (``.safetensors`` or a torch file, wrappers such as ``state_dict``
    unwrapped, a ``module.`` prefix of DataParallel removed), or a clear error saying what the file is not."""
    require_file(path, "pretrained weights file: a timm checkpoint or a file written by torch.save(model.state_dict())")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        checkpoint = load_file(str(path))
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"could not read pretrained weights from {str(path)!r}: {error}") from error
    while isinstance(checkpoint, dict):
        wrapper = next((key for key in _WRAPPER_KEYS if isinstance(checkpoint.get(key), dict)), None)
        if wrapper is None:
            break
        checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{str(path)!r} holds no state dict of tensors (looked under {_WRAPPER_KEYS}).")
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}


def load_pretrained_file(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a timm or state-dict checkpoint into ``model``, adapting its stem and dropping a mismatched head.

    A stem trained on 3-channel (ImageNet) images is adapted to the model's input channels as timm does it
    (summed for 1 channel, repeated and rescaled for more); a classifier head of another size (1000 ImageNet
    classes) is left at its initialisation, with a warning that names it; batch statistics are dropped when the
    model has GroupNorm instead. To load a classifier trained by this package, whose head must load, use
    :func:`~monai_tonno.networks.load_trained_classifier`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a checkpoint, or its weights do not fit the model.
    """
    state = read_state_dict(Path(path))
    own = model.state_dict()
    config = getattr(model, "pretrained_cfg", {}) or {}
    first_conv = config.get("first_conv")
    stems = first_conv if isinstance(first_conv, (list, tuple)) else [first_conv] if first_conv else []
    for stem in stems:
        key = f"{stem}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1]:
            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    heads = config.get("classifier")
    heads = heads if isinstance(heads, (list, tuple)) else [heads] if heads else []
    skipped = set()
    for head in heads:
        for key in (f"{head}.weight", f"{head}.bias"):
            if key in state and key in own and state[key].shape != own[key].shape:
                del state[key]
                skipped.add(key)
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        raise ValueError(f"weights in {str(path)!r} do not fit the model: shapes differ for {mismatched[:5]}.")
    if skipped:
        warnings.warn(
            f"the classifier head in {str(path)!r} has another shape than the model's ({sorted(skipped)}); it was not "
            "loaded and the head keeps its random initialisation (expected for ImageNet weights, wrong for a "
            "trained slice classifier).",
            UserWarning,
            stacklevel=2,
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in skipped and not k.endswith("num_batches_tracked")]
    # batch statistics of a BN checkpoint have no place in a GroupNorm model (its affine parameters do load)
    unexpected = [k for k in unexpected if not k.endswith(_BATCH_STATISTICS)]
    if missing or unexpected:
        raise ValueError(f"weights in {str(path)!r} do not fit the model: {describe_mismatch(missing, unexpected)}")
    return model


def describe_mismatch(missing: list[str], unexpected: list[str]) -> str:
    """What differs between a state dict and a model, with the likely cause when normalisation layers differ."""
    text = f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
    text += f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}."
    statistics = [key for key in missing + unexpected if key.endswith(("running_mean", "running_var"))]
    if statistics:
        side = "the checkpoint has" if any(key in unexpected for key in statistics) else "the model expects"
        text += (
            f" {side} batch-norm statistics ({statistics[0]}): the checkpoint and the model were built with different "
            f"`norm` settings (one of {NORM_TYPES}); build the model as it was trained."
        )
    return text


def create_slice_classifier(
    name: str = "resnet10t",
    in_channels: int = 1,
    norm: str = "frozen_batch",
    pretrained: bool | str | Path = False,
    num_classes: int = 1,
    groups: int = 32,
    channels_last: bool = False,
    **kwargs,
) -> nn.Module:
    """A timm 2D classifier that maps ``(N, in_channels, H, W)`` slices to ``(N, num_classes)`` logits.

    The paper (Section 3.6) uses an ImageNet-pretrained ResNet-10-T with frozen batch normalisation: batch
    statistics couple the slices of a batch, which lets a classifier trained on volume labels call every slice
    of a positive volume positive once it has found one lesion slice.

    Args:
        name: a timm model name, e.g. ``"resnet10t"`` or ``"resnet50"``, optionally with a pretrained tag
            (``"resnet50.a1_in1k"``).
        in_channels: channels of the slices (2 for PET + CT).
        norm: ``"frozen_batch"`` (BN statistics and affine become fixed buffers, also under ``.train()``),
            ``"group"`` (BN replaced by GroupNorm, the other weights kept) or ``"batch"`` (plain BN).
        pretrained: ``False``; ``True`` for timm's hub weights (needs internet); or the path of a local timm or
            state-dict checkpoint (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``).
        num_classes: outputs of the head (1 logit for ToNNO).
        groups: GroupNorm groups for ``norm="group"``.
        channels_last: store the weights in ``channels_last`` memory format (faster convolutions on CPUs;
            inputs need no conversion).
        kwargs: more arguments for ``timm.create_model`` (e.g. ``drop_rate``).
    """
    if norm not in NORM_TYPES:
        raise ValueError(f"norm must be one of {NORM_TYPES}, got {norm!r}.")
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}.")
    if not isinstance(name, str) or not timm.is_model(name):
        close = timm.list_models(f"*{str(name).split('.')[0][:6]}*")[:10]
        raise ValueError(
            f"unknown timm model {name!r} (tags such as 'resnet50.a1_in1k' are allowed); similar: {close}."
        )
    options = {"num_classes": num_classes, "in_chans": in_channels, **kwargs}
    if pretrained is True:
        try:
            model = timm.create_model(name, pretrained=True, **options)
        except Exception as error:
            raise RuntimeError(
                f"could not download pretrained weights for {name!r} ({error}). Without internet, download the "
                "checkpoint elsewhere and pass its path: create_slice_classifier(..., pretrained='/path/to/file.pth')."
            ) from error
    else:
        model = timm.create_model(name, pretrained=False, **options)
    if norm == "frozen_batch":
        model = freeze_batch_norm_2d(model)
    elif norm == "group":
        model = replace_batch_norm_with_group_norm(model, groups)
    if pretrained and pretrained is not True:
        # after the conversion, so that checkpoints of converted models (e.g. trained with GroupNorm) load too
        load_pretrained_file(model, pretrained)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
