"""The training loop shared by the teacher and the distillation methods.

AdamW on an objective (edgedit.train.objectives), an EMA of the weights (the EMA is what gets
saved and sampled), a progress display, sample grids and full-state checkpoints.

Reproducible by construction: the data order of epoch e is a permutation seeded by (seed, e),
and the randomness of step s (noise levels, noise) comes from a generator seeded by (seed, s)
and is drawn for the whole global batch, each rank keeping its rows. So a run resumed from a
checkpoint, or split over N processes with `torchrun --nproc-per-node N` (DDP: gloo on CPU,
nccl on GPU), follows the same trajectory as one uninterrupted process (up to the order of
floating-point reductions across ranks).

Checkpoints (`OUTPUT.train-state.safetensors`, every K steps, atomic) hold the model, the EMA,
the optimizer state, the step and the run's settings; nothing is pickled. A run killed at any
moment resumes with `resume=True` and loses at most one checkpoint interval.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field, ValidationError

from edgedit import __version__
from edgedit.contract import artefacts
from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import OpenRecord, Record, fields_record, first_problem, loads, parse
from edgedit.contract.staging import atomic_output
from edgedit.models.checkpoint import save_model
from edgedit.models.dit import DiT

log = logging.getLogger("edgedit")
STATE_FORMAT = "edgedit.train-state/1"
MAX_TRAIN_BATCH = 65536
OPTIMIZERS = {"optim": "optimizer", "doptim": "discriminator optimizer"}  # state-file prefix -> what it is


@dataclass(kw_only=True)
class TrainSettings:
    """A run's settings, each with its bound (the CLI flag is the field name with dashes)."""

    steps: Annotated[int, Field(ge=1, le=10**9)]
    batch: Annotated[int, Field(ge=1, le=MAX_TRAIN_BATCH)]  # global batch, split over ranks
    lr: Annotated[float, Field(gt=0, le=10)] = 2e-4
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.0
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.9999
    lr_warmup: Annotated[int, Field(ge=0, le=10**9)] = 0
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    sample_every: Annotated[int, Field(ge=0)] = 0  # 0: only at the end
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0

    def check(self) -> None:
        try:
            SettingsRecord.model_validate(asdict(self))
        except ValidationError as err:
            field = str(err.errors()[0]["loc"][0])
            raise EdgeditError(f"`{field}`: {first_problem(err).split(': ', 1)[1]}") from None


SettingsRecord = fields_record(TrainSettings)  # the schema of a run's settings in its train state


@dataclass
class Run:
    """What a training run is: resuming checks that these match."""

    config: DiTConfig
    data: str
    method: str
    settings: TrainSettings
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "config": self.config.to_dict(),
                "data": self.data,
                "method": self.method,
                "settings": asdict(self.settings),
                "extra": self.extra,
            },
            sort_keys=True,
        )


