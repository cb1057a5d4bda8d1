# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The package version, importable by every module without a cycle."""

__version__ = "0.1.0"
