"""Commands that measure: `bench` (run, report) and `tegrastats`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from edgedit.cli.common import (
    DefaultGroup,
    Force,
    JsonFlag,
    app,
    command,
    int_list,
    print_fields,
    print_json,
    print_table,
    sampler_steps,
    stderr,
)
from edgedit.contract import artefacts
from edgedit.contract.errors import BackendFailed, EdgeditError
from edgedit.contract.fileio import Output, check_outputs
from edgedit.contract.staging import write_text_atomic

if TYPE_CHECKING:
    from edgedit.bench.records import BenchRecord
    from edgedit.contract.jetson import TegrastatsSummary


bench_app = typer.Typer(
    cls=DefaultGroup,
    help="Measure latency, memory and power (`bench MODEL...`), or merge results (`bench report`).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@command("run", parent=bench_app)
def bench_command(
    models: Annotated[list[str], typer.Argument(help="Models: .plan, .onnx, .safetensors or presets.")],
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help=(
                "auto (every backend that runs the file here: for a checkpoint torch and torch-compile), torch, "
                "torch-compile, onnxruntime, tensorrt, or null (costs nothing: edgedit's own overhead); several as a "
                "comma list."
            ),
        ),
    ] = "auto",
    provider: Annotated[
        str, typer.Option("--provider", help="ONNX Runtime provider: auto, cpu, cuda, tensorrt.")
    ] = "auto",
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, e.g. 1,4,8.")] = "1",
    warmup: Annotated[
        int,
        typer.Option(
            "--warmup",
            min=0,
            help="Untimed calls first (at least; then more, up to 2 s, until the median of 5 calls stops changing).",
        ),
    ] = 5,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds", help="Interleave every record's timed calls in this many rounds (the ratio intervals need 5)."
        ),
    ] = 10,
    iters: Annotated[int | None, typer.Option("--iters", min=1, help="Timed calls (instead of --duration).")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Seconds of timed calls (default 3).")] = None,
    what: Annotated[str, typer.Option("--what", help="model (one network call) or sampler (whole images).")] = "model",
    steps: Annotated[int | None, sampler_steps("EDM steps for --what sampler.")] = None,
    tegrastats: Annotated[
        bool, typer.Option("--tegrastats", help="Sample tegrastats (Jetson): RAM, power, energy.")
    ] = False,
    cuda_graph: Annotated[
        bool, typer.Option("--cuda-graph", help="TensorRT: replay each batch size's call as a CUDA graph.")
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=0,
            help="Intra-op threads of ONNX Runtime and torch (0 = "
            "their defaults); 1 gives steadier timings on small shared machines.",
        ),
    ] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the records as JSON.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write the records as CSV.")] = None,
    report: Annotated[Path | None, typer.Option("-o", "--report", help="Write a Markdown comparison.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a latency plot (PNG; needs matplotlib).")] = None,
    force: Force = False,
) -> None:
    """Measure latency, memory and, on a Jetson, power and energy per image; compare backends.

    Each model is warmed up until stable, then every record is timed in interleaved rounds; latency
    min/mean/p50/max/std (p90/p99 with enough calls), images/s, GFLOP/s, ratios with 95% intervals,
    each model's memory. Ctrl-C keeps what was measured.
    `edgedit bench report A.json B.json -o report.md --plot p.png` merges runs from several machines.
    """
    from edgedit.bench.harness import BenchSettings, run_bench
    from edgedit.runtime.backends import RunOptions

    check_outputs(_bench_outputs(json_path, csv_path, report, plot), {"MODEL": models}, force=force)
    settings = BenchSettings.from_options(
        batches=int_list(batch, "--batch"),
        warmup=warmup,
        iters=iters,
        duration_s=duration,
        what=what,
        steps=steps,
        tegrastats=tegrastats,
        rounds=rounds,
    )
    run = RunOptions(provider=provider, threads=threads, cuda_graph=cuda_graph)
    with _BenchProgress() as progress:
        records, interrupted = run_bench(models, backend.split(","), settings, run, progress)
    if not records:
        raise (
            EdgeditError("interrupted before anything was measured")
            if interrupted
            else BackendFailed("nothing was measured: every backend failed on this machine (see the lines above)")
        )
    _write_bench(records, json_path, csv_path, report, plot)
    if interrupted:
        typer.echo("edgedit: interrupted: the table shows what was measured so far", err=True)
        raise typer.Exit(130)


@command("report", parent=bench_app)
def bench_report_command(
    results: Annotated[list[Path], typer.Argument(help="Bench JSON files, or folders of *.bench.json.")],
    report: Annotated[Path | None, typer.Option("-o", "--report", help="Write a Markdown comparison.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a latency plot (PNG; needs matplotlib).")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write the merged records as CSV.")] = None,
    force: Force = False,
) -> None:
    """Merge bench runs (from several machines) into one table, a Markdown report and a plot."""
    from edgedit.bench.records import bench_files, load_records

    # The files read, not their folders: a report may go next to the results it merges.
    check_outputs(_bench_outputs(None, csv_path, report, plot), {"RESULTS": bench_files(results)}, force=force)
    _write_bench(load_records(results), None, csv_path, report, plot)


def _bench_outputs(json_path, csv_path, report, plot) -> list[Output]:
    return [
        Output("--json", json_path, "json"),
        Output("--csv", csv_path, "text"),
        Output("-o", report, "text"),
        Output("--plot", plot, "png", (artefacts.tradeoff_plot(plot),) if plot else ()),
    ]


class _BenchProgress:
    """One transient bar per measured record, on stderr; started with the first record, so that a
    refusal before any measurement is the error line alone."""

    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed} calls, last {task.fields[ms]:.2f} ms"),
            console=stderr,
            transient=True,
        )
        self.started = False
        return self

    def __call__(self, label: str, _batch: int):
        if not self.started:
            self.bar.start()
            self.started = True
        task = self.bar.add_task(label, total=None, ms=0.0)
        return lambda ms: self.bar.update(task, advance=1, ms=ms)

    def __exit__(self, *exc) -> None:
        if self.started:
            self.bar.stop()


def _write_bench(records: list[BenchRecord], json_path, csv_path, report, plot) -> None:
    from edgedit.bench.comparison import markdown, save_csv
    from edgedit.bench.records import save_json

    for path, writer in ((json_path, save_json), (csv_path, save_csv)):
        if path:
            writer(path, records)
    from edgedit.bench import plots

    drawn = bool(plot) and plots.latency_distribution(plot, records)
    if plot and not drawn:
        typer.echo(f"edgedit: warning: {plots.MISSING}", err=True)
    tradeoff = drawn and plots.quality_vs_latency(
        artefacts.tradeoff_plot(plot), plots.points_of(records), plots.DEVICE_LABEL
    )  # only where records carry their model's FID
    if report:
        text = markdown(records)
        for drawn_plot, words in ((drawn and plot, "latency distribution per backend and precision"),
                                  (tradeoff and artefacts.tradeoff_plot(plot), "FID against latency")):  # fmt: skip
            if drawn_plot:  # linked from the report, wherever it was asked for
                link = os.path.relpath(Path(drawn_plot).resolve(), Path(report).resolve().parent)
                text += f"\n![{words}]({link})\n"
        write_text_atomic(report, text)
    print_bench_table(records)


def _short(value: float) -> str:
    """At most 7 columns, three or four significant digits: 0.0123, 1.38, 25.2, 554, 44508."""
    return (
        f"{value:.3g}"
        if value < 1
        else f"{value:.2f}"
        if value < 10
        else f"{value:.1f}"
        if value < 100
        else f"{value:.0f}"
    )


def _spread(ratio: float, interval: tuple[float, float] | None) -> str:
    """' ±12%': how far the farther end of a ratio's interval lies from it; '' without an interval."""
    if not interval:
        return ""
    far = max(ratio / interval[0], interval[1] / ratio) - 1
    return " ±>999%" if far > 9.99 else f" ±{far:.0%}"


