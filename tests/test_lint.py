"""The code, the container recipe and the scripts are linted (ruff, hadolint, shellcheck; all
from PyPI in the dev extra), so a lint failure fails the suite, not a reviewer's patience."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SHELL_SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in [ROOT / ".ci/run", *ROOT.glob("*/*.sh")])


def run_tool(tool: str, *args: str) -> subprocess.CompletedProcess:
    beside = Path(sys.executable).parent / tool  # the venv's bin/, which need not be on PATH
    executable = str(beside) if beside.exists() else shutil.which(tool)
    assert executable, f"{tool} is missing: it is part of the dev extra (pip install -e '.[dev]')"
    return subprocess.run([executable, *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "tool, args",
    [
        ("ruff", ["check", "--no-cache", "."]),
        ("ruff", ["format", "--check", "--no-cache", "."]),  # one layout, the formatter's: `ruff format .` fixes it
        ("hadolint", ["Dockerfile.l4t"]),
        ("shellcheck", SHELL_SCRIPTS),
    ],
)
def test_lint_clean(tool, args):
    done = run_tool(tool, *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_shell_script_is_linted():
    """Found by its first line, wherever it lies: a script outside the lint list (deeper, or without
    .sh) fails here instead of going unlinted."""
    skip = {".git", ".venv", "build", "runs", "node_modules"}
    found = set()
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in skip or parts[0].startswith(".venv") or not path.is_file() or path.is_symlink():
            continue
        with open(path, "rb") as f:
            first = f.readline(64)
        if first.startswith(b"#!") and first.split(b"/")[-1].split()[-1] in (b"bash", b"sh"):
            found.add(str(path.relative_to(ROOT)))
    assert found and found <= set(SHELL_SCRIPTS), sorted(found - set(SHELL_SCRIPTS))


def test_device_scripts_are_executable():
    for script in ROOT.glob("jetson/*.sh"):
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
