import json
from pathlib import Path

import pytest

from edgedit.bench import harness
from edgedit.bench.comparison import comparison_rows, markdown, ratio_interval, save_csv
from edgedit.bench.harness import BenchSettings, run_bench
from edgedit.bench.plots import latency_distribution
from edgedit.bench.records import load_records, save_json
from edgedit.contract.errors import EdgeditError
from tests.helpers import bench_record

KEYS = {"min", "mean", "p50", "p90", "p99", "max", "std", "n"}


def test_records_per_model_backend_and_batch(exported):
    onnx, checkpoint = exported["onestep-cond"]
    records, interrupted = run_bench(
        [str(onnx), str(checkpoint)],
        ["onnxruntime", "torch"],
        BenchSettings([1, 4], warmup=1, iters=3, duration_s=None),
    )
    assert not interrupted and len(records) == 4
    assert [(r.backend, r.batch) for r in records] == [
        ("onnxruntime", 1),
        ("onnxruntime", 4),
        ("torch", 1),
        ("torch", 4),
    ]
    for r in records:
        assert set(r.latency_ms.model_fields_set) == KEYS and r.latency_ms.n == 3
        assert r.throughput_img_s == pytest.approx(r.batch * 1000 / r.latency_ms.mean)
        assert r.peak_rss_mb > 0 and r.env.edgedit and r.env.device
        assert r.tegrastats is None  # not asked for (and not a Jetson)
    assert records[0].model_sha256 and records[0].what == "model"


def test_sampler_mode_counts_network_evaluations_per_image(exported):
    (record,), _ = run_bench(
        [str(exported["edm-cond"][0])],
        ["auto"],
        BenchSettings([2], warmup=0, iters=2, duration_s=None, what="sampler", steps=3),
    )
    assert record.what == "sampler" and record.steps == 3 and record.network_evaluations_per_call == 5
    assert record.latency_per_image_ms == pytest.approx(record.latency_ms.p50 / 2)


def test_batches_outside_the_models_range_are_refused(exported):
    with pytest.raises(EdgeditError, match="batch 8 is outside its batch range 1..4"):
        run_bench([str(exported["onestep-cond"][0])], ["auto"], BenchSettings([8], warmup=0, iters=1, duration_s=None))


def test_a_batch_list_is_measured_once_per_size_and_bounded():
    assert BenchSettings([4, 1, 4, 1, 8], warmup=0, iters=1, duration_s=None).batches == [4, 1, 8]  # given order
    with pytest.raises(EdgeditError, match=f"lists {harness.MAX_BATCH_SIZES + 1} sizes; at most"):
        BenchSettings(list(range(1, harness.MAX_BATCH_SIZES + 2)), warmup=0, iters=1, duration_s=None)
    with pytest.raises(EdgeditError, match=r"must be 1\.\.4096"):
        BenchSettings([0], warmup=0, iters=1, duration_s=None)


def test_a_backend_that_fails_on_this_machine_is_skipped_with_one_line_and_the_rest_carry_on(exported, monkeypatch):
    """torch.compile's C++ does not compile on some CPUs (an upstream TorchInductor failure): the
    compiled backend raises BackendFailed at its first call, bench names it and times the others."""
    import torch._dynamo.exc

    from edgedit.models.torch_backend import TorchCompileBackend

    def inductor_fails(*args):
        raise torch._dynamo.exc.BackendCompilerFailed(
            "inductor", RuntimeError("x.cpp:25:41: error: 'at::vec' has not been declared"), None
        )

    monkeypatch.setattr(TorchCompileBackend, "available", classmethod(lambda cls: True))
    monkeypatch.setattr(torch, "compile", lambda module, dynamic: inductor_fails)
    skipped = []
    onnx, checkpoint = exported["onestep-cond"]
    settings = BenchSettings([1, 2], warmup=1, iters=2, duration_s=None)
    records, _ = run_bench([str(checkpoint), str(onnx)], ["auto"], settings, on_skip=skipped.append)
    assert [(r.backend, r.batch) for r in records] == [
        ("torch", 1),
        ("torch", 2),
        ("onnxruntime", 1),
        ("onnxruntime", 2),
    ]
    assert skipped == [
        f"{checkpoint.name} on torch-compile at batch {b}: skipped, torch.compile failed on this "
        "machine (error: 'at::vec' has not been declared); use the torch backend"
        for b in (1, 2)
    ]


