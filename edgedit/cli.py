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


def command(name: str | None = None) -> Callable:
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

        app.command(name)(wrapper)
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
    preset: Annotated[Optional[str], typer.Argument(help="A preset name, e.g. DiT-Nano-S/2 (default: every preset).")] = None,
    depth: Depth = None, width: Width = None, heads: Heads = None, patch: Patch = None, mlp_ratio: MlpRatio = None,
    input_size: InputSize = None, in_channels: InChannels = None, num_classes: NumClasses = None,
    json_out: JsonFlag = False,
) -> None:
    """List model presets with exact parameters and MACs, memory, and estimated Orin Nano latency.

    Latencies are roofline estimates from peak compute and bandwidth, not measurements; measure
    with `edgedit bench` on the device.
    """
    from edgedit.config import PRESETS, get_preset, resolve_config
    from edgedit.models.accounting import LATENCY_NOTE, describe

    overrides = _overrides(depth, width, heads, patch, mlp_ratio, input_size, in_channels, num_classes)
    changed = {k: v for k, v in overrides.items() if v is not None}
    if preset is None:
        if changed:
            raise EdgeditError("model overrides need a preset to apply to, e.g. `edgedit models DiT-Nano-S/2 --depth 8`")
        reports = [describe(p.config, p.name) for p in PRESETS.values()]
    else:
        name = get_preset(preset).name + (" (modified)" if changed else "")
        reports = [describe(resolve_config(preset, **overrides), name)]
    if json_out:
        _print_json(reports)
        return

    groups: dict[str, list[dict]] = {}  # one table per input geometry
    for r in reports:
        c = r["config"]
        classes = f"{c['num_classes']} classes" if c["num_classes"] else "unconditional"
        groups.setdefault(f"{r['kind']}s, input {c['input_size']}x{c['input_size']}x{c['in_channels']}, {classes}", []).append(r)
    for title, rows in groups.items():
        table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for header in ("name", "LxD/heads", "params", "MACs", "W fp16", "act fp16",
                       "Nano fp16", "Nano int8", "Super fp16", "Super int8"):
            table.add_column(header, justify="left" if header == "name" else "right", no_wrap=True)
        for r in rows:
            c = r["config"]
            table.add_row(
                r["name"], f"{c['depth']}x{c['hidden_size']}/{c['num_heads']}", _si(r["params"]), _si(r["macs"]),
                _si(r["weights_bytes"]["fp16"], "B"), _si(r["activation_peak_bytes"]["fp16"], "B"),
                *(f"{r[key]:.3f}" for key in ("orin_nano_fp16_ms", "orin_nano_int8_ms",
                                              "orin_nano_super_fp16_ms", "orin_nano_super_int8_ms")),
            )
        stdout.print(table)
    stdout.print(f"Nano / Super: estimated ms on a Jetson Orin Nano 8GB (15W) / Orin Nano Super (MAXN_SUPER), "
                 f"{LATENCY_NOTE}. W: weight memory; act: peak activations at batch 1 (estimate).", style="dim")


@command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="A checkpoint (.safetensors).")],
    json_out: JsonFlag = False,
) -> None:
    """Describe a file: a checkpoint's model, size, provenance (validated against its config)."""
    from edgedit.fileinfo import describe

    report = describe(path)
    if json_out:
        _print_json(report)
        return
    c = report["config"]
    stdout.print(f"[bold]{report['path']}[/bold]  ({report['type']}, {_si(report['size_bytes'], 'B')}, "
                 f"edgedit {report['edgedit_version']})")
    stdout.print(f"  model      {report['kind']}: depth {c['depth']}, width {c['hidden_size']}, heads {c['num_heads']}, "
                 f"patch {c['patch_size']}, input {c['input_size']}x{c['input_size']}x{c['in_channels']}, "
                 f"classes {c['num_classes']}")
    stdout.print(f"  size       {report['params']:,} params, {_si(report['macs'])} MACs/image, "
                 f"{report['tensors']} tensors ({', '.join(report['dtypes'])})")
    for key, value in report["provenance"].items():
        stdout.print(f"  {key:<10} {value}")
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


def main() -> None:
    app(prog_name="edgedit")


if __name__ == "__main__":
    sys.exit(main())
