import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgedit.cli import app
from edgedit.contract.config import PRESETS, resolve_config
from edgedit.contract.errors import EdgeditError
from edgedit.cost import accounting
from edgedit.eval.metrics import significant
from edgedit.models.checkpoint import read_checkpoint, save_model
from edgedit.models.dit import DiT
from edgedit.runtime.images import CAPTION_HEIGHT
from tests.design.test_sweep import sweep_result
from tests.helpers import TINY_CONFIGS

runner = CliRunner()
COMMANDS = {
    "models",
    "info",
    "doctor",
    "convert-dit",
    "export",
    "calib-data",
    "quantize",
    "sample",
    "build-engine",
    "bench",
    "tegrastats",
    "demo",
    "serve",
    "teacher",
    "pairs",
    "eval",
    "distill",
    "design",
}


def test_help_lists_exactly_the_implemented_commands():
    group = typer.main.get_command(app)
    assert set(group.commands) == COMMANDS
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and all(name in result.output for name in COMMANDS)
    for command in COMMANDS:
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output
    assert set(group.commands["bench"].commands) == {"run", "report"}


def test_console_script_is_installed_and_starts():
    script = Path(sys.executable).parent / "edgedit"  # the entry point pip installed beside the interpreter
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
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
        e = row["device_estimates"]
        assert e["orin_nano_super_fp16"]["ms"] < e["orin_nano_fp16"]["ms"]  # higher clocks, more bandwidth
        assert e["orin_nano_fp16_graph"]["ms"] <= e["orin_nano_fp16"]["ms"] * (1 + 1e-9)
        assert "estimate (calibrated on" in row["device_estimate_note"]


def test_models_table_shows_names_and_labels_latency_as_an_estimate():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "DiT-XL/2" in result.stdout and "675.13M" in result.stdout and "DiT-Nano-M-Wide/2" in result.stdout
    from edgedit.cost.fit import active_fit

    label = f"estimate (calibrated on {active_fit().public_points} public measurements)"
    assert label in " ".join(result.stdout.split())


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_models_describes_a_file_with_its_estimates_and_range(kind, tmp_path):
    cfg = TINY_CONFIGS["onestep-cond"]
    path = tmp_path / "m.safetensors"
    save_model(DiT(cfg), path)
    if kind == "onnx":
        from edgedit.export.exporter import BatchSpec, export_onnx

        path = export_onnx(DiT(cfg).eval(), tmp_path / "m.onnx", {"checkpoint": "m"}, BatchSpec.static(1)).path
    (row,) = json.loads(runner.invoke(app, ["models", str(path), "--json"]).stdout)
    assert row["params"] == accounting.count_params(cfg) and row["name"] == path.name
    text = runner.invoke(app, ["models", str(path)])
    assert text.exit_code == 0
    e = row["device_estimates"]["orin_nano_fp16"]
    assert f"{e['ms']:.3f} ({e['low_ms']:.3f}-{e['high_ms']:.3f})" in text.stdout


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_models_table_reads_whole_at_any_width(monkeypatch, width):
    """Every value of the record appears intact: the table when it fits, one block per row when not;
    never an ellipsis or a value folded mid-word."""
    import edgedit.assets
    from edgedit.cli import common

    student = str(edgedit.assets.STUDENT_DIGITS)
    (record,) = json.loads(runner.invoke(app, ["models", student, "--json"]).stdout)
    monkeypatch.setattr(common.stdout, "width", width)
    text = runner.invoke(app, ["models", student]).stdout
    c, e = record["config"], record["device_estimates"]
    values = [
        record["name"],
        f"{c['depth']}x{c['hidden_size']}/{c['num_heads']}",
        common.si(record["params"]),
        common.si(record["macs"]),
        str(record["tensorrt_kernels"]),
        common.si(record["weights_bytes"]["fp16"], "B"),
        *(f"{e[f'{d}_fp16']['ms']:.2f} / {e[f'{d}_int8']['ms']:.2f}" for d in ("orin_nano", "orin_nano_super")),
    ]
    table = text.split(" on the device")[0]
    assert "…" not in table and all(v in table for v in values), table


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
        (["models", "missing.safetensors"], "missing.safetensors: no such file"),
        (["info", "missing.safetensors"], "missing.safetensors: no such file"),
        (["design", "retime", "-o", "no-such-sweep"], "no-such-sweep: no finished candidates"),
        (
            ["design", "pick", "--results", "no-such-sweep/results.json"],
            "no-such-sweep/results.json: no such sweep results file",
        ),
        # Usage errors too: one line naming the option, not a usage box.
        (["teacher", "train", "-o", "t.safetensors", "--steps", "1", "--width", "2"], "Invalid value for '--width'"),
        (["info", "--bogus", "x.onnx"], "No such option: --bogus (see `edgedit info --help`)"),
        (["infox"], "No such command 'infox'"),
        (["design", "sweep", "--pairs", "p", "--budget", "inf", "--steps", "1"], "--budget 'inf' is not a parameter"),
        (["design", "sweep", "--pairs", "p", "--budget", "-5k", "--steps", "1"], "--budget '-5k' is not a parameter"),
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


