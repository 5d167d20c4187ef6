"""Offline teacher pairs: noise z -> teacher image x (+ label, + K trajectory states), GET's recipe.

A store is a folder (format edgedit.pairs/2):
  manifest.json   the store's settings, written before its first shard: format, edgedit_version,
                  source, teacher {file, sha256, config}, sampler, trajectory {k, steps, sigmas or
                  timesteps}, shape [C, H, H], num_classes, image_dtype, class_balanced,
                  seeds {first, count}, shard_size (an import adds shard_counts and files), and
                  settings_sha256, their digest (the teacher's file name aside); then the verified
                  shards (each one's meta.json plus its name), expected_shards, complete, updated
  shard-NNNNNN/   shard NNNNNN (6 digits), written whole or not at all:
    seeds.npy      (n,) int64             sample k's integer seed
    z.npy          (n,C,H,W) float32      unit-variance noise = noise_from_seeds(seed, scheme) (not x sigma_max)
    image.npy      (n,C,H,W) float16|32   the teacher's final image, unclipped
    label.npy      (n,) int64             class labels in [0, num_classes) (only when num_classes > 0)
    trajectory.npy (n,K,C,H,W) float16    K intermediate ODE states x_i (only when K > 0)
    meta.json      {index, settings_sha256, first_seed, count, sha256: {array: digest}}
  .lock           held (fcntl.flock) by the one process writing the store
Shard j holds seeds first + j*shard_size onwards (the last shard may be shorter); an import's shard
j holds shard_counts[j] pairs, numbered in the order of GET's files.

Writers (`generate`, `import-get`, `verify`) hold .lock exclusively, so a second writer is refused
at once rather than mixing shards; parallel --shard I/N workers write a folder each and their
shard-* folders are then copied together (`edgedit pairs verify` rebuilds the manifest of the union).
A run with other settings refuses a store (--force starts it over); a re-run skips verified shards
and redoes damaged ones. Readers (`PairsStore`: distill, design sweep) check everything before use:
the manifest against its schema, shard names (plain shard-NNNNNN folders, no links), every file's
checksum, shape and dtype, seeds, labels and finite values. Arrays are plain .npy read by memory map
(never unpickled).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from edgedit import __version__
from edgedit.contract.config import require_model_file
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file, write_text_atomic
from edgedit.contract.schedules import (
    EDM_RHO,
    EDM_SAMPLER,
    EDM_SIGMA_DATA,
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    EDM_STEPS,
    MAX_SAMPLER_STEPS,
    NOISE_SCHEME,
    DdpmSampler,
    EdmSampler,
)
from edgedit.contract.schema import MAX_CHANNELS, MAX_SIDE, Name, Record, Sha256, check_shard, load_json, parse

log = logging.getLogger("edgedit")

FORMAT = "edgedit.pairs/2"
ARRAYS = ("seeds", "z", "image", "label", "trajectory")
MANIFEST = "manifest.json"
LOCK = ".lock"
SHARD_NAME = re.compile(r"shard-\d{6}")
# Bounds: far above any real store, low enough that a hostile manifest cannot make a reader loop or
# allocate without end.
MAX_PAIRS = 1 << 31
MAX_SHARD_SIZE = 1 << 20
MAX_SHARDS = 100_000
MAX_SEED = 1 << 62
MAX_CLASSES = 100_000
MANIFEST_BYTES = 128 << 20
META_BYTES = 1 << 20
REGENERATE = "re-generate the store (`edgedit pairs generate ... --force`)"


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def _interior_steps(steps: int, k: int) -> list[int]:
    return np.rint(np.linspace(1, steps - 1, k)).astype(int).tolist() if k else []


def trajectory_steps(steps: int, k: int) -> list[int]:
    """K states evenly spaced over the schedule's interior steps 1..steps-1 (the start is pure noise,
    the end is the image, both stored anyway)."""
    if k < 0 or k > steps - 1:
        raise EdgeditError(f"--trajectory must be 0..{steps - 1} for {steps} steps (got {k})")
    return _interior_steps(steps, k)


def labels_for(seeds: np.ndarray, num_classes: int, class_balanced: bool) -> np.ndarray:
    """Balanced: seed % C. Otherwise drawn uniformly from the seed's own stream (as GET draws them)."""
    if class_balanced:
        return (seeds % num_classes).astype(np.int64)
    return np.array([np.random.Generator(np.random.PCG64([int(s), 1])).integers(num_classes) for s in seeds], np.int64)


