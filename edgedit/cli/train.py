"""Commands of the workstation side: `teacher train`, `pairs generate|import-get|verify`, `distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgedit.cli.common import (
    Batch,
    CheckpointEvery,
    Depth,
    Ema,
    Force,
    Heads,
    LearningRate,
    LrWarmup,
    MlpRatio,
    Patch,
    Resume,
    SampleEvery,
    StepProgress,
    Width,
    app,
    bounds,
    command,
    data_input,
    int_list,
    overrides,
    parse_shard,
    sampler_steps,
    stdout,
)
from edgedit.contract import artefacts
from edgedit.contract.fileio import Output, check_outputs

teacher_app = typer.Typer(help="The multi-step EDM teacher that produces the offline pairs.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")
pairs_app = typer.Typer(
    help="Offline teacher pairs: noise -> image (+ labels, trajectory states).", no_args_is_help=True
)
app.add_typer(pairs_app, name="pairs")


def _settings(steps, batch, lr, ema, lr_warmup, checkpoint_every, sample_every, seed):
    from edgedit.train.trainer import TrainSettings

    return TrainSettings(
        steps=steps,
        batch=batch,
        lr=lr,
        ema=ema,
        lr_warmup=lr_warmup,
        checkpoint_every=checkpoint_every,
        sample_every=sample_every,
        seed=seed,
    )


def _trained_output(output: Path, kind: str, *also: Path) -> Output:
    """A training run's checkpoint with what it writes beside: training state, sample grids."""
    from edgedit.train.trainer import SampleGrids

    return Output("-o", output, kind, (artefacts.train_state(output), *also), (SampleGrids(output).folder,))


@command("train", parent=teacher_app)
def teacher_train_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The teacher checkpoint (.safetensors, EMA weights).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")],
    data: Annotated[str, typer.Option("--data", help="digits, cifar10:PATH, folder:PATH or npz:PATH.")] = "digits",
    preset: Annotated[
        str, typer.Option("--preset", help="Architecture; the input geometry comes from the data.")
    ] = "DiT-Teacher-Digits/2",
    depth: Depth = None,
    width: Width = None,
    heads: Heads = None,
    patch: Patch = None,
    mlp_ratio: MlpRatio = None,
    batch: Batch = 64,
    lr: LearningRate = 2e-4,
    ema: Ema = 0.9999,
    lr_warmup: LrWarmup = 0,
    checkpoint_every: CheckpointEvery = 200,
    sample_every: SampleEvery = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the weights, data order and noise.")] = 0,
    resume: Resume = False,
    force: Force = False,
) -> None:
    """Train an EDM denoiser (class-conditional when the data has labels).

    Resumable (`--resume` loses at most one checkpoint interval) and distributed with
    `torchrun --nproc-per-node N $(which edgedit) teacher train ...` (DDP: gloo on CPU, nccl on GPU).
    """
    import time

    from edgedit.train.teacher import TeacherOptions, train_teacher
    from edgedit.train.trainer import init_world

    check_outputs([_trained_output(output, "denoiser")], {"--data": data_input(data)}, force=force)
    options = TeacherOptions(
        output=output,
        data=data,
        preset=preset,
        resume=resume,
        overrides=overrides(depth, width, heads, patch, mlp_ratio),
        settings=_settings(steps, batch, lr, ema, lr_warmup, checkpoint_every, sample_every, seed),
    )
    start, progress = time.perf_counter(), StepProgress("teacher", steps, init_world().main)
    try:
        result = train_teacher(options, on_step=progress, say=progress.say)
    finally:
        progress.close()
    if progress.enabled:
        stdout.print(
            f"wrote {result.path} ({result.kind}, {result.images} training images of {data}, {steps} steps, "
            f"{result.processes} process(es), {time.perf_counter() - start:.0f} s this session); "
            f"sample grids in {result.samples_folder}/"
        )


def _print_manifest(manifest: dict, folder: Path) -> None:
    count = sum(s["count"] for s in manifest["shards"])
    shards = len(manifest["shards"])
    state = "complete" if manifest["complete"] else f"incomplete: {shards} of {manifest['expected_shards']} shards"
    stdout.print(
        f"{folder}: {count} pairs in {len(manifest['shards'])} shards ({state}), images "
        f"{'x'.join(map(str, manifest['shape']))} {manifest['image_dtype']}, {manifest['sampler']['steps']} "
        f"{manifest['sampler']['sampler']} steps, trajectory K={manifest['trajectory']['k']}"
    )


