# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The student: a standard MONAI 3D segmentation network trained on ToNNO's masks, and the file it is kept in.

A segmenter's folder holds ``model.pt`` (the weights) and ``network.json`` (what it was built and trained with:
the network's arguments, the crop size its sliding window uses and the preprocessing of its inputs, which is the
teacher's). Segmentation reads the JSON back, so nothing is typed twice, and refuses a JSON that does not fit the
weights instead of building another network around them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.networks.nets import SegResNet, UNet
from torch import nn

from monai_tonno.atomic import write_json_atomic
from monai_tonno.networks.classifier import describe_mismatch, read_state_dict

__all__ = [
    "SEGMENTERS",
    "create_segmenter",
    "load_segmenter",
    "load_segmenter_config",
    "save_segmenter_config",
]

SEGMENTERS = ("unet", "segresnet")
SEGMENTER_CONFIG_FILE = "network.json"


def create_segmenter(
    name: str = "unet", in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128)
) -> nn.Module:
    """A 3D segmentation network of MONAI: ``UNet`` (residual units, batch norm) or ``SegResNet``.

    Args:
        name: ``"unet"`` or ``"segresnet"``.
        in_channels: the image's channels (e.g. 2 for PET/CT).
        out_channels: 1: one foreground logit per voxel (the pseudo-masks are binary).
        channels: the UNet's features per level; the SegResNet's first level takes ``channels[0]``.
    """
    if name not in SEGMENTERS:
        raise ValueError(f"name must be one of {SEGMENTERS}, got {name!r}.")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be positive, got {in_channels} and {out_channels}.")
    channels = tuple(int(c) for c in channels)
    if len(channels) < 2 or min(channels) < 1:
        raise ValueError(f"channels must be at least two positive feature counts, got {channels}.")
    if name == "unet":
        strides = (2,) * (len(channels) - 1)
        return UNet(3, in_channels, out_channels, channels, strides, num_res_units=2, norm="batch")
    return SegResNet(3, init_filters=channels[0], in_channels=in_channels, out_channels=out_channels)


def _config_path(location: str | Path) -> Path:
    location = Path(location).expanduser()
    return location / SEGMENTER_CONFIG_FILE if location.is_dir() else location.parent / SEGMENTER_CONFIG_FILE


def save_segmenter_config(folder: str | Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` as ``folder/network.json``.

    Args:
        folder: the segmenter's checkpoint folder.
        config: ``{"network": create_segmenter's arguments, "roi_size": [x, y, z], "preprocessing": {...}}``.
    """
    network = config.get("network")
    if not isinstance(network, Mapping):
        raise ValueError(f"config['network'] must hold create_segmenter's arguments, got {network!r}.")
    create_segmenter(**network)  # refuse arguments that build nothing before they are written
    roi = config.get("roi_size")
    if not isinstance(roi, Sequence) or len(roi) != 3 or min(int(r) for r in roi) < 1:
        raise ValueError(f"config['roi_size'] must be three positive voxel counts, got {roi!r}.")
    path = _config_path(Path(folder).expanduser() / SEGMENTER_CONFIG_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, json.loads(json.dumps(dict(config))))
    return path


def load_segmenter_config(ckpt_path: str | Path) -> dict[str, Any]:
    """The ``network.json`` beside a segmenter's ``model.pt``."""
    path = _config_path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {SEGMENTER_CONFIG_FILE} beside {str(ckpt_path)!r}: run the distillation bundle first "
            "(it writes the segmenter's network.json and model.pt)."
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}).") from error
    for key in ("network", "roi_size", "preprocessing"):
        if key not in config:
            raise ValueError(f"{str(path)!r} has no {key!r}: it is not a segmenter's network.json.")
    return config


def load_segmenter(ckpt_path: str | Path, config: Mapping[str, Any] | None = None) -> nn.Module:
    """The trained segmenter of ``ckpt_path`` (its weights, or a checkpoint with a ``network`` entry), built from
    ``config`` or the ``network.json`` beside it, in eval mode."""
    config = load_segmenter_config(ckpt_path) if config is None else config
    network = create_segmenter(**config["network"])
    if not Path(ckpt_path).expanduser().is_file():
        raise FileNotFoundError(
            f"no trained segmenter at {str(ckpt_path)!r}: run the distillation bundle to the end (it writes "
            "model.pt once training has finished) or set --ckpt_path."
        )
    state = read_state_dict(Path(ckpt_path).expanduser())
    what = f"the weights of {str(ckpt_path)!r} do not fit the segmenter its network.json describes"
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # same names, other shapes
        raise ValueError(f"{what} ({config['network']}): {str(error).splitlines()[-1].strip()}") from error
    if missing or unexpected:
        raise ValueError(f"{what} ({config['network']}): {describe_mismatch(list(missing), list(unexpected))}")
    return network.eval()
