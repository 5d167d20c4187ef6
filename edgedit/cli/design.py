"""Design-space commands: `design sweep`, `retime`, `report`, `pick`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgedit.cli.common import (
    Force,
    JsonFlag,
    LearningRate,
    app,
    command,
    int_list,
    parse_shard,
    print_fields,
    print_json,
    stdout,
)
from edgedit.contract.fileio import Output, check_outputs

design_app = typer.Typer(
    help="Design-space exploration: sweep DiT-Nano shapes and methods, pick one.", no_args_is_help=True
)
app.add_typer(design_app, name="design")


@command("sweep", parent=design_app)
def design_sweep_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="The teacher pairs every candidate learns.")],
    budget: Annotated[str, typer.Option("--budget", help="Parameter budgets, e.g. 300k,1M.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Steps per candidate (the same for all).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The sweep folder.")] = Path("sweep"),
    depths: Annotated[str | None, typer.Option("--depths", help="Depths to try (default 2,3,4,6,8,12).")] = None,
    widths: Annotated[str | None, typer.Option("--widths", help="Widths allowed (default multiples of 16).")] = None,
    heads: Annotated[str | None, typer.Option("--heads", help="Head counts (default 2,4,8).")] = None,
    methods: Annotated[str, typer.Option("--methods", help="Methods, e.g. output,ta,mi1.")] = "output",
    ta: Annotated[
        str | None, typer.Option("--ta", help="The TA shared by the sweep (a preset is distilled once).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch per step.")] = 64,
    lr: LearningRate = 3e-4,
    eval_samples: Annotated[int, typer.Option("--eval-samples", min=2, help="Samples for each candidate's FID.")] = 500,
    latency_backend: Annotated[
        str, typer.Option("--latency-backend", help="onnxruntime or torch (batch 1, one thread).")
    ] = "onnxruntime",
    shard: Annotated[str, typer.Option("--shard", help="I/N: this worker's share of the candidates.")] = "0/1",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every candidate's weights and data order.")] = 0,
) -> None:
    """Distil, evaluate and time DiT-Nano candidates near each budget (deep-narrow to shallow-wide);
    write results.json/csv, pareto.png and principles.md. Finished candidates are skipped."""
    from edgedit.design.sweep import DEFAULT_DEPTHS, DEFAULT_HEADS, WIDTHS, SweepOptions, parse_budget, sweep
    from edgedit.train.trainer import TrainSettings

    check_outputs([Output("-o", output, "folder")], {"--pairs": pairs, "--ta": ta})
    options = SweepOptions(
        pairs=pairs,
        output=output,
        budgets=tuple(parse_budget(b) for b in budget.split(",")),
        ta=ta,
        settings=TrainSettings(steps=steps, batch=batch, lr=lr, checkpoint_every=max(steps // 4, 1), seed=seed),
        methods=tuple(m.strip() for m in methods.split(",")),
        depths=tuple(int_list(depths, "--depths") or DEFAULT_DEPTHS),
        heads=tuple(int_list(heads, "--heads") or DEFAULT_HEADS),
        widths=tuple(int_list(widths, "--widths") or WIDTHS),
        shard=parse_shard(shard),
        eval_samples=eval_samples,
        latency_backend=latency_backend,
    )
    results = sweep(options, say=lambda text: stdout.print(text, markup=False))
    stdout.print(f"{len(results)} results in {output}/ (results.json, results.csv, pareto.png, principles.md)")


@command("retime", parent=design_app)
def design_retime_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The sweep folder.")] = Path("sweep"),
    latency_backend: Annotated[
        str, typer.Option("--latency-backend", help="onnxruntime or torch (batch 1, one thread).")
    ] = "onnxruntime",
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.1, help="Timed seconds per architecture and round.")
    ] = 2.0,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Rounds over all architectures; the median counts.")
    ] = 5,
) -> None:
    """Re-measure every finished candidate's latency on this machine (once per architecture) and
    rewrite the reports: for sweeps trained on several machines or on a busy one."""
    from edgedit.design.sweep import retime

    results = retime(output, latency_backend, seconds, rounds, say=lambda text: stdout.print(text, markup=False))
    stdout.print(f"{len(results)} results re-timed in {output}/ (results.json, results.csv, pareto.png, principles.md)")


@command("pick", parent=design_app)
def design_pick_command(
    results: Annotated[Path, typer.Option("--results", help="A sweep's results.json.")],
    latency_ms: Annotated[
        float | None,
        typer.Option(
            "--latency-ms", help="Latency budget per image (one network call); without it, the best FID of the sweep."
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="orin-nano or orin-nano-super.")] = "orin-nano",
    precision: Annotated[str, typer.Option("--precision", help="fp16 or int8.")] = "fp16",
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Copy the picked student here, its sweep evaluation added to its provenance."),
    ] = None,
    json_out: JsonFlag = False,
    force: Force = False,
) -> None:
    """Name the best-FID configuration whose estimated latency fits the budget (and save its student)."""
    from edgedit.design.results import pick, picked_student, save_pick

    outputs = [Output("--save", save, "student")]
    check_outputs(outputs, {"--results": results}, force=force)
    picked = pick(results, latency_ms, device, precision)
    best, e = picked.result, picked.device_estimate
    if save is not None:
        check_outputs(outputs, {"the picked student": picked_student(best, results)}, force=force)  # known now
        save_pick(best, results, save)
    if json_out:
        return print_json(picked.to_dict())
    print_fields(
        best.name,
        [
            ("shape", f"{best.depth} blocks x width {best.width}, {best.heads} heads"),
            ("method", best.method),
            ("FID", f"{best.fid:.1f}"),
            ("params", f"{best.params:,}"),
            ("estimate", f"{e.ms:.3f} ms ({e.low_ms:.3f}-{e.high_ms:.3f}) per call on {device} {precision}"),
            ("basis", e.label),
        ],
    )
    if save is not None:
        stdout.print(f"saved its student to {save}")


@command("report", parent=design_app)
def design_report_command(
    results: Annotated[Path, typer.Option("--results", help="A sweep's results.json.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for results.json/csv, pareto.png, principles.md.")
    ],
) -> None:
    """Rewrite a sweep's reports from its results.json, with the device latency estimates of the
    calibration in force (e.g. after `edgedit models --calibrate`)."""
    from edgedit.design.results import load_results, write_reports

    check_outputs([Output("-o", output, "folder")])  # rewriting a sweep's reports in place is the point
    records = load_results(results)
    write_reports(output, records)
    stdout.print(
        f"{len(records)} results re-reported in {output}/ (results.json, results.csv, pareto.png, principles.md)"
    )