#################################################################################
#                                  Records                                      #
#################################################################################

Level = Annotated[float, Field(ge=0, le=1e6)]  # an EDM sigma or a DDPM timestep


class TeacherRecord(Record):
    file: Name
    sha256: Sha256 | None  # None for GET's pairs (EDM's teacher is not on disk)
    config: dict[str, Any] | None


# The sampler schema is the models' (contract/schedules.py); a store's noise may also be a description
# of noise edgedit did not draw (GET's stores: a torch generator per seed).
PairsNoise = Annotated[str, Field(max_length=256)]


class EdmPairsSampler(EdmSampler):
    noise: PairsNoise


class DdpmPairsSampler(DdpmSampler):
    noise: PairsNoise


class TrajectoryRecord(Record):
    k: int = Field(ge=0, le=MAX_SAMPLER_STEPS)
    steps: list[int] = Field(max_length=MAX_SAMPLER_STEPS)
    sigmas: list[Level] | None = Field(default=None, max_length=MAX_SAMPLER_STEPS)  # EDM stores
    timesteps: list[Level] | None = Field(default=None, max_length=MAX_SAMPLER_STEPS)  # DDPM stores


class SeedRange(Record):
    first: int = Field(ge=0, le=MAX_SEED)
    count: int = Field(ge=1, le=MAX_PAIRS)


class StoreSettings(Record):
    """What a store holds; written before its first shard, and every shard carries its digest."""

    format: Literal["edgedit.pairs/2"]
    edgedit_version: Annotated[str, Field(min_length=1, max_length=64)]
    source: Annotated[str, Field(min_length=1, max_length=1024)]
    teacher: TeacherRecord
    sampler: Annotated[EdmPairsSampler | DdpmPairsSampler, Field(discriminator="type")]
    trajectory: TrajectoryRecord
    shape: list[Annotated[int, Field(ge=1, le=MAX_SIDE)]] = Field(min_length=3, max_length=3)
    num_classes: int = Field(ge=0, le=MAX_CLASSES)
    image_dtype: Literal["float16", "float32"]
    class_balanced: bool
    seeds: SeedRange
    shard_size: int = Field(ge=1, le=MAX_SHARD_SIZE)
    shard_counts: list[Annotated[int, Field(ge=1, le=MAX_SHARD_SIZE)]] | None = Field(
        default=None, max_length=MAX_SHARDS
    )
    files: list[Name] | None = Field(default=None, max_length=MAX_SHARDS)  # an import's source file per shard


class ShardMeta(Record):
    """A shard's meta.json."""

    index: int = Field(ge=0, lt=MAX_SHARDS)
    settings_sha256: Sha256
    first_seed: int = Field(ge=0, le=MAX_SEED)
    count: int = Field(ge=1, le=MAX_SHARD_SIZE)
    sha256: dict[Literal["seeds", "z", "image", "label", "trajectory"], Sha256]


class ShardEntry(ShardMeta):
    name: Annotated[str, Field(pattern=r"^shard-\d{6}$")]


class ManifestHeader(StoreSettings):
    """manifest.json as `pairs verify` and a resumed run read it: the settings matter, the shard
    list is rebuilt from the folder."""

    settings_sha256: Sha256
    shards: list[Any] = Field(max_length=MAX_SHARDS)
    expected_shards: int = Field(ge=1, le=MAX_SHARDS)
    complete: bool
    updated: Annotated[str, Field(max_length=64)]


class Manifest(ManifestHeader):
    """manifest.json as readers need it: every shard entry checked too."""

    shards: list[ShardEntry] = Field(max_length=MAX_SHARDS)


def settings_dict(record: StoreSettings) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_unset=True, include=set(StoreSettings.model_fields))


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a store what it is: a teacher is its checksum, whatever its file's name."""
    return {**settings, "teacher": {k: v for k, v in settings["teacher"].items() if k != "file"}}


