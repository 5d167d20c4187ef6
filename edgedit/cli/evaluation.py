"""`edgedit eval`: sample a model from seeds and measure the samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgedit.cli.common import Force, JsonFlag, command, data_input, print_fields, print_json, sampler_steps
from edgedit.contract.fileio import Output, check_outputs


@command("eval")
def eval_command(
    model: Annotated[str, typer.Argument(help="A checkpoint, .onnx or .plan (one-step or multi-step).")],
    data: Annotated[
        str, typer.Option("--data", help="Real data for the reference set: digits, cifar10:PATH, ...")
    ] = "digits",
    n: Annotated[int, typer.Option("-n", "--num", min=2, help="Samples to generate (seeds SEED .. SEED+n-1).")] = 1000,
    steps: Annotated[int | None, sampler_steps("EDM steps (default: the model's).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="heun or euler (EDM models).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Samples per call.")] = 64,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Another model: PSNR of the samples against its samples on the same seeds."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed.")] = 0,
    grid: Annotated[Path | None, typer.Option("--grid", help="Also write the first 64 samples as a PNG grid.")] = None,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            "--inception-weights",
            help="pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth for Inception FID/KID (default: torch hub's "
            "cache if it is there; never downloaded).",
        ),
    ] = None,
    reference_count: Annotated[
        int | None,
        typer.Option(
            "--reference-count",
            min=2,
            help="Use a seeded subset of this many reference images (Inception on a CPU is slow).",
        ),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="Copy the checkpoint here, this evaluation added to "
            "its provenance (a shipped model carries its numbers).",
        ),
    ] = None,
    json_out: JsonFlag = False,
    force: Force = False,
) -> None:
    """Sample a model from seeds and measure the samples (FID, KID, classifier view, PSNR).

    Domain FID/KID against held-out digits with the real-vs-real floor, the digits classifier's
    confidence and class coverage, and PSNR against a --reference model on the same seeds.
    """
    from edgedit.eval.evaluate import evaluate

    inputs = {
        "MODEL": model,
        "--reference": reference,
        "--data": data_input(data),
        "--inception-weights": inception_weights,
    }
    check_outputs([Output("--grid", grid, "png"), Output("--save", save, "checkpoint")], inputs, force=force)
    report = evaluate(
        model,
        data,
        n,
        steps,
        sampler,
        batch,
        reference,
        seed,
        inception_weights=inception_weights,
        reference_count=reference_count,
        grid=grid,
        save=save,
    )
    if json_out:
        return print_json(report.to_dict())
    fields = []
    for m in report.metrics:
        std = (m.model_extra or {}).get("std")  # KID's spread over subsets
        value = f"{m.value:.4g}" + (f" +- {std:.2g}" if std is not None else "")
        fields.append((m.metric, f"{value}  [{m.features}; {m.samples} samples; vs {m.reference}]"))
    print_fields(
        f"{report.model} on {report.backend}: {report.samples} samples, {report.sampling}, "
        f"seeds {report.seeds[0]}..{report.seeds[1]}",
        fields,
    )
    if report.note is not None:
        print_fields(None, [("note", report.note)])
    wrote = [f"{grid} (the first samples, captioned)"] * (grid is not None) + [f"{save} (with this evaluation)"] * (
        save is not None
    )
    if wrote:
        print_fields(None, [("wrote", "; ".join(wrote))])
