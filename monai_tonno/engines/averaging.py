# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""An exponential moving average of the classifier's weights, switched by one bundle parameter."""

from __future__ import annotations

from ignite.handlers import EMAHandler
from torch import nn

__all__ = ["ema_handler"]


def ema_handler(network: nn.Module, momentum: float) -> EMAHandler | None:
    """Ignite's ``EMAHandler`` for ``network``, or ``None`` when ``momentum`` is 0 (no averaging).

    After each iteration the averaged weights move by ``momentum`` towards the trained ones, so they average
    over roughly the last ``1 / momentum`` iterations. Validate and save ``handler.ema_model`` to use them.

    Args:
        network: the network being trained.
        momentum: the weight of the current weights in each update, in ``[0, 1)``; 0 turns averaging off.
    """
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"ema_momentum must be a number in [0, 1) (0 = no averaging), got {momentum!r}.")
    return EMAHandler(network, momentum=float(momentum)) if momentum > 0 else None
