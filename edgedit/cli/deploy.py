"""Commands of the deploy path: `export`, `calib-data`, `quantize`, `sample`, `build-engine`, `demo`
(the measurements are cli/bench.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from edgedit.cli.common import (
    Depth,
    Force,
    Heads,
    InChannels,
    InputSize,
    JsonFlag,
    MlpRatio,
    ModelArg,
    NumClasses,
    Patch,
    Width,
    command,
    overrides,
    print_json,
    print_table,
    sampler_steps,
    si,
    stderr,
    stdout,
)
from edgedit.contract import artefacts
from edgedit.contract.fileio import Output, check_outputs
from edgedit.contract.quantization import MIN_PSNR_DB


@command("export")
def export_command(
    model: ModelArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: export/NAME[.fp16].onnx")] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Static batch size (default 1).")] = None,
    dynamic_batch: Annotated[
        str | None, typer.Option("--dynamic-batch", metavar="MIN:OPT:MAX", help="Dynamic batch range, e.g. 1:4:8.")
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="fp32, or fp16 (LayerNorm/Softmax kept FP32).")
    ] = "fp32",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17-20 (TensorRT 10.3 parses up to 20).")] = 18,
    depth: Depth = None,
    width: Width = None,
    heads: Heads = None,
    patch: Patch = None,
    mlp_ratio: MlpRatio = None,
    input_size: InputSize = None,
    in_channels: InChannels = None,
    num_classes: NumClasses = None,
    json_out: JsonFlag = False,
    force: Force = False,
) -> None:
    """Export a model to ONNX for TensorRT, validated against torch (parity at the smallest and largest batch).

    The file carries its model config, I/O and sampler spec, and source checksum as metadata.
    A parity failure exits with 1 and writes nothing.
    """
    from edgedit.export.exporter import ExportOptions, export_model

    output = output or artefacts.default_export(model, precision)
    check_outputs([Output("-o", output, "onnx", (artefacts.onnx_data(output),))], {"MODEL": model}, force=force)
    options = ExportOptions(
        batch=batch,
        dynamic_batch=dynamic_batch,
        precision=precision,
        opset=opset,
        overrides=overrides(depth, width, heads, patch, mlp_ratio, input_size, in_channels, num_classes),
    )
    report = export_model(model, output, options)
    if json_out:
        return print_json(
            {
                "path": str(report.path),
                "external_data": str(report.data_path) if report.data_path else None,
                "opset": report.opset,
                "precision": precision,
                "batch": report.meta.batch,
                "parity": report.parity,
                "ops": report.ops,
            }
        )
    stdout.print(
        f"wrote {report.path} (opset {report.opset}, {precision}, batch {report.meta.batch['min']}.."
        f"{report.meta.batch['max']}"
        f"{', weights in ' + report.data_path.name if report.data_path else ''})"
    )
    for check in report.parity:
        stdout.print(
            f"  parity vs torch at batch {check['batch']}: max abs {check['max_abs_error']:.3g}, "
            f"relative {check['max_rel_error']:.3g} (tolerance {check['tolerance']:g})"
        )
    stdout.print("  ops: " + ", ".join(f"{op} {n}" for op, n in report.ops.items()))


@command("calib-data")
def calib_data_command(
    model: Annotated[str, typer.Argument(help="An exported FP32 .onnx, a checkpoint, or a preset name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .npz (keyed by input name).")],
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Samples (noise seeds) to draw.")] = 64,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="First seed (default: the calibration range).")
    ] = None,
    steps: Annotated[int | None, sampler_steps("EDM sampler steps (default: the model's).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
    force: Force = False,
) -> None:
    """Record INT8 calibration inputs (.npz keyed by input name) from real sampling.

    A one-step model gets the noise it receives; a multi-step denoiser every input met along
    real sampling trajectories, at every step of the schedule.
    """
    from edgedit.export.calib_data import write_calibration_data

    check_outputs([Output("-o", output, "npz")], {"MODEL": model}, force=force)
    data, title = write_calibration_data(model, output, samples, seed, steps, sampler)
    rows = next(iter(data.values())).shape[0]
    stdout.print(
        f"wrote {output}: {rows} rows of {', '.join(f'{k} {list(v.shape[1:])}' for k, v in data.items())} "
        f"from {samples} samples on {title}"
    )


@command("quantize")
def quantize_command(
    onnx: Annotated[Path, typer.Argument(help="An FP32 model from `edgedit export`.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: NAME.int8.onnx next to it.")] = None,
    calib: Annotated[Path | None, typer.Option("--calib", help="Calibration .npz from `edgedit calib-data`.")] = None,
    calib_samples: Annotated[
        int, typer.Option("--calib-samples", min=1, help="Samples to calibrate on when no --calib.")
    ] = 64,
    heldout_samples: Annotated[
        int, typer.Option("--heldout-samples", min=1, help="Held-out samples for the accuracy check.")
    ] = 16,
    method: Annotated[str, typer.Option("--method", help="Activation ranges: max, entropy or percentile.")] = "max",
    plan: Annotated[
        str,
        typer.Option(
            "--plan",
            help="INT8 layer classes: auto (measured: the most INT8 MACs within "
            "--min-psnr) or recipe (the block Linear layers).",
        ),
    ] = "auto",
    high_precision: Annotated[
        str,
        typer.Option(
            "--high-precision",
            help="Type of the rest: fp16 (FP32 only where measured necessary) or fp32 (the FP32-typed form).",
        ),
    ] = "fp16",
    io_dtype: Annotated[str, typer.Option("--io-dtype", help="Input/output type: fp32 or fp16.")] = "fp32",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="Keep nodes matching this pattern in high precision (repeatable), e.g. 'blocks.0.*'."
        ),
    ] = None,
    min_psnr: Annotated[
        float,
        typer.Option(
            "--min-psnr", help="The quality budget: output PSNR (dB) vs FP32 on held-out inputs; refused below it."
        ),
    ] = MIN_PSNR_DB,
    force: Annotated[
        bool, typer.Option("--force", help="Write even below --min-psnr, and over an existing file of another kind.")
    ] = False,
    tool: Annotated[
        str, typer.Option("--tool", help="auto (ModelOpt if installed), modelopt or onnxruntime.")
    ] = "auto",
    steps: Annotated[int | None, sampler_steps("EDM steps for generated calibration data.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Quantize to explicit INT8 (Q/DQ: symmetric, per-channel weights) that TensorRT builds strongly typed.

    A precision plan decides which layer classes run INT8 (measured one class at a time on held-out
    inputs, or the recipe's block Linear layers) and types the rest FP16, keeping in FP32 only what
    overflows or loses accuracy in FP16. The plan is printed as a table and written beside the
    model (NAME.int8.precision.json); the model is refused (exit 1) below --min-psnr unless --force.
    """
    from edgedit.export.quantize import QuantizeOptions
    from edgedit.pipeline import quantize_with_calibration

    output = output or artefacts.int8_onnx(onnx)
    check_outputs(
        [Output("-o", output, "onnx", (artefacts.precision_plan(output),))],
        {"ONNX": onnx, "--calib": calib},
        force=force,
    )
    options = QuantizeOptions(
        method=method,
        excludes=tuple(exclude or ()),
        plan=plan,
        high=high_precision,
        io=io_dtype,
        min_psnr=min_psnr,
        force=force,
        tool=tool,
    )
    r = quantize_with_calibration(
        onnx,
        output,
        options,
        calib=calib,
        calib_samples=calib_samples,
        heldout_samples=heldout_samples,
        steps=steps,
        say=stderr_say,
    )
    if json_out:
        return print_json(r.to_dict())
    stdout.print(
        f"wrote {r.path} with {r.tool} ({r.method} calibration on {r.calibration_rows} rows) and "
        f"{artefacts.precision_plan(r.path).name}"
    )
    print_plan(r)
    stdout.print(
        f"  quantized {len(r.quantized)} layers to INT8, kept {len(r.excluded)} in high precision; "
        f"all {r.zero_points} zero points are 0"
    )
    stdout.print(
        f"  vs FP32 on {r.heldout_rows} held-out inputs: PSNR {r.psnr_db:.1f} dB, max abs error {r.max_abs_error:.3g}"
    )
    advice = int8_advice(r.path)
    if advice:
        stdout.print(f"  {advice}")