def _store_bounds(field: str) -> dict:
    from edgedit.data.pairs.manifest import StoreSettings

    return bounds(StoreSettings, field)


@command("generate", parent=pairs_app)
def pairs_generate_command(
    teacher: Annotated[Path, typer.Argument(help="An EDM teacher: checkpoint (.safetensors) or ONNX.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The pairs folder.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of pairs (seeds first-seed .. first-seed+n-1).")],
    steps: Annotated[int, sampler_steps("Teacher sampler steps.")] = 18,
    sampler: Annotated[str, typer.Option("--sampler", help="heun or euler.")] = "heun",
    trajectory: Annotated[
        int, typer.Option("--trajectory", min=0, help="Intermediate ODE states to keep per pair (MI1).")
    ] = 0,
    class_balanced: Annotated[
        bool, typer.Option("--class-balanced", help="Labels seed %% classes instead of random.")
    ] = False,
    shard: Annotated[str, typer.Option("--shard", help="I/N: this worker's share of the shards.")] = "0/1",
    shard_size: Annotated[
        int, typer.Option("--shard-size", **_store_bounds("shard_size"), help="Pairs per shard file.")
    ] = 1024,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0, help="Seed of the first pair.")] = 0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Samples per teacher call.")] = 64,
    image_dtype: Annotated[str, typer.Option("--image-dtype", help="float16 or float32.")] = "float16",
    device: Annotated[str, typer.Option("--device", help="torch device for a checkpoint teacher, e.g. cuda.")] = "cpu",
    force: Annotated[
        bool, typer.Option("--force", help="Start the store over: remove its shards, whatever settings made them.")
    ] = False,
) -> None:
    """Generate pairs with the teacher: resumable (complete shards are skipped, damaged ones redone)
    and splittable across machines or GPUs with --shard I/N (a folder per worker). A store made with
    other settings is refused unless --force."""
    from edgedit.data.pairs import generate_pairs

    check_outputs([Output("-o", output, "folder")], {"TEACHER": teacher})  # never inside the folder it writes
    worker, workers = parse_shard(shard)
    manifest = generate_pairs(
        teacher,
        output,
        n,
        steps,
        sampler,
        trajectory,
        class_balanced,
        (worker, workers),
        shard_size,
        first_seed,
        batch,
        image_dtype,
        device,
        force=force,
    )
    _print_manifest(manifest, output)


@command("import-get", parent=pairs_app)
def pairs_import_get_command(
    source: Annotated[Path, typer.Argument(help="GET's pairs folder (image/*.pkl, latent/*.pkl).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The pairs folder to write.")],
    image_dtype: Annotated[str, typer.Option("--image-dtype", help="float16 or float32.")] = "float16",
    force: Annotated[bool, typer.Option("--force", help="Start the store over: remove its shards.")] = False,
) -> None:
    """Convert GET's released EDM CIFAR-10 pairs into a pairs store (torch.load(weights_only=True) only)."""
    from edgedit.data.pairs import import_get

    check_outputs([Output("-o", output, "folder")], {"SOURCE": [source / "image", source / "latent"]})  # what it reads
    _print_manifest(import_get(source, output, image_dtype, force=force), output)


@command("verify", parent=pairs_app)
def pairs_verify_command(folder: Annotated[Path, typer.Argument(help="A pairs folder.")]) -> None:
    """Check every shard against the store's settings and checksums and rebuild the manifest from
    those that pass (e.g. after copying workers' folders together); says what it dropped."""
    from edgedit.data.pairs import verify_pairs

    manifest = verify_pairs(folder)
    _print_manifest(manifest, folder)
    if not manifest["complete"]:
        raise typer.Exit(1)


