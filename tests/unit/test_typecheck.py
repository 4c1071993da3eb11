"""The package type-checks: every module is fully annotated (a house rule), and mypy
agrees with the annotations. A failure lists mypy's errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "svcnet"


def test_mypy_finds_no_errors(tmp_path: Path) -> None:
    if shutil.which("mypy") is None and subprocess.run(
            [sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (scripts/setup --test installs it)")
    res = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path),
                          str(SRC)], capture_output=True, text=True, timeout=300,
                         cwd=SRC.parents[1])
    assert res.returncode == 0, res.stdout + res.stderr