def int8_advice(onnx: Path) -> str | None:
    """The cost model's word on a quantized file: one line when INT8 cannot pay for it."""
    from edgedit.contract.spec import read_model
    from edgedit.cost.summary import int8_advice as advice

    meta = read_model(onnx)[0]
    return advice(meta.config, meta.precision_plan)


def stderr_say(message: str) -> None:
    stderr.print(f"  {message}", markup=False, highlight=False)


def print_plan(r) -> None:
    """The plan's two tables: INT8 classes (MACs, error alone, decision) and FP32 candidates."""
    from rich.table import Table

    def table(title: str, headers: tuple[str, ...]) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, header in enumerate(headers):
            t.add_column(header, justify="right" if i in (1, 2) else "left", no_wrap=True)
        return t

    plan = table(
        f"INT8 plan ({r.plan.high.upper()} elsewhere)", ("class", "MACs/image", "PSNR alone dB", "decision", "why")
    )
    for row in r.int8_rows:
        plan.add_row(row.name, si(row.macs), f"{row.psnr_db:.1f}", row.decision.upper(), row.why)
    print_table(plan)
    if r.fp32_rows:
        kept = table("FP32 candidates in the FP16 graph", ("class", "max |x|", "PSNR in FP16 dB", "decision", "why"))
        for row in r.fp32_rows:
            kept.add_row(row.name, f"{row.extra['peak']:.3g}", f"{row.psnr_db:.1f}", row.decision.upper(), row.why)
        print_table(kept)


