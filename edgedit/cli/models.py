"""Commands about models and machines: `models`, `info`, `doctor`, `convert-dit`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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
    NumClasses,
    Patch,
    Width,
    command,
    overrides,
    print_fields,
    print_json,
    print_table,
    si,
    stdout,
)
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import Output, check_outputs


@command("models")
def models_command(
    model: Annotated[
        str | None,
        typer.Argument(help="A preset (e.g. DiT-Nano-S/2), a checkpoint, an .onnx or a .plan (default: every preset)."),
    ] = None,
    depth: Depth = None,
    width: Width = None,
    heads: Heads = None,
    patch: Patch = None,
    mlp_ratio: MlpRatio = None,
    input_size: InputSize = None,
    in_channels: InChannels = None,
    num_classes: NumClasses = None,
    calibrate: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibrate",
            help="Refit the device latency model with these `edgedit bench --json` files from a Jetson (repeatable).",
        ),
    ] = None,
    calibration_out: Annotated[
        Path | None,
        typer.Option(
            "--calibration-out", help="Where --calibrate writes the fit (then used with `edgedit --fit FILE ...`)."
        ),
    ] = None,
    json_out: JsonFlag = False,
    force: Force = False,
) -> None:
    """List models with exact parameters and MACs, memory, and estimated Orin Nano latency.

    Device latencies are estimates of a calibrated kernel model (docs/device-latency.md), not
    measurements: measure with `edgedit bench` on the device, and feed that back with --calibrate.
    """
    from edgedit.cost.summary import summarize

    changes = overrides(depth, width, heads, patch, mlp_ratio, input_size, in_channels, num_classes)
    if calibrate:  # then MODEL's estimates under the new fit, if a MODEL is named
        return _calibrate_latency(
            calibrate,
            calibration_out,
            json_out,
            force,
            lambda: _model_reports(model, changes, summarize) if model else [],
        )
    reports = _model_reports(model, changes, summarize)
    if json_out:
        return print_json(reports)
    _print_model_tables(reports)
    if len(reports) == 1:
        _print_estimates(reports[0])
        if reports[0]["int8_advice"]:
            stdout.print(reports[0]["int8_advice"])
    stdout.print(
        f"Nano / Super ms: fp16 / int8 on an Orin Nano 8GB (15W) / Orin Nano Super (MAXN_SUPER), "
        f"{reports[0]['device_estimate_note']}. kernels: TensorRT kernels per call (assumed fusions); "
        "W: weight memory.",
        style="dim",
    )


def _model_reports(model: str | None, changes: dict, summarize: Callable) -> list[dict]:
    from edgedit.contract.config import PRESETS
    from edgedit.fileinfo import model_config

    if model is None:
        if changes:
            raise EdgeditError(
                "model overrides need a preset to apply to, e.g. `edgedit models DiT-Nano-S/2 --depth 8`"
            )
        return [summarize(p.config, p.name) for p in PRESETS.values()]
    return [summarize(*model_config(model, **changes))]


def _print_model_tables(reports: list[dict]) -> None:
    groups: dict[str, list[dict]] = {}  # one table per input geometry
    for r in reports:
        c = r["config"]
        classes = f"{c['num_classes']} classes" if c["num_classes"] else "unconditional"
        groups.setdefault(
            f"{r['kind']}s, input {c['input_size']}x{c['input_size']}x{c['in_channels']}, {classes}", []
        ).append(r)
    for title, rows in groups.items():
        table = Table(
            title=title,
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for header in ("name", "LxD/h", "params", "MACs", "kernels", "W fp16", "Nano ms", "Super ms"):
            table.add_column(header, justify="left" if header == "name" else "right", no_wrap=True)
        for r in rows:
            c, e = r["config"], r["device_estimates"]
            table.add_row(
                r["name"],
                f"{c['depth']}x{c['hidden_size']}/{c['num_heads']}",
                si(r["params"]),
                si(r["macs"]),
                str(r["tensorrt_kernels"]),
                si(r["weights_bytes"]["fp16"], "B"),
                *(f"{e[f'{d}_fp16']['ms']:.2f} / {e[f'{d}_int8']['ms']:.2f}" for d in ("orin_nano", "orin_nano_super")),
            )
        print_table(table)


def _print_estimates(report: dict) -> None:
    e = report["device_estimates"]
    stdout.print(f"{report['name']} on the device, GPU ms per call at batch 1 (point, range):")
    for key, value in e.items():
        if not key.endswith("_graph"):
            graph = e[key + "_graph"]
            stdout.print(
                f"  {key:<22} {value['ms']:.3f} ({value['low_ms']:.3f}-{value['high_ms']:.3f}); "
                f"with a CUDA graph {graph['ms']:.3f} ({graph['low_ms']:.3f}-{graph['high_ms']:.3f})"
            )


def _calibrate_latency(
    files: list[Path], out: Path | None, json_out: bool, force: bool, model_reports: Callable[[], list[dict]]
) -> None:
    from edgedit.bench.device_fit import calibrate_with_device
    from edgedit.bench.records import bench_files, load_records
    from edgedit.cost.fit import fit_table, loo_error, save_fit, using_fit

    if out is None:
        raise EdgeditError(
            "--calibrate needs --calibration-out FILE: where the refitted model goes (use it with "
            "`edgedit --fit FILE ...`)"
        )
    files = bench_files(files)
    check_outputs([Output("--calibration-out", out, "json")], {"--calibrate": files}, force=force)
    fit, skipped = calibrate_with_device({str(f): load_records([f]) for f in files})
    path = save_fit(fit, out)
    with using_fit(path):
        reports = model_reports()
    if json_out:
        return print_json({"calibration": str(path), "skipped": skipped, **fit.to_dict(), "models": reports})
    for reason in skipped:
        typer.echo(f"edgedit: skipped {reason}", err=True)
    error = loo_error(fit)
    stdout.print(fit_table(fit), markup=False, soft_wrap=False)
    stdout.print("constants: " + ", ".join(f"{k} {v:.4g}" for k, v in fit.constants.to_dict().items()))
    stdout.print(
        f"leave-one-out: median x{error['median_factor']:.2f}, worst x{error['max_factor']:.2f}; "
        f"wrote {path} ({fit.label}): use it with `edgedit --fit {path} ...`"
    )
    for report in reports:
        _print_estimates(report)


@command("info")
def info_command(
    path: Annotated[
        Path, typer.Argument(help="A checkpoint (.safetensors), an ONNX model (.onnx) or an engine (.plan).")
    ],
    json_out: JsonFlag = False,
) -> None:
    """Describe a checkpoint (validated against its config), an ONNX model or a TensorRT engine.

    ONNX: I/O, opset, op histogram, Q/DQ or not, edgedit metadata. Engines: from their sidecar.
    """
    from edgedit.fileinfo import file_report

    report = file_report(path)
    if json_out:
        print_json(report)
        return
    {"checkpoint": _print_checkpoint_info, "onnx": _print_onnx_info, "engine": _print_engine_info}[report["type"]](
        report
    )


def _model_line(c: dict) -> str:
    return (
        f"depth {c['depth']}, width {c['hidden_size']}, heads {c['num_heads']}, patch {c['patch_size']}, "
        f"input {c['input_size']}x{c['input_size']}x{c['in_channels']}, classes {c['num_classes']}"
    )


def flatten(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Nested records as dotted keys and plain values (`eval.FID  85.8`, lists joined by commas)."""
    if isinstance(value, dict) and value:
        return [row for k, v in value.items() for row in flatten(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, (list, tuple)) and not any(isinstance(v, (dict, list, tuple)) for v in value):
        return [(key, ", ".join(map(str, value)))]
    if isinstance(value, (list, tuple)):
        return [row for i, v in enumerate(value) for row in flatten(v, f"{key}.{i}")]
    return [(key, str(value))]


def _print_checkpoint_info(report: dict) -> None:
    print_fields(
        f"{report['path']}  (checkpoint, {si(report['size_bytes'], 'B')}, edgedit {report['edgedit_version']})",
        [
            ("model", f"{report['kind']}: {_model_line(report['config'])}"),
            (
                "size",
                f"{report['params']:,} params, {si(report['macs'])} MACs/image, {report['tensors']} tensors "
                f"({', '.join(report['dtypes'])})",
            ),
            ("noise", f"{report['noise']} (seeds -> noise for its samples)"),
            *flatten(report["provenance"]),
            ("sha256", report["sha256"]),
        ],
    )


def _print_engine_info(report: dict) -> None:
    d = report["device"]
    print_fields(
        f"{report['path']}  (TensorRT engine, {si(report['size_bytes'], 'B')}, edgedit {report['edgedit_version']})",
        [
            ("model", f"{report['kind']}: {_model_line(report['config'])}"),
            (
                "precision",
                f"{report['precision']} ({'strongly' if report['strongly_typed'] else 'weakly'} typed), "
                f"batch {report['batch']['min']}..{report['batch']['max']}",
            ),
            (
                "built for",
                f"TensorRT {d['tensorrt']} on {d['gpu']} (sm {d['compute_capability']})"
                + (f", {d['jetson']['model']}, L4T {d['jetson']['l4t']}" if d.get("jetson") else ""),
            ),
            (
                "from",
                f"{report['onnx']['file']} (sha256 {report['onnx']['sha256']}), {report['build_seconds']:.1f} s, "
                f"peak RSS {report['peak_rss_mb']:.0f} MB with {report['builder']['tool']}",
            ),
            ("sha256", report["sha256"]),
        ],
    )


def _print_onnx_info(report: dict) -> None:
    fields = [(kind, ", ".join(f"{t['name']} {t['shape']}" for t in report[kind])) for kind in ("inputs", "outputs")]
    ops = ", ".join(f"{op} {n}" for op, n in report["ops"].items())
    fields += [("nodes", f"{report['nodes']}: {ops}"), ("Q/DQ", "yes (explicit INT8)" if report["qdq"] else "no")]
    if report["types"] is not None:  # needs onnx: not on the device
        totals: dict[str, int] = {}
        for by_type in report["types"].values():
            for dtype, count in by_type.items():
                totals[dtype] = totals.get(dtype, 0) + count
        float32 = sorted(op for op, by_type in report["types"].items() if "fp32" in by_type and op != "Cast")
        fields.append(
            (
                "types",
                f"nodes by output type: {', '.join(f'{t} {n}' for t, n in sorted(totals.items()))}"
                + (f"; FP32: {', '.join(float32)}" if float32 else ""),
            )
        )
    meta = report["edgedit"]
    if meta is None:
        fields.append(("edgedit", report["edgedit_problem"]))
    else:
        fields += [
            ("model", f"{meta['kind']}: {_model_line(meta['config'])}"),
            (
                "precision",
                f"{meta['precision']}, batch {meta['batch']['min']}..{meta['batch']['max']} "
                f"(opt {meta['batch']['opt']}), sampler {meta['sampler']['type']}",
            ),
            ("source", meta["source"]),
        ]
        fields += [
            (
                "parity",
                f"batch {check['batch']}: max abs {check['max_abs_error']:.3g}, relative "
                f"{check['max_rel_error']:.3g} (tolerance {check['tolerance']:g})",
            )
            for check in meta.get("parity", [])
        ]
        if "quantization" in meta:
            q = meta["quantization"]
            psnr = "identical to" if q["psnr_db"] is None else f"PSNR {q['psnr_db']:.1f} dB vs"
            fields.append(
                (
                    "INT8",
                    f"{q['tool']} ({q['method']}), {q['quantized_nodes']} layers quantized, {psnr} FP32 on "
                    f"{q['heldout_rows']} held-out inputs",
                )
            )
    fields.append(("sha256", report["sha256"]))
    print_fields(
        f"{report['path']}  (ONNX opset {report['opset']}, {si(report['size_bytes'], 'B')}"
        f"{', external data' if report['external_data'] else ''}, {report['producer'] or 'unknown producer'})",
        fields,
    )


@command("doctor")
def doctor_command(json_out: JsonFlag = False) -> None:
    """Report Python, the ML packages, CUDA devices and, on a Jetson, the module, L4T and power mode."""
    from edgedit.doctor import collect

    report = collect()
    if json_out:
        return print_json(report)
    _print_doctor(report)


def _print_doctor(report: dict) -> None:
    missing = "[dim]not installed[/dim]"
    stdout.print(f"edgedit {report['edgedit']} on Python {report['python']} ({report['platform']})")
    for dist, version in report["packages"].items():
        stdout.print(f"  {dist:<16} {version or missing}")
    providers = report["onnxruntime_providers"]
    stdout.print(f"  {'ORT providers':<16} {', '.join(providers) if providers else missing}")
    cuda = report["cuda"]
    if cuda["devices"]:
        for d in cuda["devices"]:
            stdout.print(
                f"  cuda:{d['index']:<11} {d['name']} (sm {d['compute_capability']}, "
                f"{si(d['memory_bytes'], 'B')}, driver {cuda['driver']})"
            )
    else:
        stdout.print(f"  {'CUDA':<16} none: {cuda['error'] or 'no devices'}")
    jet = report["jetson"]
    if jet is None:
        stdout.print(f"  {'Jetson':<16} not a Jetson")
    else:
        mode = jet["nvpmodel"]
        clocks = {True: "on", False: "off", None: "unknown"}[jet["jetson_clocks"]]
        stdout.print(f"  {'Jetson':<16} {jet['model'] or 'unknown model'}, L4T {jet['l4t'] or 'unknown'}")
        stdout.print(
            f"  {'power mode':<16} {(mode or {}).get('name') or 'unknown'} (id {(mode or {}).get('id')}), "
            f"jetson_clocks {clocks}"
        )


@command("convert-dit")
def convert_dit_command(
    official: Annotated[Path, typer.Argument(help="An official DiT checkpoint, e.g. DiT-XL-2-256x256.pt.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .safetensors checkpoint.")],
    model: Annotated[str, typer.Option("--model", help="Official preset: DiT-{S,B,L,XL}/{2,4,8}.")] = "DiT-XL/2",
    image_size: Annotated[
        int, typer.Option("--image-size", help="Image size the checkpoint was trained at (latent = size/8).")
    ] = 256,
    num_classes: Annotated[int, typer.Option("--num-classes", min=0, help="Number of classes.")] = 1000,
    depth: Depth = None,
    width: Width = None,
    heads: Heads = None,
    patch: Patch = None,
    mlp_ratio: MlpRatio = None,
    force: Force = False,
) -> None:
    """Import official facebookresearch/DiT weights (tensors only, never unpickled objects).

    Note: DiT's weights are licensed CC-BY-NC 4.0 (non-commercial).
    """
    from edgedit.contract.config import resolve_config
    from edgedit.models.convert import convert_official_dit, official_input_size

    check_outputs([Output("-o", output, "denoiser")], {"OFFICIAL": official}, force=force)
    changes = {
        **overrides(depth, width, heads, patch, mlp_ratio),
        "input_size": official_input_size(image_size),
        "num_classes": num_classes,
    }
    cfg = resolve_config(model, **changes)
    info = convert_official_dit(official, cfg, output)
    typer.echo(f"wrote {info.path} ({info.num_params:,} params, {len(info.tensors)} tensors)")