def settings_digest(settings: dict[str, Any]) -> str:
    """sha256 of the settings' identity as canonical JSON."""
    return hashlib.sha256(json.dumps(_identity(settings), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Layout:
    """What a store's settings say its shards hold."""

    settings: StoreSettings
    as_dict: dict[str, Any]
    digest: str
    plan: tuple[tuple[int, int], ...]  # (first seed, count) of each shard

    @property
    def arrays(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """name -> (shape of one row, dtype) of every array a shard holds."""
        s = self.settings
        shape = tuple(s.shape)
        out = {
            "seeds": ((), np.dtype(np.int64)),
            "z": (shape, np.dtype(np.float32)),
            "image": (shape, np.dtype(s.image_dtype)),
        }
        if s.num_classes:
            out["label"] = ((), np.dtype(np.int64))
        if s.trajectory.k:
            out["trajectory"] = ((s.trajectory.k, *shape), np.dtype(np.float16))
        return out


def _invalid(where: Any, field: str, problem: str, fix: str = REGENERATE) -> EdgeditError:
    return EdgeditError(f"{where}: not a valid pairs manifest: field '{field}': {problem}; {fix}")


def layout_of(s: StoreSettings, where: Any, fix: str = REGENERATE) -> Layout:
    """The settings' cross-field rules (parse checks each field alone), and the shard plan they imply."""
    c, h, w = s.shape
    if c > MAX_CHANNELS or h != w:
        raise _invalid(where, "shape", f"need [C, H, H] with C <= {MAX_CHANNELS} (got {s.shape})", fix)
    sampler, trajectory = s.sampler, s.trajectory
    if trajectory.k > sampler.steps - 1:
        raise _invalid(where, "trajectory.k", f"at most steps - 1 = {sampler.steps - 1} (got {trajectory.k})", fix)
    if trajectory.steps != _interior_steps(sampler.steps, trajectory.k):
        raise _invalid(
            where,
            "trajectory.steps",
            f"{trajectory.k} states of {sampler.steps} steps are at "
            f"{_interior_steps(sampler.steps, trajectory.k)} (got {trajectory.steps})",
            fix,
        )
    levels, other = ("sigmas", "timesteps") if sampler.type == "edm" else ("timesteps", "sigmas")
    listed = getattr(trajectory, levels)
    if listed is None or len(listed) != trajectory.k or getattr(trajectory, other) is not None:
        raise _invalid(
            where, f"trajectory.{levels}", f"a {sampler.type} store lists {trajectory.k} {levels} (and no {other})", fix
        )
    if s.seeds.first + s.seeds.count - 1 > MAX_SEED:
        raise _invalid(where, "seeds", f"seeds end beyond {MAX_SEED}", fix)
    if s.shard_counts is None:
        if s.files is not None:
            raise _invalid(where, "files", "only an import (with shard_counts) lists source files", fix)
        shards = -(-s.seeds.count // s.shard_size)
        if shards > MAX_SHARDS:
            raise _invalid(
                where,
                "shard_size",
                f"{s.seeds.count} pairs in shards of {s.shard_size} make {shards} shards, more than {MAX_SHARDS}",
                fix,
            )
        plan = tuple(
            (s.seeds.first + j * s.shard_size, min(s.shard_size, s.seeds.count - j * s.shard_size))
            for j in range(shards)
        )
    else:
        counts = s.shard_counts
        if not counts or sum(counts) != s.seeds.count or max(counts) > s.shard_size:
            raise _invalid(
                where,
                "shard_counts",
                f"need one or more counts of at most shard_size {s.shard_size} that sum to seeds.count {s.seeds.count}",
                fix,
            )
        if s.files is not None and len(s.files) != len(counts):
            raise _invalid(where, "files", f"one per shard ({len(counts)}), got {len(s.files)}", fix)
        firsts = s.seeds.first + np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64)
        plan = tuple((int(f), n) for f, n in zip(firsts, counts, strict=True))
    as_dict = settings_dict(s)
    return Layout(s, as_dict, settings_digest(as_dict), plan)


def read_manifest(folder: Path, schema: type[ManifestHeader] = Manifest) -> tuple[ManifestHeader, Layout]:
    """The store's manifest, checked: its schema, settings, digest and (with Manifest) its shard list."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise EdgeditError(f"{folder}: no such folder")
    if not os.path.lexists(path):
        raise EdgeditError(f"{folder}: no manifest.json; not a pairs store (make one with `edgedit pairs generate`)")
    if path.is_symlink() or not path.is_file():
        raise EdgeditError(f"{path}: not a plain file; a store's manifest lives inside it; {REGENERATE}")
    data = load_json(path, "pairs manifest", REGENERATE, max_bytes=MANIFEST_BYTES)
    if isinstance(data, dict) and data.get("format") != FORMAT:
        found = data.get("format")
        if isinstance(found, str) and found.startswith("edgedit.pairs/"):
            raise EdgeditError(
                f"{path}: a pairs store of another edgedit (format {found[:40]!r}, this one reads "
                f"{FORMAT}); re-generate it (`edgedit pairs generate ... --force`, or "
                "`edgedit pairs import-get ... --force`)"
            )
        raise EdgeditError(f"{path}: not an edgedit pairs manifest (format {str(found)[:40]!r})")
    record = parse(schema, data, path, "pairs manifest", REGENERATE)
    layout = layout_of(record, path)
    if record.settings_sha256 != layout.digest:
        raise _invalid(path, "settings_sha256", "does not match the settings it follows (edited by hand?)")
    if record.expected_shards != len(layout.plan):
        raise _invalid(
            path, "expected_shards", f"the settings make {len(layout.plan)} shards (got {record.expected_shards})"
        )
    if schema is Manifest:
        fix = f"run `edgedit pairs verify {folder}`"
        previous = -1
        for n, entry in enumerate(record.shards):
            where = f"shards.{n}"
            if entry.name != shard_name(entry.index):
                raise _invalid(
                    path, f"{where}.name", f"shard {entry.index} is {shard_name(entry.index)} (got {entry.name})", fix
                )
            if not previous < entry.index < len(layout.plan):
                raise _invalid(
                    path,
                    f"{where}.index",
                    f"shards are listed once each, in order, below "
                    f"{len(layout.plan)} (got {entry.index} after {previous})",
                    fix,
                )
            previous = entry.index
            if entry.settings_sha256 != layout.digest:
                raise _invalid(path, f"{where}.settings_sha256", "the shard was made with other settings", fix)
            if (entry.first_seed, entry.count) != layout.plan[entry.index]:
                raise _invalid(
                    path,
                    f"{where}.count",
                    f"shard {entry.index} holds seeds {layout.plan[entry.index]} "
                    f"(first, count), got ({entry.first_seed}, {entry.count})",
                    fix,
                )
            if set(entry.sha256) != set(layout.arrays):
                raise _invalid(
                    path,
                    f"{where}.sha256",
                    f"the settings call for {', '.join(layout.arrays)} (got {', '.join(entry.sha256)})",
                    fix,
                )
        if record.complete != (len(record.shards) == len(layout.plan)):
            raise _invalid(path, "complete", f"{len(record.shards)} of {len(layout.plan)} shards are listed", fix)
    return record, layout


#################################################################################
#                           Checking one shard                                  #
#################################################################################


class Damaged(Exception):
    """Why a shard cannot be used (a reason, not a full message)."""


# Shards whose files were fully checked in this process, keyed by path, settings and the files'
# (inode, size, mtime, ctime): a sweep opens its store once per candidate and need not re-read it.
_CHECKED: set[tuple] = set()


def _plain(path: Path, what: str = "file") -> os.stat_result:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Damaged(f"{path.name} missing") from None
    except OSError as err:
        raise Damaged(f"{path.name}: cannot read it ({err.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise Damaged(f"{path.name} is a symbolic link (a store's files live inside it)")
    if not (stat.S_ISDIR(st.st_mode) if what == "folder" else stat.S_ISREG(st.st_mode)):
        raise Damaged(f"{path.name} is not a {what}")
    return st


def _open_array(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, OSError, EOFError ... for what is not a plain .npy
        reason = str(err).splitlines()[0][:100] if str(err) else type(err).__name__
        raise Damaged(f"{path.name}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise Damaged(f"{path.name}: not a .npy array")
    if array.dtype != dtype or array.shape != shape:
        raise Damaged(f"{path.name}: {array.dtype} {array.shape}, the settings call for {dtype} {shape}")
    return array


def _all_finite(array: np.ndarray, chunk_bytes: int = 64 << 20) -> bool:
    rows = max(1, chunk_bytes // max(1, array[:1].nbytes))
    return all(np.isfinite(array[i : i + rows]).all() for i in range(0, len(array), rows))


def check_data(arrays: dict[str, np.ndarray], first: int, count: int, num_classes: int) -> None:
    """What the checksums cannot vouch for: seeds as planned, labels within the classes, finite values."""
    if not np.array_equal(arrays["seeds"], np.arange(first, first + count, dtype=np.int64)):
        raise Damaged(f"seeds.npy: not the seeds {first}..{first + count - 1}")
    if "label" in arrays:
        labels = arrays["label"]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise Damaged(f"label.npy: labels {labels.min()}..{labels.max()} outside 0..{num_classes - 1}")
    for name in ("z", "image", "trajectory"):
        if name in arrays and not _all_finite(arrays[name]):
            raise Damaged(f"{name}.npy: holds NaN or infinite values")


def inspect_shard(folder: Path, index: int, layout: Layout, deep: bool = True) -> tuple[ShardMeta, dict]:
    """(meta, memory-mapped arrays) of a shard that matches the store's settings, or Damaged(reason).
    `deep` also checks every file's checksum and the data (remembered while the files are unchanged)."""
    path = folder / shard_name(index)
    _plain(path, "folder")
    meta_path = path / "meta.json"
    meta_stat = _plain(meta_path)
    try:
        meta = parse(
            ShardMeta, load_json(meta_path, "shard meta.json", max_bytes=META_BYTES), "meta.json", "shard record"
        )
    except EdgeditError as err:
        raise Damaged(str(err).replace(f"{meta_path}", "meta.json")) from None
    first, count = layout.plan[index]
    if meta.index != index:
        raise Damaged(f"meta.json: index {meta.index}, not {index}")
    if meta.settings_sha256 != layout.digest:
        raise Damaged("made with other settings (its settings_sha256 differs from the manifest's)")
    if (meta.first_seed, meta.count) != (first, count):
        raise Damaged(f"holds {meta.count} pairs from seed {meta.first_seed}, the store plans {count} from {first}")
    expected = layout.arrays
    if set(meta.sha256) != set(expected):
        raise Damaged(f"holds {', '.join(meta.sha256)}, the settings call for {', '.join(expected)}")
    files = {name: path / f"{name}.npy" for name in expected}
    stats = tuple(
        (name, (st := _plain(file)).st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for name, file in files.items()
    )
    key = (
        str(path.resolve()),
        layout.digest,
        index,
        meta_stat.st_ino,
        meta_stat.st_mtime_ns,
        meta_stat.st_ctime_ns,
        stats,
    )
    fresh = deep and key not in _CHECKED
    if fresh:
        for name, file in files.items():
            if sha256_file(file) != meta.sha256[name]:
                raise Damaged(f"checksum of {name}.npy")
    arrays = {name: _open_array(file, (count, *expected[name][0]), expected[name][1]) for name, file in files.items()}
    if fresh:
        check_data(arrays, first, count, layout.settings.num_classes)
        _CHECKED.add(key)
    return meta, arrays


#################################################################################
#                                   Writing                                     #
#################################################################################


def _lock(folder: Path) -> tuple[int, bool]:
    """(fd, whether the lock file was made here) of an exclusive flock on the store's lock file, or one
    line naming the process that holds it."""
    path = folder / LOCK
    made = not os.path.lexists(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise EdgeditError(
            f"{path}: cannot open the store's lock file ({err.strerror}); the pairs folder must be writable"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EdgeditError(f"{path}: not a plain file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = re.match(rb"(\d{1,10})\n", os.pread(fd, 32, 0))
            raise EdgeditError(
                f"{folder}: another process{f' (pid {holder[1].decode()})' if holder else ''} is writing this pairs "
                "store; wait for it to end, or write elsewhere (parallel --shard I/N workers need a folder each: copy "
                "their shard-* folders together, then run `edgedit pairs verify`)"
            ) from None
        except OSError as err:
            raise EdgeditError(f"{path}: cannot lock it ({err.strerror})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd, made


def _is_staging(name: str) -> bool:
    """Our own private folders: a shard being written (or an old one being replaced), the manifest's."""
    return name.endswith(".partial") and (name.startswith(".shard-") or name.startswith(f".{MANIFEST}."))


def _remove_staging(folder: Path) -> int:
    """Leftovers of killed writers; only called with the lock held, so no live writer owns them."""
    stale = [p for p in folder.iterdir() if _is_staging(p.name)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _shard_entries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("shard-"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DIR_MODE = 0o777 & ~_umask()  # what mkdir would give a shard folder


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _writing(out: Path, settings: StoreSettings, force: bool, say: Callable[[str], None]) -> Iterator[Layout]:
    """Hold the store's lock, with its settings recorded (a new store's manifest comes before any
    shard) and checked (another run's store is refused). On failure, a store left without any
    shard is removed with the folders this call created."""
    layout = layout_of(settings, "the requested pairs", fix="check the teacher and the options")
    if out.exists() and not out.is_dir():
        raise EdgeditError(f"{out}: exists and is not a folder; the pairs output is a folder")
    created, parent = [], out
    while not os.path.lexists(parent) and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EdgeditError(f"{out}: cannot create the pairs folder ({err.strerror})") from None
    fd, made_lock = _lock(out)
    recorded = False
    try:
        if force:
            old = [name for name in _shard_entries(out) if SHARD_NAME.fullmatch(name)]
            for name in old:
                _remove(out / name)
            (out / MANIFEST).unlink(missing_ok=True)
            if old:
                say(f"--force: removed the {len(old)} shards of the old store in {out}")
        _remove_staging(out)
        if os.path.lexists(out / MANIFEST):
            header, _ = read_manifest(out, ManifestHeader)
            theirs, ours = _identity(settings_dict(header)), _identity(layout.as_dict)
            differing = [k for k in ours | theirs if theirs.get(k) != ours.get(k)]
            if differing:
                raise EdgeditError(
                    f"{out}: holds pairs made with other settings ({', '.join(differing)} differ); use "
                    "another output folder, the same settings to continue it, or --force to start it "
                    "over"
                )
        else:
            foreign = [name for name in os.listdir(out) if name != LOCK and not _is_staging(name)]
            if foreign and not force:
                what = (
                    "shard folders but no manifest.json"
                    if any(SHARD_NAME.fullmatch(n) for n in foreign)
                    else "files but no manifest.json (not a pairs store)"
                )
                raise EdgeditError(f"{out}: holds {what}; use a new or empty folder, or --force to start a store there")
            write_manifest(out, layout, {})
            recorded = True
        yield layout
    except BaseException:
        if not any(SHARD_NAME.fullmatch(n) for n in _shard_entries(out)):  # leave the folder as found
            if recorded:
                (out / MANIFEST).unlink(missing_ok=True)
            if recorded or made_lock:
                (out / LOCK).unlink(missing_ok=True)
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    finally:
        os.close(fd)


def write_shard(folder: Path, index: int, arrays: dict[str, np.ndarray], layout: Layout) -> ShardMeta:
    """All of a shard's files appear at once: written and synced in a private folder, then renamed into
    place (a damaged earlier shard is first renamed away, so the name never holds a partial shard)."""
    first, count = layout.plan[index]
    for name, (row, dtype) in layout.arrays.items():
        if name not in arrays or arrays[name].dtype != dtype or arrays[name].shape != (count, *row):
            raise EdgeditError(f"shard {index}: {name} is not {dtype} {(count, *row)} (a bug in edgedit)")
    try:
        check_data(arrays, first, count, layout.settings.num_classes)
    except Damaged as err:
        raise EdgeditError(
            f"seeds {first}..{first + count - 1}: the teacher's output is unusable ({err}); check the "
            "teacher (float16 images overflow beyond 65504: --image-dtype float32)"
        ) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{shard_name(index)}.", suffix=".partial", dir=folder))
    trash = None
    try:
        digests = {}
        for name in layout.arrays:
            with open(staging / f"{name}.npy", "wb") as f:
                np.save(f, arrays[name], allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            digests[name] = sha256_file(staging / f"{name}.npy")
        meta = ShardMeta(index=index, settings_sha256=layout.digest, first_seed=first, count=count, sha256=digests)
        with open(staging / "meta.json", "w") as f:
            f.write(json.dumps(meta.model_dump(mode="json"), indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(staging, _DIR_MODE)  # mkdtemp makes it 0700
        _fsync(staging)
        final = folder / shard_name(index)
        if os.path.lexists(final):
            trash = Path(tempfile.mkdtemp(prefix=f".{shard_name(index)}.", suffix=".partial", dir=folder))
            os.replace(final, trash / "old")
        os.replace(staging, final)
        _fsync(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return meta


def write_manifest(
    folder: Path, layout: Layout, known: dict[int, ShardMeta] | None = None, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Rebuild manifest.json from the shards in the folder that match the settings: those in `known`
    (just written or checked) and every other plain shard-NNNNNN folder, checked now."""
    entries = []
    for name in _shard_entries(folder):
        if not SHARD_NAME.fullmatch(name):
            if say:
                say(f"ignored {name} (not a shard name: shard-NNNNNN)")
            continue
        index = int(name[len("shard-") :])
        if index >= len(layout.plan):
            if say:
                say(f"dropped {name} (the store has {len(layout.plan)} shards)")
            continue
        meta = (known or {}).get(index)
        if meta is None:
            try:
                meta, _ = inspect_shard(folder, index, layout)
            except Damaged as err:
                if say:
                    say(f"dropped {name} ({err})")
                continue
        entries.append({**meta.model_dump(mode="json"), "name": name})
    manifest = {
        **layout.as_dict,
        "settings_sha256": layout.digest,
        "shards": entries,
        "expected_shards": len(layout.plan),
        "complete": len(entries) == len(layout.plan),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    parse(Manifest, manifest, folder / MANIFEST, "pairs manifest", "this is a bug in edgedit")  # as readers will
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


#################################################################################
#                               generate / verify                               #
#################################################################################


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
    progress: Callable[[int], None] | None = None,
    force: bool = False,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Generate (or complete) a pairs store; returns its manifest. `force` starts an existing store over."""
    from edgedit.runtime.backends import RunOptions, load_backend
    from edgedit.runtime.samplers import ddim_timesteps, generate, karras_sigmas

    worker, workers = check_shard(shard)
    if not (1 <= count <= MAX_PAIRS and 1 <= shard_size <= MAX_SHARD_SIZE):
        raise EdgeditError(f"-n must be 1..{MAX_PAIRS} and --shard-size 1..{MAX_SHARD_SIZE}")
    if -(-count // shard_size) > MAX_SHARDS:
        raise EdgeditError(
            f"-n {count} in shards of {shard_size} makes more than {MAX_SHARDS} shards; raise --shard-size"
        )
    if not 0 <= first_seed <= MAX_SEED - count:
        raise EdgeditError(f"--first-seed must be 0..{MAX_SEED - count}")
    if image_dtype not in ("float16", "float32"):
        raise EdgeditError("--image-dtype must be float16 or float32")
    if not 1 <= steps <= MAX_SAMPLER_STEPS:
        raise EdgeditError(f"--steps must be 1..{MAX_SAMPLER_STEPS}")
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
            raise EdgeditError(f"--sampler must be heun or euler (got {sampler!r})")
        levels = karras_sigmas(steps, spec.sigma_min, spec.sigma_max, spec.rho)
        schedule = ("sigma_min", "sigma_max", "rho", "sigma_data")
    else:
        sampler = "ddim"
        if steps > spec.train_steps:
            raise EdgeditError(f"--steps must be 1..{spec.train_steps} for this DDPM teacher")
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
    with _writing(out, settings, force, say) as layout:
        if progress is not None:
            progress(0)  # the store is open: generation starts
        known: dict[int, ShardMeta] = {}
        for index, (first, n) in enumerate(layout.plan):
            if index % workers != worker:
                continue
            try:
                known[index], _ = inspect_shard(out, index, layout)
                continue
            except Damaged:
                pass  # missing, damaged or foreign: (re)made below
            seeds = np.arange(first, first + n, dtype=np.int64)
            labels = labels_for(seeds, cfg.num_classes, class_balanced) if cfg.class_conditional else None
            traj = np.zeros((n, len(states), *shape), np.float16) if states else None

            def keep(start: int, i: int, sigma: float, x: np.ndarray, traj=traj) -> None:
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
            known[index] = write_shard(out, index, arrays, layout)
            if progress is not None:
                progress(n)
        return write_manifest(out, layout, known)


def verify_pairs(folder: str | os.PathLike, say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Check every shard against the store's settings and checksums and rebuild the manifest from those
    that pass (e.g. after copying workers' shards together), saying what was dropped. A store whose
    settings cannot be read is refused and its manifest left as it is."""
    folder = Path(folder)
    read_manifest(folder, ManifestHeader)  # before taking a lock in a folder that is no store
    fd, _ = _lock(folder)
    try:
        _, layout = read_manifest(folder, ManifestHeader)
        stale = _remove_staging(folder)
        if stale:
            say(f"removed {stale} staging folder(s) of interrupted writers")
        manifest = write_manifest(folder, layout, None, say)
        say(f"{len(manifest['shards'])} of {manifest['expected_shards']} shards verified")
        return manifest
    finally:
        os.close(fd)


#################################################################################
#                                  Reading                                      #
#################################################################################


class PairsStore:
    """A checked pairs store, read through memory maps (nothing is loaded until indexed).

    Opening it checks the manifest (schema, settings, digest, shard list), each listed shard against
    it (plain shard-NNNNNN folders, meta.json, every file's checksum, dtype and shape) and the data
    (seeds, labels within num_classes, finite values); the first problem is one EdgeditError line.
    This is how `distill` and `design sweep` open their pairs before training.
    """

    def __init__(self, folder: str | os.PathLike, require_complete: bool = True):
        self.folder = Path(folder)
        record, layout = read_manifest(self.folder, Manifest)
        if require_complete and not record.complete:
            raise EdgeditError(
                f"{self.folder}: incomplete ({len(record.shards)} of {record.expected_shards} shards "
                "verified); finish it with `edgedit pairs generate` (same settings) or check it with "
                "`edgedit pairs verify`"
            )
        if not record.shards:
            raise EdgeditError(f"{self.folder}: no verified shards; run `edgedit pairs generate`")
        self.settings = layout.settings
        self.manifest = record.model_dump(mode="json", exclude_unset=True)
        self.shards = []
        for entry in record.shards:
            path = self.folder / entry.name
            try:
                meta, arrays = inspect_shard(self.folder, entry.index, layout)
            except Damaged as err:
                raise EdgeditError(
                    f"{path}: {err}; run `edgedit pairs verify {self.folder}`, then `edgedit pairs "
                    "generate` with the same settings to redo it"
                ) from None
            if meta.sha256 != entry.sha256:
                raise EdgeditError(
                    f"{path}: replaced since the manifest was written; run `edgedit pairs verify {self.folder}`"
                )
            self.shards.append(arrays)
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

# GET's data/generate.py saves each rank's samples every 50 batches as image/<last seed>.pkl and
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
    if not _all_finite(array):
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
    progress: Callable[[int], None] | None = None,
    force: bool = False,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Convert GET's EDM CIFAR-10 pairs (image/<last seed>.pkl, latent/<last seed>.pkl, torch.save
    archives; unconditional images float64, conditional latents [z, one-hot labels]) into a store.
    One GET file becomes one shard. Every latent file is read first (sizes, shapes, classes), so the
    store's settings are known before its first shard."""
    src, out = Path(src), Path(out)
    if image_dtype not in ("float16", "float32"):
        raise EdgeditError("--image-dtype must be float16 or float32")
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
    with _writing(out, settings, force, say) as layout:
        known: dict[int, ShardMeta] = {}
        for index, name in enumerate(names):
            first, n = layout.plan[index]
            try:
                known[index], _ = inspect_shard(out, index, layout)
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
            if progress is not None:
                progress(n)
        return write_manifest(out, layout, known)
