# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    """README's second command (install and test) is exactly what CI runs."""
    readme = (ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0].strip() for block in readme.split("```bash\n")[1:]]
    install_and_test = blocks[1]
    assert "pytest" in install_and_test
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()