def test_a_sample_count_beyond_memory_is_refused_before_any_work(exported, tmp_path):
    result = runner.invoke(
        app, ["sample", str(exported["onestep-cond"][0]), "-n", "1000000000000", "-o", str(tmp_path / "grid.png")]
    )
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []
    assert "1000000000000 images of 1x16x16 need" in result.stderr and "ask for fewer images (--num)" in result.stderr


@pytest.mark.parametrize("label", ["10", "1000000"])
def test_a_class_label_outside_the_models_classes_is_refused_naming_them(exported, tmp_path, label):
    # the tiny conditional model has 10 classes: 0..9 are labels, 10 and beyond are not
    result = runner.invoke(
        app,
        [
            "sample",
            str(exported["onestep-cond"][0]),
            "-n",
            "2",
            "--class-label",
            label,
            "-o",
            str(tmp_path / "grid.png"),
        ],
    )
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []
    assert f"class label {label} is outside this model's 10 classes (0..9)" in result.stderr


def test_no_arguments_print_the_help_with_the_exit_codes():
    result = runner.invoke(app, [])
    assert "Usage" in result.stdout and "edgedit: error" not in result.stderr
    assert "130 interrupted" in " ".join(result.stdout.split())


def test_info_describes_a_foreign_onnx_and_refuses_damaged_edgedit_metadata(tmp_path, exported):
    import onnx

    from edgedit.export.graph import metadata

    model = onnx.load(exported["onestep-cond"][0])
    meta = metadata(model)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "foreign.onnx")
    foreign = runner.invoke(app, ["info", str(tmp_path / "foreign.onnx"), "--json"])
    assert foreign.exit_code == 0 and json.loads(foreign.stdout)["edgedit"] is None

    batch = json.loads(meta["edgedit.batch"])
    for key, value in (
        ("edgedit.batch", json.dumps({**batch, "min": 0})),
        ("edgedit.quantization", json.dumps(["not", "a", "record"])),
    ):
        onnx.helper.set_model_props(model, {**meta, key: value})
        onnx.save(model, tmp_path / "damaged.onnx")
        damaged = runner.invoke(app, ["info", str(tmp_path / "damaged.onnx")])
        assert damaged.exit_code == 2 and damaged.stdout == "", damaged.output
        assert f"damaged.onnx: not a valid edgedit metadata: field '{key[8:]}" in damaged.stderr


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


def test_export_quantize_sample_pipeline(tmp_path, exported):
    from PIL import Image

    ckpt = exported["onestep-cond"][1]
    onnx_path = tmp_path / "student.onnx"
    done = runner.invoke(app, ["export", str(ckpt), "-o", str(onnx_path), "--dynamic-batch", "1:2:4", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [c["batch"] for c in report["parity"]] == [1, 4] and report["ops"]["LayerNormalization"] == 5

    info = json.loads(runner.invoke(app, ["info", str(onnx_path), "--json"]).stdout)
    assert info["type"] == "onnx" and not info["qdq"] and info["edgedit"]["source"]["checkpoint"] == ckpt.name
    assert [i["name"] for i in info["inputs"]] == ["z", "y"] and info["inputs"][0]["shape"] == ["N", 1, 16, 16]

    calib = tmp_path / "calib.npz"
    assert runner.invoke(app, ["calib-data", str(onnx_path), "-n", "16", "-o", str(calib)]).exit_code == 0
    done = runner.invoke(app, ["quantize", str(onnx_path), "--calib", str(calib), "--min-psnr", "20", "--json"])
    assert done.exit_code == 0, done.output
    int8 = tmp_path / "student.int8.onnx"
    assert json.loads(done.stdout)["path"] == str(int8) and int8.exists()
    assert json.loads(runner.invoke(app, ["info", str(int8), "--json"]).stdout)["qdq"]

    grid, npz = tmp_path / "grid.png", tmp_path / "samples.npz"
    done = runner.invoke(app, ["sample", str(int8), "-n", "6", "--batch", "4", "-o", str(grid), "--npz", str(npz)])
    assert done.exit_code == 0, done.output
    import numpy as np

    with np.load(npz) as saved:
        assert saved["images"].shape == (6, 1, 16, 16) and list(saved["seeds"]) == list(range(6))
        assert list(saved["labels"]) == [0, 1, 2, 3, 4, 5]
    # 3 columns of 16 px images with 2 px padding (56 x 38), upscaled x10 to >= 512 px, then the caption strip
    assert Image.open(grid).size == (560, 380 + CAPTION_HEIGHT)


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "DiT-Nano-XS/2", "--opset", "21"], "TensorRT 10.3"),
        (["export", "DiT-Nano-XS/2", "--batch", "2", "--dynamic-batch", "1:2:4"], "exclude each other"),
        (["export", "DiT-Nano-XS/2", "--precision", "int8"], "INT8 comes from `edgedit quantize`"),
        (["quantize", "model.safetensors"], "expected an .onnx file"),
        (["sample", "DiT-Nano-XS/2", "--sampler", "heun"], "takes no --steps or --sampler"),
    ],
)
def test_pipeline_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("edgedit: error")]) == 1


