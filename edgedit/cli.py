"""The `edgedit` command line. Each command is a thin wrapper over one library call.

Conventions: exit 0 ok, 1 the work failed (a check), 2 bad usage or bad input; errors are one
line on stderr, with a traceback only under `edgedit --debug`. Heavy dependencies are imported
inside the commands that need them, so `edgedit --help` and the device-side commands start fast
without torch.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from edgedit import __version__
from edgedit.errors import EdgeditError
from edgedit.fileio import write_text_atomic

app = typer.Typer(
    name="edgedit",
    help="Design, distil and deploy small diffusion transformers (DiT-Nano) to NVIDIA Jetson Orin Nano.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stdout = Console(width=max(Console().width, 128))  # tables stay readable when piped
_debug = False


def command(name: str | None = None, parent: typer.Typer | None = None) -> Callable:
    """Register a command whose EdgeditErrors become one stderr line and their exit code."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except EdgeditError as err:
                if _debug:
                    raise
                typer.echo(f"edgedit: error: {err}", err=True)
                raise typer.Exit(err.exit_code) from None
            except KeyboardInterrupt:
                typer.echo("edgedit: interrupted", err=True)
                raise typer.Exit(130) from None
            except Exception as err:
                if _debug:
                    raise
                typer.echo(f"edgedit: internal error: {type(err).__name__}: {err} (rerun as `edgedit --debug ...` "
                           "for the traceback)", err=True)
                raise typer.Exit(1) from None

        (parent or app).command(name)(wrapper)
        return fn

    return register


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgedit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    global _debug
    _debug = debug


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))


#################################################################################
#                        Options shared by model commands                       #
#################################################################################

_MODEL_PANEL = "Model overrides (applied on top of the preset)"
# Training options shared by `teacher train` and `distill`.
Batch = Annotated[int, typer.Option("--batch", min=1, help="Global batch (split over torchrun processes).")]
LearningRate = Annotated[float, typer.Option("--lr", help="AdamW learning rate.")]
Ema = Annotated[float, typer.Option("--ema", help="EMA decay (with warm-up); the EMA is saved.")]
LrWarmup = Annotated[int, typer.Option("--lr-warmup", min=0, help="Linear learning-rate warm-up steps.")]
CheckpointEvery = Annotated[int, typer.Option("--checkpoint-every", min=1, help="Full-state checkpoint interval.")]
SampleEvery = Annotated[int, typer.Option("--sample-every", min=0, help="Also write a sample grid every K steps "
                                         "(one is always written at the end).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from OUTPUT's training state.")]
Depth = Annotated[Optional[int], typer.Option("--depth", min=1, help="Number of transformer blocks.", rich_help_panel=_MODEL_PANEL)]
Width = Annotated[Optional[int], typer.Option("--width", min=4, help="Hidden size D (a multiple of 4 and of --heads).", rich_help_panel=_MODEL_PANEL)]
Heads = Annotated[Optional[int], typer.Option("--heads", min=1, help="Attention heads.", rich_help_panel=_MODEL_PANEL)]
Patch = Annotated[Optional[int], typer.Option("--patch", min=1, help="Patch size p (tokens = (size/p)^2).", rich_help_panel=_MODEL_PANEL)]
MlpRatio = Annotated[Optional[float], typer.Option("--mlp-ratio", min=0.0, help="MLP hidden size / width.", rich_help_panel=_MODEL_PANEL)]
InputSize = Annotated[Optional[int], typer.Option("--input-size", min=1, help="Side of the square model input (pixels or latents).", rich_help_panel=_MODEL_PANEL)]
InChannels = Annotated[Optional[int], typer.Option("--in-channels", min=1, help="Input channels.", rich_help_panel=_MODEL_PANEL)]
NumClasses = Annotated[Optional[int], typer.Option("--num-classes", min=0, help="Classes (0 = unconditional).", rich_help_panel=_MODEL_PANEL)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]


def _overrides(depth, width, heads, patch, mlp_ratio, input_size=None, in_channels=None, num_classes=None) -> dict:
    return dict(depth=depth, hidden_size=width, num_heads=heads, patch_size=patch, mlp_ratio=mlp_ratio,
                input_size=input_size, in_channels=in_channels, num_classes=num_classes)


#################################################################################
#                                   Commands                                    #
#################################################################################


def _si(value: float, unit: str = "") -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.{1 if unit == 'B' else 2}f}{prefix}{unit}"
    return f"{value:.0f}{unit}"


