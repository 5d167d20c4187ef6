"""`pairs import-get`: GET's released EDM CIFAR-10 pairs (torch.save files) into a store."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.contract.errors import EdgeditError
from edgedit.contract.progress import task
from edgedit.contract.schedules import EDM_RHO, EDM_SAMPLER, EDM_SIGMA_DATA, EDM_SIGMA_MAX, EDM_SIGMA_MIN, EDM_STEPS
from edgedit.contract.schema import MAX_CHANNELS, MAX_SIDE, parse
from edgedit.data.pairs.manifest import FORMAT, MAX_CLASSES, MAX_SHARD_SIZE, ShardMeta, StoreSettings
from edgedit.data.pairs.shards import Damaged, all_finite, inspect_shard, write_shard
from edgedit.data.pairs.writer import store_writer, write_manifest

log = logging.getLogger("edgedit")

# latent/<last seed>.pkl, the seed zero-padded to 9 digits
# (https://github.com/locuslab/get/blob/main/data/generate.py). With several GPUs a file's batches
# interleave with other ranks', so its seeds are not recoverable from the files; an import numbers
# the pairs in GET's own reading order (files by number, as locuslab/get's datasets.py loads them).
GET_FILE = re.compile(r"(\d{1,18})\.pkl")


def _get_numbers(folder: Path) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".pkl":
            continue
        match = GET_FILE.fullmatch(path.name)
        if not match:
            raise EdgeditError(
                f"{path}: not a GET pairs file name (GET names each file by its last seed, e.g. 000049999.pkl)"
            )
        numbers[path.name] = int(match[1])
    by_number: dict[int, str] = {}
    for name, number in numbers.items():
        if number in by_number:
            raise EdgeditError(
                f"{folder}: {by_number[number]} and {name} both end at seed {number}, so their seeds "
                "overlap; remove the duplicate"
            )
        by_number[number] = name
    return numbers


def _tensor_array(value: Any, path: Path, what: str) -> np.ndarray:
    import torch

    if not torch.is_tensor(value) or value.ndim != 4 or not value.is_floating_point():
        found = (
            f"a {value.dtype} tensor of shape {tuple(value.shape)}"
            if torch.is_tensor(value)
            else f"a {type(value).__name__}"
        )
        raise EdgeditError(f"{path}: expected {what} as a float (n, C, H, W) tensor, found {found}")
    n, c, h, w = value.shape
    if not (1 <= n <= MAX_SHARD_SIZE and 1 <= c <= MAX_CHANNELS and h == w and 1 <= h <= MAX_SIDE):
        raise EdgeditError(
            f"{path}: {what} of shape {tuple(value.shape)}: need 1..{MAX_SHARD_SIZE} square images of "
            f"1..{MAX_CHANNELS} channels"
        )
    try:
        array = value.detach().to("cpu", torch.float64).numpy()
    except Exception as err:  # a sparse, quantized ... tensor that weights_only loading admits
        raise EdgeditError(f"{path}: {what} is not a plain dense tensor ({str(err)[:80]})") from None
    if not all_finite(array):
        raise EdgeditError(f"{path}: {what} holds NaN or infinite values")
    return array


def _read_get_latent(path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(z float32, labels or None, classes) of a latent file: z, or [z, one-hot labels] when conditional."""
    import torch

    value = _load_get_file(path)
    onehot = None
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(torch.is_tensor(v) for v in value):
            raise EdgeditError(
                f"{path}: a conditional GET latent file holds [z, one-hot labels], this holds a "
                f"{type(value).__name__} of {len(value)} items"
            )
        value, onehot = value
    z = _tensor_array(value, path, "noise")
    if onehot is None:
        return z.astype(np.float32), None, 0
    if onehot.ndim != 2 or onehot.shape[0] != len(z) or not 1 <= onehot.shape[1] <= MAX_CLASSES:
        raise EdgeditError(
            f"{path}: labels of shape {tuple(onehot.shape)}: need one-hot ({len(z)}, classes) for "
            f"{len(z)} noise samples"
        )
    labels = onehot.argmax(1).numpy().astype(np.int64)
    return z.astype(np.float32), labels, int(onehot.shape[1])


def _load_get_file(path: Path):
    from edgedit.models.torch_files import load_tensors

    return load_tensors(path, "torch.save file")


