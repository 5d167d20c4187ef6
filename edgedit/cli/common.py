"""What every command shares: the app, error handling, consoles, options used by several commands,
progress bars and formatting. Commands parse options, make one library call and render."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import check_shard

# Typer re-exports click's BadParameter (click's own, or the copy Typer vendors since 0.2x): its
# bases are that click's UsageError and ClickException.
_USAGE_ERROR, _CLICK_EXCEPTION = (
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == name) for name in ("UsageError", "ClickException")
)


# The click Typer runs on: click itself, or the copy Typer vendors (typer._click) since 0.2x.
_CLICK = typer.Context.__mro__[1].__module__.rsplit(".", 1)[0]


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value out of an option's range) as one stderr line, like
    every other refusal, instead of a usage box: `edgedit: error: ... (see `edgedit X --help`)`."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_EXCEPTION as err:
            if type(err).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                ctx = getattr(err, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if isinstance(err, _USAGE_ERROR) and ctx else ""
                typer.echo(f"edgedit: error: {' '.join(err.format_message().split())}{hint}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("edgedit: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


EXIT_CODES = (
    "Exit codes: 0 success; 1 a check failed (export parity, INT8 accuracy) or an internal error "
    "(`--debug` shows its traceback); 2 bad usage or bad input; 130 interrupted (Ctrl-C)."
)

app = typer.Typer(
    cls=OneLineErrors,
    name="edgedit",
    help="Design, distil and deploy small diffusion transformers (DiT-Nano) to NVIDIA Jetson Orin Nano.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _WordWrapping(Console):
    """Text wraps at spaces to the terminal's width (COLUMNS, else 80 when piped), continuation lines
    under the text's own indent, and a word longer than a line (a path, a hash) runs over whole
    instead of being folded. Tables and other renderables print as rich lays them out."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        import textwrap

        if soft_wrap or not objects or not all(isinstance(o, str) for o in objects):
            return super().print(*objects, soft_wrap=soft_wrap, **kwargs)
        text = kwargs.pop("sep", " ").join(objects)
        lines = []
        for line in text.split("\n"):
            indent = " " * (len(line) - len(line.lstrip(" ")))
            lines += textwrap.wrap(
                line, self.width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
            ) or [""]
        super().print("\n".join(lines), soft_wrap=True, **kwargs)


stdout = _WordWrapping()
stderr = Console(stderr=True, soft_wrap=True)  # a warning is one line, however long
state = {"debug": False, "verify": True, "fit": None}


class _StderrHandler(logging.Handler):
    """Library warnings and notes as 'edgedit: ...' lines on stderr, fields named as the running command's options."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "edgedit: warning: " if record.levelno >= logging.WARNING else ""
        stderr.print(prefix + cli_words(record.getMessage()), markup=False, highlight=False)  # the command's words


def setup_logging() -> None:
    log = logging.getLogger("edgedit")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(logging.INFO)
    log.propagate = False


def command(name: str | None = None, parent: typer.Typer | None = None) -> Callable:
    """Register a command whose EdgeditErrors become one stderr line and their exit code."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                from edgedit.contract.fileio import verification
                from edgedit.contract.progress import reporting
                from edgedit.cost.fit import using_fit

                with verification(state["verify"]), using_fit(state["fit"]), reporting(ProgressBars()):
                    return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except EdgeditError as err:
                if state["debug"]:
                    raise
                typer.echo(f"edgedit: error: {cli_words(str(err))}", err=True)
                raise typer.Exit(err.exit_code) from None
            except KeyboardInterrupt:
                typer.echo("edgedit: interrupted", err=True)
                raise typer.Exit(130) from None
            except Exception as err:
                if state["debug"]:
                    raise
                typer.echo(
                    f"edgedit: internal error: {type(err).__name__}: {err} (rerun as `edgedit --debug ...` "
                    "for the traceback)",
                    err=True,
                )
                raise typer.Exit(1) from None

        (parent or app).command(name)(wrapper)
        return fn

    return register


class DefaultGroup(TyperGroup):
    """A group whose first argument, when it names no subcommand, goes to its default one:
    `edgedit bench MODEL...` runs `bench run`, `edgedit bench report A.json` the report."""

    default = "run"

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # works with click (typer < 0.23) and typer's own
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def print_table(table: Any) -> None:
    """A rich Table whole when it fits the terminal, else as one block of "header: value" lines per
    row (print_fields): never a value cut short or folded mid-word (the JSON output carries the same
    numbers)."""
    from rich.measure import Measurement

    caption, table.caption = table.caption, None  # printed below, left-aligned and wrapped at words
    natural = Measurement.get(stdout, stdout.options.update(width=10**4), table).maximum  # unclamped
    if natural <= stdout.width:
        stdout.print(table, soft_wrap=False)
    else:
        headers = [str(column.header) for column in table.columns]
        cells = [[str(cell) for cell in column.cells] for column in table.columns]
        if table.title:
            stdout.print(table.title, style="bold", markup=False)
        for row in range(table.row_count):
            print_fields(cells[0][row], [(h, column[row]) for h, column in zip(headers[1:], cells[1:])])
    if caption:
        print_fields(None, [("", str(caption))], indent=0)


