# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Inferers of monai_tonno."""

from monai_tonno.inferers.tomographic import TomographicInferer

__all__ = ["TomographicInferer"]