def test_calibration_labels_of_numpys_default_int64_are_cast(tmp_path, exported):
    import numpy as np

    from edgedit.contract.onnx_header import read_onnx_header
    from edgedit.contract.spec import ModelMeta
    from edgedit.export.calib_data import load_calibration

    onnx = exported["onestep-cond"][0]
    meta = ModelMeta.from_metadata(read_onnx_header(onnx)[0], "m")
    z = np.zeros((4, 1, 16, 16), np.float32)
    np.savez(tmp_path / "c.npz", z=z, y=np.arange(4))  # int64
    assert load_calibration(tmp_path / "c.npz", meta)["y"].dtype == np.int32
    np.savez(tmp_path / "big.npz", z=z, y=np.full(4, 2**40))
    with pytest.raises(EdgeditError, match="input 'y' has values outside int32"):
        load_calibration(tmp_path / "big.npz", meta)


def test_quantize_refuses_calibration_data_of_the_wrong_shape(tmp_path, exported):
    import numpy as np

    np.savez(tmp_path / "bad.npz", z=np.zeros((4, 1, 8, 8), np.float32), y=np.zeros(4, np.int32))
    result = runner.invoke(
        app,
        [
            "quantize",
            str(exported["onestep-cond"][0]),
            "--calib",
            str(tmp_path / "bad.npz"),
            "-o",
            str(tmp_path / "out.onnx"),
        ],
    )
    assert result.exit_code == 2 and "input 'z' must be float32 of shape [rows, 1, 16, 16]" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_quantize_below_psnr_threshold_exits_1_and_writes_nothing(tmp_path, exported):
    result = runner.invoke(
        app,
        [
            "quantize",
            str(exported["onestep-uncond"][0]),
            "--min-psnr",
            "200",
            "--plan",
            "recipe",
            "--calib-samples",
            "8",
            "-o",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 1 and "below 200 dB" in result.stderr
    assert not (tmp_path / "q.onnx").exists()
    result = runner.invoke(
        app,
        [
            "quantize",
            str(exported["onestep-uncond"][0]),
            "--min-psnr",
            "200",
            "--calib-samples",
            "8",
            "-o",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 1 and "no INT8 layer class meets the 200 dB budget even alone" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_writes_json_csv_report_and_prints_a_comparison(tmp_path, exported):
    onnx, checkpoint = exported["onestep-cond"]
    out = {k: tmp_path / f"r.{k}" for k in ("json", "csv", "md", "png")}
    result = runner.invoke(
        app,
        [
            "bench",
            str(onnx),
            str(checkpoint),
            "--backend",
            "onnxruntime,torch",
            "--batch",
            "1,2",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--json",
            str(out["json"]),
            "--csv",
            str(out["csv"]),
            "-o",
            str(out["md"]),
            "--plot",
            str(out["png"]),
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(out["json"].read_text())
    assert len(records) == 4 and {r["backend"] for r in records} == {"onnxruntime", "torch"}
    assert "vs 1st" in result.stdout and "onestep-cond.onnx" in result.stdout
    assert out["md"].read_text().startswith("| model | backend") and out["png"].exists()
    merged = runner.invoke(app, ["bench", "report", str(out["json"]), str(out["json"]), "-o", str(tmp_path / "m.md")])
    assert merged.exit_code == 0 and (tmp_path / "m.md").read_text().count("onestep-cond.onnx") == 4


def test_the_comparison_table_fits_100_columns_and_cuts_nothing_off(tmp_path, exported):
    """The demo's and bench's table at its widest (a sampler next to a model, slow CPU numbers,
    a long file name): every value is printed whole in a 100-column terminal."""
    onnx = exported["onestep-cond"][0]
    runner.invoke(
        app,
        ["bench", str(onnx), "--iters", "100", "--rounds", "5", "--warmup", "0", "--json", str(tmp_path / "a.json")],
    )
    record = json.loads((tmp_path / "a.json").read_text())[0]
    assert record["latency_ms"]["p90"] is not None and len(record["round_p50_ms"]) == 5
    slow = {
        **record,
        "model": "student-of-a-very-long-distillation-run.safetensors",
        "what": "sampler",
        "network_evaluations_per_call": 35,
        "round_p50_ms": [v * 1.2e5 for v in record["round_p50_ms"]],
        "latency_ms": {k: v * 1e5 if isinstance(v, float) else v for k, v in record["latency_ms"].items()},
    }
    slower = {**slow, "what": "model", "network_evaluations_per_call": 1}  # its ratio to `record`, with an interval
    (tmp_path / "b.json").write_text(json.dumps([record, slow, slower]))
    result = runner.invoke(app, ["bench", "report", str(tmp_path / "b.json")], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100 and "…" not in result.stdout
    # the long name does not fit a 100-column table: one block per row, every column named in each
    assert sum(line.strip() == "student-of-a-very-long-distillation-run" for line in lines) == 2
    assert sum(line.strip().startswith("J/img") for line in lines) == 3  # no column dropped
    assert any("x ±" in line for line in lines)  # the slow row's ratio, with the spread of its interval
    assert f"{slow['latency_ms']['p50']:.0f}" in result.stdout and "35" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "x.onnx", "--batch", "1,a"], "not a comma list of integers"),
        (["bench", "x.onnx", "--iters", "3", "--duration", "1"], "exclude each other"),
        (["bench", "report"], "Missing argument"),
        (["build-engine", "missing.onnx"], "missing.onnx: no such file"),
        (["build-engine", "{onnx}", "--precision", "int4"], "--precision must be one of fp32, fp16, int8, best"),
        (["tegrastats", "missing.log"], "no such file"),
    ],
)
def test_device_commands_bad_input(args, message, exported):
    args = [a.format(onnx=exported["onestep-cond"][0]) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr


def test_build_engine_dry_run_prints_the_trtexec_command(exported):
    result = runner.invoke(
        app, ["build-engine", str(exported["onestep-uncond"][0]), "--precision", "fp16", "--dry-run"]
    )
    assert result.exit_code == 0
    assert (
        "trtexec --onnx=" in result.stdout
        and "--fp16" in result.stdout
        and "--saveEngine=engines/onestep-uncond.fp16.plan" in result.stdout
    )


def test_build_engine_without_tensorrt_says_engines_are_built_on_the_device(exported, tmp_path):
    result = runner.invoke(app, ["build-engine", str(exported["onestep-uncond"][0]), "-o", str(tmp_path / "m.plan")])
    assert result.exit_code == 2 and "not portable" in result.stderr and list(tmp_path.iterdir()) == []


def test_tegrastats_command_summarises_a_log():
    from pathlib import Path

    log = Path(__file__).parent / "fixtures" / "tegrastats_orin_nano_r36.log"
    summary = json.loads(runner.invoke(app, ["tegrastats", str(log), "--json"]).stdout)
    assert summary["samples"] == 4 and summary["power_mw"]["VDD_IN"]["peak"] == 7120 and summary["bad_lines"] == 1
    text = runner.invoke(app, ["tegrastats", str(log)]).stdout
    assert "VDD_IN" in text and "17.78 J" in text


def test_demo_runs_the_deploy_path_on_the_shipped_student(tmp_path, monkeypatch):
    import edgedit.demo

    monkeypatch.setattr(edgedit.demo, "BATCHES", [1, 2])
    monkeypatch.setattr(edgedit.demo, "TEACHER_STEPS", 2)  # the teacher's sampler is slow on a CPU
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "out"), "--duration", "0.2", "--no-compile"])
    assert result.exit_code == 0, result.output
    assert "student: student-digits.safetensors" in result.stdout and "skipped, no TensorRT" in result.stdout
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "student.fp32.onnx",
        "student.fp16.onnx",
        "student.int8.onnx",
        "bench.json",
        "report.md",
        "grid-torch-fp32.png",
        "grid-onnx-int8.png",
        "grid-teacher.png",
        "side-by-side.png",
        "latency.png",
        "tradeoff.png",
    } <= names
    report = (tmp_path / "out" / "report.md").read_text()
    for picture in ("side-by-side.png", "latency.png", "tradeoff.png"):  # embedded, and drawn
        assert f"]({picture})" in report and (tmp_path / "out" / picture).read_bytes()[:4] == b"\x89PNG"
    records = json.loads((tmp_path / "out" / "bench.json").read_text())
    models = {(r["backend"], r["precision"], r["batch"]) for r in records if r["what"] == "model"}
    assert models == {
        (b, p, n)
        for b, p in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"))
        for n in (1, 2)
    }
    samplers = {(r["model"], r["network_evaluations_per_call"], r["batch"]) for r in records if r["what"] == "sampler"}
    assert samplers == {
        (m, e, n) for m, e in (("student-digits.safetensors", 1), ("teacher-digits.safetensors", 3)) for n in (1, 2)
    }  # 2 Heun steps = 3 evaluations
    report = (tmp_path / "out" / "report.md").read_text()
    student_fid = read_checkpoint(edgedit.demo.STUDENT_DIGITS).provenance["eval"]["FID"]
    assert "## Student (one step) vs teacher (2 Heun steps)" in report and f"| FID | {student_fid:.1f} |" in report


