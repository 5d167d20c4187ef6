import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgedit.checkpoint import save_model
from edgedit.cli import app
from edgedit.config import PRESETS, resolve_config
from edgedit.models import accounting
from edgedit.models.dit import DiT
from tests.conftest import TINY_CONFIGS

runner = CliRunner()
COMMANDS = {"models", "info", "doctor", "convert-dit"}


def test_help_lists_exactly_the_implemented_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = set(re.findall(r"^│ (\S+)\s{2,}", result.output, flags=re.MULTILINE)) - {"--debug", "--version", "--help"}
    assert listed == COMMANDS
    for command in COMMANDS:
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_console_script_is_installed_and_starts():
    done = subprocess.run([sys.executable, "-m", "edgedit", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("edgedit ")


def test_models_json_lists_every_preset_with_the_accounting():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(PRESETS)
    for row in rows:
        cfg = PRESETS[row["name"]].config
        assert row["params"] == accounting.count_params(cfg)
        assert row["macs"] == accounting.count_macs(cfg)
        assert row["orin_nano_int8_ms"] < row["orin_nano_fp16_ms"]


def test_models_table_shows_names_and_labels_latency_as_an_estimate():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "DiT-XL/2" in result.stdout and "675.13M" in result.stdout and "DiT-Nano-M-Wide/2" in result.stdout
    assert "roofline estimate, not a measurement" in result.stdout


def test_models_with_overrides_describes_the_modified_model():
    result = runner.invoke(app, ["models", "DiT-Nano-S/2", "--depth", "10", "--width", "160", "--heads", "5", "--json"])
    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)
    expected = resolve_config("DiT-Nano-S/2", depth=10, hidden_size=160, num_heads=5)
    assert row["name"] == "DiT-Nano-S/2 (modified)"
    assert row["params"] == accounting.count_params(expected) and row["config"]["depth"] == 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["models", "DiT-Nano-Q"], "unknown model preset 'DiT-Nano-Q'"),
        (["models", "--depth", "3"], "overrides need a preset"),
        (["models", "DiT-Nano-S/2", "--width", "130"], "invalid model config"),
        (["info", "missing.safetensors"], "missing.safetensors: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_debug_flag_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "models", "DiT-Nano-Q"])
    assert result.exit_code != 0 and "unknown model preset" in str(result.exception)


def test_info_describes_a_checkpoint(tmp_path):
    cfg = TINY_CONFIGS["onestep-cond"]
    path = save_model(DiT(cfg), tmp_path / "student.safetensors", provenance={"method": "output"})
    as_json = runner.invoke(app, ["info", str(path), "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.stdout)
    assert report["type"] == "checkpoint" and report["params"] == accounting.count_params(cfg)
    assert report["config"] == cfg.to_dict() and report["provenance"]["method"] == "output"
    text = runner.invoke(app, ["info", str(path)])
    assert "one-step generator" in text.stdout and f"{accounting.count_params(cfg):,} params" in text.stdout


def test_info_refuses_an_unknown_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["info", str(tmp_path / "notes.txt")])
    assert result.exit_code == 2 and "unrecognised file type" in result.stderr


def test_doctor_reports_every_package_and_tolerates_absence():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    for dist in ("numpy", "torch", "onnx", "onnxruntime", "tensorrt", "polygraphy", "pycuda"):
        assert dist in report["packages"]
    assert report["packages"]["numpy"] is not None
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert set(report["cuda"]) == {"driver", "devices", "error"}
    text = runner.invoke(app, ["doctor"])
    assert text.exit_code == 0 and "tensorrt" in text.stdout