@command("sample")
def sample_command(
    model: Annotated[str, typer.Argument(help="An .onnx file, a .plan engine, a checkpoint, or a preset name.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of images.")] = 16,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per network call.")] = 8,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first image (image k uses seed + k).")] = 0,
    steps: Annotated[int | None, sampler_steps("EDM steps (default: the model's, 18).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
    class_label: Annotated[
        int | None, typer.Option("--class-label", min=0, help="Class of every image (default: seed % classes).")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG grid to write.")] = Path("grid.png"),
    npz: Annotated[Path | None, typer.Option("--npz", help="Also save the raw images, seeds and labels.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, onnxruntime, tensorrt or torch.")] = "auto",
    provider: Annotated[
        str, typer.Option("--provider", help="ONNX Runtime provider: auto, cpu, cuda, tensorrt.")
    ] = "auto",
    force: Force = False,
) -> None:
    """Generate images: one step for a student, EDM Euler/Heun or DDIM for a denoiser.

    The same seed gives the same image on every backend.
    """
    from edgedit.pipeline import SampleOptions, sample

    check_outputs([Output("-o", output, "png"), Output("--npz", npz, "samples")], {"MODEL": model}, force=force)
    options = SampleOptions(
        n=n,
        batch=batch,
        seed=seed,
        steps=steps,
        sampler=sampler,
        class_label=class_label,
        backend=backend,
        provider=provider,
    )
    title, seconds = sample(model, output, options, npz)
    stdout.print(
        f"wrote {output}: {n} images from {title} in {seconds:.2f} s "
        f"({seconds / n * 1e3:.1f} ms/image, including sampling overhead)"
    )


@command("build-engine")
def build_engine_command(
    onnx: Annotated[
        Path, typer.Argument(help="An .onnx from `edgedit export` (FP32, FP16) or `edgedit quantize` (INT8).")
    ],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: engines/NAME.PRECISION.plan")] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="auto (the faster by the device estimate, and why), fp32, fp16, int8 or best (FP16+INT8 flags).",
        ),
    ] = "auto",
    calib: Annotated[
        Path | None, typer.Option("--calib", help="Calibration .npz for int8/best from an FP32 ONNX.")
    ] = None,
    min_psnr: Annotated[
        float | None,
        typer.Option(
            "--min-psnr",
            help=f"Quality budget (dB, default {MIN_PSNR_DB:g}) when int8/best quantizes an FP32 ONNX first.",
        ),
    ] = None,
    workspace_mb: Annotated[
        int,
        typer.Option(
            "--workspace-mb", help="Builder workspace cap (MiB): the Orin Nano's 8 GB are shared with the CPU."
        ),
    ] = 1024,
    opt_level: Annotated[int, typer.Option("--opt-level", help="Builder optimization level 0-5.")] = 3,
    timing_cache: Annotated[
        Path | None, typer.Option("--timing-cache", help="Load and save this timing cache.")
    ] = None,
    trtexec: Annotated[
        bool, typer.Option("--trtexec", help="Build with JetPack's trtexec instead of the Python API.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the equivalent trtexec command.")] = False,
    json_out: JsonFlag = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write over an existing file of another kind, and quantize even below --min-psnr."
        ),
    ] = False,
) -> None:
    """Build a TensorRT engine (+ NAME.plan.json sidecar) on the device, through Polygraphy or trtexec.

    FP16-typed and Q/DQ INT8 files build strongly typed; int8/best on an FP32 file quantize it first
    (as `edgedit quantize` does: its plan, within --min-psnr).
    Engines are specific to their GPU and TensorRT version: build them where they run.
    """
    from edgedit.engines.build import BuildOptions
    from edgedit.pipeline import build, plan_build

    options = BuildOptions(
        precision=precision,
        workspace_mb=workspace_mb,
        opt_level=opt_level,
        timing_cache=timing_cache,
        use_trtexec=trtexec,
    )
    plan = plan_build(onnx, output, options, calib=calib, min_psnr=min_psnr, force=force)
    if dry_run:  # the plan is the answer: nothing is written
        report = plan.engine
    else:
        check_outputs(plan.outputs, {"ONNX": onnx, "--calib": calib}, force=force)
        report = build(plan)
    why = plan.why
    if why:  # after the work: a refusal stays one line
        stderr_say(why)
    if json_out:
        return print_json(
            {
                "plan": str(report.plan) if report.plan else None,
                "onnx": str(report.onnx),
                "quantized_from": str(report.quantized_from) if report.quantized_from else None,
                "settings": report.settings.to_dict(),
                "trtexec": report.command,
                "sidecar": report.sidecar.model_dump(mode="json") if report.sidecar else None,
            }
        )
    _print_build(report, plan.options.precision, dry_run)


