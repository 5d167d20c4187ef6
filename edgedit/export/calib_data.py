"""Calibration data for INT8: the inputs a model really receives, saved as .npz keyed by input name.

A one-step generator receives unit-variance noise z (and labels); a multi-step EDM denoiser
receives noisy images along the sampler's trajectories at every step of the schedule, so those
are recorded from real sampling runs (every network evaluation of Heun's method). Seeds of
calibration data start at CALIBRATION_SEED and held-out data at HELDOUT_SEED, far from the
seeds `edgedit sample` uses by default (0, 1, ...). Torch-free.
"""

from __future__ import annotations

import math
import os

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import load_npz, same_file
from edgedit.contract.spec import ModelMeta
from edgedit.runtime.backends import Backend
from edgedit.runtime.samplers import generate, network_evaluations

CALIBRATION_SEED = 10_000_000
HELDOUT_SEED = 20_000_000
MAX_CALIBRATION_BYTES = 1 << 30  # thousands of samples of any edgedit model; more only slows calibration


def record_inputs(
    backend: Backend,
    samples: int,
    first_seed: int,
    steps: int | None = None,
    sampler: str | None = None,
    batch: int = 16,
    *,
    field: str = "samples",
) -> dict[str, np.ndarray]:
    """Every network input met while generating `samples` images from consecutive seeds (`field`: the
    caller's name for `samples`, in messages)."""
    if samples < 1:
        raise EdgeditError(f"calibration needs at least 1 sample (got {samples})")
    # Everything recorded must fit what `load_calibration` reads back, and memory: checked first.
    spec = backend.meta.sampler
    evaluations = 1 if spec.type == "one-step" else network_evaluations(steps or spec.steps, sampler or spec.sampler)
    row_bytes = sum(np.dtype(s.dtype).itemsize * math.prod(s.concrete(1)) for s in backend.inputs)
    needed = samples * evaluations * row_bytes
    if needed > MAX_CALIBRATION_BYTES:
        raise EdgeditError(
            f"{samples:,} samples x {evaluations} network calls of calibration inputs need "
            f"{needed / 2**30:.1f} GB, more than the {MAX_CALIBRATION_BYTES / 2**30:.0f} GB a "
            f"calibration file may hold; ask for fewer (`{field}`)"
        )
    rows: dict[str, list[np.ndarray]] = {s.name: [] for s in backend.inputs}

    def keep(feeds: dict[str, np.ndarray]) -> None:
        for name, value in feeds.items():
            rows[name].append(value.copy())

    generate(backend, range(first_seed, first_seed + samples), batch=batch, steps=steps, sampler=sampler, on_eval=keep)
    return {name: np.concatenate(parts) for name, parts in rows.items()}


def load_calibration(path: str | os.PathLike, meta: ModelMeta) -> dict[str, np.ndarray]:
    """Read an .npz (never pickled objects) and check it against the model's inputs. Integer inputs
    (class labels) of another integer type, numpy's int64 say, are cast when every value fits."""
    data = load_npz(path, "calibration file", max_bytes=MAX_CALIBRATION_BYTES)
    for spec in meta.inputs:
        array = data.get(spec.name)
        target = np.dtype(spec.dtype)
        if array is not None and target.kind == "i" and array.dtype.kind in "iu" and array.dtype != target:
            info = np.iinfo(target)
            if array.size and (array.min() < info.min or array.max() > info.max):
                raise EdgeditError(f"{path}: input '{spec.name}' has values outside {spec.dtype}")
            data[spec.name] = array.astype(target)
    check_calibration(data, meta, str(path))
    return data


FP16_MAX = float(np.finfo(np.float16).max)  # 65504: what an FP16 engine can receive


def check_calibration(data: dict[str, np.ndarray], meta: ModelMeta, where: str) -> None:
    names = [s.name for s in meta.inputs]
    missing = [n for n in names if n not in data]
    if missing:
        raise EdgeditError(
            f"{where}: calibration data lacks input(s) {', '.join(missing)}; the model's inputs are "
            f"{', '.join(names)} (make it with `edgedit calib-data`)"
        )
    rows = {n: data[n].shape[0] if data[n].ndim else 0 for n in names}
    if len(set(rows.values())) != 1 or not next(iter(rows.values())):
        raise EdgeditError(f"{where}: inputs must have the same, non-zero number of rows (got {rows})")
    for spec in meta.inputs:
        array = data[spec.name]
        expected = spec.concrete(array.shape[0])
        if array.dtype != np.dtype(spec.dtype) or array.shape != expected:
            raise EdgeditError(
                f"{where}: input '{spec.name}' must be {spec.dtype} of shape [rows, "
                f"{', '.join(map(str, expected[1:]))}], got {array.dtype} {list(array.shape)}"
            )
        # Values the model can meet: finite inputs (a NaN would become the INT8 scale), labels in range.
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise EdgeditError(
                f"{where}: input '{spec.name}' holds {int((~np.isfinite(array)).sum())} NaN or "
                "infinite values; calibration data must be what the model really receives"
            )
        if array.dtype.kind == "f" and array.size and np.abs(array).max() > FP16_MAX:
            raise EdgeditError(
                f"{where}: input '{spec.name}' reaches {float(np.abs(array).max()):.3g}, beyond FP16's "
                f"{FP16_MAX:g}: no deployed precision represents it, so no INT8 scale can be "
                "calibrated on it; calibration data must be what the model really receives"
            )
        if spec.name == "y" and array.size and not 0 <= array.min() <= array.max() < meta.config.num_classes:
            raise EdgeditError(
                f"{where}: labels 'y' must be 0..{meta.config.num_classes - 1} (got {array.min()}..{array.max()})"
            )
        if spec.name == "sigma" and array.size and not (array > 0).all():
            raise EdgeditError(f"{where}: noise levels 'sigma' must be positive (got min {array.min()})")


def write_calibration_data(
    model: str,
    output: str | os.PathLike,
    samples: int,
    seed: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """`edgedit calib-data`: (the arrays written to `output`, the backend that made them)."""
    from pathlib import Path

    from edgedit.contract.fileio import save_npz
    from edgedit.runtime.backends import load_backend

    if same_file(Path(model), Path(output)):
        raise EdgeditError(f"{output}: is the input model; write the calibration data elsewhere (`output` calib.npz)")
    backend = load_backend(model)
    data = record_inputs(backend, samples, CALIBRATION_SEED if seed is None else seed, steps, sampler)
    save_npz(output, data)
    return data, backend.title
