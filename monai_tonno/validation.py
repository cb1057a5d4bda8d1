# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Argument checks shared by the transforms, inferers and bundles: each error names the argument and what it needs.

Nothing here knows of networks, engines or files.
"""

from __future__ import annotations

import numbers
import warnings

import torch

__all__ = ["check_device", "check_finite", "check_int", "check_volume_batch", "warn_default_spacing"]


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` if it is a whole number of at least ``minimum``.

    Raises:
        TypeError: ``value`` is not a number (``bool`` included).
        ValueError: ``value`` is not whole (e.g. ``2.5``) or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}.")
    if isinstance(value, numbers.Integral):
        whole = int(value)
    elif float(value).is_integer():
        whole = int(value)
    else:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    if whole < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}.")
    return whole


def check_device(name: str, device: torch.device | str | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``) if this machine has it.

    Raises:
        ValueError: not a device name, or a CUDA device on a machine without CUDA or without that GPU index.
    """
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{name}={device!r} is not a device; use e.g. 'cpu' or 'cuda'.") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}={str(device)!r} asks for CUDA, but torch.cuda.is_available() is False on this machine; "
                "use 'cpu' (or install a CUDA build of PyTorch on a machine with a GPU)."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}={str(device)!r} names GPU {resolved.index}, but this machine has "
                f"{torch.cuda.device_count()} GPU(s)."
            )
    return resolved


def warn_default_spacing(owner: str) -> None:
    """Warn that a plain tensor (no affine) is taken to have 1 mm voxels, which changes how it is sliced."""
    warnings.warn(
        f"{owner} got a plain tensor without an affine and assumes 1 mm isotropic voxels; anisotropic volumes are "
        "then sliced in voxel space, not in millimetres. Pass a MetaTensor (keep track_meta on) or set the "
        "`spacing` argument.",
        UserWarning,
        stacklevel=3,
    )


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise a ``ValueError`` naming ``name`` if a floating point ``tensor`` holds NaN or infinite values."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); replace them first (e.g. MONAI's "
            "NanToNum / nan_to_num, or a mask) so that no slice is cut through them."
        )


def check_volume_batch(inputs: object, name: str = "inputs") -> None:
    """A non-empty, finite ``(B, C, X, Y, Z)`` tensor, or a ``TypeError`` / ``ValueError`` saying what it is."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, X, Y, Z), got {type(inputs).__name__}.")
    if inputs.ndim != 5:
        raise ValueError(f"{name} must have shape (B, C, X, Y, Z) (5 dimensions), got shape {tuple(inputs.shape)}.")
    if 0 in inputs.shape:
        raise ValueError(f"{name} must not be empty, got shape {tuple(inputs.shape)}.")
    check_finite(name, inputs)