def test_teacher_pairs_and_eval_from_the_command_line(tmp_path):
    teacher = tmp_path / "t.safetensors"
    done = runner.invoke(
        app,
        [
            "teacher",
            "train",
            "--data",
            "digits",
            "--steps",
            "4",
            "--batch",
            "8",
            "--depth",
            "1",
            "--width",
            "32",
            "--heads",
            "2",
            "--patch",
            "4",
            "--checkpoint-every",
            "2",
            "-o",
            str(teacher),
        ],
    )
    assert done.exit_code == 0, done.output
    assert (tmp_path / "t.samples" / "step-0000004.png").exists() and (tmp_path / "t.train-state.safetensors").exists()
    pairs = tmp_path / "pairs"
    done = runner.invoke(
        app,
        [
            "pairs",
            "generate",
            str(teacher),
            "-n",
            "6",
            "--steps",
            "3",
            "--trajectory",
            "1",
            "--shard-size",
            "4",
            "-o",
            str(pairs),
        ],
    )
    # the line starts with the pairs' temporary path, so where it wraps depends on that path's length
    assert done.exit_code == 0 and "6 pairs in 2 shards (complete)" in " ".join(done.stdout.split())
    (pairs / "shard-000001" / "z.npy").write_bytes(b"broken")
    verify = runner.invoke(app, ["pairs", "verify", str(pairs)])
    assert verify.exit_code == 1 and "incomplete: 1 of 2 shards" in verify.stdout
    report = json.loads(runner.invoke(app, ["eval", str(teacher), "-n", "130", "--steps", "3", "--json"]).stdout)
    assert {m["metric"] for m in report["metrics"]} >= {"FID", "KID", "FID real-vs-real", "class coverage"}


