"""The calibration: shipped points and fit, recovery of known constants, and refits from a Jetson's bench JSON."""

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgedit.cli import app
from edgedit.contract.config import get_preset
from edgedit.contract.errors import EdgeditError
from edgedit.contract.hardware import POWER_MODES
from edgedit.cost import fit as cal
from edgedit.cost.kernels import dit_kernels
from edgedit.cost.latency import Constants, network_ms
from tests.helpers import bench_record

runner = CliRunner()
TRUE = Constants(
    tensor_efficiency=0.4,
    conv_efficiency=0.2,
    int8_efficiency=0.7,
    bandwidth_efficiency=0.6,
    kernel_floor_us=12.0,
    launch_us=9.0,
)
SHAPES = [(2, 64, 4), (4, 80, 4), (8, 32, 4), (6, 128, 4), (3, 312, 6), (12, 192, 6)]


def student(depth, width, heads):
    return get_preset("DiT-Nano-XS/2").config.replace(
        depth=depth, hidden_size=width, num_heads=heads, input_size=16, in_channels=1, num_classes=10
    )


def test_the_shipped_points_are_sourced_and_the_shipped_fit_is_their_fit():
    points = cal.load_points()
    assert len({p.id for p in points}) == len(points)
    assert all(p.source.startswith("https://") and p.measured_ms > 0 for p in points)
    fit = cal.calibrate(points)
    shipped = cal.load_fit()
    assert (
        shipped.label
        == fit.label
        == (f"estimate (calibrated on {sum(p.use == 'fit' for p in points)} public measurements)")
    )
    # least_squares stops at its default tolerances (1e-8): fits whose inputs differ by 1e-13 (another CPU's
    # rounding) land within 5e-8 of each other, the range's leave-one-out fits within 3e-7 of their optima
    for key, value in fit.constants.to_dict().items():
        assert getattr(shipped.constants, key) == pytest.approx(value, rel=1e-6), key  # re-run the fit script
    assert shipped.range_ratios == pytest.approx(fit.range_ratios, rel=1e-6)
    error = cal.loo_error(fit)
    assert error["points"] == sum(p.use == "fit" for p in points) and error["median_factor"] < 1.3
    # its rows are typed records: read and written back, the shipped file is the same JSON
    assert shipped.to_dict() == json.loads((Path(cal.__file__).parent / "data" / "fit.json").read_text())
    assert [r.id for r in shipped.rows] == [r.id for r in fit.rows] and fit_rows_close(shipped.rows, fit.rows)


def fit_rows_close(shipped, fitted) -> bool:
    """Rows of two fits of the same points agree to the fit's tolerance: their constants lie within 5e-8
    of each other and a prediction is a smooth function of them (rel 1e-6: 20x margin); a leave-one-out
    fit lands within 3e-7 of its optimum (rel 1e-5 on its ratio: 30x)."""
    return all(
        a.predicted_ms == pytest.approx(b.predicted_ms, rel=1e-6)
        and (a.loo_ratio is None) == (b.loo_ratio is None)
        and (a.loo_ratio is None or a.loo_ratio == pytest.approx(b.loo_ratio, rel=1e-5))
        for a, b in zip(shipped, fitted)
    )


def test_the_fit_recovers_known_constants_from_exact_measurements():
    points = []
    for i, shape in enumerate(SHAPES):
        for device in ("orin-nano", "orin-nano-super"):
            for precision in ("fp16", "int8", "fp32"):
                cfg = student(*shape)
                ms = network_ms(dit_kernels(cfg), POWER_MODES[device], precision, TRUE)
                points.append(
                    cal.Point(
                        id=f"p{i}-{device}-{precision}",
                        use="fit",
                        network=cal.DiTNetwork(family="dit", config=cfg.to_dict()),
                        device=device,
                        precision=precision,
                        batch=1,
                        cuda_graph=False,
                        timing="gpu",
                        measured_ms=ms,
                        source="synthetic",
                    )
                )
    fitted = cal.fit_constants(
        points,
        launch_us=TRUE.launch_us,
        fitted=("tensor_efficiency", "int8_efficiency", "bandwidth_efficiency", "kernel_floor_us"),
    )
    # zero residual at TRUE: Gauss-Newton converges quadratically, to ~1e-13 here; 1e-6 leaves least_squares'
    # 1e-8 stopping tolerance 100x
    for key in ("tensor_efficiency", "int8_efficiency", "kernel_floor_us"):
        assert getattr(fitted, key) == pytest.approx(getattr(TRUE, key), rel=1e-6), key


def jetson_record(cfg, precision, graph, ms, mode="MAXN_SUPER", clocks=True, backend="tensorrt") -> dict:
    """A whole `edgedit bench --json` record, as a Jetson would write it: GPU time `ms` per call."""
    latency = dict(n=100, min=ms, mean=ms + 0.05, p50=ms + 0.05, p90=ms + 0.1, p99=ms + 0.2, max=ms + 0.3, std=0.01)
    facts = {
        "model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        "l4t": "36.4.3",
        "nvpmodel": {"name": mode, "id": 2},
        "jetson_clocks": clocks,
    }
    return bench_record(
        model=f"s{cfg.depth}x{cfg.hidden_size}.{precision}.plan", backend=backend, provider="Orin",
        precision=precision, latency_per_image_ms=ms + 0.05, throughput_img_s=1000 / (ms + 0.05),
        gpu_ms={**latency, "p50": ms}, random_weights=True, config=cfg.to_dict(), cuda_graph=graph,
        env={"platform": "Linux aarch64", "packages": {"tensorrt": "10.3.0.30"}, "jetson": facts}, **latency,
    ).model_dump(mode="json")  # fmt: skip


