"""Numpy samplers over any backend: one-step generation and EDM's Euler / Heun ODE solvers.

Noise comes from per-sample integer seeds (`noise_from_seeds`) and labels default to
seed % num_classes, so sample k is the same image on every backend and in any batch, within
each precision's tolerance. The ODE state is kept in float64 and the network runs in float32,
as NVlabs/edm `generate.py` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgedit.errors import EdgeditError
from edgedit.runtime.backends import Backend, pad_batch
from edgedit.runtime.noise import noise_from_seeds

SAMPLERS = ("heun", "euler")
# Called with the inputs of every network evaluation (e.g. to collect calibration data).
EvalHook = Callable[[dict[str, np.ndarray]], None]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """EDM's schedule: steps noise levels from sigma_max down to sigma_min (rho-warped), then 0."""
    if steps < 1:
        raise EdgeditError(f"--steps must be at least 1 (got {steps})")
    i = np.arange(steps, dtype=np.float64)
    ramp = i / max(steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return np.append(sigmas, 0.0)


def network_evaluations(steps: int, sampler: str) -> int:
    return 2 * steps - 1 if sampler == "heun" else steps


def edm_sample(denoise: Callable[[np.ndarray, np.ndarray], np.ndarray], z: np.ndarray, sigmas: np.ndarray,
               sampler: str = "heun") -> np.ndarray:
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
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        d = (x - D(x, sigma)) / sigma  # Euler step
        x_next = x + (sigma_next - sigma) * d
        if sampler == "heun" and i < len(sigmas) - 2:  # 2nd-order correction, except at the last step to 0
            d_next = (x_next - D(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
    return x.astype(np.float32)


def default_labels(seeds: Sequence[int], num_classes: int) -> np.ndarray:
    return (np.asarray(seeds, dtype=np.int64) % num_classes).astype(np.int32)


def generate(backend: Backend, seeds: Sequence[int], labels: Sequence[int] | None = None, *, batch: int = 8,
             steps: int | None = None, sampler: str | None = None, on_eval: EvalHook | None = None) -> np.ndarray:
    """Images (len(seeds), C, H, W) float32 for the given per-sample seeds.

    One-step models take one evaluation; EDM denoisers sample `steps` steps (default: the model's
    sampler spec, 18 Heun steps). A static-batch model gets its exact batch (the last one padded).
    """
    meta = backend.meta
    cfg, spec = meta.config, meta.sampler
    if spec["type"] not in ("one-step", "edm"):
        raise EdgeditError(f"this model has no edgedit sampler ({spec['type']}: {spec.get('note', '')})")
    if labels is not None and not cfg.class_conditional:
        raise EdgeditError("this model is unconditional: it takes no class labels")
    if cfg.class_conditional:
        labels = default_labels(seeds, cfg.num_classes) if labels is None else np.asarray(labels, np.int32)
        if labels.shape != (len(seeds),) or labels.min() < 0 or labels.max() >= cfg.num_classes:
            raise EdgeditError(f"class labels must be {len(seeds)} integers in [0, {cfg.num_classes})")
    if meta.dynamic_batch:
        batch = min(max(batch, meta.batch["min"]), meta.batch["max"])
    else:
        batch = meta.batch["max"]  # static: exactly the exported batch
    if spec["type"] == "edm":
        steps = steps or spec["steps"]
        sampler = sampler or spec["sampler"]
        sigmas = karras_sigmas(steps, spec["sigma_min"], spec["sigma_max"], spec["rho"])
    in_name, out_name = meta.inputs[0].name, meta.outputs[0].name
    shape = meta.inputs[0].concrete(1)[1:]

    images = []
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start:start + batch])
        z = noise_from_seeds(chunk, shape)
        extra = {"y": labels[start:start + batch]} if cfg.class_conditional else {}
        rows = max(len(chunk), meta.batch["min"]) if meta.dynamic_batch else batch
        evaluate = _Evaluation(backend, in_name, out_name, extra, rows, len(chunk), on_eval)
        images.append(evaluate(z) if spec["type"] == "one-step" else edm_sample(evaluate, z, sigmas, sampler))
    return np.concatenate(images)


class _Evaluation:
    """One network evaluation for a chunk of samples: its labels, padding to the batch the model
    takes, and the optional hook."""

    def __init__(self, backend: Backend, in_name: str, out_name: str, extra: dict[str, np.ndarray], rows: int,
                 n: int, on_eval: EvalHook | None):
        self.backend, self.in_name, self.out_name, self.extra = backend, in_name, out_name, extra
        self.rows, self.n, self.on_eval = rows, n, on_eval

    def __call__(self, x: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        feeds = {self.in_name: x, **({"sigma": sigma} if sigma is not None else {}), **self.extra}
        if self.on_eval is not None:
            self.on_eval(feeds)
        return self.backend.run(pad_batch(feeds, self.rows))[self.out_name][: self.n]
