"""Every table and record a command prints reads whole at 80, 100 and 200 columns: each value of the
record behind it (its --json) appears with every word intact, no ellipsis, and no line longer than
the terminal except a single word that is itself longer."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edgedit.assets
from edgedit.cli import app, common
from edgedit.cli.models import flatten

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"
WIDTHS = [80, 100, 200]


def printed(args: list[str], width: int, monkeypatch) -> str:
    monkeypatch.setattr(common.stdout, "width", width)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_whole(text: str, values: list[str], width: int) -> None:
    """Every word of every value is a whole word of the output; nothing cut; lines within the width."""

    def words(s: str) -> list[str]:  # brackets and separators around a word are layout, not the word
        return [w.strip("[]();,") for w in s.split()]

    printed_words = set(words(text))
    for value in values:
        missing = [w for w in words(str(value)) if w not in printed_words]
        assert not missing, f"{value!r}: {missing} not printed whole\n{text}"
    assert "…" not in text
    for line in text.splitlines():
        assert len(line) <= width or len(line.split()) == 1 or len(max(line.split(), key=len)) > width - 6, line


@pytest.mark.parametrize("width", WIDTHS)
def test_info_of_a_checkpoint(width, monkeypatch):
    student = str(edgedit.assets.STUDENT_DIGITS)
    report = json.loads(runner.invoke(app, ["info", student, "--json"]).stdout)
    text = printed(["info", student], width, monkeypatch)
    values = [v for _, v in flatten(report["provenance"])] + [report["sha256"], f"{report['params']:,}"]
    assert_whole(text, values + [k for k, _ in flatten(report["provenance"])], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_info_of_an_onnx(width, monkeypatch, exported):
    onnx = str(exported["onestep-cond"][0])
    report = json.loads(runner.invoke(app, ["info", onnx, "--json"]).stdout)
    text = printed(["info", onnx], width, monkeypatch)
    values = [report["sha256"], *(f"{op} {n}," for op, n in list(report["ops"].items())[:-1])]
    assert_whole(text, [*values, report["edgedit"]["source"]], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_tegrastats_summary(width, monkeypatch):
    log = str(FIXTURES / "tegrastats_orin_nano_r36.log")
    summary = json.loads(runner.invoke(app, ["tegrastats", log, "--json"]).stdout)
    text = printed(["tegrastats", log], width, monkeypatch)
    values = [*summary["power_mw"], f"{summary['ram_used_mb']['mean']:.1f}", str(summary["ram_total_mb"])]
    values += [f"{p['peak']:.0f}" for p in summary["power_mw"].values()]
    assert_whole(text, values, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_eval_metrics(width, monkeypatch):
    student = str(edgedit.assets.STUDENT_DIGITS)
    args = ["eval", student, "-n", "32", "--seed", "7"]
    report = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    text = printed(args, width, monkeypatch)
    values = [m["metric"] for m in report["metrics"]] + [f"{m['value']:.4g}" for m in report["metrics"]]
    values += [report["metrics"][0]["features"], report["metrics"][0]["reference"]]
    assert_whole(text, values, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_design_pick(width, monkeypatch, tmp_path):
    from edgedit.contract.config import get_preset as preset
    from tests.design.test_sweep import sweep_result

    config = preset("DiT-Nano-XS/2").config
    record = sweep_result("a-rather-long-configuration-name-d4-w96", 41.25, config, params=1_234_567)
    (tmp_path / "results.json").write_text(json.dumps([record]))
    args = ["design", "pick", "--results", str(tmp_path / "results.json")]
    best = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    text = printed(args, width, monkeypatch)
    e = best["device_estimate"]
    assert_whole(text, [record["name"], "41.2", "1,234,567", f"{e['ms']:.3f}", e["label"]], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_quantize_plan(width, monkeypatch, exported, tmp_path):
    onnx = str(exported["onestep-cond"][0])
    args = ["quantize", onnx, "-o", str(tmp_path / "q.int8.onnx"), "--calib-samples", "4", "--heldout-samples", "2"]
    text = printed([*args, "--force"], width, monkeypatch)
    plan = json.loads((tmp_path / "q.int8.precision.json").read_text())
    rows = plan["int8_classes"] + plan["fp32_candidates"]
    values = [r["name"] for r in rows] + [r["why"] for r in rows]
    assert values and re.search(r"INT8 plan", text)
    assert_whole(text, values, width)