@command("models")
def models_command(
    model: Annotated[Optional[str], typer.Argument(help="A preset (e.g. DiT-Nano-S/2), a checkpoint, an .onnx or a "
                                                   ".plan (default: every preset).")] = None,
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
    input_size: InputSize = None, in_channels: InChannels = None, num_classes: NumClasses = None,
    calibrate: Annotated[Optional[list[Path]], typer.Option("--calibrate", help="Refit the device latency model with "
                         "these `edgedit bench --json` files from a Jetson (repeatable).")] = None,
    calibration_out: Annotated[Optional[Path], typer.Option("--calibration-out", help="Where --calibrate writes "
                               "the fit (default: ~/.config/edgedit/latency-calibration.json, used from then on).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List models with exact parameters and MACs, memory, and estimated Orin Nano latency.

    Device latencies are estimates of a calibrated kernel model (docs/device-latency.md), not
    measurements: measure with `edgedit bench` on the device, and feed that back with --calibrate.
    """
    from edgedit.cost.summary import summarize

    if calibrate:
        return _calibrate_latency(calibrate, calibration_out, json_out)
    overrides = _overrides(depth, width, heads, patch, mlp_ratio, input_size, in_channels, num_classes)
    reports = _model_reports(model, overrides, summarize)
    if json_out:
        return _print_json(reports)
    _print_model_tables(reports)
    if len(reports) == 1:
        _print_estimates(reports[0])
    stdout.print(f"Nano / Super ms: fp16 / int8 on an Orin Nano 8GB (15W) / Orin Nano Super (MAXN_SUPER), "
                 f"{reports[0]['device_estimate_note']}. kernels: TensorRT kernels per call (assumed fusions); "
                 "W: weight memory.", style="dim")


def _model_reports(model: Optional[str], overrides: dict, summarize: Callable) -> list[dict]:
    from edgedit.config import PRESETS
    from edgedit.fileinfo import model_config

    if model is None:
        if any(v is not None for v in overrides.values()):
            raise EdgeditError("model overrides need a preset to apply to, e.g. `edgedit models DiT-Nano-S/2 --depth 8`")
        return [summarize(p.config, p.name) for p in PRESETS.values()]
    return [summarize(*model_config(model, **overrides))]


def _print_model_tables(reports: list[dict]) -> None:
    groups: dict[str, list[dict]] = {}  # one table per input geometry
    for r in reports:
        c = r["config"]
        classes = f"{c['num_classes']} classes" if c["num_classes"] else "unconditional"
        groups.setdefault(f"{r['kind']}s, input {c['input_size']}x{c['input_size']}x{c['in_channels']}, {classes}", []).append(r)
    for title, rows in groups.items():
        table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for header in ("name", "LxD/h", "params", "MACs", "kernels", "W fp16", "Nano ms", "Super ms"):
            table.add_column(header, justify="left" if header == "name" else "right", no_wrap=True)
        for r in rows:
            c, e = r["config"], r["device_estimates"]
            table.add_row(
                r["name"], f"{c['depth']}x{c['hidden_size']}/{c['num_heads']}", _si(r["params"]), _si(r["macs"]),
                str(r["tensorrt_kernels"]), _si(r["weights_bytes"]["fp16"], "B"),
                *(f"{e[f'{d}_fp16']['ms']:.2f} / {e[f'{d}_int8']['ms']:.2f}" for d in ("orin_nano", "orin_nano_super")))
        stdout.print(table)


def _print_estimates(report: dict) -> None:
    e = report["device_estimates"]
    stdout.print(f"{report['name']} on the device, GPU ms per call at batch 1 (point, range):")
    for key, value in e.items():
        if not key.endswith("_graph"):
            graph = e[key + "_graph"]
            stdout.print(f"  {key:<22} {value['ms']:.3f} ({value['low_ms']:.3f}-{value['high_ms']:.3f}); "
                         f"with a CUDA graph {graph['ms']:.3f} ({graph['low_ms']:.3f}-{graph['high_ms']:.3f})")


def _calibrate_latency(files: list[Path], out: Optional[Path], json_out: bool) -> None:
    from edgedit.cost.calibration import calibrate_with_device, fit_table, loo_error, save_fit, user_calibration_path

    fit, skipped = calibrate_with_device(files)
    path = save_fit(fit, out or user_calibration_path())
    if json_out:
        return _print_json({"calibration": str(path), "skipped": skipped, **fit.to_dict()})
    for reason in skipped:
        typer.echo(f"edgedit: skipped {reason}", err=True)
    error = loo_error(fit)
    stdout.print(fit_table(fit), markup=False)
    stdout.print(f"constants: " + ", ".join(f"{k} {v:.4g}" for k, v in fit.constants.to_dict().items()))
    stdout.print(f"leave-one-out: median x{error['median_factor']:.2f}, worst x{error['max_factor']:.2f}; "
                 f"wrote {path}: every estimate is now an {fit.label}")


@command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="A checkpoint (.safetensors), an ONNX model (.onnx) or an engine (.plan).")],
    json_out: JsonFlag = False,
) -> None:
    """Describe a checkpoint (validated against its config), an ONNX model or a TensorRT engine.

    ONNX: I/O, opset, op histogram, Q/DQ or not, edgedit metadata. Engines: from their sidecar.
    """
    from edgedit.fileinfo import describe

    report = describe(path)
    if json_out:
        _print_json(report)
        return
    {"checkpoint": _print_checkpoint_info, "onnx": _print_onnx_info, "engine": _print_engine_info}[report["type"]](report)


def _model_line(c: dict) -> str:
    return (f"depth {c['depth']}, width {c['hidden_size']}, heads {c['num_heads']}, patch {c['patch_size']}, "
            f"input {c['input_size']}x{c['input_size']}x{c['in_channels']}, classes {c['num_classes']}")


def _print_checkpoint_info(report: dict) -> None:
    stdout.print(f"[bold]{report['path']}[/bold]  (checkpoint, {_si(report['size_bytes'], 'B')}, "
                 f"edgedit {report['edgedit_version']})")
    stdout.print(f"  model      {report['kind']}: {_model_line(report['config'])}")
    stdout.print(f"  size       {report['params']:,} params, {_si(report['macs'])} MACs/image, "
                 f"{report['tensors']} tensors ({', '.join(report['dtypes'])})")
    for key, value in report["provenance"].items():
        stdout.print(f"  {key:<10} {value}", markup=False)  # provenance is data: brackets are not markup
    stdout.print(f"  sha256     {report['sha256']}")


def _print_engine_info(report: dict) -> None:
    d = report["device"]
    stdout.print(f"[bold]{report['path']}[/bold]  (TensorRT engine, {_si(report['size_bytes'], 'B')}, "
                 f"edgedit {report['edgedit_version']})")
    stdout.print(f"  model      {report['kind']}: {_model_line(report['config'])}")
    stdout.print(f"  precision  {report['precision']} ({'strongly' if report['strongly_typed'] else 'weakly'} typed), "
                 f"batch {report['batch']['min']}..{report['batch']['max']}")
    stdout.print(f"  built for  TensorRT {d['tensorrt']} on {d['gpu']} (sm {d['compute_capability']})"
                 + (f", {d['jetson']['model']}, L4T {d['jetson']['l4t']}" if d.get("jetson") else ""))
    stdout.print(f"  from       {report['onnx']['file']} (sha256 {report['onnx']['sha256'][:16]}...), "
                 f"{report['build_seconds']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB with {report['builder']['tool']}")
    stdout.print(f"  sha256     {report['sha256']}")


def _print_onnx_info(report: dict) -> None:
    stdout.print(f"[bold]{report['path']}[/bold]  (ONNX opset {report['opset']}, {_si(report['size_bytes'], 'B')}"
                 f"{', external data' if report['external_data'] else ''}, {report['producer'] or 'unknown producer'})")
    for kind in ("inputs", "outputs"):
        shown = ", ".join(f"{t['name']} {t['shape']}" for t in report[kind])
        stdout.print(f"  {kind:<10} {shown}")
    ops = ", ".join(f"{op} {n}" for op, n in report["ops"].items())
    stdout.print(f"  nodes      {report['nodes']}: {ops}")
    stdout.print(f"  Q/DQ       {'yes (explicit INT8)' if report['qdq'] else 'no'}")
    meta = report["edgedit"]
    if meta is None:
        stdout.print(f"  edgedit    [yellow]{report['edgedit_problem']}[/yellow]")
    else:
        stdout.print(f"  model      {meta['kind']}: {_model_line(meta['config'])}")
        stdout.print(f"  precision  {meta['precision']}, batch {meta['batch']['min']}..{meta['batch']['max']} "
                     f"(opt {meta['batch']['opt']}), sampler {meta['sampler']['type']}")
        stdout.print(f"  source     {meta['source']}")
        for check in meta.get("parity", []):
            stdout.print(f"  parity     batch {check['batch']}: max abs {check['max_abs_error']:.3g}, "
                         f"relative {check['max_rel_error']:.3g} (tolerance {check['tolerance']:g})")
        if "quantization" in meta:
            q = meta["quantization"]
            stdout.print(f"  INT8       {q['tool']} ({q['method']}), {q['quantized_nodes']} layers quantized, "
                         f"PSNR {q['psnr_db']:.1f} dB vs FP32 on {q['heldout_rows']} held-out inputs")
    stdout.print(f"  sha256     {report['sha256']}")


@command("doctor")
def doctor_command(json_out: JsonFlag = False) -> None:
    """Report Python, the ML packages, CUDA devices and, on a Jetson, the module, L4T and power mode."""
    from edgedit.doctor import collect

    report = collect()
    if json_out:
        _print_json(report)
        return
    missing = "[dim]not installed[/dim]"
    stdout.print(f"edgedit {report['edgedit']} on Python {report['python']} ({report['platform']})")
    for dist, version in report["packages"].items():
        stdout.print(f"  {dist:<16} {version or missing}")
    providers = report["onnxruntime_providers"]
    stdout.print(f"  {'ORT providers':<16} {', '.join(providers) if providers else missing}")
    cuda = report["cuda"]
    if cuda["devices"]:
        for d in cuda["devices"]:
            stdout.print(f"  cuda:{d['index']:<11} {d['name']} (sm {d['compute_capability']}, "
                         f"{_si(d['memory_bytes'], 'B')}, driver {cuda['driver']})")
    else:
        stdout.print(f"  {'CUDA':<16} none: {cuda['error'] or 'no devices'}")
    jet = report["jetson"]
    if jet is None:
        stdout.print(f"  {'Jetson':<16} not a Jetson")
    else:
        mode = jet["nvpmodel"]
        clocks = {True: "on", False: "off", None: "unknown"}[jet["jetson_clocks"]]
        stdout.print(f"  {'Jetson':<16} {jet['model'] or 'unknown model'}, L4T {jet['l4t'] or 'unknown'}")
        stdout.print(f"  {'power mode':<16} {(mode or {}).get('name') or 'unknown'} (id {(mode or {}).get('id')}), "
                     f"jetson_clocks {clocks}")


@command("convert-dit")
def convert_dit_command(
    official: Annotated[Path, typer.Argument(help="An official DiT checkpoint, e.g. DiT-XL-2-256x256.pt.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .safetensors checkpoint.")],
    model: Annotated[str, typer.Option("--model", help="Official preset: DiT-{S,B,L,XL}/{2,4,8}.")] = "DiT-XL/2",
    image_size: Annotated[int, typer.Option("--image-size", help="Image size the checkpoint was trained at (latent = size/8).")] = 256,
    num_classes: Annotated[int, typer.Option("--num-classes", min=0, help="Number of classes.")] = 1000,
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
) -> None:
    """Import official facebookresearch/DiT weights (tensors only, never unpickled objects).

    Note: DiT's weights are licensed CC-BY-NC 4.0 (non-commercial).
    """
    from edgedit.config import resolve_config
    from edgedit.models.convert import convert_official_dit, official_input_size

    overrides = _overrides(depth, width, heads, patch, mlp_ratio)
    overrides.update(input_size=official_input_size(image_size), num_classes=num_classes)
    cfg = resolve_config(model, **overrides)
    info = convert_official_dit(official, cfg, output)
    typer.echo(f"wrote {info.path} ({info.num_params:,} params, {len(info.tensors)} tensors)")


ModelArg = Annotated[str, typer.Argument(
    help="A checkpoint (.safetensors) or a preset name (random weights: latency work only).")]


def _default_name(model: str) -> str:
    path = Path(model)
    return path.stem if path.suffix else model.replace("/", "-")


@command("export")
def export_command(
    model: ModelArg,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: export/NAME[.fp16].onnx")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1, help="Static batch size (default 1).")] = None,
    dynamic_batch: Annotated[Optional[str], typer.Option("--dynamic-batch", metavar="MIN:OPT:MAX",
                                                         help="Dynamic batch range, e.g. 1:4:8.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or fp16 (LayerNorm/Softmax kept FP32).")] = "fp32",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17-20 (TensorRT 10.3 parses up to 20).")] = 18,
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
    input_size: InputSize = None, in_channels: InChannels = None, num_classes: NumClasses = None,
    json_out: JsonFlag = False,
) -> None:
    """Export a model to ONNX for TensorRT, validated against torch (parity at the smallest and largest batch).

    The file carries its model config, I/O and sampler spec, and source checksum as metadata.
    A parity failure exits with 1 and writes nothing.
    """
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.export.graph import check_opset
    from edgedit.models.loading import load_model_or_preset

    if batch is not None and dynamic_batch is not None:
        raise EdgeditError("--batch and --dynamic-batch exclude each other: choose a static or a dynamic batch")
    spec = BatchSpec.parse(dynamic_batch) if dynamic_batch else BatchSpec.static(batch or 1)
    check_opset(opset)
    net, source = load_model_or_preset(model, **_overrides(depth, width, heads, patch, mlp_ratio,
                                                           input_size, in_channels, num_classes))
    output = output or Path("export") / f"{_default_name(model)}{'.fp16' if precision == 'fp16' else ''}.onnx"
    report = export_onnx(net, output, source, spec, precision, opset)
    if json_out:
        _print_json({"path": str(report.path), "external_data": str(report.data_path) if report.data_path else None,
                     "opset": report.opset, "precision": precision, "batch": spec.to_dict(),
                     "parity": report.parity, "ops": report.ops})
        return
    stdout.print(f"wrote {report.path} (opset {report.opset}, {precision}, batch {spec.min}..{spec.max}"
                 f"{', weights in ' + report.data_path.name if report.data_path else ''})")
    for check in report.parity:
        stdout.print(f"  parity vs torch at batch {check['batch']}: max abs {check['max_abs_error']:.3g}, "
                     f"relative {check['max_rel_error']:.3g} (tolerance {check['tolerance']:g})")
    stdout.print("  ops: " + ", ".join(f"{op} {n}" for op, n in report.ops.items()))


@command("calib-data")
def calib_data_command(
    model: Annotated[str, typer.Argument(help="An exported FP32 .onnx, a checkpoint, or a preset name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .npz (keyed by input name).")],
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Samples (noise seeds) to draw.")] = 64,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First seed (default: the calibration range).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="EDM sampler steps (default: the model's).")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
) -> None:
    """Record INT8 calibration inputs (.npz keyed by input name) from real sampling.

    A one-step model gets the noise it receives; a multi-step denoiser every input met along
    real sampling trajectories, at every step of the schedule.
    """
    from edgedit.export.calibration import CALIBRATION_SEED, record_inputs
    from edgedit.fileio import save_npz
    from edgedit.runtime.backends import load_backend

    backend = load_backend(model)
    data = record_inputs(backend, samples, CALIBRATION_SEED if seed is None else seed, steps, sampler)
    save_npz(output, data)
    rows = next(iter(data.values())).shape[0]
    stdout.print(f"wrote {output}: {rows} rows of {', '.join(f'{k} {list(v.shape[1:])}' for k, v in data.items())} "
                 f"from {samples} samples on {backend.describe()}")


@command("quantize")
def quantize_command(
    onnx: Annotated[Path, typer.Argument(help="An FP32 model from `edgedit export`.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: NAME.int8.onnx next to it.")] = None,
    calib: Annotated[Optional[Path], typer.Option("--calib", help="Calibration .npz from `edgedit calib-data`.")] = None,
    calib_samples: Annotated[int, typer.Option("--calib-samples", min=1, help="Samples to calibrate on when no --calib.")] = 64,
    heldout_samples: Annotated[int, typer.Option("--heldout-samples", min=1, help="Held-out samples for the accuracy check.")] = 16,
    method: Annotated[str, typer.Option("--method", help="Activation ranges: max, entropy or percentile.")] = "max",
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Keep nodes matching this pattern in high "
                       "precision (repeatable), e.g. 'blocks.0.*'.")] = None,
    no_default_excludes: Annotated[bool, typer.Option("--no-default-excludes", help="Also quantize embedders, adaLN and "
                                   "the final layer.")] = False,
    min_psnr: Annotated[float, typer.Option("--min-psnr", help="Refuse below this output PSNR (dB) vs FP32.")] = 30.0,
    force: Annotated[bool, typer.Option("--force", help="Write even below --min-psnr.")] = False,
    tool: Annotated[str, typer.Option("--tool", help="auto (ModelOpt if installed), modelopt or onnxruntime.")] = "auto",
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="EDM steps for generated calibration data.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Quantize to explicit INT8 (Q/DQ: symmetric, per-channel weights) that TensorRT builds strongly typed.

    Sensitive parts stay in high precision by default (embedders, adaLN, final layer, attention
    products). The INT8 model is measured against FP32 on held-out inputs and refused (exit 1)
    below --min-psnr unless --force.
    """
    from edgedit.export.calibration import CALIBRATION_SEED, HELDOUT_SEED, load_calibration, record_inputs
    from edgedit.export.quantize import quantize_onnx
    from edgedit.runtime.backends import OnnxRuntimeBackend

    if onnx.suffix != ".onnx":
        raise EdgeditError(f"{onnx}: expected an .onnx file from `edgedit export`")
    backend = OnnxRuntimeBackend(onnx, provider="cpu")
    calibration = load_calibration(calib, backend.meta) if calib else record_inputs(backend, calib_samples, CALIBRATION_SEED, steps)
    heldout = record_inputs(backend, heldout_samples, HELDOUT_SEED, steps)
    output = output or onnx.with_name(onnx.name[: -len(".onnx")] + ".int8.onnx")
    report = quantize_onnx(onnx, output, calibration, heldout, method, exclude, not no_default_excludes, min_psnr, force, tool)
    if json_out:
        _print_json({"path": str(report.path), "tool": report.tool, "method": report.method,
                     "quantized": report.quantized, "excluded": report.excluded, "psnr_db": report.psnr_db,
                     "max_abs_error": report.max_abs_error, "calibration_rows": report.calibration_rows,
                     "heldout_rows": report.heldout_rows, "zero_points_checked": report.zero_points})
        return
    stdout.print(f"wrote {report.path} with {report.tool} ({report.method} calibration on {report.calibration_rows} rows)")
    stdout.print(f"  quantized {len(report.quantized)} layers to INT8, kept {len(report.excluded)} in high precision; "
                 f"all {report.zero_points} zero points are 0")
    stdout.print(f"  vs FP32 on {report.heldout_rows} held-out inputs: PSNR {report.psnr_db:.1f} dB, "
                 f"max abs error {report.max_abs_error:.3g}")


@command("sample")
def sample_command(
    model: Annotated[str, typer.Argument(help="An .onnx file, a checkpoint, or a preset name.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of images.")] = 16,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per network call.")] = 8,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first image (image k uses seed + k).")] = 0,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="EDM steps (default: the model's, 18).")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
    class_label: Annotated[Optional[int], typer.Option("--class-label", min=0, help="Class of every image "
                           "(default: seed % classes).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG grid to write.")] = Path("grid.png"),
    npz: Annotated[Optional[Path], typer.Option("--npz", help="Also save the raw images, seeds and labels.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, onnxruntime or torch.")] = "auto",
    provider: Annotated[str, typer.Option("--provider", help="ONNX Runtime provider: auto, cpu, cuda, tensorrt.")] = "auto",
) -> None:
    """Generate images: one step for a student, EDM Euler/Heun or DDIM for a denoiser; same seed, same image everywhere."""
    import time

    import numpy as np

    from edgedit.fileio import save_npz
    from edgedit.runtime.backends import load_backend
    from edgedit.runtime.images import make_grid, save_png
    from edgedit.runtime.samplers import default_labels, generate

    runner = load_backend(model, backend, provider)
    seeds = list(range(seed, seed + n))
    cfg = runner.meta.config
    labels = [class_label] * n if class_label is not None else None
    start = time.perf_counter()
    images = generate(runner, seeds, labels, batch=batch, steps=steps, sampler=sampler)
    seconds = time.perf_counter() - start
    save_png(output, make_grid(images))
    if npz:
        used = np.asarray(labels if labels is not None else default_labels(seeds, cfg.num_classes), np.int32) \
            if cfg.class_conditional else np.zeros(0, np.int32)
        save_npz(npz, {"images": images, "seeds": np.asarray(seeds, np.int64), "labels": used})
    stdout.print(f"wrote {output}: {n} images from {runner.describe()} in {seconds:.2f} s "
                 f"({seconds / n * 1e3:.1f} ms/image, including sampling overhead)")