def test_eval_save_ships_the_checkpoint_with_the_evaluation_it_measured(tmp_path):
    from safetensors.numpy import load_file

    student, shipped = tmp_path / "s.safetensors", tmp_path / "shipped" / "s.safetensors"
    save_model(DiT(TINY_CONFIGS["onestep-cond"]), student)
    done = runner.invoke(app, ["eval", str(student), "-n", "20", "--seed", "7", "--save", str(shipped), "--json"])
    assert done.exit_code == 0, done.output
    report, info = json.loads(done.stdout), read_checkpoint(shipped)
    assert info.provenance["eval"] == {m["metric"]: significant(m["value"]) for m in report["metrics"]}
    assert info.provenance["eval_seeds"] == [7, 26] and info.provenance["eval_noise"] == report["noise"]
    assert info.provenance["eval_samples"] == 20 and info.config == read_checkpoint(student).config
    original, copied = load_file(student), load_file(shipped)
    assert original.keys() == copied.keys() and all((original[k] == copied[k]).all() for k in original)
    # a file that is not a checkpoint is refused before any sampling, and nothing is written
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    refused = runner.invoke(app, ["eval", str(tmp_path / "m.onnx"), "--save", str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 2 and "not one (.safetensors)" in refused.stderr
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["teacher", "train", "--data", "folder:/no/such", "--steps", "1", "-o", "x.safetensors"], "does not exist"),
        (
            [
                "teacher",
                "train",
                "--data",
                "digits",
                "--steps",
                "1",
                "--batch",
                "3",
                "--preset",
                "DiT-Nano-Q",
                "-o",
                "x.safetensors",
            ],
            "unknown model preset",
        ),
        (["pairs", "generate", "missing.safetensors", "-n", "2", "-o", "p"], "no such teacher file"),
        (["pairs", "generate", "t.safetensors", "-n", "2", "--shard", "2/2", "-o", "p"], "need 0 <= I < N"),
        (["pairs", "import-get", ".", "-o", "p"], "expected GET's layout"),
        (["eval", "DiT-Teacher-CIFAR10/2", "-n", "2"], "makes 3x32x32 images but digits has 1x16x16"),
    ],
)
def test_workstation_commands_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    if "t.safetensors" in args:
        save_model(DiT(TINY_CONFIGS["edm-cond"]), tmp_path / "t.safetensors")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


