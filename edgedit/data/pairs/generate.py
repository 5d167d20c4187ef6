"""`pairs generate`: a teacher's noise -> image pairs (and trajectory states) into a store."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.contract.config import require_model_file
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.progress import task
from edgedit.contract.schedules import MAX_SAMPLER_STEPS, NOISE_SCHEME
from edgedit.contract.schema import check_shard, parse
from edgedit.data.pairs.manifest import (
    FORMAT,
    MAX_PAIRS,
    MAX_SEED,
    MAX_SHARD_SIZE,
    MAX_SHARDS,
    ShardMeta,
    StoreSettings,
    trajectory_steps,
)
from edgedit.data.pairs.shards import Damaged, inspect_shard, write_shard
from edgedit.data.pairs.writer import store_writer, write_manifest

log = logging.getLogger("edgedit")


def labels_for(seeds: np.ndarray, num_classes: int, class_balanced: bool) -> np.ndarray:
    """Balanced: seed % C. Otherwise drawn uniformly from the seed's own stream (as GET draws them)."""
    if class_balanced:
        return (seeds % num_classes).astype(np.int64)
    return np.array([np.random.Generator(np.random.PCG64([int(s), 1])).integers(num_classes) for s in seeds], np.int64)


def generate_pairs(
    teacher: str | os.PathLike,
    out: str | os.PathLike,
    count: int,
    steps: int = 18,
    sampler: str = "heun",
    trajectory: int = 0,
    class_balanced: bool = False,
    shard: tuple[int, int] = (0, 1),
    shard_size: int = 1024,
    first_seed: int = 0,
    batch: int = 64,
    image_dtype: str = "float16",
    device: str = "cpu",
    force: bool = False,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Generate (or complete) a pairs store; returns its manifest. `force` starts an existing store over."""
    from edgedit.runtime.backends import RunOptions, load_backend
    from edgedit.runtime.samplers import ddim_timesteps, generate, karras_sigmas

    worker, workers = check_shard(shard)
    if not (1 <= count <= MAX_PAIRS and 1 <= shard_size <= MAX_SHARD_SIZE):
        raise EdgeditError(f"`count` must be 1..{MAX_PAIRS} and `shard_size` 1..{MAX_SHARD_SIZE}")
    if -(-count // shard_size) > MAX_SHARDS:
        raise EdgeditError(
            f"`count` {count} in shards of {shard_size} makes more than {MAX_SHARDS} shards; raise `shard_size`"
        )
    if not 0 <= first_seed <= MAX_SEED - count:
        raise EdgeditError(f"`first_seed` must be 0..{MAX_SEED - count}")
    if image_dtype not in ("float16", "float32"):
        raise EdgeditError("`image_dtype` must be float16 or float32")
    if not 1 <= steps <= MAX_SAMPLER_STEPS:
        raise EdgeditError(f"`steps` must be 1..{MAX_SAMPLER_STEPS}")
    teacher = require_model_file(teacher, "teacher", "edgedit teacher train")
    backend = load_backend(teacher, options=RunOptions(device=device))
    spec = backend.meta.sampler
    if spec.type not in ("edm", "ddpm"):
        raise EdgeditError(
            f"{teacher}: a teacher must be a multi-step denoiser (EDM, or an official DiT), this is a "
            f"{backend.meta.config.kind}"
        )
    cfg = backend.meta.config
    states = trajectory_steps(steps, trajectory)
    if spec.type == "edm":  # noise level of each state: EDM's sigma, or the DDPM timestep
        if sampler not in ("heun", "euler"):
            raise EdgeditError(f"`sampler` must be heun or euler (got {sampler!r})")
        levels = karras_sigmas(steps, spec.sigma_min, spec.sigma_max, spec.rho)
        schedule = ("sigma_min", "sigma_max", "rho", "sigma_data")
    else:
        sampler = "ddim"
        if steps > spec.train_steps:
            raise EdgeditError(f"`steps` must be 1..{spec.train_steps} for this DDPM teacher")
        levels = ddim_timesteps(spec.train_steps, steps)
        schedule = ("train_steps", "beta_start", "beta_end")
    sampler_record = {"type": spec.type, **spec.model_dump(include=set(schedule))}
    shape = [cfg.in_channels, cfg.input_size, cfg.input_size]
    settings = parse(
        StoreSettings,
        {
            "format": FORMAT,
            "edgedit_version": __version__,
            "source": "edgedit pairs generate",
            "teacher": {"file": teacher.name, "sha256": sha256_file(teacher), "config": cfg.to_dict()},
            "sampler": {**sampler_record, "sampler": sampler, "steps": steps, "noise": NOISE_SCHEME},
            "trajectory": {
                "k": trajectory,
                "steps": states,
                ("sigmas" if spec.type == "edm" else "timesteps"): [float(levels[i]) for i in states],
            },
            "shape": shape,
            "num_classes": cfg.num_classes,
            "image_dtype": image_dtype,
            "class_balanced": class_balanced,
            "seeds": {"first": first_seed, "count": count},
            "shard_size": shard_size,
        },
        teacher,
        "pairs teacher",
    )
    from edgedit.runtime.noise import noise_from_seeds

    out = Path(out)

    def make_shard(index: int, first: int, n: int, layout) -> ShardMeta:
        seeds = np.arange(first, first + n, dtype=np.int64)
        labels = labels_for(seeds, cfg.num_classes, class_balanced) if cfg.class_conditional else None
        traj = np.zeros((n, len(states), *shape), np.float16) if states else None

        def keep(start: int, i: int, sigma: float, x: np.ndarray) -> None:
            if traj is not None and i in states:
                traj[start : start + len(x), states.index(i)] = x

        images = generate(
            backend, seeds, labels, batch=batch, steps=steps, sampler=sampler, on_state=keep, noise=NOISE_SCHEME
        )
        arrays = {
            "seeds": seeds,
            "z": noise_from_seeds(seeds, shape, NOISE_SCHEME),
            "image": images.astype(image_dtype),
        }
        if labels is not None:
            arrays["label"] = labels
        if traj is not None:
            arrays["trajectory"] = traj
        return write_shard(out, index, arrays, layout)

    with store_writer(out, settings, force, say) as layout:
        mine = [(index, first, n) for index, (first, n) in enumerate(layout.plan) if index % workers == worker]
        known: dict[int, ShardMeta] = {}
        with task("teacher pairs", sum(n for *_, n in mine)) as advance:  # the store is open: generation starts
            for index, first, n in mine:
                try:
                    known[index], _ = inspect_shard(out, index, layout)
                    advance(n)
                    continue
                except Damaged:
                    pass  # missing, damaged or foreign: (re)made below
                known[index] = make_shard(index, first, n, layout)
                advance(n)
        return write_manifest(out, layout, known)