def import_get(
    src: str | os.PathLike,
    out: str | os.PathLike,
    image_dtype: str = "float16",
    force: bool = False,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Convert GET's EDM CIFAR-10 pairs (image/<last seed>.pkl, latent/<last seed>.pkl, torch.save
    archives; unconditional images float64, conditional latents [z, one-hot labels]) into a store.
    One GET file becomes one shard. Every latent file is read first (sizes, shapes, classes), so the
    store's settings are known before its first shard."""
    src, out = Path(src), Path(out)
    if image_dtype not in ("float16", "float32"):
        raise EdgeditError("`image_dtype` must be float16 or float32")
    images_dir, latents_dir = src / "image", src / "latent"
    if not images_dir.is_dir() or not latents_dir.is_dir():
        raise EdgeditError(f"{src}: expected GET's layout, image/*.pkl and latent/*.pkl")
    numbers = _get_numbers(images_dir)
    if not numbers:
        raise EdgeditError(f"{images_dir}: no .pkl files")
    latent_numbers = _get_numbers(latents_dir)
    missing = sorted(set(numbers) - set(latent_numbers))
    if missing:
        raise EdgeditError(f"{latents_dir}: missing {', '.join(missing[:3])} (every image file needs its latent file)")
    extra = sorted(set(latent_numbers) - set(numbers))
    if extra:
        raise EdgeditError(f"{images_dir}: missing {', '.join(extra[:3])} (every latent file needs its image file)")
    names = sorted(numbers, key=numbers.get)
    counts, shape, num_classes, total = [], None, None, 0
    for name in names:
        z, _, classes = _read_get_latent(latents_dir / name)
        if shape is None:
            shape, num_classes = list(z.shape[1:]), classes
        elif list(z.shape[1:]) != shape or classes != num_classes:
            raise EdgeditError(
                f"{latents_dir / name}: {'x'.join(map(str, z.shape[1:]))} noise with {classes} classes, "
                f"the first file's is {'x'.join(map(str, shape))} with {num_classes}"
            )
        counts.append(len(z))
        total += len(z)
        # A file's seeds end at its number and never repeat, so the files up to number m hold at most
        # m + 1 pairs (seeds 0..m); more means overlapping (or negative) seeds: not one GET run.
        if total > numbers[name] + 1:
            raise EdgeditError(
                f"{latents_dir / name}: the files up to this one hold {total} pairs but their names "
                f"allow at most {numbers[name] + 1} seeds (0..{numbers[name]}): their seeds overlap or "
                "start below 0 (files of two GET runs mixed?)"
            )
    settings = parse(
        StoreSettings,
        {
            "format": FORMAT,
            "edgedit_version": __version__,
            "source": f"GET (locuslab/get) pairs from {src.resolve().name or src}",
            "teacher": {"file": "EDM CIFAR-10 (NVlabs/edm) via GET", "sha256": None, "config": None},
            "sampler": {
                "type": "edm",
                "sigma_min": EDM_SIGMA_MIN,
                "sigma_max": EDM_SIGMA_MAX,
                "rho": EDM_RHO,
                "sigma_data": EDM_SIGMA_DATA,
                "sampler": EDM_SAMPLER,
                "steps": EDM_STEPS,
                "noise": "stored by GET (a torch generator per seed): not regenerable with edgedit's noise",
            },
            "trajectory": {"k": 0, "steps": [], "sigmas": []},
            "shape": shape,
            "num_classes": num_classes,
            "image_dtype": image_dtype,
            "class_balanced": False,
            "seeds": {"first": 0, "count": total},
            "shard_size": max(counts),
            "shard_counts": counts,
            "files": names,
        },
        src,
        "GET pairs folder",
    )
    with store_writer(out, settings, force, say) as layout, task("importing GET pairs", total) as advance:
        known: dict[int, ShardMeta] = {}
        for index, name in enumerate(names):
            first, n = layout.plan[index]
            try:
                known[index], _ = inspect_shard(out, index, layout)
                advance(n)
                continue
            except Damaged:
                pass
            z, labels, _ = _read_get_latent(latents_dir / name)
            if len(z) != n:
                raise EdgeditError(f"{latents_dir / name}: changed while importing ({len(z)} pairs, {n} before)")
            image = _tensor_array(_load_get_file(images_dir / name), images_dir / name, "images")
            if image.shape != z.shape:
                raise EdgeditError(
                    f"{images_dir / name}: images {image.shape} do not match the latent file's noise {z.shape}"
                )
            arrays = {"seeds": np.arange(first, first + n, dtype=np.int64), "z": z, "image": image.astype(image_dtype)}
            if labels is not None:
                arrays["label"] = labels
            known[index] = write_shard(out, index, arrays, layout)
            advance(n)
        return write_manifest(out, layout, known)