#################################################################################
#                            Distributed helpers                                #
#################################################################################


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world() -> World:
    """From torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    return World(rank, size, device)


def check_training_memory(cfg: DiTConfig, batch: int, data_bytes: int = 0, on: str = "cpu") -> None:
    """Refuse, before the model is built, a training job this machine cannot hold (on a GPU: its free memory)."""
    from edgedit.cost.memory import require_memory, training_memory

    available = torch.cuda.mem_get_info()[0] if str(on).startswith("cuda") else None
    require_memory(
        training_memory(cfg, batch, data_bytes), "training", "lower `batch`, `hidden_size` or `depth`", available
    )


#################################################################################
#                                 State files                                   #
#################################################################################


def save_state(
    path: Path, run: Run, step: int, objective: torch.nn.Module, ema: DiT, optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """`optimizers` by prefix: "optim" (the model's and auxiliaries') and, for an adversarial objective,
    "doptim" (the discriminator's)."""
    from safetensors.torch import save_file

    tensors = {f"objective.{k}": v for k, v in objective.state_dict().items()}  # the model and any auxiliaries
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    metadata = {"format": STATE_FORMAT, "edgedit_version": __version__, "run": run.to_json(), "step": str(step)}
    for prefix, optimizer in optimizers.items():
        optim = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in optim["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{prefix}.{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        metadata[f"{prefix}_groups"] = json.dumps(optim["param_groups"])
        metadata[f"{prefix}_scalars"] = json.dumps(scalars)
    with atomic_output(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


class _RunRecord(Record):
    config: dict[str, Any]
    data: str
    method: str
    settings: SettingsRecord
    extra: dict[str, Any]


class _OptimizerGroup(OpenRecord):
    params: list[Annotated[int, Field(ge=0)]]
    lr: float = Field(gt=0)


class _StateRecord(Record):
    """A train state's safetensors header metadata (every value a string, JSON where structured)."""

    format: Literal["edgedit.train-state/1"]
    edgedit_version: str
    run: str
    step: Annotated[str, Field(pattern=r"^\d{1,12}$")]
    optim_groups: str
    optim_scalars: str
    doptim_groups: str | None = None  # an adversarial objective's discriminator
    doptim_scalars: str | None = None


def load_state(
    path: Path, run: Run, objective: torch.nn.Module, ema: DiT, optimizers: dict[str, torch.optim.Optimizer]
) -> int:
    """Restore everything and return the step; refuse a damaged state or one from a different run,
    before anything is changed."""
    from safetensors import safe_open

    if not path.is_file():
        raise EdgeditError(f"`resume`: no training state at {path} (it is written every `checkpoint_every` steps)")
    fix = "delete it to start over"
    try:
        with safe_open(str(path), "pt") as f:
            meta, tensors = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:
        raise EdgeditError(f"{path}: unreadable training state ({str(err)[:120]}); {fix}") from None
    header = parse(_StateRecord, meta, path, "edgedit training state", fix)
    saved = parse(
        _RunRecord, loads(header.run, path, "training state's 'run'", fix), path, "training state's 'run'", fix
    ).model_dump()
    step = int(header.step)
    wanted = json.loads(run.to_json())
    for key in ("config", "data", "method", "extra"):
        if saved[key] != wanted[key]:
            raise EdgeditError(
                f"`resume`: the saved run differs in {key} ({saved[key]} != {wanted[key]}); "
                "resume with the same settings or start a new output"
            )
    for key in ("batch", "lr", "weight_decay", "ema", "lr_warmup", "grad_clip", "seed"):
        if saved["settings"][key] != wanted["settings"][key]:
            raise EdgeditError(
                f"`resume`: `{key}` was {saved['settings'][key]}, now "
                f"{wanted['settings'][key]}; resume with the same value"
            )
    restored = {
        prefix: _optimizer_state(prefix, optimizer, header, tensors, path, fix)
        for prefix, optimizer in optimizers.items()
    }
    try:
        objective.load_state_dict({k[10:]: v for k, v in tensors.items() if k.startswith("objective.")}, strict=True)
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, strict=True)
        for prefix, optimizer in optimizers.items():
            optimizer.load_state_dict(restored[prefix])
    except (RuntimeError, ValueError, KeyError) as err:
        raise EdgeditError(
            f"{path}: its tensors do not fit this run ({str(err).splitlines()[0][:120]}); {fix}"
        ) from None
    return step


def _optimizer_state(
    prefix: str,
    optimizer: torch.optim.Optimizer,
    header: _StateRecord,
    tensors: dict[str, torch.Tensor],
    path: Path,
    fix: str,
) -> dict[str, Any]:
    """One optimizer's state dict from the file, checked to fit its parameters exactly (torch would
    only fail at the next step)."""
    groups_text, scalars_text = getattr(header, f"{prefix}_groups"), getattr(header, f"{prefix}_scalars")
    if groups_text is None or scalars_text is None:
        raise EdgeditError(f"{path}: holds no {OPTIMIZERS[prefix]} state, which this run has; {fix}")
    groups = [
        parse(_OptimizerGroup, g, path, "optimizer group", fix).model_dump()
        for g in _json_list(groups_text, path, f"{prefix}_groups", fix)
    ]
    scalars = loads(scalars_text, path, f"training state's '{prefix}_scalars'", fix)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if [g["params"] for g in groups] != [list(range(len(params)))] or not isinstance(scalars, dict):
        raise EdgeditError(
            f"{path}: its {OPTIMIZERS[prefix]} groups do not cover this model's {len(params)} parameters; {fix}"
        )
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(f"{prefix}."):
            _, index, name = key.split(".", 2)
            fits = index.isdigit() and int(index) < len(params) and value.shape in (params[int(index)].shape, ())
            if not fits:  # moments have the parameter's shape; AdamW's step count is a scalar
                raise EdgeditError(f"{path}: optimizer tensor {key} {list(value.shape)} fits no parameter; {fix}")
            state.setdefault(int(index), {})[name] = value
    for index, values in scalars.items():
        if not (index.isdigit() and int(index) < len(params) and isinstance(values, dict)):
            raise EdgeditError(f"{path}: {prefix}_scalars entry {index!r} fits no parameter; {fix}")
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": groups}


def _json_list(text: str, path: Path, key: str, fix: str) -> list:
    value = loads(text, path, f"training state's '{key}'", fix)
    if not isinstance(value, list):
        raise EdgeditError(f"{path}: training state's '{key}' is not a list; {fix}")
    return value


#################################################################################
#                                 The loop                                      #
#################################################################################


def batch_indices(step: int, batch: int, dataset_size: int, seed: int) -> np.ndarray:
    """The dataset rows of global step `step`: consecutive slices of per-epoch permutations."""
    start = step * batch
    rows = []
    while len(rows) < batch:
        epoch, offset = divmod(start + len(rows), dataset_size)
        order = np.random.Generator(np.random.PCG64([seed, epoch])).permutation(dataset_size)
        rows.extend(order[offset : offset + batch - len(rows)])
    return np.asarray(rows)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, 0x5EED]).generate_state(1)[0]))