def print_fields(heading: str | None, fields: list[tuple[str, str]], indent: int = 2) -> None:
    """Key/value lines with the keys aligned. A value too long for the rest of its line wraps at
    spaces under itself; one holding a word too long for that starts on the next line. Never a word
    (a number, a name, a hash) cut or folded."""
    import textwrap

    width = stdout.width
    if heading is not None:
        for line in textwrap.wrap(heading, width, break_long_words=False, break_on_hyphens=False):
            stdout.print(line, style="bold", markup=False, highlight=False)
    key_width = max((len(key) for key, _ in fields), default=0)
    if key_width > width // 3:  # a few long keys: align the rest, let those run over
        key_width = max((len(key) for key, _ in fields if len(key) <= width // 3), default=0)
    for key, value in fields:
        lead = " " * indent + (f"{key:<{key_width}}  " if key else "")
        room = width - len(lead)
        words = str(value).split()
        if not words:
            stdout.print(lead.rstrip(), markup=False, highlight=False)
        elif max(map(len, words)) <= room:
            lines = textwrap.wrap(str(value), room, break_long_words=False, break_on_hyphens=False)
            stdout.print(lead + lines[0], markup=False, highlight=False)
            for line in lines[1:]:
                stdout.print(" " * len(lead) + line, markup=False, highlight=False)
        else:  # below its key, indented, long words whole
            stdout.print(lead.rstrip(), markup=False, highlight=False)
            under = " " * (indent + 4)
            for line in textwrap.wrap(str(value), width - len(under), break_long_words=False, break_on_hyphens=False):
                stdout.print(under + line, markup=False, highlight=False)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))


# Library fields whose option is named otherwise (an option's own parameter name maps to it directly).
FIELD_OPTIONS: dict[str, tuple[str, ...]] = {  # a field -> the options that give it, in the commands that have them
    "duration_s": ("--duration",),
    "latency_seconds": ("--seconds",),  # design retime
    "batches": ("--batch",),
    "count": ("--num",),  # -n: an option is known by its long name
    "seeds": ("--num",),
    "use_trtexec": ("--trtexec",),
    "hidden_size": ("--width", "--widths"),  # a model override; the widths a design sweep tries
    "depth": ("--depths",),
    "num_heads": ("--heads",),
    "patch_size": ("--patch",),
    "excludes": ("--exclude",),
    "high": ("--high-precision",),
    "io": ("--io-dtype",),
}
_FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")


def cli_words(message: str) -> str:
    """A library message in the command line's words: each `field` the running command has an option
    (or argument) for becomes that option (`workspace_mb` -> --workspace-mb, `onnx` -> ONNX)."""
    import importlib

    ctx = importlib.import_module(f"{_CLICK}.globals").get_current_context(silent=True)
    options: dict[str, str] = {}
    for param in ctx.command.params if ctx is not None else ():
        if param.param_type_name == "option":
            options[param.name] = max((o for o in param.opts if o.startswith("--")), key=len, default=param.opts[0])
        elif param.name:
            options[param.name] = param.name.upper()  # how --help shows an argument
    flags = set(options.values())
    for field, candidates in FIELD_OPTIONS.items():
        given = [flag for flag in candidates if flag in flags]
        if given and field not in options:
            options[field] = given[0]
    return _FIELD.sub(lambda m: options.get(m[1], m[0]), message)


def si(value: float, unit: str = "") -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.{1 if unit == 'B' else 2}f}{prefix}{unit}"
    return f"{value:.0f}{unit}"


def int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise EdgeditError(f"{flag} '{text}' is not a comma list of integers, e.g. 1,4,8") from None


def parse_shard(text: str) -> tuple[int, int]:
    try:
        worker, workers = (int(v) for v in text.split("/"))
    except ValueError:
        raise EdgeditError(f"--shard '{text}' is not I/N, e.g. 0/4") from None
    return check_shard((worker, workers))


class ProgressBars:
    """The CLI's progress reporter (contract/progress.py): one bar per running task, with its count,
    elapsed time and ETA, on stderr while it is a terminal; gone when the work ends, so that what
    stays is the command's own summary."""

    def __init__(self) -> None:
        self._bars = None
        self._running = 0

    @contextlib.contextmanager
    def __call__(self, label: str, total: int | None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if not stderr.is_terminal:
            yield lambda k=1: None
            return
        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            )
            self._bars.start()
        bar = self._bars.add_task(label, total=total)
        self._running += 1
        try:
            yield lambda k=1: self._bars.advance(bar, k)
        finally:
            self._bars.remove_task(bar)
            self._running -= 1
            if self._running == 0:
                self._bars.stop()
                self._bars = None


