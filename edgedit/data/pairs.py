"""Offline teacher pairs: noise z -> teacher image x (+ label, + K trajectory states), GET's recipe.

A store is a folder:
  manifest.json             teacher checksum, sampler settings, seed range, shard list with checksums
  shard-000000/             one fixed-size shard (the last may be shorter), written whole or not at all
    seeds.npy  (n,) int64             sample k's integer seed
    z.npy      (n,C,H,W) float32      unit-variance noise = noise_from_seeds(seed) (not x sigma_max)
    image.npy  (n,C,H,W) float16|32   the teacher's final image, unclipped
    label.npy  (n,) int64             class labels (absent for unconditional teachers)
    trajectory.npy (n,K,C,H,W) float16  K intermediate ODE states x_i (their sigmas in the manifest)
    meta.json                          sha256 of every array file
Arrays are plain .npy, read by memory map. Re-running skips verified shards and regenerates
damaged or partial ones; `shard=(I, N)` makes worker I of N generate shards j with j % N == I,
into the same folder or separate ones whose shard-* folders are then copied together
(`edgedit pairs verify` rebuilds the manifest of the union).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file, write_text_atomic
from edgedit.contract.schedules import EDM_RHO, EDM_SAMPLER, EDM_SIGMA_MAX, EDM_SIGMA_MIN, EDM_STEPS

FORMAT = "edgedit.pairs/1"
ARRAYS = ("seeds", "z", "image", "label", "trajectory")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def trajectory_steps(steps: int, k: int) -> list[int]:
    """K states evenly spaced over the schedule's interior steps 1..steps-1 (the start is pure noise,
    the end is the image, both stored anyway)."""
    if k < 0 or k > steps - 1:
        raise EdgeditError(f"--trajectory must be 0..{steps - 1} for {steps} steps (got {k})")
    return np.rint(np.linspace(1, steps - 1, k)).astype(int).tolist() if k else []


def labels_for(seeds: np.ndarray, num_classes: int, class_balanced: bool) -> np.ndarray:
    """Balanced: seed % C. Otherwise drawn uniformly from the seed's own stream (as GET draws them)."""
    if class_balanced:
        return (seeds % num_classes).astype(np.int64)
    return np.array([np.random.Generator(np.random.PCG64([int(s), 1])).integers(num_classes) for s in seeds], np.int64)


def verify_shard(folder: Path) -> dict[str, Any] | None:
    """The shard's meta if every file is present with its recorded checksum, else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        for name, digest in meta["sha256"].items():
            if sha256_file(folder / f"{name}.npy") != digest:
                return None
        return meta
    except (OSError, ValueError, KeyError):
        return None


@dataclass
class PairsPlan:
    teacher: dict[str, Any]
    sampler: dict[str, Any]
    trajectory: dict[str, Any]
    shape: list[int]
    num_classes: int
    image_dtype: str
    class_balanced: bool
    first_seed: int
    count: int
    shard_size: int
    source: str = "edgedit pairs generate"

    @property
    def shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_seeds(self, index: int) -> np.ndarray:
        start = self.first_seed + index * self.shard_size
        return np.arange(start, min(start + self.shard_size, self.first_seed + self.count), dtype=np.int64)

    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "edgedit_version": __version__, "source": self.source, "teacher": self.teacher,
                "sampler": self.sampler, "trajectory": self.trajectory, "shape": self.shape,
                "num_classes": self.num_classes, "image_dtype": self.image_dtype, "class_balanced": self.class_balanced,
                "seeds": {"first": self.first_seed, "count": self.count}, "shard_size": self.shard_size}


def write_manifest(folder: Path, header: dict[str, Any], expected_shards: int) -> dict[str, Any]:
    """Rebuild manifest.json from the verified shards present."""
    shards, damaged = [], []
    for path in sorted(folder.glob("shard-*")):
        if path.is_dir():
            meta = verify_shard(path)
            (shards if meta else damaged).append({"name": path.name, **(meta or {})})
    manifest = {**header, "shards": shards, "complete": len(shards) == expected_shards and not damaged,
                "expected_shards": expected_shards, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def write_shard(folder: Path, index: int, arrays: dict[str, np.ndarray], first_seed: int) -> None:
    """All of a shard's files appear at once: written in a private folder, then renamed into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{shard_name(index)}.", suffix=".partial", dir=folder))
    try:
        digests = {}
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
            digests[name] = sha256_file(staging / f"{name}.npy")
        meta = {"index": index, "first_seed": int(first_seed), "count": len(arrays["seeds"]), "sha256": digests}
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        final = folder / shard_name(index)
        if final.exists():
            shutil.rmtree(final)  # a damaged earlier attempt
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_existing(folder: Path, header: dict[str, Any]) -> None:
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return
    try:
        old = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return  # rebuilt at the end
    keys = ("teacher", "sampler", "trajectory", "shape", "image_dtype", "class_balanced", "seeds", "shard_size")
    differing = [k for k in keys if old.get(k) != header.get(k)]
    if differing:
        raise EdgeditError(f"{folder}: holds pairs made with other settings ({', '.join(differing)} differ); "
                           "use another output folder, or the same settings to continue it")