@command("distill")
def distill_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="A pairs folder from `edgedit pairs generate`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The student checkpoint (.safetensors, EMA weights).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")],
    student: Annotated[
        str, typer.Option("--student", help="A preset (at the pairs' geometry) or a checkpoint.")
    ] = "DiT-Nano-S/2",
    depth: Depth = None,
    width: Width = None,
    heads: Heads = None,
    patch: Patch = None,
    mlp_ratio: MlpRatio = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="output, ta (teaching assistant), mi1 (multi-in-one) or adversarial (pairs + a GAN "
            "term on --real images; usually a second stage from a distilled --student).",
        ),
    ] = "output",
    ta: Annotated[
        str | None, typer.Option("--ta", help="ta: the assistant, a preset (distilled first) or a checkpoint.")
    ] = None,
    ta_steps: Annotated[
        int | None, typer.Option("--ta-steps", min=1, help="Steps for a preset TA (default: --steps).")
    ] = None,
    loss: Annotated[str, typer.Option("--loss", help="Image loss: pseudo-huber, l1, l2 or lpips.")] = "pseudo-huber",
    feature_loss: Annotated[str, typer.Option("--feature-loss", help="ta/mi1 feature loss: l2, l1 or cosine.")] = "l2",
    feature_weight: Annotated[
        float, typer.Option("--feature-weight", min=0.0, help="Weight of the feature term.")
    ] = 1.0,
    taps: Annotated[
        str | None,
        typer.Option(
            "--taps",
            help="Student blocks tapped, e.g. 1,3,5 (ta: default all; "
            "mi1: one per trajectory state, default evenly spaced).",
        ),
    ] = None,
    real: Annotated[
        str | None,
        typer.Option(
            "--real",
            help="adversarial: real images, digits, cifar10:PATH, folder:PATH or npz:PATH (training split only).",
        ),
    ] = None,
    adv_weight: Annotated[
        float,
        typer.Option(
            "--adv-weight",
            min=0.0,
            max=1000.0,
            help="adversarial: weight of the GAN term (1: the digits study's best).",
        ),
    ] = 1.0,
    disc_lr: Annotated[
        float, typer.Option("--disc-lr", min=0.0, max=1.0, help="adversarial: the discriminator's learning rate.")
    ] = 2e-4,
    batch: Batch = 64,
    lr: LearningRate = 3e-4,
    ema: Ema = 0.9999,
    lr_warmup: LrWarmup = 0,
    checkpoint_every: CheckpointEvery = 200,
    sample_every: SampleEvery = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the weights and data order.")] = 0,
    resume: Resume = False,
    force: Force = False,
) -> None:
    """Distil a one-step DiT-Nano student from teacher pairs: output, Teaching Assistant, Multi-In-One or adversarial.

    Training-only parts (TA projections, MI1 readout heads, the discriminator) never reach the saved student. Resumable,
    and distributed with `torchrun --nproc-per-node N $(which edgedit) distill ...`. See docs/distillation.md.
    """
    import time

    from edgedit.train.distill import DistillOptions, distill
    from edgedit.train.trainer import SampleGrids, init_world

    ta_out = (
        artefacts.teaching_assistant(output) if method == "ta" and ta is not None and not Path(ta).exists() else None
    )  # a preset TA
    check_outputs(
        [_trained_output(output, "student", *((ta_out, artefacts.train_state(ta_out)) if ta_out else ()))],
        {"--pairs": pairs, "--student": student, "--ta": ta},
        force=force,
    )
    world, tapped = init_world(), int_list(taps, "--taps")
    options = DistillOptions(
        pairs=pairs,
        output=output,
        student=student,
        method=method,
        ta=ta,
        ta_steps=ta_steps,
        loss=loss,
        feature_loss=feature_loss,
        feature_weight=feature_weight,
        resume=resume,
        real=real,
        adv_weight=adv_weight,
        disc_lr=disc_lr,
        taps=tuple(tapped) if tapped else None,
        overrides=overrides(depth, width, heads, patch, mlp_ratio),
        settings=_settings(steps, batch, lr, ema, lr_warmup, checkpoint_every, sample_every, seed),
    )
    start, progress, grids = (
        time.perf_counter(),
        StepProgress(method, steps, world.main),
        SampleGrids(output, world.device),
    )
    try:
        path = distill(options, on_step=progress, on_sample=grids, say=progress.say)
    finally:
        progress.close()
    if world.main:
        stdout.print(
            f"wrote {path} ({method} distillation, {steps} steps, {world.size} process(es), "
            f"{time.perf_counter() - start:.0f} s); sample grids in {grids.folder}/"
        )
