import json
import re
import statistics

import numpy as np
import pytest
from safetensors.numpy import load_file

from edgedit.contract.config import get_preset
from edgedit.contract.errors import EdgeditError
from edgedit.cost import accounting
from edgedit.data.pairs import generate_pairs
from edgedit.design.results import pareto_front, pick, save_pick
from edgedit.design.sweep import SweepOptions, candidates_for, parse_budget, retime, sweep
from edgedit.eval.metrics import significant
from edgedit.models.checkpoint import read_checkpoint, save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.train.distill import student_config
from edgedit.train.trainer import TrainSettings
from tests.helpers import TINY_CONFIGS

GRID = dict(depths=(1, 2), heads=(2,), widths=tuple(range(16, 97, 8)))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep-pairs")
    teacher = save_model(random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=3).eval(), folder / "teacher.safetensors")
    generate_pairs(teacher, folder / "pairs", count=32, steps=3, trajectory=1, shard_size=32, batch=32)
    return folder / "pairs"


def manifest(pairs):
    return json.loads((pairs / "manifest.json").read_text())


def test_budgets_and_candidates(pairs):
    assert parse_budget("500k") == 500_000 and parse_budget("1.5M") == 1_500_000 and parse_budget("1234") == 1234
    with pytest.raises(EdgeditError, match="not a parameter count"):
        parse_budget("lots")
    base = student_config("DiT-Nano-S/2", manifest(pairs))
    found = candidates_for(500_000, base, methods=("output", "mi1"))
    assert all(abs(accounting.count_params(c.config) - 500_000) <= 0.2 * 500_000 for c in found)
    shapes = {(c.config.depth, c.config.hidden_size) for c in found}
    assert min(shapes)[1] > max(shapes)[1]  # the shallowest is the widest
    assert {c.method for c in found} == {"output", "mi1"} and len({c.name for c in found}) == len(found)


def run(pairs, out, **kwargs):
    settings = TrainSettings(steps=3, batch=16, lr=2e-3, checkpoint_every=3)
    return sweep(
        SweepOptions(
            pairs=pairs,
            output=out,
            budgets=(parse_budget("40k"),),
            settings=settings,
            methods=("output", "mi1"),
            eval_samples=16,
            latency_seconds=0.1,
            **GRID,
            **kwargs,
        ),
        say=lambda text: None,
    )


def test_sweep_writes_results_plot_and_principles_and_resumes(pairs, tmp_path):
    out = tmp_path / "sweep"
    results = run(pairs, out, shard=(1, 2))  # one worker's half first
    half = len(results)
    results = run(pairs, out, shard=(0, 2))  # the other half: the results merge
    planned = candidates_for(40_000, student_config("DiT-Nano-S/2", manifest(pairs)), methods=("output", "mi1"), **GRID)
    runnable = [c for c in planned if not (c.method == "mi1" and c.config.depth < 2)]  # mi1 needs 2 blocks
    assert len(results) == len(runnable) > half
    for r in results:
        assert r.fid > 0 and r.latency.p50_ms > 0
        e = r.device_estimates["orin_nano_int8"]
        assert 0 < e.low_ms < e.ms < e.high_ms and "calibrated on" in e.label
        assert r.params == accounting.count_params(r.config)
    assert all((out / r.name / "student.samples" / "step-0000003.png").is_file() for r in results)  # a grid each
    for name in ("results.json", "results.csv", "pareto.png", "principles.md"):
        assert (out / name).exists()
    text = (out / "principles.md").read_text()
    assert "## Budget 40,000 parameters" in text and "MI1 vs output at equal architecture" in text
    assert "Depth at this size" in text
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/student.safetensors")}
    said = []
    sweep(
        SweepOptions(
            pairs=pairs,
            output=out,
            budgets=(40_000,),
            settings=TrainSettings(steps=3, batch=16, lr=2e-3, checkpoint_every=3),
            methods=("output", "mi1"),
            eval_samples=16,
            latency_seconds=0.1,
            **GRID,
        ),
        say=said.append,
    )
    assert all("skipped" in line for line in said if line.startswith("["))
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/student.safetensors")} == stamps

    # Re-timing: one latency per architecture, shared by its methods, in the files and the reports.
    retimed = retime(out, latency_seconds=0.05, rounds=2, say=lambda text: None)
    by_architecture = {}
    for r in retimed:
        by_architecture.setdefault(r.config, set()).add(r.latency.p50_ms)
    assert all(len(v) == 1 for v in by_architecture.values())
    latencies = {r.name: r.latency.model_dump(mode="json") for r in retimed}
    assert all(
        len(v["rounds_p50_ms"]) == 2 and v["p50_ms"] == statistics.median(v["rounds_p50_ms"])
        for v in latencies.values()
    )  # interleaved rounds, the median of their medians
    assert {r["name"]: r["latency"] for r in json.loads((out / "results.json").read_text())} == latencies
    assert all(json.loads((out / n / "result.json").read_text())["latency"] == v for n, v in latencies.items())
    assert not any("device_estimates" in json.loads(p.read_text()) for p in out.glob("*/result.json"))  # reports' own

    # The overall best student ships with its evaluation in its provenance, weights bit-identical.
    best = pick(out / "results.json").result
    assert best.fid == min(r.fid for r in results)
    shipped = save_pick(best, out / "results.json", tmp_path / "best.safetensors")
    info = read_checkpoint(shipped)
    assert info.provenance["eval"]["FID"] == significant(best.fid)
    assert info.provenance["sweep"]["name"] == best.name
    assert info.provenance["method"] == best.method  # the distillation's own provenance is kept
    source = load_file(str(out / best.name / "student.safetensors"))
    assert all(np.array_equal(source[k], v) for k, v in load_file(str(shipped)).items())


