"""`edgedit demo`: the whole deploy path on the embedded default, on whatever this machine has.

The shipped digits student (a one-step DiT-Nano distilled from the shipped teacher, see
docs/results-digits.md) -> ONNX FP32 + FP16 exports -> INT8 Q/DQ with generated calibration data
-> FP16 and INT8 TensorRT engines when TensorRT and a GPU are here -> one sample grid per
precision, and the teacher's -> every available backend and precision benched at batch 1 and 8,
next to the teacher's 18-step sampler -> a comparison table, the grids, bench.json and report.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgedit.assets import STUDENT_DIGITS, TEACHER_DIGITS

if TYPE_CHECKING:
    from edgedit.bench.records import BenchRecord

BATCHES = [1, 8]
TEACHER_STEPS = 18  # Heun: 35 network evaluations per image


def run_demo(
    out: Path, duration_s: float = 1.5, say: Callable[[str], None] = print, compile_torch: bool = True
) -> list[BenchRecord]:
    """Every artefact and report into `out`; returns the bench records (the table the command prints)."""
    from edgedit.bench.comparison import markdown
    from edgedit.bench.harness import BenchSettings, run_bench
    from edgedit.bench.records import save_json
    from edgedit.contract import artefacts, device
    from edgedit.contract.staging import write_text_atomic
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.models.checkpoint import load_model, read_checkpoint
    from edgedit.models.torch_backend import TorchCompileBackend
    from edgedit.pipeline import quantize_with_calibration
    from edgedit.runtime.backends import load_backend
    from edgedit.runtime.images import picture, save_png, side_by_side
    from edgedit.runtime.samplers import generate

    settings = BenchSettings(BATCHES, warmup=3, duration_s=duration_s)  # a bad --duration is refused first
    out.mkdir(parents=True, exist_ok=True)
    net, info = load_model(STUDENT_DIGITS)
    teacher_info = read_checkpoint(TEACHER_DIGITS)  # the header: its weights load once, for sampling
    say(
        f"student: {STUDENT_DIGITS.name}, {info.num_params:,} params, one step ({info.provenance.get('method')} "
        f"distillation); teacher: {TEACHER_DIGITS.name}, {teacher_info.num_params:,} params, {TEACHER_STEPS} Heun "
        "steps"
    )
    source = {"checkpoint": STUDENT_DIGITS.name, "weights": "trained"}
    batch = BatchSpec(min(BATCHES), max(BATCHES), max(BATCHES))
    models: dict[str, Path] = {}
    for precision in ("fp32", "fp16"):
        report = export_onnx(net, out / f"student.{precision}{artefacts.ONNX}", source, batch, precision)
        worst = max(c["max_rel_error"] for c in report.parity)
        say(f"exported {report.path.name}: parity vs torch, max relative error {worst:.2g}")
        models[f"onnx-{precision}"] = report.path
    int8 = quantize_with_calibration(models["onnx-fp32"], out / "student.int8.onnx", calib_samples=256)
    say(
        f"quantized {int8.path.name} with {int8.tool}: {len(int8.quantized)} layers INT8, "
        f"PSNR {int8.psnr_db:.1f} dB vs FP32 on held-out inputs"
    )
    models["onnx-int8"] = int8.path

    if importlib.util.find_spec("tensorrt") is not None and device.cuda_devices()["devices"]:
        from edgedit.engines.build import BuildOptions
        from edgedit.pipeline import build, plan_build

        for precision, onnx in (("fp16", models["onnx-fp16"]), ("int8", models["onnx-int8"])):
            built = build(
                plan_build(onnx, out / f"student.{precision}{artefacts.ENGINE}", BuildOptions(precision=precision))
            )
            say(f"built {built.plan.name} in {built.sidecar.build_seconds:.1f} s")
            models[f"tensorrt-{precision}"] = built.plan
    else:
        say("TensorRT engines: skipped, no TensorRT or CUDA GPU here (build them on the Jetson: jetson/bench_suite.sh)")

    seeds = list(range(16))
    backends = {"torch-fp32": load_backend(STUDENT_DIGITS)}
    backends.update({name: load_backend(path) for name, path in models.items()})
    teacher = load_backend(TEACHER_DIGITS)
    pictures = {
        "teacher": picture(
            generate(teacher, seeds, batch=8, steps=TEACHER_STEPS),
            f"teacher | {TEACHER_STEPS} Heun steps | seeds 0-15",
            columns=4,
        )
    }
    for name, backend in backends.items():
        pictures[name] = picture(generate(backend, seeds, batch=8), f"student | {name} | seeds 0-15", columns=4)
    for name, pixels in pictures.items():
        save_png(out / f"grid-{name}.png", pixels)
    compared = [pictures[k] for k in ("teacher", "onnx-fp32", "onnx-fp16", "onnx-int8") if k in pictures]
    save_png(out / "side-by-side.png", side_by_side(compared))
    say(f"wrote {len(pictures)} sample grids and side-by-side.png (teacher | FP32 | FP16 | INT8; seeds 0-15)")

    # Every deployed form of the student in one interleaved run; then the student's and the teacher's
    # samplers (one step vs 18 Heun steps = 35 evaluations) in another. The teacher takes up to
    # seconds per call on a CPU: one call per round makes its number.
    compile_torch = compile_torch and TorchCompileBackend.available()
    peers = ["auto"] if compile_torch else ["torch", "onnxruntime", "tensorrt"]  # auto: torch.compile too
    if compile_torch:
        say("timing torch.compile too: it compiles once per batch size (a minute or more on a small CPU)")
    else:
        say("torch.compile: skipped (not asked for, or no C++ compiler for its CPU kernels)")
    records = run_bench([str(STUDENT_DIGITS), *map(str, models.values())], peers, settings)[0]
    samplers = BenchSettings(BATCHES, warmup=1, duration_s=duration_s, what="sampler", steps=TEACHER_STEPS, rounds=5)
    records += run_bench([str(STUDENT_DIGITS), str(TEACHER_DIGITS)], ["torch"], samplers)[0]
    save_json(out / "bench.json", records)
    write_text_atomic(
        out / "report.md",
        "# edgedit demo\n\n"
        + markdown(records)
        + "\n"
        + student_vs_teacher(records, info.provenance, teacher_info.provenance)
        + on_the_device(info.config, teacher_info.config)
        + "\n## Samples (seeds 0-15, label = seed % 10)\n\n"
        + "The teacher and the student's exports on the same seeds (nearest-neighbour upscaled, captioned):\n\n"
        + "![teacher | FP32 | FP16 | INT8](side-by-side.png)\n"
        + draw_plots(out, records, info, teacher_info, say),
    )
    return records


def student_vs_teacher(records: list[BenchRecord], student: dict, teacher: dict) -> str:
    """Latency per image measured now; quality as measured when the models were made (their provenance)."""
    from edgedit.bench.comparison import ratio_interval

    lines = [
        f"## Student (one step) vs teacher ({TEACHER_STEPS} Heun steps)",
        "",
        "Per image, p50. Samplers (noise, label, network calls) on torch FP32, this machine, interleaved in",
        "rounds (the speedup's 95% interval: bootstrap over rounds); and the student's fastest deployed network",
        "call.",
        "",
        "| batch | teacher sampler ms | student sampler ms | speedup (95% CI) | student fastest deployed ms |",
        "|---|---|---|---|---|",
    ]
    for b in BATCHES:
        rows = [r for r in records if r.batch == b]
        t = next(r for r in rows if r.what == "sampler" and r.model == TEACHER_DIGITS.name)
        s = next(r for r in rows if r.what == "sampler" and r.model != TEACHER_DIGITS.name)
        best = min((r for r in rows if r.what == "model"), key=lambda r: r.latency_per_image_ms)
        ci = ratio_interval(t.round_p50_ms, s.round_p50_ms)
        lines.append(
            f"| {b} | {t.latency_per_image_ms:.1f} | {s.latency_per_image_ms:.3f} | "
            f"{t.latency_per_image_ms / s.latency_per_image_ms:.0f}x"
            + (f" ({ci[0]:.0f}-{ci[1]:.0f})" if ci else "")
            + " | "
            f"{best.latency_per_image_ms:.3f} ({best.backend} {best.precision}) |"
        )
    from edgedit.models.checkpoint import Provenance

    s_rec, t_rec = Provenance.model_validate(student), Provenance.model_validate(teacher)  # `edgedit eval --save`
    s_eval, t_eval = s_rec.eval or {}, t_rec.eval or {}
    same = (
        f"the same sample seeds {s_rec.eval_seeds[0]}-{s_rec.eval_seeds[1]}"
        if s_rec.eval_seeds is not None and s_rec.eval_seeds == t_rec.eval_seeds
        else "different sample seeds"
    )

    lines += [
        "",
        "Quality, as each model's file records it (`edgedit eval --save`): domain FID on the features of the",
        f"shipped digits classifier, 1000 samples each on {same},",
        "against the 359 held-out digits (lower is better); docs/results-digits/adversarial.md repeats it",
        "over five disjoint seed sets, with their spread and paired differences.",
        "",
        "| | student (1 step) | teacher (18 Heun steps) | real-vs-real floor |",
        "|---|---|---|---|",
        f"| FID | {_num(s_eval.get('FID'))} | {_num(t_eval.get('FID'))} | {_num(t_eval.get('FID real-vs-real'))} |",
        f"| classifier confidence | {_num(s_eval.get('classifier confidence'), 3)} | "
        f"{_num(t_eval.get('classifier confidence'), 3)} | |",
        f"| label agreement | {_num(s_eval.get('label agreement'), 3)} | {_num(t_eval.get('label agreement'), 3)} | |",
    ]
    return "\n".join(lines) + "\n"


def draw_plots(out: Path, records: list[BenchRecord], student, teacher, say) -> str:
    """latency.png (every row's distribution) and tradeoff.png (FID against the device estimate and
    this host's sampler time, per image), and report.md's section that embeds them."""
    from edgedit.bench import plots
    from edgedit.cost.fit import estimate
    from edgedit.models.checkpoint import Provenance
    from edgedit.runtime.samplers import network_evaluations

    def host_ms(model: Path) -> float | None:
        rows = [r for r in records if r.model == model.name and r.what == "sampler" and r.batch == 1]
        return rows[0].latency_per_image_ms if rows else None

    points = []
    for name, info, calls in (
        ("student", student, 1),
        ("teacher", teacher, network_evaluations(TEACHER_STEPS, "heun")),
    ):
        fid = (Provenance.model_validate(info.provenance).eval or {}).get("FID")
        e = estimate(info.config, "orin-nano", "fp16")
        if fid is not None:
            points.append(
                plots.QualityPoint(name, fid, calls * e.ms, calls * e.low_ms, calls * e.high_ms, host_ms(info.path))
            )
    label = estimate(student.config, "orin-nano", "fp16").label
    drawn = plots.latency_distribution(out / "latency.png", records)
    drawn = drawn and plots.quality_vs_latency(
        out / "tradeoff.png", points, f"Orin Nano FP16, {label}", "torch FP32 sampler, batch 1, p50"
    )
    if not drawn:
        say(plots.MISSING)
        return ""
    say("wrote latency.png and tradeoff.png")
    return (
        "\n## Plots\n\n"
        "Every benchmarked row: the range of its timed calls, p50 / p90 / p99 and each round's p50.\n\n"
        "![latency distribution per backend and precision](latency.png)\n\n"
        "Quality against latency per image: the device estimate (with its range; an estimate, not a "
        "measurement) and this host's measured sampler time.\n\n"
        "![FID against latency](tradeoff.png)\n"
    )


def on_the_device(student, teacher) -> str:
    """The calibrated device latency estimates of both (not measurements: no Jetson here)."""
    from edgedit.cost.fit import estimates
    from edgedit.runtime.samplers import network_evaluations

    evals = network_evaluations(TEACHER_STEPS, "heun")
    s, t = estimates(student), estimates(teacher)
    label = next(iter(s.values())).label
    lines = [
        "",
        f"## On a Jetson Orin Nano: {label}",
        "",
        "GPU ms per image at batch 1 with TensorRT (point and range); the teacher's sampler makes "
        f"{evals} network calls.",
        "",
        f"| target | student, 1 call | teacher, 1 call | teacher, {evals} calls | speedup |",
        "|---|---|---|---|---|",
    ]
    for key in s:
        if key.endswith("_graph"):
            continue
        a, b = s[key], t[key]
        lines.append(
            f"| {key} | {a.ms:.2f} ({a.low_ms:.2f}-{a.high_ms:.2f}) | {b.ms:.2f} "
            f"({b.low_ms:.2f}-{b.high_ms:.2f}) | {evals * b.ms:.1f} | {evals * b.ms / a.ms:.0f}x |"
        )
    return "\n".join(lines) + "\n"


def _num(value, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}"