@command("build-engine")
def build_engine_command(
    onnx: Annotated[Path, typer.Argument(help="An .onnx from `edgedit export` (FP32, FP16) or `edgedit quantize` (INT8).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: engines/NAME.PRECISION.plan")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16, int8 or best (FP16+INT8 flags).")] = "fp16",
    calib: Annotated[Optional[Path], typer.Option("--calib", help="Calibration .npz for int8/best from an FP32 ONNX.")] = None,
    workspace_mb: Annotated[int, typer.Option("--workspace-mb", help="Builder workspace cap (MiB): the Orin Nano's "
                                              "8 GB are shared with the CPU.")] = 1024,
    opt_level: Annotated[int, typer.Option("--opt-level", help="Builder optimization level 0-5.")] = 3,
    timing_cache: Annotated[Optional[Path], typer.Option("--timing-cache", help="Load and save this timing cache.")] = None,
    trtexec: Annotated[bool, typer.Option("--trtexec", help="Build with JetPack's trtexec instead of the Python API.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the equivalent trtexec command.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Build a TensorRT engine (+ NAME.plan.json sidecar) on the device, through Polygraphy or trtexec.

    FP16-typed and Q/DQ INT8 files build strongly typed; int8/best on an FP32 file quantize it first.
    Engines are specific to their GPU and TensorRT version: build them where they run.
    """
    from edgedit.engines.build import build_engine

    output = output or Path("engines") / f"{onnx.name.removesuffix('.onnx')}.{precision}.plan"
    report = build_engine(onnx, output, precision, calib, workspace_mb, opt_level, timing_cache, trtexec, dry_run)
    if json_out:
        _print_json({"plan": str(report.plan) if report.plan else None, "onnx": str(report.onnx),
                     "quantized_from": str(report.quantized_from) if report.quantized_from else None,
                     "settings": report.settings.to_dict(), "trtexec": report.command, "sidecar": report.sidecar})
        return
    if report.quantized_from is not None:
        stdout.print(f"{'would quantize' if dry_run else 'quantized'} {report.quantized_from} -> {report.onnx}")
    stdout.print(("equivalent: " if not dry_run else "") + " ".join(report.command), soft_wrap=True)
    if report.plan is not None:
        side = report.sidecar
        stdout.print(f"wrote {report.plan} ({_si(side['plan_bytes'], 'B')}, {precision}, "
                     f"{'strongly' if side['strongly_typed'] else 'weakly'} typed) in {side['build_seconds']:.1f} s, "
                     f"peak RSS {side['peak_rss_mb']:.0f} MB, on {side['device']['gpu']} with TensorRT "
                     f"{side['device']['tensorrt']}")


@command("bench")
def bench_command(
    models: Annotated[list[str], typer.Argument(help="Models (.plan, .onnx, .safetensors or presets); or `report` "
                                                    "followed by bench JSON files to merge.")],
    backend: Annotated[str, typer.Option("--backend", help="auto, torch, onnxruntime, tensorrt; several as a comma list.")] = "auto",
    provider: Annotated[str, typer.Option("--provider", help="ONNX Runtime provider: auto, cpu, cuda, tensorrt.")] = "auto",
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, e.g. 1,4,8.")] = "1",
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed calls first.")] = 5,
    iters: Annotated[Optional[int], typer.Option("--iters", min=1, help="Timed calls (instead of --duration).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Seconds of timed calls (default 3).")] = None,
    what: Annotated[str, typer.Option("--what", help="model (one network call) or sampler (whole images).")] = "model",
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="EDM steps for --what sampler.")] = None,
    tegrastats: Annotated[bool, typer.Option("--tegrastats", help="Sample tegrastats (Jetson): RAM, power, energy.")] = False,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT: replay each batch size's call as a CUDA graph.")] = False,
    threads: Annotated[int, typer.Option("--threads", min=0, help="ONNX Runtime intra-op threads (0 = its default); "
                                         "1 gives steadier timings on small shared machines.")] = 0,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the records as JSON.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write the records as CSV.")] = None,
    report: Annotated[Optional[Path], typer.Option("-o", "--report", help="Write a Markdown comparison.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a latency plot (PNG; needs matplotlib).")] = None,
) -> None:
    """Measure latency, memory and, on a Jetson, power and energy per image; compare backends.

    Latency: min/mean/p50/p90/p99/max/std and images/s. Ctrl-C keeps what was measured.
    `edgedit bench report A.json B.json -o report.md --plot p.png` merges runs from several machines.
    """
    from rich.progress import BarColumn, Progress, TextColumn

    from edgedit.bench import report as reports
    from edgedit.bench.harness import BenchSettings, run_bench

    interrupted = False
    if models[0] == "report":
        if len(models) < 2:
            raise EdgeditError("bench report needs bench JSON files: edgedit bench report A.json B.json -o report.md")
        records = reports.load_records(models[1:])
    else:
        if iters is not None and duration is not None:
            raise EdgeditError("--iters and --duration exclude each other")
        try:
            batches = [int(b) for b in batch.split(",")]
        except ValueError:
            raise EdgeditError(f"--batch '{batch}' is not a comma list of integers, e.g. 1,4,8") from None
        if any(b < 1 for b in batches):
            raise EdgeditError("--batch sizes must be at least 1")
        settings = BenchSettings(batches, warmup, iters, duration if duration is not None else (None if iters else 3.0),
                                 what, steps, tegrastats)
        console = Console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} calls, "
                      "last {task.fields[ms]:.2f} ms"), console=console, transient=True) as bar:
            def progress(label: str, _batch: int):
                task = bar.add_task(label, total=iters, ms=0.0)
                return lambda ms: bar.update(task, advance=1, ms=ms)

            records, interrupted = run_bench(models, backend.split(","), settings, provider, cuda_graph, progress, threads)
        if not records:
            raise EdgeditError("interrupted before anything was measured")
    for path, writer in ((json_path, reports.save_json), (csv_path, reports.save_csv)):
        if path:
            writer(path, records)
    if report:
        write_text_atomic(report, reports.markdown(records))
    if plot and not reports.save_plot(plot, records):
        typer.echo("edgedit: warning: matplotlib is not installed: no plot (pip install matplotlib)", err=True)
    _print_bench_table(records)
    if interrupted:
        typer.echo("edgedit: interrupted: the table shows what was measured so far", err=True)
        raise typer.Exit(130)


def _print_bench_table(records: list[dict]) -> None:
    from edgedit.bench.harness import comparison_rows, csv_row

    modes = {r["what"] for r in records}
    mixed = len(modes) > 1  # network calls and samplers: say which row is which
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("model", "backend", "precision", "batch", *(("what",) if mixed else ()), "p50 ms", "p90 ms",
                   "p99 ms", "img/s", "speedup", "peak RSS MB", "J/image"):
        table.add_column(header, justify="left" if header in ("model", "backend", "precision", "what") else "right",
                         no_wrap=True)
    for r in comparison_rows(records):
        c = csv_row(r)
        energy = "-" if c["energy_per_image_j"] is None else f"{c['energy_per_image_j']:.4f}"
        provider = r["provider"].removesuffix("ExecutionProvider")
        what = (f"{r['what']} ({r['network_evaluations_per_call']} eval)",) if mixed else ()
        table.add_row(r["model"], f"{r['backend']} ({provider})", r["precision"], str(r["batch"]), *what,
                      f"{c['p50_ms']:.3f}", f"{c['p90_ms']:.3f}", f"{c['p99_ms']:.3f}", f"{c['throughput_img_s']:.1f}",
                      f"{r['speedup_vs_first']:.2f}x", f"{c['peak_rss_mb']:.0f}", energy)
    unit = {"model": "per network call", "sampler": "per sampled batch"}
    table.caption = "; ".join(unit[m] for m in sorted(modes)) + \
        "; speedup = p50 of the first row of the same batch and kind / this p50"
    stdout.print(table)


@command("tegrastats")
def tegrastats_command(
    log: Annotated[Path, typer.Argument(help="A tegrastats log (tegrastats --logfile, or its captured output).")],
    interval_ms: Annotated[Optional[float], typer.Option("--interval-ms", help="Sampling interval, when the lines "
                                                        "carry no usable timestamps.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Summarise a tegrastats log: RAM, GPU load, EMC, power per rail (mean/peak) and VDD_IN energy."""
    from edgedit.bench.tegrastats import summarize

    if not log.is_file():
        raise EdgeditError(f"{log}: no such file")
    summary = summarize(log.read_text(errors="replace").splitlines(), interval_ms)
    if json_out:
        _print_json(summary)
        return
    if not summary["samples"]:
        raise EdgeditError(f"{log}: no tegrastats lines found ({summary['bad_lines']} other lines)")
    stat = lambda d, unit: "unavailable" if d is None else f"mean {d['mean']:.1f}{unit}, peak {d['peak']:.0f}{unit}"  # noqa: E731
    stdout.print(f"{log}: {summary['samples']} samples"
                 + (f" every {summary['period_s']:.3g} s" if summary["period_s"] else "")
                 + (f", {summary['bad_lines']} malformed lines skipped" if summary["bad_lines"] else ""))
    stdout.print(f"  RAM used   {stat(summary['ram_used_mb'], ' MB')} of {summary['ram_total_mb']} MB")
    stdout.print(f"  GPU (GR3D) {stat(summary['gr3d_pct'], '%')};  EMC {stat(summary['emc_pct'], '%')}")
    for rail, p in summary["power_mw"].items():
        stdout.print(f"  {rail:<16} {stat(p, ' mW')}")
    energy = summary["energy_j"]
    stdout.print(f"  energy     {'unknown (no timestamps: pass --interval-ms)' if energy is None else f'{energy:.2f} J'}"
                 f" on {summary['energy_rail'] or 'no total rail'}")


@command("demo")
def demo_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for models, grids, bench.json, report.md.")] = Path("demo-out"),
    duration: Annotated[float, typer.Option("--duration", help="Seconds of timed calls per benchmark.")] = 1.5,
) -> None:
    """The main job: the whole deploy path on the embedded default, on whatever this machine has.

    Export, quantize, build engines (where TensorRT is), sample, and bench every available
    backend and precision at batch 1 and 8.
    """
    import time

    from edgedit.demo import run_demo

    start = time.perf_counter()
    result = run_demo(output, duration, say=lambda text: stdout.print(f"[dim]demo:[/dim] {text}"))
    _print_bench_table(result["records"])
    stdout.print(f"wrote {output}/ (models, grid-*.png, bench.json, report.md) in {time.perf_counter() - start:.0f} s")


teacher_app = typer.Typer(help="The multi-step EDM teacher that produces the offline pairs.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


@command("train", parent=teacher_app)
def teacher_train_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The teacher checkpoint (.safetensors, EMA weights).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")],
    data: Annotated[str, typer.Option("--data", help="digits, cifar10:PATH, folder:PATH or npz:PATH.")] = "digits",
    preset: Annotated[str, typer.Option("--preset", help="Architecture; the input geometry comes from the data.")] = "DiT-Teacher-Digits/2",
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
    batch: Batch = 64,
    lr: LearningRate = 2e-4,
    ema: Ema = 0.9999,
    lr_warmup: LrWarmup = 0,
    checkpoint_every: CheckpointEvery = 200,
    sample_every: SampleEvery = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the weights, data order and noise.")] = 0,
    resume: Resume = False,
) -> None:
    """Train an EDM denoiser (class-conditional when the data has labels).

    Resumable (`--resume` loses at most one checkpoint interval) and distributed with
    `torchrun --nproc-per-node N $(which edgedit) teacher train ...` (DDP: gloo on CPU, nccl on GPU).
    """
    import time

    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from edgedit.config import resolve_config
    from edgedit.data.datasets import load_data
    from edgedit.models.dit import DiT
    from edgedit.train.objectives import EDMObjective
    from edgedit.train.trainer import Run, SampleGrids, TrainSettings, init_world, train

    world = init_world()
    dataset = load_data(data, "train")
    c, h, _ = dataset.shape
    cfg = resolve_config(preset, **_overrides(depth, width, heads, patch, mlp_ratio)).replace(
        input_size=h, in_channels=c, num_classes=dataset.num_classes, diffusion="edm", learn_sigma=False)
    settings = TrainSettings(steps, batch, lr, 0.0, ema, lr_warmup, 1.0, checkpoint_every, sample_every, seed)
    run = Run(cfg, data, "edm-teacher", settings, {"preset": preset})
    sample_grid = SampleGrids(output, world.device)

    console = Console(stderr=True)
    start = time.perf_counter()
    with Progress(TextColumn("teacher"), BarColumn(), TextColumn("step {task.completed}/{task.total} loss "
                  "{task.fields[loss]:.4f} {task.fields[rate]:.2f} it/s"), TimeRemainingColumn(), console=console,
                  disable=not world.main) as bar:
        task = bar.add_task("train", total=steps, loss=float("nan"), rate=0.0)

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, loss=loss, rate=step / max(time.perf_counter() - start, 1e-9))

        torch.manual_seed(seed)
        data = {"image": dataset.images, **({"label": dataset.labels} if dataset.labels is not None else {})}
        train(run, data, EDMObjective(DiT(cfg)), output, resume, {"preset": preset}, on_step=on_step,
              on_sample=sample_grid, world=world)
    if world.main:
        stdout.print(f"wrote {output} ({cfg.kind}, {len(dataset)} training images of {data}, {steps} steps, "
                     f"{world.size} process(es), {time.perf_counter() - start:.0f} s this session); "
                     f"sample grids in {sample_grid.folder}/")


pairs_app = typer.Typer(help="Offline teacher pairs: noise -> image (+ labels, trajectory states).", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        worker, workers = (int(v) for v in text.split("/"))
    except ValueError:
        raise EdgeditError(f"--shard '{text}' is not I/N, e.g. 0/4") from None
    return worker, workers


def _print_manifest(manifest: dict, folder: Path) -> None:
    count = sum(s["count"] for s in manifest["shards"])
    state = "complete" if manifest["complete"] else f"incomplete: {len(manifest['shards'])} of {manifest['expected_shards']} shards"
    stdout.print(f"{folder}: {count} pairs in {len(manifest['shards'])} shards ({state}), images "
                 f"{'x'.join(map(str, manifest['shape']))} {manifest['image_dtype']}, {manifest['sampler']['steps']} "
                 f"{manifest['sampler']['sampler']} steps, trajectory K={manifest['trajectory']['k']}")


@command("generate", parent=pairs_app)
def pairs_generate_command(
    teacher: Annotated[Path, typer.Argument(help="An EDM teacher: checkpoint (.safetensors) or ONNX.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The pairs folder.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of pairs (seeds first-seed .. first-seed+n-1).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Teacher sampler steps.")] = 18,
    sampler: Annotated[str, typer.Option("--sampler", help="heun or euler.")] = "heun",
    trajectory: Annotated[int, typer.Option("--trajectory", min=0, help="Intermediate ODE states to keep per pair (MI1).")] = 0,
    class_balanced: Annotated[bool, typer.Option("--class-balanced", help="Labels seed %% classes instead of random.")] = False,
    shard: Annotated[str, typer.Option("--shard", help="I/N: this worker's share of the shards.")] = "0/1",
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Pairs per shard file.")] = 1024,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0, help="Seed of the first pair.")] = 0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Samples per teacher call.")] = 64,
    image_dtype: Annotated[str, typer.Option("--image-dtype", help="float16 or float32.")] = "float16",
    device: Annotated[str, typer.Option("--device", help="torch device for a checkpoint teacher, e.g. cuda.")] = "cpu",
) -> None:
    """Generate pairs with the teacher: resumable (complete shards are skipped, damaged ones redone)
    and splittable across machines or GPUs with --shard I/N."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgedit.data.pairs import generate_pairs

    worker, workers = _parse_shard(shard)
    with Progress(TextColumn("pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("pairs", total=None)
        manifest = generate_pairs(teacher, output, n, steps, sampler, trajectory, class_balanced, (worker, workers),
                                  shard_size, first_seed, batch, image_dtype, device,
                                  progress=lambda k: bar.update(task, advance=k))
    _print_manifest(manifest, output)


@command("import-get", parent=pairs_app)
def pairs_import_get_command(
    source: Annotated[Path, typer.Argument(help="GET's pairs folder (image/*.pkl, latent/*.pkl).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The pairs folder to write.")],
    image_dtype: Annotated[str, typer.Option("--image-dtype", help="float16 or float32.")] = "float16",
) -> None:
    """Convert GET's released EDM CIFAR-10 pairs into a pairs store (torch.load(weights_only=True) only)."""
    from edgedit.data.pairs import import_get

    _print_manifest(import_get(source, output, image_dtype), output)


@command("verify", parent=pairs_app)
def pairs_verify_command(folder: Annotated[Path, typer.Argument(help="A pairs folder.")]) -> None:
    """Check every shard's checksums and rebuild the manifest (e.g. after copying parts together)."""
    from edgedit.data.pairs import verify_pairs

    manifest = verify_pairs(folder)
    _print_manifest(manifest, folder)
    if not manifest["complete"]:
        raise typer.Exit(1)


@command("eval")
def eval_command(
    model: Annotated[str, typer.Argument(help="A checkpoint, .onnx or .plan (one-step or multi-step).")],
    data: Annotated[str, typer.Option("--data", help="Real data for the reference set: digits, cifar10:PATH, ...")] = "digits",
    n: Annotated[int, typer.Option("-n", "--num", min=2, help="Samples to generate (seeds SEED .. SEED+n-1).")] = 1000,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="EDM steps (default: the model's).")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Samples per call.")] = 64,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Another model: PSNR of the samples "
                                                     "against its samples on the same seeds.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed.")] = 0,
    grid: Annotated[Optional[Path], typer.Option("--grid", help="Also write the first 64 samples as a PNG grid.")] = None,
    inception_weights: Annotated[Optional[Path], typer.Option("--inception-weights", help="pytorch-fid's "
                                 "pt_inception-2015-12-05-6726825d.pth for Inception FID/KID (default: torch hub's "
                                 "cache if it is there; never downloaded).")] = None,
    reference_count: Annotated[Optional[int], typer.Option("--reference-count", min=2, help="Use a seeded subset of "
                               "this many reference images (Inception on a CPU is slow).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Sample a model from seeds and measure the samples (FID, KID, classifier view, PSNR).

    Domain FID/KID against held-out digits with the real-vs-real floor, the digits classifier's
    confidence and class coverage, and PSNR against a --reference model on the same seeds.
    """
    from edgedit.eval.evaluate import evaluate

    report = evaluate(model, data, n, steps, sampler, batch, reference, seed, inception_weights=inception_weights,
                      reference_count=reference_count)
    images = report.pop("images")
    if grid:
        from edgedit.runtime.images import make_grid, save_png

        save_png(grid, make_grid(images[:64], columns=8))
    if json_out:
        _print_json(report)
        return
    stdout.print(f"{report['model']} on {report['backend']}: {report['samples']} samples, {report['sampling']}, "
                 f"seeds {report['seeds'][0]}..{report['seeds'][1]}")
    for m in report["metrics"]:
        value = f"{m['value']:.4g}" + (f" +- {m['std']:.2g}" if "std" in m else "")
        stdout.print(f"  {m['metric']:<22} {value:<16} [{m['features']}; {m['samples']} samples; vs {m['reference']}]",
                     markup=False)
    if "note" in report:
        stdout.print(f"  note: {report['note']}")


@command("distill")
def distill_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="A pairs folder from `edgedit pairs generate`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The student checkpoint (.safetensors, EMA weights).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")],
    student: Annotated[str, typer.Option("--student", help="A preset (at the pairs' geometry) or a checkpoint.")] = "DiT-Nano-S/2",
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
    method: Annotated[str, typer.Option("--method", help="output, ta (teaching assistant) or mi1 (multi-in-one).")] = "output",
    ta: Annotated[Optional[str], typer.Option("--ta", help="ta: the assistant, a preset (distilled first) or a checkpoint.")] = None,
    ta_steps: Annotated[Optional[int], typer.Option("--ta-steps", min=1, help="Steps for a preset TA (default: --steps).")] = None,
    loss: Annotated[str, typer.Option("--loss", help="Image loss: pseudo-huber, l1, l2 or lpips.")] = "pseudo-huber",
    feature_loss: Annotated[str, typer.Option("--feature-loss", help="ta/mi1 feature loss: l2, l1 or cosine.")] = "l2",
    feature_weight: Annotated[float, typer.Option("--feature-weight", min=0.0, help="Weight of the feature term.")] = 1.0,
    taps: Annotated[Optional[str], typer.Option("--taps", help="Student blocks tapped, e.g. 1,3,5 (ta: default all; "
                                                "mi1: one per trajectory state, default evenly spaced).")] = None,
    batch: Batch = 64,
    lr: LearningRate = 3e-4,
    ema: Ema = 0.9999,
    lr_warmup: LrWarmup = 0,
    checkpoint_every: CheckpointEvery = 200,
    sample_every: SampleEvery = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the weights and data order.")] = 0,
    resume: Resume = False,
) -> None:
    """Distil a one-step DiT-Nano student from teacher pairs: output, Teaching Assistant or Multi-In-One.

    Training-only parts (TA projections, MI1 readout heads) never reach the saved student. Resumable,
    and distributed with `torchrun --nproc-per-node N $(which edgedit) distill ...`. See docs/distillation.md.
    """
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from edgedit.train.distill import run_distillation
    from edgedit.train.trainer import SampleGrids, TrainSettings, init_world

    world = init_world()  # under torchrun, only rank 0 reports
    try:
        tapped = [int(t) for t in taps.split(",")] if taps else None
    except ValueError:
        raise EdgeditError(f"--taps '{taps}' is not a comma list of block indices, e.g. 1,3,5") from None
    settings = TrainSettings(steps, batch, lr, 0.0, ema, lr_warmup, 1.0, checkpoint_every, sample_every, seed)
    grids = SampleGrids(output, world.device)
    start = time.perf_counter()
    with Progress(TextColumn(method), BarColumn(), TextColumn("step {task.completed}/{task.total} loss "
                  "{task.fields[loss]:.4f}"), TimeRemainingColumn(), console=Console(stderr=True),
                  disable=not world.main) as bar:
        task = bar.add_task("distill", total=steps, loss=float("nan"))

        def on_step(step: int, value: float) -> None:
            bar.update(task, completed=step, total=max(steps, ta_steps or 0), loss=value)

        path = run_distillation(pairs, student, method, output, settings, ta, ta_steps, loss, feature_loss,
                                feature_weight, tapped, resume, on_step,
                                lambda text: bar.console.print(text) if world.main else None, grids,
                                **_overrides(depth, width, heads, patch, mlp_ratio))
    if world.main:
        stdout.print(f"wrote {path} ({method} distillation, {steps} steps, {world.size} process(es), "
                     f"{time.perf_counter() - start:.0f} s); sample grids in {grids.folder}/")


design_app = typer.Typer(help="Design-space exploration: sweep DiT-Nano shapes and methods, pick one.", no_args_is_help=True)
app.add_typer(design_app, name="design")


def _int_list(text: Optional[str], flag: str) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise EdgeditError(f"{flag} '{text}' is not a comma list of integers") from None


@command("sweep", parent=design_app)
def design_sweep_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="The teacher pairs every candidate learns.")],
    budget: Annotated[str, typer.Option("--budget", help="Parameter budgets, e.g. 300k,1M.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Steps per candidate (the same for all).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The sweep folder.")] = Path("sweep"),
    depths: Annotated[Optional[str], typer.Option("--depths", help="Depths to try (default 2,3,4,6,8,12).")] = None,
    widths: Annotated[Optional[str], typer.Option("--widths", help="Widths allowed (default multiples of 16).")] = None,
    heads: Annotated[Optional[str], typer.Option("--heads", help="Head counts (default 2,4,8).")] = None,
    methods: Annotated[str, typer.Option("--methods", help="Methods, e.g. output,ta,mi1.")] = "output",
    ta: Annotated[Optional[str], typer.Option("--ta", help="The TA shared by the sweep (a preset is distilled once).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch per step.")] = 64,
    lr: LearningRate = 3e-4,
    eval_samples: Annotated[int, typer.Option("--eval-samples", min=2, help="Samples for each candidate's FID.")] = 500,
    latency_backend: Annotated[str, typer.Option("--latency-backend", help="onnxruntime or torch (batch 1, one thread).")] = "onnxruntime",
    shard: Annotated[str, typer.Option("--shard", help="I/N: this worker's share of the candidates.")] = "0/1",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every candidate's weights and data order.")] = 0,
) -> None:
    """Distil, evaluate and time DiT-Nano candidates near each budget (deep-narrow to shallow-wide);
    write results.json/csv, pareto.png and principles.md. Finished candidates are skipped."""
    from edgedit.design.sweep import DEFAULT_DEPTHS, DEFAULT_HEADS, WIDTHS, parse_budget, sweep
    from edgedit.train.trainer import TrainSettings

    settings = TrainSettings(steps, batch, lr, 0.0, 0.9999, 0, 1.0, max(steps // 4, 1), 0, seed)
    results = sweep(pairs, output, [parse_budget(b) for b in budget.split(",")], settings,
                    tuple(m.strip() for m in methods.split(",")), tuple(_int_list(depths, "--depths") or DEFAULT_DEPTHS),
                    tuple(_int_list(heads, "--heads") or DEFAULT_HEADS), tuple(_int_list(widths, "--widths") or WIDTHS),
                    ta, _parse_shard(shard), eval_samples=eval_samples, latency_backend=latency_backend,
                    say=lambda text: stdout.print(text, markup=False))
    stdout.print(f"{len(results)} results in {output}/ (results.json, results.csv, pareto.png, principles.md)")


@command("retime", parent=design_app)
def design_retime_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The sweep folder.")] = Path("sweep"),
    latency_backend: Annotated[str, typer.Option("--latency-backend", help="onnxruntime or torch (batch 1, one thread).")] = "onnxruntime",
    seconds: Annotated[float, typer.Option("--seconds", min=0.1, help="Timed seconds per architecture and round.")] = 2.0,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Rounds over all architectures; the median counts.")] = 5,
) -> None:
    """Re-measure every finished candidate's latency on this machine (once per architecture) and
    rewrite the reports: for sweeps trained on several machines or on a busy one."""
    from edgedit.design.sweep import retime

    results = retime(output, latency_backend, seconds, rounds, say=lambda text: stdout.print(text, markup=False))
    stdout.print(f"{len(results)} results re-timed in {output}/ (results.json, results.csv, pareto.png, principles.md)")


@command("pick", parent=design_app)
def design_pick_command(
    results: Annotated[Path, typer.Option("--results", help="A sweep's results.json.")],
    latency_ms: Annotated[Optional[float], typer.Option(
        "--latency-ms", help="Latency budget per image (one network call); without it, the best FID of the sweep.")] = None,
    device: Annotated[str, typer.Option("--device", help="orin-nano or orin-nano-super.")] = "orin-nano",
    precision: Annotated[str, typer.Option("--precision", help="fp16 or int8.")] = "fp16",
    save: Annotated[Optional[Path], typer.Option(
        "--save", help="Copy the picked student here, its sweep evaluation added to its provenance.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Name the best-FID configuration whose estimated latency fits the budget (and save its student)."""
    from edgedit.design.report import pick, save_pick

    best = pick(results, latency_ms, device, precision)
    if save is not None:
        save_pick(best, results, save)
    if json_out:
        _print_json(best)
        return
    e = best["device_estimate"]
    stdout.print(f"{best['name']}: {best['depth']} blocks x width {best['width']}, {best['heads']} heads, "
                 f"{best['method']}; FID {best['fid']:.1f}; {best['params']:,} params; {e['ms']:.3f} ms "
                 f"({e['low_ms']:.3f}-{e['high_ms']:.3f}) per call on {device} {precision}, {e['label']}")
    if save is not None:
        stdout.print(f"saved its student to {save}")


@command("report", parent=design_app)
def design_report_command(
    results: Annotated[Path, typer.Option("--results", help="A sweep's results.json.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results.json/csv, pareto.png, "
                                         "principles.md.")],
) -> None:
    """Rewrite a sweep's reports from its results.json, with the device latency estimates of the
    calibration in force (e.g. after `edgedit models --calibrate`)."""
    from edgedit.design.report import load_results, write_reports

    records = load_results(results)
    write_reports(output, records)
    stdout.print(f"{len(records)} results re-reported in {output}/ (results.json, results.csv, pareto.png, "
                 "principles.md)")


def main() -> None:
    app(prog_name="edgedit")


if __name__ == "__main__":
    sys.exit(main())
