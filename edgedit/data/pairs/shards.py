"""One shard: checking it against the store's settings (files, checksums, data) and writing it whole."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.schema import load_json, parse
from edgedit.contract.staging import atomic_folder
from edgedit.data.pairs.manifest import META_BYTES, Layout, ShardMeta, shard_name


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


def all_finite(array: np.ndarray, chunk_bytes: int = 64 << 20) -> bool:
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
        if name in arrays and not all_finite(arrays[name]):
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


def write_shard(folder: Path, index: int, arrays: dict[str, np.ndarray], layout: Layout) -> ShardMeta:
    """All of a shard's files appear at once (contract/staging.atomic_folder: written and synced in a
    private folder, then renamed into place over any damaged earlier shard)."""
    first, count = layout.plan[index]
    for name, (row, dtype) in layout.arrays.items():
        if name not in arrays or arrays[name].dtype != dtype or arrays[name].shape != (count, *row):
            raise EdgeditError(f"shard {index}: {name} is not {dtype} {(count, *row)} (a bug in edgedit)")
    try:
        check_data(arrays, first, count, layout.settings.num_classes)
    except Damaged as err:
        raise EdgeditError(
            f"seeds {first}..{first + count - 1}: the teacher's output is unusable ({err}); check the "
            "teacher (float16 images overflow beyond 65504: `image_dtype` float32)"
        ) from None
    digests = {}
    with atomic_folder(folder / shard_name(index)) as built:
        for name in layout.arrays:
            with open(built / f"{name}.npy", "wb") as f:
                np.save(f, arrays[name], allow_pickle=False)
            digests[name] = sha256_file(built / f"{name}.npy")
        meta = ShardMeta(index=index, settings_sha256=layout.digest, first_seed=first, count=count, sha256=digests)
        (built / "meta.json").write_text(json.dumps(meta.model_dump(mode="json"), indent=2))
    return meta