#################################################################################
#            Outputs never destroy an input nor, without --force, a file        #
#################################################################################


@pytest.fixture
def workdir(tmp_path, monkeypatch, exported):
    """A folder of inputs: a student and a teacher checkpoint, an ONNX with external data, .npz
    files, bench results, a pairs folder, an image folder, a sweep's results."""
    import os
    import shutil

    onnx, student = exported["onestep-cond"]
    monkeypatch.chdir(tmp_path)
    shutil.copy(student, "s.safetensors")
    shutil.copy(exported["edm-cond"][1], "t.safetensors")
    shutil.copy(onnx, "s.onnx")
    Path("s.onnx.data").write_bytes(b"\0weights")
    Path("s.train-state.safetensors").write_bytes(Path("s.safetensors").read_bytes())
    Path("official.pt").write_bytes(b"PK\x03\x04torch")
    import numpy as np

    np.savez("c.npz", z=np.zeros((2, 1, 16, 16), np.float32), y=np.zeros(2, np.int32))
    shutil.copy("c.npz", "d.npz")
    Path("r.json").write_text("[]")
    Path("b.bench.json").write_text("[]")
    for folder in ("pairs", "imgs", "sweep/c1", "get/image", "get/latent"):
        Path(folder).mkdir(parents=True)
    (Path("pairs") / "manifest.json").write_text("{}")
    shutil.copy(student, "sweep/c1/student.safetensors")
    Path("sweep/results.json").write_text(json.dumps([sweep_result("c1", 1.0, TINY_CONFIGS["onestep-cond"])]))
    os.symlink("s.safetensors", "link.safetensors")
    os.link("s.onnx", "hard.onnx")
    return tmp_path


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _refused(args: list[str], folder: Path, message: str) -> None:
    import edgedit.assets

    assets = Path(edgedit.assets.__file__).parent
    before = _snapshot(folder)
    result = runner.invoke(app, [a.format(abs=folder, assets=assets) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("edgedit: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr, result.stderr
    assert result.stdout == ""
    assert _snapshot(folder) == before  # nothing written, nothing replaced


OVER_AN_INPUT = [
    (["export", "s.safetensors", "-o", "s.safetensors"], "-o s.safetensors would overwrite the input MODEL"),
    (["export", "s.safetensors", "-o", "{abs}/x/../s.safetensors"], "would overwrite the input MODEL s.safetensors"),
    (["export", "s.safetensors", "-o", "link.safetensors"], "would overwrite the input MODEL"),  # a symlink
    (["export", "s.safetensors", "-o", "s.train-state.safetensors"], "which belongs to the input MODEL"),
    (["quantize", "s.onnx", "-o", "s.onnx"], "-o s.onnx would overwrite the input ONNX s.onnx"),
    (["quantize", "s.onnx", "-o", "hard.onnx"], "would overwrite the input ONNX s.onnx"),  # a hard link
    (["quantize", "s.onnx", "-o", "s.onnx.data"], "s.onnx.data, which belongs to the input ONNX s.onnx"),
    (["quantize", "s.onnx", "--calib", "c.npz", "-o", "c.npz"], "would overwrite the input --calib c.npz"),
    (["calib-data", "s.onnx", "-o", "s.onnx"], "-o s.onnx would overwrite the input MODEL s.onnx"),
    (["sample", "s.safetensors", "--npz", "s.safetensors"], "--npz s.safetensors would overwrite the input MODEL"),
    (["sample", "s.onnx", "-o", "s.onnx"], "-o s.onnx would overwrite the input MODEL"),
    (["bench", "s.onnx", "--json", "s.onnx"], "--json s.onnx would overwrite the input MODEL s.onnx"),
    (["bench", "s.onnx", "--csv", "s.onnx.data"], "which belongs to the input MODEL s.onnx"),
    (["bench", "s.onnx", "-o", "s.onnx"], "-o s.onnx would overwrite"),
    (["bench", "s.onnx", "--plot", "s.onnx"], "--plot s.onnx would overwrite"),
    (["bench", "s.onnx", "--json", "o.json", "--csv", "o.json"], "--json o.json and --csv o.json are the same file"),
    (["bench", "report", "r.json", "-o", "r.json"], "-o r.json would overwrite the input RESULTS r.json"),
    (["bench", "report", "r.json", "--plot", "r.json"], "would overwrite the input RESULTS"),
    (["build-engine", "s.onnx", "-o", "s.onnx"], "--output s.onnx would overwrite the input ONNX s.onnx"),
    (["build-engine", "s.onnx", "--timing-cache", "s.onnx"], "--timing-cache s.onnx would overwrite the input ONNX"),
    (["convert-dit", "official.pt", "-o", "official.pt"], "-o official.pt would overwrite the input OFFICIAL"),
    (["teacher", "train", "--data", "npz:d.npz", "--steps", "1", "-o", "d.npz"], "would overwrite the input --data"),
    (
        ["teacher", "train", "--data", "folder:imgs", "--steps", "1", "-o", "imgs/t.safetensors"],
        "-o imgs/t.safetensors is inside the input --data imgs",
    ),
    (["distill", "--pairs", "pairs", "--steps", "1", "-o", "pairs/x.safetensors"], "is inside the input --pairs pairs"),
    (
        ["distill", "--pairs", "pairs", "--student", "s.safetensors", "--steps", "1", "-o", "s.safetensors"],
        "-o s.safetensors would overwrite the input --student s.safetensors",
    ),
    (["eval", "s.safetensors", "--grid", "s.safetensors"], "--grid s.safetensors would overwrite the input MODEL"),
    (
        ["design", "sweep", "--pairs", "pairs", "--budget", "1k", "--steps", "1", "-o", "."],
        "-o . is a folder that holds the input --pairs pairs",
    ),
    (
        ["design", "pick", "--results", "sweep/results.json", "--save", "sweep/c1/student.safetensors"],
        "would overwrite the input the picked student sweep/c1/student.safetensors",
    ),
    (
        ["design", "pick", "--results", "sweep/results.json", "--save", "sweep/results.json"],
        "would overwrite the input --results",
    ),
    (
        ["models", "--calibrate", "b.bench.json", "--calibration-out", "b.bench.json"],
        "--calibration-out b.bench.json would overwrite the input --calibrate b.bench.json",
    ),
    (["demo", "-o", "{assets}"], "is a folder that holds the input student"),
    (["pairs", "generate", "t.safetensors", "-n", "2", "-o", "."], "-o . is a folder that holds the input TEACHER"),
    (["pairs", "import-get", "get", "-o", "get"], "-o get is a folder that holds the input SOURCE get/image"),
]


@pytest.mark.parametrize("args, message", OVER_AN_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_no_command_writes_over_its_own_input(workdir, args, message):
    _refused(args, workdir, message)


def test_an_engines_sidecar_is_kept_off_the_inputs(workdir):
    from edgedit.contract.fileio import check_outputs
    from edgedit.engines.build import BuildOptions
    from edgedit.pipeline import plan_build

    Path("c.plan.json").write_text("{}")
    outputs = plan_build("s.onnx", "c.plan", BuildOptions(precision="int8")).outputs
    with pytest.raises(
        EdgeditError, match=r"c.plan.json \(written with `output` c.plan\) would overwrite the input --calib"
    ):
        check_outputs(outputs, {"--calib": "c.plan.json"})
    (quantized,) = [
        p
        for o in plan_build("s.onnx", "e/c.plan", BuildOptions(precision="int8")).outputs
        for p in o.companions
        if str(p).endswith(".onnx")
    ]
    assert quantized == Path("e/s.int8.onnx")  # the INT8 ONNX `build` quantizes next to the engine


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["export", "s.safetensors", "-o", "t.safetensors"],
            "-o t.safetensors: exists and is a multi-step denoiser checkpoint (a teacher), not an ONNX model",
        ),
        (["calib-data", "s.onnx", "-o", "s.safetensors"], "exists and is a one-step student checkpoint, not an .npz"),
        (["sample", "s.onnx", "--npz", "s.safetensors"], "--npz s.safetensors: exists and is a one-step student"),
        (["sample", "s.onnx", "-o", "c.npz"], "-o c.npz: exists and is an .npz archive, not a PNG image"),
        (["quantize", "s.onnx", "-o", "c.npz"], "-o c.npz: exists and is an .npz archive, not an ONNX model"),
        (["bench", "s.onnx", "--json", "s.safetensors"], "not a JSON file"),
        (["bench", "report", "r.json", "-o", "s.safetensors"], "-o s.safetensors: exists and is a one-step student"),
        (
            ["distill", "--pairs", "pairs", "--steps", "1", "-o", "t.safetensors"],
            "-o t.safetensors: exists and is a multi-step denoiser checkpoint (a teacher), not a one-step student",
        ),
        (["teacher", "train", "--steps", "1", "-o", "c.npz"], "-o c.npz: exists and is an .npz archive"),
        (["convert-dit", "official.pt", "-o", "s.onnx"], "exists and is an ONNX model"),
        (["models", "--calibrate", "b.bench.json", "--calibration-out", "s.onnx"], "exists and is an ONNX model"),
        (["eval", "s.safetensors", "--grid", "c.npz"], "--grid c.npz: exists and is an .npz archive, not a PNG"),
        (["design", "pick", "--results", "sweep/results.json", "--save", "c.npz"], "exists and is an .npz archive"),
        (["build-engine", "s.onnx", "-o", "c.npz"], "exists and is an .npz archive, not a TensorRT engine"),
        (
            ["build-engine", "s.onnx", "--timing-cache", "c.npz"],
            "--timing-cache c.npz: exists and is an .npz archive, not a TensorRT timing cache",
        ),
    ],
)
def test_a_file_of_another_kind_is_replaced_only_with_force(workdir, args, message):
    _refused(args, workdir, message)
    assert "pass --force to replace it" in runner.invoke(app, args).stderr


def test_force_replaces_a_file_of_another_kind(workdir):
    result = runner.invoke(app, ["calib-data", "s.onnx", "-n", "2", "-o", "t.safetensors", "--force"])
    assert result.exit_code == 0, result.output
    import numpy as np

    with np.load("t.safetensors") as data:
        assert data["z"].shape == (2, 1, 16, 16)


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "s.safetensors", "-o", "pairs"], "-o pairs: is a folder, not a file"),
        (["sample", "s.onnx", "-o", "c.npz/grid.png"], "c.npz is not a folder"),
        (
            ["design", "sweep", "--pairs", "pairs", "--budget", "1k", "--steps", "1", "-o", "c.npz"],
            "-o c.npz: is a file, not a folder",
        ),
        (["demo", "-o", "r.json"], "-o r.json: is a file, not a folder"),
        (["design", "report", "--results", "sweep/results.json", "-o", "r.json"], "is a file, not a folder"),
        (["teacher", "train", "--steps", "1", "-o", "c.safetensors"], None),
    ],
)
def test_impossible_output_places_are_one_line(workdir, args, message):
    if message is None:  # a training run's sample grids go to OUTPUT.samples/: a file there is refused too
        Path("c.samples").write_text("x")
        message = "c.samples (written with -o c.safetensors): is a file, not a folder"
    _refused(args, workdir, message)