def test_ctrl_c_keeps_what_was_measured(exported, monkeypatch):
    """Ctrl-C in the third round: the records keep their two rounds and say they were interrupted."""
    calls = {"n": 0}
    real = harness._Row.timed_call

    def interrupt_in_round_three(row):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 1:  # 2 rows x 1 call per round, then the first call of round 3
            raise KeyboardInterrupt
        return real(row)

    monkeypatch.setattr(harness._Row, "timed_call", interrupt_in_round_three)
    records, interrupted = run_bench(
        [str(exported["onestep-cond"][0])],
        ["auto"],
        BenchSettings([1, 2], warmup=0, iters=5, duration_s=None, rounds=5, warmup_s=0),
    )
    assert interrupted and len(records) == 2
    assert all(r.interrupted and r.latency_ms.n in (2, 3) for r in records)


def test_records_are_timed_in_interleaved_rounds(exported, monkeypatch):
    """Round k times every record once, in an order rotated by k: a slow start or a drift is shared."""
    order = []
    real = harness._Row.timed_call

    def log(row):
        order.append((Path(row.model).suffix, row.batch))
        return real(row)

    monkeypatch.setattr(harness._Row, "timed_call", log)
    onnx, checkpoint = exported["onestep-cond"]
    records, _ = run_bench(
        [str(onnx), str(checkpoint)],
        ["onnxruntime", "torch"],
        BenchSettings([1], warmup=0, iters=3, duration_s=None, rounds=3, warmup_s=0),
    )
    assert order == [
        (".onnx", 1),
        (".safetensors", 1),
        (".safetensors", 1),
        (".onnx", 1),
        (".onnx", 1),
        (".safetensors", 1),
    ]
    assert all(len(r.round_p50_ms) == 3 and r.latency_ms.n == 3 for r in records)
    assert all(r.warmup.calls == 0 for r in records)


def test_speedup_intervals_come_from_paired_rounds():
    a = [10.0, 10.5, 9.8, 10.2, 10.1, 9.9, 10.0]
    b = [5.0, 5.1, 4.9, 5.2, 5.0, 5.05, 4.95]
    low, high = ratio_interval(a, b)
    assert low < 10.0 / 5.0 < high and low > 1.9 and high < 2.1
    assert ratio_interval(a, b) == (low, high)  # seeded: the same data, the same interval
    assert ratio_interval(a[:4], b[:4]) is None and ratio_interval(a, None) is None

    rows = comparison_rows([bench_record(p50=10.0, round_p50_ms=a), bench_record(p50=5.0, round_p50_ms=b)])
    assert rows[0].speedup_vs_first == 1 and rows[1].speedup_vs_first == 2
    assert rows[1].speedup_ci == (low, high) and rows[0].speedup_ci is None  # the first row is the unit


def test_memory_is_each_models_own(exported):
    """RSS growth is from before a model was loaded to its peak; the process peak is kept apart."""
    models = [str(exported["onestep-cond"][1]), str(exported["onestep-cond"][0])]
    records, _ = run_bench(
        models, ["torch", "onnxruntime"], BenchSettings([1], warmup=1, iters=2, duration_s=None, warmup_s=0)
    )
    for r in records:
        assert 0 <= r.rss_growth_mb <= r.peak_rss_mb <= r.process_peak_rss_mb + 1