def print_bench_table(records: list[BenchRecord]) -> None:
    """The comparison table, whole when it fits the terminal and one block per row when not (a long
    model name): nothing cut off or folded; the JSON, CSV and Markdown reports carry every statistic."""
    from edgedit.bench.comparison import comparison_rows, csv_row

    modes = {r.what for r in records}
    mixed = len(modes) > 1  # network calls and samplers: say how many evaluations a row times
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    table.add_column("model", no_wrap=True)
    for header in (
        "backend",
        "prec",
        "N",
        *(("evals",) if mixed else ()),
        "p50 ms",
        "p90 ms",
        "img/s",
        "vs 1st",
        "+MB",
        "J/img",
    ):
        table.add_column(header, justify="left" if header in ("backend", "prec") else "right", no_wrap=True)
    for row in comparison_rows(records):
        r, c = row.record, csv_row(row.record)
        energy = "-" if c["energy_per_image_j"] is None else f"{c['energy_per_image_j']:.3g}"
        provider = r.provider.removesuffix("ExecutionProvider")
        backend = r.backend if provider.lower() == "cpu" else f"{r.backend}/{provider}"  # a GPU run says which
        evals = (str(r.network_evaluations_per_call),) if mixed else ()
        model = r.model.removesuffix(artefacts.CHECKPOINT)  # a checkpoint: its backend says torch
        speedup = f"{_short(row.speedup_vs_first)}x{_spread(row.speedup_vs_first, row.speedup_ci)}"
        table.add_row(
            model,
            backend,
            r.precision,
            str(r.batch),
            *evals,
            _short(c["p50_ms"]),
            "-" if c["p90_ms"] is None else _short(c["p90_ms"]),
            _short(c["throughput_img_s"]),
            speedup,
            f"{c['rss_growth_mb']:.0f}",
            energy,
        )
    unit = {"model": "ms per network call", "sampler": "ms per sampled batch"}
    table.caption = (
        "; ".join(unit[m] for m in sorted(modes))
        + "; N = batch; vs 1st = p50 of the first row of the same N and kind / this p50, +-: the farther end of its "
        "95% interval over interleaved rounds (report.md has both ends); +MB = the model's RSS growth; p90 from 100 "
        "calls"
    )
    print_table(table)