def test_library_errors_name_fields_and_the_cli_prints_its_options(exported):
    """A library message names a keyword (`workspace_mb`); the command line prints the option."""
    from edgedit.engines.build import BuildOptions
    from edgedit.pipeline import plan_build

    onnx = exported["onestep-cond"][0]
    with pytest.raises(EdgeditError, match=r"^`workspace_mb` 15 is outside 16\.\.65536"):
        plan_build(onnx, "m.plan", BuildOptions(workspace_mb=15))
    result = runner.invoke(app, ["build-engine", str(onnx), "--workspace-mb", "15", "--dry-run"])
    assert result.exit_code == 2 and "edgedit: error: --workspace-mb 15 is outside 16..65536" in result.output
    assert "`" not in result.output.splitlines()[-1]


def test_options_take_their_bounds_from_the_schemas():
    """The model overrides, a sampler's --steps and a store's --shard-size are bounded where the
    schema declares them; the command line reads those bounds, and refuses beyond them."""
    import typing

    from typer.main import get_command

    from edgedit.contract.config import DiTConfig
    from edgedit.contract.schedules import MAX_SAMPLER_STEPS
    from edgedit.data.pairs.manifest import MAX_SHARD_SIZE

    def options(*path: str) -> dict:
        command = get_command(app)
        for name in path:
            command = command.commands[name]
        return {p.opts[-1]: p for p in command.params if p.opts}  # typer keeps min and max on the option

    hints = typing.get_type_hints(DiTConfig, include_extras=True)
    for flag, field in (("--depth", "depth"), ("--width", "hidden_size"), ("--heads", "num_heads")):
        (bound,) = hints[field].__metadata__
        low, high = (next(getattr(m, k) for m in bound.metadata if hasattr(m, k)) for k in ("ge", "le"))
        assert (options("models")[flag].min, options("models")[flag].max) == (low, high), flag
    assert options("sample")["--steps"].max == options("eval")["--steps"].max == MAX_SAMPLER_STEPS
    assert options("pairs", "generate")["--shard-size"].max == MAX_SHARD_SIZE
    result = runner.invoke(app, ["models", "DiT-Nano-S/2", "--depth", str(options("models")["--depth"].max + 1)])
    assert result.exit_code == 2 and "--depth" in result.stderr