def generate_pairs(teacher: str | os.PathLike, out: str | os.PathLike, count: int, steps: int = 18,
                   sampler: str = "heun", trajectory: int = 0, class_balanced: bool = False,
                   shard: tuple[int, int] = (0, 1), shard_size: int = 1024, first_seed: int = 0, batch: int = 64,
                   image_dtype: str = "float16", device: str = "cpu",
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate (or complete) a pairs store; returns its manifest."""
    from edgedit.runtime.backends import RunOptions, load_backend
    from edgedit.runtime.samplers import ddim_timesteps, generate, karras_sigmas

    worker, workers = shard
    if not 0 <= worker < workers:
        raise EdgeditError(f"--shard {worker}/{workers}: need 0 <= I < N")
    if count < 1 or shard_size < 1:
        raise EdgeditError("-n and --shard-size must be at least 1")
    if image_dtype not in ("float16", "float32"):
        raise EdgeditError("--image-dtype must be float16 or float32")
    teacher = Path(teacher)
    backend = load_backend(teacher, options=RunOptions(device=device))
    spec = backend.meta.sampler
    if spec["type"] not in ("edm", "ddpm"):
        raise EdgeditError(f"{teacher}: a teacher must be a multi-step denoiser (EDM, or an official DiT), this is a "
                           f"{backend.meta.config.kind}")
    cfg = backend.meta.config
    states = trajectory_steps(steps, trajectory)
    if spec["type"] == "edm":  # noise level of each state: EDM's sigma, or the DDPM timestep
        levels = karras_sigmas(steps, spec["sigma_min"], spec["sigma_max"], spec["rho"])
    else:
        sampler = "ddim"
        levels = ddim_timesteps(spec["train_steps"], steps)
    plan = PairsPlan(
        teacher={"file": teacher.name, "sha256": sha256_file(teacher), "config": cfg.to_dict()},
        sampler={**{k: v for k, v in spec.items() if k not in ("steps", "sampler", "preconditioning")},
                 "sampler": sampler, "steps": steps, "noise": "edgedit.runtime.noise.noise_from_seeds"},
        trajectory={"k": trajectory, "steps": states,
                    ("sigmas" if spec["type"] == "edm" else "timesteps"): [float(levels[i]) for i in states]},
        shape=[cfg.in_channels, cfg.input_size, cfg.input_size], num_classes=cfg.num_classes, image_dtype=image_dtype,
        class_balanced=class_balanced, first_seed=first_seed, count=count, shard_size=shard_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = plan.header()
    check_existing(out, header)
    for index in range(plan.shards):
        if index % workers != worker or verify_shard(out / shard_name(index)):
            continue
        seeds = plan.shard_seeds(index)
        labels = labels_for(seeds, cfg.num_classes, class_balanced) if cfg.class_conditional else None
        traj = np.zeros((len(seeds), len(states), *plan.shape), np.float16) if states else None

        def keep(first: int, i: int, sigma: float, x: np.ndarray, traj=traj) -> None:
            if traj is not None and i in states:
                traj[first: first + len(x), states.index(i)] = x

        images = generate(backend, seeds, labels, batch=batch, steps=steps, sampler=sampler, on_state=keep)
        from edgedit.runtime.noise import noise_from_seeds

        arrays = {"seeds": seeds, "z": noise_from_seeds(seeds, plan.shape), "image": images.astype(image_dtype)}
        if labels is not None:
            arrays["label"] = labels
        if traj is not None:
            arrays["trajectory"] = traj
        write_shard(out, index, arrays, seeds[0])
        if progress is not None:
            progress(len(seeds))
    return write_manifest(out, header, plan.shards)


def verify_pairs(folder: str | os.PathLike) -> dict[str, Any]:
    """Check every shard's checksums and rebuild the manifest (e.g. after copying parts together)."""
    folder = Path(folder)
    try:
        header = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        raise EdgeditError(
            f"{folder}: no manifest.json; not a pairs store (make one with `edgedit pairs generate`)") from None
    except json.JSONDecodeError as err:
        raise EdgeditError(f"{folder}/manifest.json: damaged ({err})") from err
    keep = {k: v for k, v in header.items() if k not in ("shards", "complete", "expected_shards", "updated")}
    return write_manifest(folder, keep, header.get("expected_shards", len(header.get("shards", []))))


class PairsStore:
    """Random access to a pairs store through memory maps (nothing is read until indexed)."""

    def __init__(self, folder: str | os.PathLike, require_complete: bool = True):
        self.folder = Path(folder)
        try:
            self.manifest = json.loads((self.folder / "manifest.json").read_text())
        except FileNotFoundError:
            raise EdgeditError(f"{self.folder}: no manifest.json; not a pairs store") from None
        if self.manifest.get("format") != FORMAT:
            raise EdgeditError(f"{self.folder}: not an edgedit pairs store (format {self.manifest.get('format')!r})")
        if require_complete and not self.manifest["complete"]:
            raise EdgeditError(f"{self.folder}: incomplete ({len(self.manifest['shards'])} of "
                               f"{self.manifest['expected_shards']} shards verified); finish it with `edgedit pairs "
                               "generate`"
                               " (same settings) or check it with `edgedit pairs verify`")
        self.shards = []
        for entry in self.manifest["shards"]:
            path = self.folder / entry["name"]
            if not (path / "meta.json").exists():
                raise EdgeditError(f"{path}: missing; run `edgedit pairs verify {self.folder}`")
            self.shards.append({name: np.load(path / f"{name}.npy", mmap_mode="r")
                                for name in ARRAYS if name in entry["sha256"]})
        self.offsets = np.cumsum([0] + [len(s["seeds"]) for s in self.shards])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[dict[str, np.ndarray], int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.shards[shard], index - int(self.offsets[shard])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        shard, row = self.locate(index)
        return {name: np.array(array[row]) for name, array in shard.items()}

    def column(self, name: str) -> StoreColumn:
        if name not in self.shards[0]:
            raise EdgeditError(f"{self.folder}: the pairs have no '{name}' arrays")
        return StoreColumn(self, name)


class StoreColumn:
    """One array of a store across its shards, indexed by an integer array (reads only those rows)."""

    def __init__(self, store: PairsStore, name: str):
        self.store, self.name = store, name
        self.dtype = store.shards[0][name].dtype
        self.shape = (len(store), *store.shards[0][name].shape[1:])

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index)
        shard = np.searchsorted(self.store.offsets, index, side="right") - 1
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = self.store.shards[s][self.name][index[mask] - self.store.offsets[s]]
        return out  # a writable copy of one row


def torch_dataset(folder: str | os.PathLike, trajectory: bool = False):
    """A torch Dataset over a store: items (z, image float32, label or -1[, trajectory float32])."""
    import torch

    store = PairsStore(folder)

    class PairsDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(store)

        def __getitem__(self, index: int):
            item = store[index]
            label = torch.tensor(int(item["label"]) if "label" in item else -1)
            out = (torch.from_numpy(item["z"]), torch.from_numpy(item["image"].astype(np.float32)), label)
            if trajectory:
                out += (torch.from_numpy(item["trajectory"].astype(np.float32)),)
            return out

    dataset = PairsDataset()
    dataset.store = store
    return dataset


#################################################################################
#                          GET's released pairs                                 #
#################################################################################


def _load_get_file(path: Path):
    from edgedit.models.torch_files import load_tensors

    return load_tensors(path, "torch.save file")


def import_get(src: str | os.PathLike, out: str | os.PathLike, image_dtype: str = "float16",
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Convert GET's EDM CIFAR-10 pairs (image/<last seed>.pkl, latent/<last seed>.pkl, torch.save
    archives; unconditional images float64, conditional latents [z, one-hot labels]) into a store.
    One GET file becomes one shard; its seeds end at the file's number."""
    src, out = Path(src), Path(out)
    images_dir, latents_dir = src / "image", src / "latent"
    if not images_dir.is_dir() or not latents_dir.is_dir():
        raise EdgeditError(f"{src}: expected GET's layout, image/*.pkl and latent/*.pkl")
    names = sorted((p.name for p in images_dir.glob("*.pkl")), key=lambda n: int(Path(n).stem))
    if not names:
        raise EdgeditError(f"{images_dir}: no .pkl files")
    missing = [n for n in names if not (latents_dir / n).is_file()]
    if missing:
        raise EdgeditError(f"{latents_dir}: missing {', '.join(missing[:3])} (every image file needs its latent file)")
    out.mkdir(parents=True, exist_ok=True)
    shape, num_classes, first, total, size = None, 0, None, 0, 0
    for index, name in enumerate(names):
        image, latent = _load_get_file(images_dir / name), _load_get_file(latents_dir / name)
        labels = None
        if isinstance(latent, (list, tuple)):  # conditional: [z, one-hot labels]
            latent, onehot = latent
            labels = onehot.argmax(1).numpy().astype(np.int64)
            num_classes = int(onehot.shape[1])
        z, x = latent.float().numpy(), image.double().numpy()
        if z.shape != x.shape or z.ndim != 4:
            raise EdgeditError(f"{name}: latent {tuple(z.shape)} and image {tuple(x.shape)} must both be (n, C, H, W)")
        last = int(Path(name).stem)
        seeds = np.arange(last - len(z) + 1, last + 1, dtype=np.int64)
        shape, first = list(z.shape[1:]), seeds[0] if first is None else first
        arrays = {"seeds": seeds, "z": z.astype(np.float32), "image": x.astype(image_dtype)}
        if labels is not None:
            arrays["label"] = labels
        if not verify_shard(out / shard_name(index)):
            write_shard(out, index, arrays, seeds[0])
        total, size = total + len(z), max(size, len(z))
        if progress is not None:
            progress(len(z))
    header = {"format": FORMAT, "edgedit_version": __version__, "source": f"GET (locuslab/get) pairs from {src.name}",
              "teacher": {"file": "EDM CIFAR-10 (NVlabs/edm) via GET", "sha256": None, "config": None},
              "sampler": {"type": "edm", "sampler": EDM_SAMPLER, "steps": EDM_STEPS, "sigma_min": EDM_SIGMA_MIN,
                          "sigma_max": EDM_SIGMA_MAX, "rho": EDM_RHO, "noise": "stored by GET (torch generator per "
                                                                               "seed): not regenerable with "
                                               "edgedit's numpy noise"},
              "trajectory": {"k": 0, "steps": [], "sigmas": []}, "shape": shape, "num_classes": num_classes,
              "image_dtype": image_dtype, "class_balanced": False, "seeds": {"first": int(first), "count": total},
              "shard_size": size}
    return write_manifest(out, header, len(names))