def test_calibrate_refits_from_a_jetsons_bench_json_and_every_estimate_follows(tmp_path, monkeypatch):
    """Synthetic device runs (a 'true' model with a 9 us launch) with and without CUDA graphs: the refit
    learns the launch cost the public points cannot, and the estimates move to the device's numbers."""
    device = POWER_MODES["orin-nano-super"]
    records = [
        jetson_record(cfg, p, g, network_ms(dit_kernels(cfg), device, p, TRUE, cuda_graph=g))
        for cfg in (student(*s) for s in SHAPES)
        for p in ("fp16", "int8")
        for g in (False, True)
    ]
    records.append(jetson_record(student(2, 64, 4), "fp16", False, 1.0, backend="onnxruntime"))
    records.append(jetson_record(student(2, 64, 4), "fp16", False, 1.0, clocks=False))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(records))
    out = tmp_path / "calibration.json"
    result = runner.invoke(app, ["models", "--calibrate", str(bench), "--calibration-out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device_points"] == 24 and len(report["skipped"]) == 2
    assert "launch_us" in report["fitted"]
    assert any("clocks were not pinned" in s for s in report["skipped"])

    target = student(4, 80, 4)
    truth = network_ms(dit_kernels(target), device, "fp16", TRUE)
    before = cal.estimate(target, "orin-nano-super", "fp16", fit=cal.load_fit()).ms
    shape = [
        "DiT-Nano-XS/2",
        "--depth",
        "4",
        "--width",
        "80",
        "--heads",
        "4",
        "--input-size",
        "16",
        "--in-channels",
        "1",
        "--num-classes",
        "10",
    ]
    after = runner.invoke(app, ["--fit", str(out), "models", *shape, "--json"])  # the fit the user names
    (row,) = json.loads(after.stdout)
    assert report["models"] == []  # no MODEL was named with --calibrate
    # --calibrate with a MODEL reports that MODEL under the new fit
    again = runner.invoke(app, ["models", *shape, "--calibrate", str(bench), "--calibration-out", str(out), "--json"])
    assert json.loads(again.stdout)["models"][0]["device_estimates"] == row["device_estimates"]
    shipped = json.loads(runner.invoke(app, ["models", *shape, "--json"]).stdout)[0]  # nothing else changed
    assert "device measurements" not in shipped["device_estimate_note"]
    public = sum(p.use == "fit" for p in cal.load_points())
    assert f"{public} public + 24 device measurements" in row["device_estimate_note"]
    now = row["device_estimates"]["orin_nano_super_fp16"]["ms"]
    assert abs(math.log(now / truth)) < abs(math.log(before / truth)) and abs(math.log(now / truth)) < 0.1


@pytest.mark.parametrize(
    "records, message",
    [
        ([], "no usable device measurements"),
        ([jetson_record(student(2, 64, 4), "fp32", False, 1.0, backend="onnxruntime")], "not a TensorRT network call"),
        (
            [{"model": "m.onnx", "backend": "onnxruntime", "what": "model", "latency_ms": {}}],
            "not a valid bench record file: field '0.provider': field required",
        ),
        ([{**jetson_record(student(2, 64, 4), "fp16", False, 1.0), "batch": True}], "field '0.batch': input should be"),
        ([{**jetson_record(student(2, 64, 4), "fp16", False, 1.0), "latency_ms": {"p50": -1}}], "field '0.latency_ms"),
    ],
)
def test_calibrate_refuses_files_without_device_measurements(records, message, tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(records))
    result = runner.invoke(app, ["models", "--calibrate", str(bench), "--calibration-out", str(tmp_path / "c.json")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "c.json").exists()


def test_a_damaged_calibration_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"format": "edgedit.latency-fit/1", "constants": {"tensor_efficiency": "high"}}))
    result = runner.invoke(app, ["--fit", str(bad), "models", "DiT-Nano-S/2"])
    assert result.exit_code == 2 and "c.json: not a valid latency calibration" in result.output
    missing = runner.invoke(app, ["--fit", str(tmp_path / "none.json"), "models"])
    assert (
        missing.exit_code == 2
        and missing.stderr.strip() == f"edgedit: error: --fit {tmp_path / 'none.json'}: no such latency fit"
    )
    no_out = runner.invoke(app, ["models", "--calibrate", str(bad)])
    assert no_out.exit_code == 2 and "--calibrate needs --calibration-out FILE" in no_out.stderr
    with pytest.raises(EdgeditError, match="unknown device"):
        cal.estimate(student(2, 64, 4), "orin-agx", "fp16", fit=cal.load_fit())
