"""bench/plots.py: the latency distribution and the quality/latency trade-off, and their absence."""

import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from edgedit.bench.plots import MISSING, QualityPoint, latency_distribution, quality_vs_latency
from edgedit.bench.records import save_json
from edgedit.cli import app
from tests.helpers import bench_record


def record(model: str, p50: float):
    return bench_record(
        model=model, n=50, min=p50 / 2, mean=p50, p50=p50, p90=p50 * 1.5, p99=p50 * 3, max=p50 * 4,
        round_p50_ms=[p50 * 0.9, p50, p50 * 1.1],
    )  # fmt: skip


def test_one_row_per_record_on_a_log_axis(tmp_path):
    few, many = tmp_path / "few.png", tmp_path / "many.png"
    assert latency_distribution(few, [record("a.onnx", 1.0), record("b.onnx", 100.0)])
    assert latency_distribution(many, [record(f"m{i}.onnx", 10.0**i) for i in range(-2, 5)])
    (w1, h1), (w2, h2) = Image.open(few).size, Image.open(many).size
    assert w1 == w2 and h2 > h1  # rows are added, not squeezed


def test_tradeoff_plots_each_model_once(tmp_path):
    points = [QualityPoint("student", 85.8, 1.3, 1.1, 1.5, 1.2), QualityPoint("teacher", 93.9, 80.0, 70.0, 95.0, None)]
    assert quality_vs_latency(tmp_path / "t.png", points, "Orin Nano FP16, estimate")
    assert Image.open(tmp_path / "t.png").size[0] > Image.open(tmp_path / "t.png").size[1]  # two panels side by side


def test_without_matplotlib_there_is_one_line_and_the_rest_is_written(tmp_path, monkeypatch, exported):
    from edgedit.bench.harness import BenchSettings, run_bench

    measured, _ = run_bench(
        [str(exported["onestep-cond"][0])], ["onnxruntime"], BenchSettings([1], warmup=0, iters=3, duration_s=None)
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails, as on the device image
    assert not latency_distribution(tmp_path / "p.png", [record("a.onnx", 1.0)])
    records = tmp_path / "r.json"
    save_json(records, measured)
    result = CliRunner().invoke(
        app, ["bench", "report", str(records), "-o", str(tmp_path / "r.md"), "--plot", str(tmp_path / "p.png")]
    )
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [f"edgedit: warning: {MISSING}"]
    assert (tmp_path / "r.md").exists() and not (tmp_path / "p.png").exists()
    assert "![" not in (tmp_path / "r.md").read_text()  # no link to a plot that was not drawn


def test_bench_report_draws_the_tradeoff_where_records_carry_their_fid(tmp_path, exported):
    from edgedit.bench.harness import BenchSettings, run_bench

    measured, _ = run_bench(
        [str(exported["onestep-cond"][0])], ["onnxruntime"], BenchSettings([1, 2], warmup=0, iters=3, duration_s=None)
    )
    assert measured[0].fid is None  # a random-weights export records no evaluation
    plain, rated = tmp_path / "plain.json", tmp_path / "rated.json"
    save_json(plain, measured)
    save_json(rated, [r.model_copy(update={"fid": 41.5}) for r in measured])
    for records, expected in ((plain, False), (rated, True)):
        out = tmp_path / records.stem
        result = CliRunner().invoke(app, ["bench", "report", str(records), "-o", f"{out}.md", "--plot", f"{out}.png"])
        assert result.exit_code == 0, result.output
        drawn = (tmp_path / f"{records.stem}.tradeoff.png").exists()
        assert (
            drawn == expected and ("](" + f"{records.stem}.tradeoff.png)" in Path(f"{out}.md").read_text()) == expected
        )


def test_a_recorded_fid_is_taken_only_when_it_is_a_plain_number():
    from edgedit.bench.harness import recorded_fid

    assert recorded_fid({"fid": 85.8}) == 85.8 and recorded_fid({"fid": 3}) == 3.0
    for hostile in ("85.8", -1.0, float("nan"), float("inf"), True, None, [1.0]):
        assert recorded_fid({"fid": hostile}) is None, hostile
    assert recorded_fid({}) is None
