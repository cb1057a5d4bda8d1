# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Examples run as a user runs them: a fresh process, from any working directory."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_dense_features_example_writes_its_figure(tmp_path):
    output = tmp_path / "features.png"
    command = [sys.executable, str(EXAMPLES / "dense_features.py"), "--num_angles", "6", "--num_slices", "6",
               "--slice_size", "16", "--channels", "3", "7", "--output", str(output)]  # fmt: skip
    # the child writes UTF-8 (progress bars, warnings) whatever this process's locale says
    text = {"capture_output": True, "text": True, "encoding": "utf-8", "errors": "replace"}
    completed = subprocess.run(command, cwd=tmp_path, timeout=900, **text)  # hang guard
    assert completed.returncode == 0, completed.stderr
    assert "2 feature maps of shape (64, 64, 64)" in completed.stdout
    assert output.stat().st_size > 1000
    bad = subprocess.run([*command[:-2], "--channels", "9999"], cwd=tmp_path, **text)
    assert bad.returncode != 0 and "--channels [9999] are not features of resnet10t" in bad.stderr
