# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A trained slice classifier carries its configuration: ``network.json`` beside the checkpoint.

Training writes what inference and evaluation must repeat (the network's architecture, the slice size and the
preprocessing); they read it back instead of repeating flags, so ``--norm frozen_batch`` at training reaches
inference without being typed twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_tonno.networks.classifier import create_slice_classifier, describe_mismatch, read_state_dict

__all__ = ["NETWORK_CONFIG_FILE", "load_network_config", "load_trained_classifier", "save_network_config"]

NETWORK_CONFIG_FILE = "network.json"
_FORMAT_VERSION = 1


def _config_path(location: str | Path) -> Path:
    """``network.json`` of a checkpoint folder, or beside a checkpoint file."""
    location = Path(location).expanduser()
    return location / NETWORK_CONFIG_FILE if location.is_dir() else location.parent / NETWORK_CONFIG_FILE


def save_network_config(ckpt_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` as ``ckpt_dir/network.json``.

    Args:
        ckpt_dir: the folder of the checkpoints.
        config: ``{"network": keyword arguments of create_slice_classifier (name, in_channels, norm, ...),
            ...}`` plus whatever else inference must repeat, e.g. ``slice_size`` and ``preprocessing``.

    Returns:
        the path written.
    """
    network = config.get("network")
    if not isinstance(network, Mapping) or "name" not in network:
        raise ValueError(
            f"config['network'] must hold create_slice_classifier's arguments with a name, got {network!r}."
        )
    if "pretrained" in network or "channels_last" in network:
        raise ValueError("config['network'] describes the architecture; leave out pretrained and channels_last.")
    folder = Path(ckpt_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NETWORK_CONFIG_FILE
    path.write_text(json.dumps({"format_version": _FORMAT_VERSION, **config}, indent=2, default=list))
    return path


def load_network_config(ckpt_path: str | Path) -> dict[str, Any]:
    """The configuration saved with a checkpoint (``network.json`` in its folder).

    Args:
        ckpt_path: the checkpoint file, or its folder.

    Raises:
        FileNotFoundError: there is no ``network.json``; the message says how to write one.
        ValueError: the file is not a configuration written by :func:`save_network_config`.
    """
    path = _config_path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {NETWORK_CONFIG_FILE} beside the checkpoint {str(ckpt_path)!r} (looked for {str(path)!r}). The "
            "training bundle writes it next to its checkpoints; for a model trained elsewhere write one with "
            "monai_tonno.networks.save_network_config(folder, {'network': {'name': 'resnet10t', 'in_channels': 2, "
            "'norm': 'frozen_batch'}, 'slice_size': 224, 'preprocessing': {...}})."
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("network"), dict) or "name" not in config["network"]:
        raise ValueError(f"{str(path)!r} has no 'network' entry with a 'name'; it was not written by training.")
    return config


def load_trained_classifier(
    ckpt_path: str | Path, config: Mapping[str, Any] | None = None, channels_last: bool = True
) -> nn.Module:
    """The slice classifier of a checkpoint, built as ``network.json`` says and loaded strictly.

    Every weight of the checkpoint must fit, the head included (unlike
    :func:`~monai_tonno.networks.load_pretrained_file`, which adapts ImageNet weights).

    Args:
        ckpt_path: a state dict written by training (``model.pt``), or a checkpoint holding one under
            ``model`` / ``network`` / ``state_dict``.
        config: the configuration; read from ``network.json`` beside ``ckpt_path`` when not given.
        channels_last: store the weights in ``channels_last`` memory format.

    Raises:
        FileNotFoundError: no checkpoint or no configuration.
        ValueError: the checkpoint does not fit the network the configuration describes (the keys and the likely
            cause are named).
    """
    config = load_network_config(ckpt_path) if config is None else config
    model = create_slice_classifier(**config["network"], channels_last=channels_last)
    state = read_state_dict(Path(ckpt_path).expanduser())
    own = model.state_dict()
    problem = ""
    shapes = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        problem = f"shapes differ for {shapes[:3]}."
    else:
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            problem = describe_mismatch(missing, unexpected)
    if problem:
        raise ValueError(
            f"the checkpoint {str(ckpt_path)!r} does not fit the network {dict(config['network'])} described by its "
            f"configuration: {problem}"
        )
    model.load_state_dict(state, strict=False)
    return model.to(memory_format=torch.channels_last) if channels_last else model