def test_report_files_round_trip(exported, tmp_path):
    records, _ = run_bench(
        [str(exported["onestep-cond"][0])], ["auto"], BenchSettings([1], warmup=0, iters=2, duration_s=None)
    )
    save_json(tmp_path / "a.json", records)
    (tmp_path / "b.json").write_text(json.dumps({"records": [r.model_dump(mode="json") for r in records]}))
    merged = load_records([tmp_path / "a.json", tmp_path / "b.json"])
    assert merged == [records[0], records[0]]  # what bench writes passes its schema unchanged
    table = markdown(merged)
    assert table.count("\n| onestep-cond.onnx | onnxruntime | fp32 | 1 | model |") == 2 and "1.00x" in table
    save_csv(tmp_path / "r.csv", merged)
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("model,backend,provider,precision,batch")
    assert latency_distribution(tmp_path / "p.png", merged) and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(EdgeditError, match="bad.json: not a valid bench record file: expected a JSON list, got dict"):
        load_records([tmp_path / "bad.json"])
    (tmp_path / "nan.json").write_text((tmp_path / "a.json").read_text().replace('"p50": ', '"p50": NaN, "x": '))
    with pytest.raises(EdgeditError, match="nan.json: not a valid bench record file: not JSON"):
        load_records([tmp_path / "nan.json"])


def test_auto_means_every_backend_that_runs_the_file_here():
    """For bench, `auto` is load_backend's choice plus its peers (torch.compile beside eager torch);
    a list gives each model those of its backends that run it."""
    from edgedit.runtime.backends import backends_for

    assert backends_for("s.safetensors", ["auto"]) == ["torch", "torch-compile"]
    assert backends_for("DiT-Nano-S/2", ["auto"]) == ["torch", "torch-compile"]
    assert backends_for("s.onnx", ["auto"]) == ["onnxruntime"] and backends_for("s.plan", ["auto"]) == ["tensorrt"]
    assert backends_for("s.onnx", ["onnxruntime", "torch", "null"]) == ["onnxruntime", "null"]
    assert backends_for("s.safetensors", ["auto", "torch"]) == ["torch", "torch-compile"]
    assert backends_for("s.onnx", ["torch"]) == ["torch"]  # alone: load_backend refuses it, saying why
    with pytest.raises(EdgeditError, match="unknown backend 'tvm'"):
        backends_for("s.onnx", ["auto", "tvm"])
    with pytest.raises(EdgeditError, match="s.onnx: none of the backends torch, torch-compile runs .onnx models"):
        backends_for("s.onnx", ["torch", "torch-compile"])


def test_tegrastats_is_split_by_record_and_ram_counted_from_before_each_load(exported, tmp_path, monkeypatch):
    """A fake tegrastats whose RAM rises by 300 MB once the model is loaded: the record's RAM delta is
    300 MB, and its power and energy come from the samples inside its own timed slices."""
    import time

    line = "RAM {ram}/7620MB (lfb 2x4MB) SWAP 0/3810MB GR3D_FREQ 50%@612 VDD_IN 5000mW/5000mW"
    marker = tmp_path / "loaded"
    fake = tmp_path / "tegrastats"
    after, before = line.format(ram=2300), line.format(ram=2000)
    fake.write_text(
        f"#!/bin/sh\nwhile true; do\n  if [ -e {marker} ]; then echo '{after}'; else echo '{before}'; fi\n"
        "  sleep 0.02\ndone\n"
    )
    fake.chmod(0o755)
    samplers = []

    class Sampler(harness.TegrastatsSampler):  # the real sampler, over the fake executable
        def __init__(self, interval_ms):
            super().__init__(interval_ms, executable=str(fake))
            samplers.append(self)

    def wait_for(condition) -> None:  # lines arrive when a loaded machine lets them
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)

    monkeypatch.setattr(harness, "TegrastatsSampler", Sampler)
    real_load = harness.load_backend

    def load_then_mark(*args, **kwargs):
        assert samplers[0].samples  # bench waited for a reading from before the load
        backend = real_load(*args, **kwargs)
        marker.touch()
        wait_for(lambda: samplers[0].samples[-1].ram_used_mb == 2300)
        return backend

    monkeypatch.setattr(harness, "load_backend", load_then_mark)
    (record,), _ = run_bench(
        [str(exported["onestep-cond"][0])],
        ["onnxruntime"],
        BenchSettings([1], warmup=1, duration_s=2.0, rounds=2, warmup_s=0, tegrastats=True, tegrastats_interval_ms=20),
    )
    tegra = record.tegrastats
    assert tegra.ram_delta_mb == 300 and tegra.samples >= 2
    assert tegra.power_mw["VDD_IN"].mean == 5000
    assert tegra.energy_per_image_j == pytest.approx(tegra.energy_j / record.latency_ms.n)