@command("tegrastats")
def tegrastats_command(
    log: Annotated[Path, typer.Argument(help="A tegrastats log (tegrastats --logfile, or its captured output).")],
    interval_ms: Annotated[
        float | None,
        typer.Option("--interval-ms", help="Sampling interval, when the lines carry no usable timestamps."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Summarise a tegrastats log: RAM, GPU load, EMC, power per rail (mean/peak) and VDD_IN energy."""
    from edgedit.bench.tegrastats import summarize_log

    summary = summarize_log(log, interval_ms)
    if json_out:
        return print_json(summary.model_dump())
    _print_tegrastats(log, summary)


def _print_tegrastats(log: Path, summary: TegrastatsSummary) -> None:
    def stat(s, unit):
        return "unavailable" if s is None else f"mean {s.mean:.1f}{unit}, peak {s.peak:.0f}{unit}"

    energy = summary.energy_j
    print_fields(
        f"{log}: {summary.samples} samples"
        + (f" every {summary.period_s:.3g} s" if summary.period_s else "")
        + (f", {summary.bad_lines} malformed lines skipped" if summary.bad_lines else ""),
        [
            ("RAM used", f"{stat(summary.ram_used_mb, ' MB')} of {summary.ram_total_mb} MB"),
            ("GPU (GR3D)", stat(summary.gr3d_pct, "%")),
            ("EMC", stat(summary.emc_pct, "%")),
            *((rail, stat(p, " mW")) for rail, p in summary.power_mw.items()),
            (
                "energy",
                f"{'unknown (no timestamps: pass --interval-ms)' if energy is None else f'{energy:.2f} J'}"
                f" on {summary.energy_rail or 'no total rail'}",
            ),
        ],
    )