def sweep_result(name: str, fid: float, config, **changes) -> dict:
    """A results.json entry as the sweep writes it."""
    metric = {"metric": "FID", "value": fid, "features": "f", "samples": 16, "reference": "r"}
    return {
        "name": name, "budget": 500_000, "method": "output", "config": config.to_dict(), "depth": config.depth,
        "width": config.hidden_size, "heads": config.num_heads, "params": 1, "macs": 1, "fid": fid,
        "fid_metric": "FID [f; 16 samples; vs r]", "metrics": [metric], "steps": 3, "batch": 16, "lr": 1e-3,
        "latency": {"backend": "onnxruntime", "p50_ms": 1.0}, **changes,
    }  # fmt: skip


def test_pick_names_the_best_configuration_within_a_latency_budget(tmp_path):
    """Deeper students cost more kernels: the estimate orders them, and pick honours the budget."""
    from edgedit.cost.fit import estimate
    from edgedit.design.results import load_results

    base = get_preset("DiT-Nano-XS/2").config
    configs = {n: base.replace(depth=d) for n, d in (("a", 2), ("b", 4), ("c", 8))}
    results = [sweep_result(n, f, configs[n]) for n, f in (("a", 50), ("b", 40), ("c", 30))]
    (tmp_path / "results.json").write_text(json.dumps(results))
    ms = {n: estimate(cfg, "orin-nano", "fp16").ms for n, cfg in configs.items()}
    assert ms["a"] < ms["b"] < ms["c"]
    assert pick(tmp_path / "results.json", (ms["b"] + ms["c"]) / 2).result.name == "b"
    best = pick(tmp_path / "results.json", ms["c"] * 1.01)
    # the same float64 function of the same config (its JSON round trip is exact): equal bits
    assert best.result.name == "c" and best.device_estimate.ms == ms["c"]
    assert best.to_dict()["device_estimate"]["ms"] == ms["c"] and best.to_dict()["name"] == "c"  # `--json`
    assert pick(tmp_path / "results.json", device="orin-nano-super").device_estimate.ms < ms["c"]
    with pytest.raises(EdgeditError, match=f"the fastest is a at {ms['a']:.3f} ms"):
        pick(tmp_path / "results.json", ms["a"] / 2)
    with pytest.raises(EdgeditError, match="`latency_ms` must be a positive number"):
        pick(tmp_path / "results.json", float("nan"))
    old = [{**r, "orin_nano_fp16_ms": 9.9, "orin_nano_int8_ms": 9.9} for r in results]  # an early sweep's roofline
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert [r.model_dump(mode="json", exclude_unset=True) for r in load_results(tmp_path / "old.json")] == results
    loaded = load_results(tmp_path / "results.json")
    assert [r.model_dump(mode="json", exclude_unset=True) for r in loaded] == results  # read whole, written back
    front = pareto_front(loaded, lambda r: ms[r.name])
    assert [r.name for r in front] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "../../etc"}, "field '0.name': string should match pattern"),
        ({"fid": float("nan")}, "not JSON"),
        ({"fid": "12"}, "field '0.fid': input should be a valid number"),
        ({"config": {"depth": 10**6}}, "field '0.config.depth': input should be less than or equal to 1024"),
        ({"config": {"num_heads": 5}}, "field '0.config': width 96 is not divisible by 5 heads"),
        ({"depth": 9}, "depth/width/heads 9/96/3 are not its config's 4/96/3"),
        ({"latency": []}, "field '0.latency': expected a JSON object, got list"),
        ({"metrics": []}, "field '0.metrics': list should have at least 1 item"),
        ({"lr": None}, "field '0.lr': input should be a valid number"),
    ],
)
def test_pick_refuses_damaged_results(tmp_path, change, message):
    cfg = get_preset("DiT-Nano-XS/2").config
    result = sweep_result("a", 50, cfg)
    if "config" in change:
        change = {"config": {**cfg.to_dict(), **change["config"]}}
    (tmp_path / "results.json").write_text(json.dumps([{**result, **change}]))
    with pytest.raises(EdgeditError, match="results.json: .*" + re.escape(message)):
        pick(tmp_path / "results.json")


def test_ta_in_a_sweep_needs_a_ta(pairs, tmp_path):
    with pytest.raises(EdgeditError, match="`methods` ta needs `ta`"):
        sweep(
            SweepOptions(
                pairs=pairs,
                output=tmp_path,
                budgets=(40_000,),
                settings=TrainSettings(steps=1, batch=16),
                methods=("ta",),
                **GRID,
            ),
            say=lambda t: None,
        )


def test_the_published_sweep_reads_whole_and_re_reports(tmp_path):
    """docs/results-digits/results.json, written by an earlier edgedit, passes today's schema: `design
    report` rewrites it with the same candidates, and `design pick` names its best FID."""
    from pathlib import Path

    from edgedit.design.results import load_results, write_reports

    published = Path(__file__).parents[2] / "docs" / "results-digits" / "results.json"
    results = load_results(published)
    rewritten = write_reports(tmp_path, results)
    assert [r.name for r in rewritten] == [r.name for r in results]
    assert (
        json.loads((tmp_path / "results.json").read_text())[0]["metrics"]
        == json.loads(published.read_text())[0]["metrics"]
    )
    assert pick(published).result.fid == min(r.fid for r in results)