def test_auto_leaves_out_a_peer_that_cannot_run_here(monkeypatch):
    """Without a C++ compiler torch.compile cannot build CPU kernels: auto keeps eager torch alone,
    and asking for it by name says why."""
    from edgedit.models.torch_backend import TorchCompileBackend
    from edgedit.runtime.backends import RunOptions, backends_for, load_backend

    monkeypatch.setattr("shutil.which", lambda name: None)
    assert not TorchCompileBackend.available()
    assert backends_for("s.safetensors", ["auto"]) == ["torch"]
    with pytest.raises(EdgeditError, match="torch.compile needs a C\\+\\+ compiler"):
        load_backend("DiT-Nano-XS/2", "torch-compile", RunOptions(quiet=True))


@pytest.mark.parametrize("name", ["demo_bench.json", "peers.json"])
def test_records_of_earlier_runs_read_and_write_back_the_same(name, tmp_path):
    """Bench files committed by earlier versions (benchmarks/results/) pass today's schema, and a record
    read and written again is the same record."""
    path = Path(__file__).parents[2] / "benchmarks" / "results" / name
    records = load_records([path])
    assert records and all(r.latency_ms.p50 > 0 and r.config.depth >= 1 for r in records)
    save_json(tmp_path / "again.json", records)
    assert load_records([tmp_path / "again.json"]) == records


def test_a_record_that_would_divide_by_zero_or_predates_a_field_is_read_as_such(tmp_path):
    """A zero latency (every ratio divides by one) is refused in one line; a Jetson record written
    before the RAM delta and energy per image existed still reads."""
    zero = bench_record().model_dump(mode="json")
    zero["latency_ms"]["p50"] = 0.0
    (tmp_path / "zero.json").write_text(json.dumps([zero]))
    with pytest.raises(EdgeditError, match=r"field '0.latency_ms.p50': input should be greater than 0"):
        load_records([tmp_path / "zero.json"])
    (tmp_path / "rounds.json").write_text(json.dumps([{**zero, "latency_ms": {**zero["latency_ms"], "p50": 1.0},
                                                      "round_p50_ms": [1.0, 0.0]}]))  # fmt: skip
    with pytest.raises(EdgeditError, match=r"field '0.round_p50_ms.1': input should be greater than 0"):
        load_records([tmp_path / "rounds.json"])
    stat = {"mean": 5000.0, "peak": 5000}
    old = {
        "samples": 2, "bad_lines": 0, "period_s": 0.1, "duration_s": 0.2, "ram_used_mb": stat, "ram_total_mb": 7620,
        "swap_used_mb": None, "gr3d_pct": None, "emc_pct": None, "power_mw": {"VDD_IN": stat}, "energy_rail": "VDD_IN",
        "energy_j": 1.0,
    }  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps([{**bench_record().model_dump(mode="json"), "tegrastats": old}]))
    (record,) = load_records([tmp_path / "old.json"])
    assert record.tegrastats.ram_delta_mb is None and record.tegrastats.total_power_mw() == 5000.0