@torch.no_grad()
def update_ema(ema: DiT, model: DiT, decay: float, step: int) -> None:
    """EMA with a warm-up, decay_t = min(decay, (1 + t) / (10 + t)), so short runs are not
    dominated by the initial weights."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - d)


class SampleGrids:
    """An `on_sample` callback: the EMA's images for seeds 0..seeds-1 (label = seed % classes, the
    evaluation's seeds) as OUTPUT.samples/step-NNNNNNN.png, so that runs can be watched and compared."""

    def __init__(self, output: str | os.PathLike, device: torch.device | str = "cpu", seeds: int = 32):
        self.folder = artefacts.samples_folder(output)
        self.device, self.seeds = str(device), seeds

    def __call__(self, step: int, net: DiT) -> None:
        from edgedit.models.torch_backend import TorchBackend
        from edgedit.runtime.images import picture, save_png
        from edgedit.runtime.samplers import generate, sampling_words

        was_training = net.training
        net.eval()
        backend = TorchBackend(net, {"training_step": step}, self.device)
        images = generate(backend, range(self.seeds), batch=self.seeds)
        net.train(was_training)
        caption = (
            f"{self.folder.name} | step {step} | seeds 0-{self.seeds - 1} | {sampling_words(backend.meta.sampler)}"
        )
        save_png(self.folder / f"step-{step:07d}.png", picture(images, caption, columns=8))


