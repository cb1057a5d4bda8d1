# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The bundle configs as MONAI runs them.

A config names what the bundles share with MONAI macros (``"%bundles/common/train.json#train"``), whose paths
MONAI reads relative to the working directory: the repository root, where the bundle commands run.
"""

from __future__ import annotations

import os
from pathlib import Path

from monai.bundle import ConfigParser

from monai_tonno.paths import require_dir, require_file

__all__ = ["resolved_config"]


def resolved_config(config_file: str | Path, root: str | Path | None = None) -> dict:
    """The config of ``config_file`` with its macros replaced by their targets (MONAI's own macro pass), e.g. to
    copy a bundle out of the repository, where its macros would no longer resolve.

    Args:
        config_file: a bundle config (JSON or YAML).
        root: the folder the macro paths are relative to; the working directory by default, as MONAI reads them.
    """
    parser = ConfigParser(ConfigParser.load_config_file(str(require_file(config_file, "bundle config file"))))
    cwd = os.getcwd()
    try:
        os.chdir(require_dir(root, "bundle root") if root is not None else cwd)
        parser.resolve_macro_and_relative_ids()
    finally:
        os.chdir(cwd)
    return parser.get()
