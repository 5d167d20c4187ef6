"""`edgedit teacher train`: the multi-step EDM teacher that makes the offline pairs.

An EDM denoiser (class-conditional when the data has labels) at the data's geometry, trained by
the shared loop (`edgedit.train.trainer`): resumable, and distributed under torchrun. The recipe
that made the shipped digits teacher: docs/teacher-digits.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedit.contract.config import resolve_config
from edgedit.train.trainer import TrainSettings

log = logging.getLogger("edgedit")


@dataclass(frozen=True, kw_only=True)
class TeacherOptions:
    output: Path  # the teacher checkpoint (EMA weights)
    settings: TrainSettings
    data: str = "digits"  # a --data spec (edgedit.data.datasets)
    preset: str = "DiT-Teacher-Digits/2"  # the architecture; the input geometry comes from the data
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False


@dataclass
class TeacherResult:
    path: Path
    kind: str
    images: int  # training images
    processes: int
    samples_folder: Path


def train_teacher(options: TeacherOptions, *, on_step=None, say=log.info) -> TeacherResult:
    import torch

    from edgedit.data.datasets import load_data
    from edgedit.models.dit import DiT
    from edgedit.train.objectives import EDMObjective
    from edgedit.train.trainer import Run, SampleGrids, check_training_memory, init_world, train

    o = options
    o.settings.check()
    cfg = resolve_config(o.preset, **o.overrides)  # a bad preset or override is refused before the data loads
    world = init_world()
    dataset = load_data(o.data, "train")
    c, h, _ = dataset.shape
    cfg = cfg.replace(input_size=h, in_channels=c, num_classes=dataset.num_classes, diffusion="edm", learn_sigma=False)
    run = Run(cfg, o.data, "edm-teacher", o.settings, {"preset": o.preset})
    grids = SampleGrids(o.output, world.device)
    arrays = {"image": dataset.images, **({"label": dataset.labels} if dataset.labels is not None else {})}
    check_training_memory(cfg, o.settings.batch // world.size, on=str(world.device))  # before the model exists
    torch.manual_seed(o.settings.seed)
    path = train(
        run,
        arrays,
        EDMObjective(DiT(cfg)),
        o.output,
        o.resume,
        {"preset": o.preset},
        on_step=on_step,
        on_sample=grids,
        world=world,
        say=say,
    )
    return TeacherResult(Path(path), cfg.kind, len(dataset), world.size, grids.folder)