class StepProgress:
    """A progress bar that appears at the first step: argument and file errors found before any
    work never show one. Only torchrun's rank 0 draws it."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.label, self.total, self.enabled = label, total, enabled
        self._bar = self._task = None

    def __call__(self, step: int, loss: float, total: int | None = None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        if not self.enabled:
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                TextColumn("step {task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, loss=float("nan"))
        self._bar.update(self._task, completed=step, total=max(self.total, total or 0), loss=loss)

    def say(self, text: str) -> None:
        if self.enabled:
            (self._bar.console if self._bar else stderr).print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


#################################################################################
#                        Options shared by several commands                     #
#################################################################################

MODEL_PANEL = "Model overrides (applied on top of the preset)"
Batch = Annotated[int, typer.Option("--batch", min=1, help="Global batch (split over torchrun processes).")]
LearningRate = Annotated[float, typer.Option("--lr", help="AdamW learning rate.")]
Ema = Annotated[float, typer.Option("--ema", help="EMA decay (with warm-up); the EMA is saved.")]
LrWarmup = Annotated[int, typer.Option("--lr-warmup", min=0, help="Linear learning-rate warm-up steps.")]
CheckpointEvery = Annotated[int, typer.Option("--checkpoint-every", min=1, help="Full-state checkpoint interval.")]
SampleEvery = Annotated[
    int,
    typer.Option(
        "--sample-every", min=0, help="Also write a sample grid every K steps (one is always written at the end)."
    ),
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from OUTPUT's training state.")]


def bounds(record: type, field: str) -> dict[str, Any]:
    """click's min/max of an option, from the closed bounds (ge/le) the schema gives `field` (an
    Annotated pydantic Field on a dataclass or a model): declared there once, not copied here. Open
    bounds (gt/lt), which click cannot express, are the schema's own check."""
    import typing

    from annotated_types import Ge, Le

    model_fields = getattr(record, "model_fields", None)  # a pydantic model, or a dataclass with Annotated fields
    found = model_fields[field].metadata if model_fields else typing.get_type_hints(record, include_extras=True)[field]
    out: dict[str, Any] = {}
    for meta in getattr(found, "__metadata__", found):
        for bound in getattr(meta, "metadata", [meta]):
            if isinstance(bound, Ge):
                out["min"] = bound.ge
            if isinstance(bound, Le):
                out["max"] = bound.le
    return out


def _model_option(flag: str, field: str, help: str) -> Any:
    from edgedit.contract.config import DiTConfig

    return typer.Option(flag, **bounds(DiTConfig, field), help=help, rich_help_panel=MODEL_PANEL)


def sampler_steps(help: str) -> Any:
    """`--steps` of a sampling run, bounded as the sampler schema bounds it."""
    from edgedit.contract.schedules import EdmSampler

    return typer.Option("--steps", **bounds(EdmSampler, "steps"), help=help)


# The model overrides: one option per DiTConfig field, bounded as the config bounds it.
Depth = Annotated[int | None, _model_option("--depth", "depth", "Number of transformer blocks.")]
Width = Annotated[
    int | None, _model_option("--width", "hidden_size", "Hidden size D (a multiple of 4 and of --heads).")
]
Heads = Annotated[int | None, _model_option("--heads", "num_heads", "Attention heads.")]
Patch = Annotated[int | None, _model_option("--patch", "patch_size", "Patch size p (tokens = (size/p)^2).")]
MlpRatio = Annotated[float | None, _model_option("--mlp-ratio", "mlp_ratio", "MLP hidden size / width.")]
InputSize = Annotated[
    int | None, _model_option("--input-size", "input_size", "Side of the square model input (pixels or latents).")
]
InChannels = Annotated[int | None, _model_option("--in-channels", "in_channels", "Input channels.")]
NumClasses = Annotated[int | None, _model_option("--num-classes", "num_classes", "Classes (0 = unconditional).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")]
ModelArg = Annotated[
    str, typer.Argument(help="A checkpoint (.safetensors) or a preset name (random weights: latency work only).")
]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an existing output file of another kind (e.g. an ONNX over a checkpoint); never an input.",
    ),
]


def data_input(spec: str | None) -> str | None:
    """The file or folder a --data spec reads (cifar10:PATH, folder:PATH, npz:PATH), for check_outputs."""
    kind, _, rest = (spec or "").partition(":")
    return rest if kind in ("cifar10", "folder", "npz") and rest else None


def overrides(
    depth=None, width=None, heads=None, patch=None, mlp_ratio=None, input_size=None, in_channels=None, num_classes=None
) -> dict[str, Any]:
    """Model override options as DiTConfig fields (None: keep the preset's)."""
    given = dict(
        depth=depth,
        hidden_size=width,
        num_heads=heads,
        patch_size=patch,
        mlp_ratio=mlp_ratio,
        input_size=input_size,
        in_channels=in_channels,
        num_classes=num_classes,
    )
    return {k: v for k, v in given.items() if v is not None}
