"""The container recipe and the device scripts are linted like code (hadolint, shellcheck from PyPI)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("tool, files", [
    ("hadolint", ["Dockerfile.l4t"]),
    ("shellcheck", ["jetson/run.sh", "jetson/bench_suite.sh", "jetson/selftest.sh", ".ci/run", "benchmarks/digits_sweep.sh"]),
])
def test_lint_clean(tool, files):
    beside = Path(sys.executable).parent / tool  # the venv's bin/, which need not be on PATH
    executable = str(beside) if beside.exists() else shutil.which(tool)
    assert executable, f"{tool} is missing: it is part of the dev extra (pip install -e '.[dev]')"
    done = subprocess.run([executable, *files], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_device_scripts_are_executable():
    for script in ROOT.glob("jetson/*.sh"):
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
