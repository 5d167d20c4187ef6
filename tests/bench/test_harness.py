import json

import numpy as np
import pytest

from edgedit.bench import harness
from edgedit.bench.harness import BenchSettings, comparison_rows, run_bench
from edgedit.bench.latency import MeasurementInterrupted
from edgedit.bench.report import load_records, markdown, save_csv, save_plot
from edgedit.contract.errors import EdgeditError

KEYS = {"min", "mean", "p50", "p90", "p99", "max", "std", "n"}


def test_records_per_model_backend_and_batch(exported):
    onnx, checkpoint = exported["onestep-cond"]
    records, interrupted = run_bench([str(onnx), str(checkpoint)], ["auto"], BenchSettings([1, 4], warmup=1, iters=3,
                                                                                            duration_s=None))
    assert not interrupted and len(records) == 4
    assert [(r["backend"], r["batch"]) for r in records] == [("onnxruntime", 1), ("onnxruntime", 4),
                                                              ("torch", 1), ("torch", 4)]
    for r in records:
        assert set(r["latency_ms"]) == KEYS and r["latency_ms"]["n"] == 3
        assert r["throughput_img_s"] == pytest.approx(r["batch"] * 1000 / r["latency_ms"]["mean"])
        assert r["peak_rss_mb"] > 0 and r["env"]["edgedit"] and r["env"]["device"]
        assert r["tegrastats"] is None  # not asked for (and not a Jetson)
    assert records[0]["model_sha256"] and records[0]["what"] == "model"


def test_sampler_mode_counts_network_evaluations_per_image(exported):
    (record,), _ = run_bench([str(exported["edm-cond"][0])], ["auto"],
                             BenchSettings([2], warmup=0, iters=2, duration_s=None, what="sampler", steps=3))
    assert record["what"] == "sampler" and record["steps"] == 3 and record["network_evaluations_per_call"] == 5
    assert record["latency_per_image_ms"] == pytest.approx(record["latency_ms"]["p50"] / 2)


def test_batches_outside_the_models_range_are_refused(exported):
    with pytest.raises(EdgeditError, match="batch 8 is outside its batch range 1..4"):
        run_bench([str(exported["onestep-cond"][0])], ["auto"], BenchSettings([8], warmup=0, iters=1, duration_s=None))


def test_ctrl_c_keeps_what_was_measured(exported, monkeypatch):
    calls = {"n": 0}
    real_measure = harness.measure

    def interrupt_second_record(call, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MeasurementInterrupted(harness.LatencyStats.from_samples(np.array([1.0, 2.0])))
        return real_measure(call, *args, **kwargs)

    monkeypatch.setattr(harness, "measure", interrupt_second_record)
    records, interrupted = run_bench([str(exported["onestep-cond"][0])], ["auto"],
                                     BenchSettings([1, 2, 4], warmup=0, iters=2, duration_s=None))
    assert interrupted and len(records) == 2 and records[1]["interrupted"] and records[1]["latency_ms"]["n"] == 2


def test_comparison_ratios_are_against_the_first_record_of_each_batch():
    make = lambda batch, p50: {"batch": batch, "what": "model", "latency_ms": {"p50": p50}}  # noqa: E731
    rows = comparison_rows([make(1, 10.0), make(8, 40.0), make(1, 5.0), make(8, 80.0)])
    assert [r["speedup_vs_first"] for r in rows] == [1.0, 1.0, 2.0, 0.5]


def test_report_files_round_trip(exported, tmp_path):
    records, _ = run_bench([str(exported["onestep-cond"][0])], ["auto"], BenchSettings([1], warmup=0, iters=2,
                                                                                      duration_s=None))
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "b.json").write_text(json.dumps({"records": records}))
    merged = load_records([tmp_path / "a.json", tmp_path / "b.json"])
    assert merged == [records[0], records[0]]  # what bench writes passes its schema unchanged
    table = markdown(merged)
    assert table.count("\n| onestep-cond.onnx | onnxruntime | fp32 | 1 | model |") == 2 and "1.00x" in table
    save_csv(tmp_path / "r.csv", merged)
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("model,backend,provider,precision,batch")
    assert save_plot(tmp_path / "p.png", merged) and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(EdgeditError, match="bad.json: not a valid bench record file: expected a JSON list, got dict"):
        load_records([tmp_path / "bad.json"])
    (tmp_path / "nan.json").write_text(json.dumps([records[0]]).replace('"p50": ', '"p50": NaN, "x": '))
    with pytest.raises(EdgeditError, match="nan.json: not a valid bench record file: not JSON"):
        load_records([tmp_path / "nan.json"])