def _print_build(report, precision: str, dry_run: bool) -> None:
    if report.quantized_from is not None:
        stdout.print(f"{'would quantize' if dry_run else 'quantized'} {report.quantized_from} -> {report.onnx}")
    stdout.print(("equivalent: " if not dry_run else "") + " ".join(report.command), soft_wrap=True)
    if report.plan is not None:
        side = report.sidecar
        stdout.print(
            f"wrote {report.plan} ({si(side.plan_bytes, 'B')}, {precision}, "
            f"{'strongly' if side.strongly_typed else 'weakly'} typed) in {side.build_seconds:.1f} s, "
            f"peak RSS {side.peak_rss_mb:.0f} MB, on {side.device.gpu} with TensorRT {side.device.tensorrt}"
        )


@command("demo")
def demo_command(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for models, grids, bench.json, report.md.")
    ] = Path("demo-out"),
    duration: Annotated[float, typer.Option("--duration", help="Seconds of timed calls per benchmark.")] = 1.5,
    compile_torch: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="Also time the student through torch.compile (compiling takes a minute or more).",
        ),
    ] = True,
) -> None:
    """The main job: the whole deploy path on the embedded default, on whatever this machine has.

    Export, quantize, build engines (where TensorRT is), sample, and bench every available
    backend and precision at batch 1 and 8.
    """
    import time

    from edgedit.assets import STUDENT_DIGITS, TEACHER_DIGITS
    from edgedit.demo import run_demo

    check_outputs([Output("-o", output, "folder")], {"student": STUDENT_DIGITS, "teacher": TEACHER_DIGITS})
    start = time.perf_counter()
    records = run_demo(
        output, duration, say=lambda text: stdout.print(f"[dim]demo:[/dim] {text}"), compile_torch=compile_torch
    )
    from edgedit.cli.bench import print_bench_table

    print_bench_table(records)
    stdout.print(f"wrote {output}/ (models, grid-*.png, bench.json, report.md) in {time.perf_counter() - start:.0f} s")
