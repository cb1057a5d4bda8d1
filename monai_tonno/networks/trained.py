# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A trained slice classifier carries its configuration: ``network.json`` beside the checkpoint.

Training writes what inference and evaluation must repeat (the network's architecture, the slice size and the
preprocessing); they read it back instead of repeating flags, so ``--norm frozen_batch`` at training reaches
inference without being typed twice. The best model (``model.pt``) also records the configuration it was trained
with (:class:`NetworkConfigRecord`), so that a ``network.json`` from another run, which may describe the same
architecture with another voxel size, is refused instead of silently preprocessing scans the wrong way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monai_tonno.atomic import write_json_atomic
from monai_tonno.networks.classifier import create_slice_classifier, describe_mismatch, read_state_dict

__all__ = [
    "NETWORK_CONFIG_FILE",
    "NetworkConfigRecord",
    "load_network_config",
    "load_trained_classifier",
    "save_network_config",
]

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
    _check_config(json.loads(json.dumps(dict(config), default=list)), "the configuration to save")
    return write_json_atomic(folder / NETWORK_CONFIG_FILE, {"format_version": _FORMAT_VERSION, **config}, default=list)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_config(config: Mapping[str, Any], source: str) -> None:
    """Values of the types inference applies them as: a wrong one is named with its file, not met later as an
    obscure failure (or, worse, a silently wrong preprocessing)."""
    problems = []
    if "slice_size" in config:
        size = config["slice_size"]
        sizes = size if isinstance(size, list) else [size]
        if (
            not sizes
            or len(sizes) > 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes)
        ):
            problems.append(f"slice_size {size!r} (expected a positive integer or two)")
    preprocessing = config.get("preprocessing", {})
    if not isinstance(preprocessing, Mapping):
        problems.append(f"preprocessing {preprocessing!r} (expected a mapping)")
        preprocessing = {}
    for key, positive in (("pixdim", True), ("intensity_offset", False), ("intensity_scale", True)):
        if key not in preprocessing or preprocessing[key] is None:
            continue
        values = preprocessing[key] if isinstance(preprocessing[key], list) else [preprocessing[key]]
        if not values or not all(_is_number(v) and (v > 0 if positive else True) for v in values):
            kind = "positive finite numbers" if positive else "finite numbers"
            problems.append(f"preprocessing.{key} {preprocessing[key]!r} (expected {kind})")
    if problems:
        raise ValueError(f"{source} holds unusable values: {'; '.join(problems)}.")


class NetworkConfigRecord:
    """The network configuration as a checkpoint object, so that the best model records what it was trained with.

    Put it in the ``save_dict`` of the saver of ``model.pt`` (``{"model": network, "network_config":
    NetworkConfigRecord(config)}``); :func:`load_trained_classifier` then refuses a ``network.json`` that differs.

    Args:
        config: the configuration written to ``network.json``.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = json.loads(json.dumps(dict(config), default=list))

    def state_dict(self) -> dict[str, str]:
        return {"json": json.dumps(self.config, sort_keys=True)}

    def load_state_dict(self, state_dict: Mapping[str, str]) -> None:
        self.config = json.loads(state_dict["json"])


def _recorded_config(ckpt_path: Path) -> dict[str, Any] | None:
    """The configuration a training recorded in the checkpoint, ``None`` for a file without one."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # read_state_dict says what is wrong with the file
    record = checkpoint.get("network_config") if isinstance(checkpoint, dict) else None
    return json.loads(record["json"]) if isinstance(record, dict) and "json" in record else None


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
    _check_config(config, repr(str(path)))
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
            cause are named), or it records another configuration than ``config`` (a ``network.json`` of another
            run).
    """
    config = load_network_config(ckpt_path) if config is None else config
    recorded = _recorded_config(Path(ckpt_path).expanduser())
    if recorded is not None:
        given = json.loads(json.dumps(dict(config), default=list))
        differences = [
            f"{key}: trained with {recorded.get(key)!r}, configuration says {given.get(key)!r}"
            for key in sorted(set(recorded) | set(given))
            if key != "format_version" and recorded.get(key) != given.get(key)
        ]
        if differences:
            raise ValueError(
                f"the configuration given for {str(ckpt_path)!r} (its {NETWORK_CONFIG_FILE}) is not the one it was "
                f"trained with: {'; '.join(differences)}. Use the {NETWORK_CONFIG_FILE} of the training run that "
                "wrote this model."
            )
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