def train(
    run: Run,
    data: dict[str, Any],
    objective: torch.nn.Module,
    output: str | os.PathLike,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_sample: Callable[[int, DiT], None] | None = None,
    world: World | None = None,
    say: Callable[[str], None] = log.info,
) -> Path:
    """Train `objective.model` on `data` (a dict of equally long arrays, e.g. image + label, or
    the pairs store's z + image + label + trajectory) and write the EMA of the model to `output`.
    Build the objective after `torch.manual_seed(run.settings.seed)`: DDP also broadcasts rank 0's
    initial weights."""
    settings = run.settings
    settings.check()
    world = world or init_world()
    if settings.batch % world.size:
        raise EdgeditError(f"`batch` {settings.batch} must be divisible by the {world.size} processes")
    sizes = {len(v) for v in data.values()}
    if len(sizes) != 1:
        raise EdgeditError(f"training arrays differ in length: { {k: len(v) for k, v in data.items()} }")
    dataset_size = sizes.pop()
    check_training_memory(run.config, settings.batch // world.size, on=str(world.device))
    objective = objective.to(world.device)
    model = objective.model
    ema = DiT(run.config).to(world.device)
    ema.load_state_dict(model.state_dict())
    ema.noise = model.noise  # what it saves and samples keeps the model's noise scheme
    ema.requires_grad_(False)
    # An adversarial objective (edgedit.train.adversarial) brings a discriminator with its own optimizer
    # and loss: each step trains it first, then the model against it.
    adversarial = hasattr(objective, "discriminator_loss")
    if adversarial and world.size > 1:
        raise EdgeditError("adversarial training runs in one process: start it without torchrun")
    discriminator = set(objective.discriminator.parameters()) if adversarial else set()
    trainable = [p for p in objective.parameters() if p.requires_grad and p not in discriminator]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    optimizers = {"optim": optimizer}
    if adversarial:
        optimizers["doptim"] = objective.discriminator_optimizer()
    output = Path(output)
    state_file = artefacts.train_state(output)
    step = load_state(state_file, run, objective, ema, optimizers) if resume else 0
    if step > settings.steps:
        raise EdgeditError(
            f"`resume`: {state_file} is at step {step}, past `steps` {settings.steps}; give `steps` "
            f"{step} or more (or start a new output)"
        )
    if resume and world.main:
        say(
            f"resumed {output.name} from step {step} of {settings.steps}"
            if step < settings.steps
            else f"{output.name}: the saved state is at the last step, {step}; writing the model from it"
        )
    net = torch.nn.parallel.DistributedDataParallel(objective) if world.size > 1 else objective
    per_rank = settings.batch // world.size
    rows = slice(world.rank * per_rank, (world.rank + 1) * per_rank)
    started = time.perf_counter()
    objective.train()
    while step < settings.steps:
        index = batch_indices(step, settings.batch, dataset_size, settings.seed)
        batch = {
            k: torch.from_numpy(
                np.asarray(v[index], dtype=np.float32 if np.issubdtype(v.dtype, np.floating) else np.int64)
            ).to(world.device)
            for k, v in data.items()
        }
        lr = settings.lr * min(1.0, (step + 1) / settings.lr_warmup) if settings.lr_warmup else settings.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        generator = step_generator(settings.seed, step)
        if adversarial:
            d_loss = objective.discriminator_loss(batch, generator, rows).mean()
            optimizers["doptim"].zero_grad(set_to_none=True)
            d_loss.backward()
            optimizers["doptim"].step()
        loss = net(batch, generator, rows).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
        optimizer.step()
        update_ema(ema, model, settings.ema, step)
        step += 1
        if not math.isfinite(loss.item()):
            raise EdgeditError(f"training diverged at step {step} (loss {loss.item()}); lower `lr`")
        if on_step is not None and world.main:
            on_step(step, loss.item())
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            if world.main:
                save_state(state_file, run, step, objective, ema, optimizers)
            world.barrier()
        if on_sample is not None and world.main and settings.sample_every and step % settings.sample_every == 0:
            on_sample(step, ema)
    if world.main:
        ema.eval()
        save_model(
            ema.cpu(),
            output,
            provenance={
                "method": run.method,
                "data": run.data,
                "steps": step,
                "batch": settings.batch,
                "lr": settings.lr,
                "ema": settings.ema,
                "seed": settings.seed,
                "processes": world.size,
                "weights": "EMA",
                "train_seconds_last_session": round(time.perf_counter() - started, 1),
                **(provenance or {}),
            },
        )
        if on_sample is not None:
            on_sample(step, ema)
    world.barrier()
    return output
