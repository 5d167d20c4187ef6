"""A pairs store's format: its settings and manifest records with their bounds, the digest that ties
shards to settings, the shard plan the settings imply, and reading a manifest whole."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from edgedit.contract.errors import EdgeditError
from edgedit.contract.schedules import MAX_SAMPLER_STEPS, DdpmSampler, EdmSampler
from edgedit.contract.schema import MAX_CHANNELS, MAX_SIDE, Name, Record, Sha256, load_json, parse

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


def interior_steps(steps: int, k: int) -> list[int]:
    return np.rint(np.linspace(1, steps - 1, k)).astype(int).tolist() if k else []


def trajectory_steps(steps: int, k: int) -> list[int]:
    """K states evenly spaced over the schedule's interior steps 1..steps-1 (the start is pure noise,
    the end is the image, both stored anyway)."""
    if k < 0 or k > steps - 1:
        raise EdgeditError(f"`trajectory` must be 0..{steps - 1} for {steps} steps (got {k})")
    return interior_steps(steps, k)


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


def identity(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a store what it is: a teacher is its checksum, whatever its file's name."""
    return {**settings, "teacher": {k: v for k, v in settings["teacher"].items() if k != "file"}}


def settings_digest(settings: dict[str, Any]) -> str:
    """sha256 of the settings' identity as canonical JSON."""
    return hashlib.sha256(json.dumps(identity(settings), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
    if trajectory.steps != interior_steps(sampler.steps, trajectory.k):
        raise _invalid(
            where,
            "trajectory.steps",
            f"{trajectory.k} states of {sampler.steps} steps are at "
            f"{interior_steps(sampler.steps, trajectory.k)} (got {trajectory.steps})",
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
