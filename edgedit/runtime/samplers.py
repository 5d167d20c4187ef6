"""Numpy samplers over any backend: one-step generation and EDM's Euler / Heun ODE solvers.

Noise comes from per-sample integer seeds (`noise_from_seeds`) and labels default to
seed % num_classes, so sample k is the same image on every backend and in any batch, within
each precision's tolerance. The ODE state is kept in float64 and the network runs in float32,
as NVlabs/edm `generate.py` does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from edgedit.contract import device
from edgedit.contract.errors import EdgeditError
from edgedit.contract.progress import task
from edgedit.contract.schedules import MAX_SAMPLER_STEPS, DdpmSampler
from edgedit.contract.schema import MAX_BATCH
from edgedit.runtime.backends import Backend, pad_batch
from edgedit.runtime.noise import noise_from_seeds

SAMPLERS = ("heun", "euler")  # EDM; DDPM models sample with "ddim"
# Called with the inputs of every network evaluation (e.g. to collect calibration data).
EvalHook = Callable[[dict[str, np.ndarray]], None]
# edm_sample calls it with (step index i, sigma_i, state x_i) before each ODE step and (N, 0, final image) after.
StateHook = Callable[[int, float, np.ndarray], None]
# generate calls it with (first row of the chunk, i, sigma_i, x_i): a StateHook per chunk of rows.
ChunkStateHook = Callable[[int, int, float, np.ndarray], None]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """EDM's schedule: steps noise levels from sigma_max down to sigma_min (rho-warped), then 0."""
    if steps < 1:
        raise EdgeditError(f"`steps` must be at least 1 (got {steps})")
    i = np.arange(steps, dtype=np.float64)
    ramp = i / max(steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return np.append(sigmas, 0.0)


def network_evaluations(steps: int, sampler: str) -> int:
    return 2 * steps - 1 if sampler == "heun" else steps


def edm_sample(
    denoise: Callable[[np.ndarray, np.ndarray], np.ndarray],
    z: np.ndarray,
    sigmas: np.ndarray,
    sampler: str = "heun",
    on_state: StateHook | None = None,
) -> np.ndarray:
    """Deterministic EDM sampling (Karras et al. 2022, Algorithm 2 with S_churn = 0).

    denoise(x float32 (N,C,H,W), sigma float32 (N,)) -> D(x; sigma) (N,C,H,W)
    z: (N,C,H,W) unit-variance noise; sigmas: karras_sigmas(...) ending in 0.
    """
    if sampler not in SAMPLERS:
        raise EdgeditError(f"unknown sampler '{sampler}'; choose {' or '.join(SAMPLERS)}")
    n = z.shape[0]

    def D(x: np.ndarray, sigma: float) -> np.ndarray:
        return denoise(x.astype(np.float32), np.full(n, sigma, np.float32)).astype(np.float64)

    x = z.astype(np.float64) * sigmas[0]
    for i, (sigma, sigma_next) in enumerate(itertools.pairwise(sigmas)):
        if on_state is not None:
            on_state(i, float(sigma), x)
        d = (x - D(x, sigma)) / sigma  # Euler step
        x_next = x + (sigma_next - sigma) * d
        if sampler == "heun" and i < len(sigmas) - 2:  # 2nd-order correction, except at the last step to 0
            d_next = (x_next - D(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
    if on_state is not None:
        on_state(len(sigmas) - 1, 0.0, x)
    return x.astype(np.float32)


def ddim_timesteps(train_steps: int, steps: int) -> np.ndarray:
    """`steps` evenly spaced timesteps from train_steps-1 down to 0 (DDIM's uniform respacing)."""
    if not 1 <= steps <= train_steps:
        raise EdgeditError(f"`steps` must be 1..{train_steps} for this DDPM model (got {steps})")
    return np.round(np.linspace(train_steps - 1, 0, steps)).astype(np.int64)


def ddim_sample(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    z: np.ndarray,
    spec: DdpmSampler,
    steps: int,
    on_state: StateHook | None = None,
) -> np.ndarray:
    """Deterministic DDIM (Song et al. 2021, eta = 0) on DiT's linear-beta DDPM schedule.

    predict(x float32 (N,C,H,W), t float32 (N,)) -> the network output; its first C channels are
    epsilon (DiT's learned-variance channels follow and are not needed by deterministic DDIM).
    """
    betas = np.linspace(spec.beta_start, spec.beta_end, spec.train_steps, dtype=np.float64)
    alphas_bar = np.cumprod(1 - betas)
    timesteps = ddim_timesteps(spec.train_steps, steps)
    n, c = z.shape[:2]
    x = z.astype(np.float64)
    for i, t in enumerate(timesteps):
        if on_state is not None:
            on_state(i, float(t), x)
        eps = predict(x.astype(np.float32), np.full(n, t, np.float32))[:, :c].astype(np.float64)
        a, a_prev = alphas_bar[t], (alphas_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0)
        x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
    if on_state is not None:
        on_state(len(timesteps), 0.0, x)
    return x.astype(np.float32)


def sampling_words(spec, steps: int | None = None, sampler: str | None = None) -> str:
    """How a model of sampler `spec` is sampled, in words: "one step", "EDM heun, 18 steps"."""
    if spec.type == "one-step":
        return "one step"
    return f"{spec.type.upper()} {sampler or spec.sampler}, {steps or spec.steps} steps"


def default_labels(seeds: Sequence[int], num_classes: int) -> np.ndarray:
    return (np.asarray(seeds, dtype=np.int64) % num_classes).astype(np.int32)


MAX_SEED = 2**63 - 1  # PCG64 takes larger ones, but int64 arrays (seeds.npy, labels) do not
SMALL_REQUEST_BYTES = 64 << 20  # images this small fit any machine that runs edgedit


def check_request(seeds: Sequence[int], batch: int, steps: int | None, image_shape: Sequence[int]) -> None:
    """Seeds, batch and steps a sampler can honour, and images that fit in memory, before any work
    (`seeds` may be a range: checked without making its list)."""
    if len(seeds):
        lo, hi = (seeds[0], seeds[-1]) if isinstance(seeds, range) and seeds.step > 0 else (min(seeds), max(seeds))
        if not 0 <= lo <= hi <= MAX_SEED:
            raise EdgeditError(f"seeds must be integers in 0..2^63-1 (got {lo}..{hi})")
    if not 1 <= batch <= MAX_BATCH:
        raise EdgeditError(f"`batch` must be 1..{MAX_BATCH} (got {batch})")
    if steps is not None and not 1 <= steps <= MAX_SAMPLER_STEPS:
        raise EdgeditError(f"`steps` must be 1..{MAX_SAMPLER_STEPS} (got {steps})")
    needed = 4 * len(seeds) * math.prod(image_shape)
    if needed <= SMALL_REQUEST_BYTES:  # asking the OS costs more than a real-time call's whole budget
        return
    available = device.available_memory_bytes()
    if available is not None and needed > available // 2:
        raise EdgeditError(
            f"{len(seeds)} images of {'x'.join(map(str, image_shape))} need {needed / 2**30:.1f} GB "
            f"in memory, this machine has {available / 2**30:.1f} GB available; ask for fewer images (`seeds`)"
        )


def generate(
    backend: Backend,
    seeds: Sequence[int],
    labels: Sequence[int] | None = None,
    *,
    batch: int = 8,
    steps: int | None = None,
    sampler: str | None = None,
    on_eval: EvalHook | None = None,
    on_state: ChunkStateHook | None = None,
    noise: str | None = None,
) -> np.ndarray:
    """Images (len(seeds), C, H, W) float32 for the given per-sample seeds.

    One-step models take one evaluation; EDM denoisers sample `steps` steps (default: the model's
    sampler spec, 18 Heun steps). A static-batch model gets its exact batch (the last one padded).
    `on_state(first row, i, sigma_i, x_i)` sees the EDM trajectory of each chunk (ChunkStateHook).
    `noise`: the noise scheme (default: the one the model's metadata records).
    """
    meta = backend.meta
    cfg, spec = meta.config, meta.sampler
    shape = meta.inputs[0].concrete(1)[1:]
    check_request(seeds, batch, steps, shape)
    if labels is not None and not cfg.class_conditional:
        raise EdgeditError("this model is unconditional: it takes no class labels")
    if cfg.class_conditional and labels is None:
        labels = default_labels(seeds, cfg.num_classes)  # in range by construction
    elif cfg.class_conditional:
        labels = np.asarray(labels)
        if labels.shape != (len(seeds),) or labels.dtype.kind not in "iu":
            raise EdgeditError(
                f"class labels: {len(seeds)} integers wanted, one per seed (got shape {labels.shape}, {labels.dtype})"
            )
        outside = labels[(labels < 0) | (labels >= cfg.num_classes)]
        if outside.size:
            raise EdgeditError(
                f"class label {outside[0]} is outside this model's {cfg.num_classes} classes (0..{cfg.num_classes - 1})"
            )
        labels = labels.astype(np.int32)
    if meta.dynamic_batch:
        batch = min(max(batch, meta.batch["min"]), meta.batch["max"])
    else:
        batch = meta.batch["max"]  # static: exactly the exported batch
    if spec.type == "one-step":
        if steps is not None or sampler is not None:
            raise EdgeditError("a one-step generator takes no `steps` or `sampler` (it samples in one network call)")
    else:
        steps, sampler = steps or spec.steps, sampler or spec.sampler
    if spec.type == "edm":
        sigmas = karras_sigmas(steps, spec.sigma_min, spec.sigma_max, spec.rho)
    elif spec.type == "ddpm" and sampler != "ddim":
        raise EdgeditError(f"DDPM models sample with ddim, not {sampler}")
    in_name, out_name = meta.inputs[0].name, meta.outputs[0].name
    scheme = noise or spec.noise
    seeds = np.asarray(seeds, dtype=np.int64)

    images = None  # (len(seeds), ...) filled chunk by chunk: no list of chunks to concatenate
    with task("sampling images", len(seeds)) as advance:
        for start in range(0, len(seeds), batch):
            chunk = seeds[start : start + batch]
            z = noise_from_seeds(chunk, shape, scheme)  # the whole chunk in one draw
            extra = {"y": labels[start : start + batch]} if cfg.class_conditional else {}
            rows = max(len(chunk), meta.batch["min"]) if meta.dynamic_batch else batch
            evaluate = _Evaluation(backend, in_name, out_name, extra, rows, len(chunk), on_eval)
            hook = (lambda i, sigma, x, first=start: on_state(first, i, sigma, x)) if on_state else None
            if spec.type == "one-step":
                out = evaluate(z)
            elif spec.type == "edm":
                out = edm_sample(evaluate, z, sigmas, sampler, hook)
            else:
                out = ddim_sample(evaluate, z, spec, steps, hook)
            if images is None:
                images = np.empty((len(seeds), *out.shape[1:]), np.float32)
            images[start : start + len(chunk)] = out
            advance(len(chunk))
    return images if images is not None else np.zeros((0, *shape), np.float32)


class _Evaluation:
    """One network evaluation for a chunk of samples: its labels, padding to the batch the model
    takes, and the optional hook."""

    def __init__(
        self,
        backend: Backend,
        in_name: str,
        out_name: str,
        extra: dict[str, np.ndarray],
        rows: int,
        n: int,
        on_eval: EvalHook | None,
    ):
        self.backend, self.in_name, self.out_name, self.extra = backend, in_name, out_name, extra
        self.rows, self.n, self.on_eval = rows, n, on_eval
        self.level_name = "sigma" if any(s.name == "sigma" for s in backend.inputs) else "t"

    def __call__(self, x: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        """level: EDM's sigma, or a DDPM model's timestep t."""
        feeds = {self.in_name: x, **({self.level_name: level} if level is not None else {}), **self.extra}
        if self.on_eval is not None:
            self.on_eval(feeds)
        return self.backend.run(pad_batch(feeds, self.rows))[self.out_name][: self.n]
