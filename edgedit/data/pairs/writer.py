"""Writing a store: one writer at a time (the store's lock), its settings recorded before any shard and
checked on every resume, and the manifest rebuilt from the shards that pass (`pairs verify`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import parse
from edgedit.contract.staging import FolderBusy, folder_lock, is_staging, remove_stale_staging, write_text_atomic
from edgedit.data.pairs.manifest import (
    LOCK,
    MANIFEST,
    SHARD_NAME,
    Layout,
    Manifest,
    ManifestHeader,
    ShardMeta,
    StoreSettings,
    identity,
    layout_of,
    read_manifest,
    settings_dict,
)
from edgedit.data.pairs.shards import Damaged, inspect_shard

log = logging.getLogger("edgedit")


def _shard_entries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("shard-"))


@contextmanager
def _store_lock(folder: Path) -> Iterator[bool]:
    try:
        with folder_lock(folder, LOCK) as made:
            yield made
    except FolderBusy as busy:
        raise EdgeditError(
            f"{folder}: another process{f' (pid {busy.pid})' if busy.pid else ''} is writing this pairs store; "
            "wait for it to end, or write elsewhere (parallel sharded workers need a folder each: copy "
            "their shard-* folders together, then run `edgedit pairs verify`)"
        ) from None


def _remove_stale(folder: Path, say: Callable[[str], None] | None = None) -> None:
    """What killed writers left (staging of shards and of the manifest); only called with the lock held."""
    stale = remove_stale_staging(folder, every=True)
    if stale and say:
        say(f"removed {len(stale)} staging folder(s) of interrupted writers")


@contextmanager
def store_writer(out: Path, settings: StoreSettings, force: bool, say: Callable[[str], None]) -> Iterator[Layout]:
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
    recorded = False
    with _store_lock(out) as made_lock:
        try:
            if force:
                old = [name for name in _shard_entries(out) if SHARD_NAME.fullmatch(name)]
                for name in old:
                    if (out / name).is_dir() and not (out / name).is_symlink():
                        shutil.rmtree(out / name)
                    else:
                        (out / name).unlink(missing_ok=True)
                (out / MANIFEST).unlink(missing_ok=True)
                if old:
                    say(f"starting over: removed the {len(old)} shards of the old store in {out}")
            _remove_stale(out)
            if os.path.lexists(out / MANIFEST):
                header, _ = read_manifest(out, ManifestHeader)
                theirs, ours = identity(settings_dict(header)), identity(layout.as_dict)
                differing = [k for k in ours | theirs if theirs.get(k) != ours.get(k)]
                if differing:
                    raise EdgeditError(
                        f"{out}: holds pairs made with other settings ({', '.join(differing)} differ); use "
                        "another output folder, the same settings to continue it, or `force` to start it "
                        "over"
                    )
            else:
                foreign = [name for name in os.listdir(out) if name != LOCK and not is_staging(name)]
                if foreign and not force:
                    what = (
                        "shard folders but no manifest.json"
                        if any(SHARD_NAME.fullmatch(n) for n in foreign)
                        else "files but no manifest.json (not a pairs store)"
                    )
                    raise EdgeditError(
                        f"{out}: holds {what}; use a new or empty folder, or `force` to start a store there"
                    )
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


def verify_pairs(folder: str | os.PathLike, say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Check every shard against the store's settings and checksums and rebuild the manifest from those
    that pass (e.g. after copying workers' shards together), saying what was dropped. A store whose
    settings cannot be read is refused and its manifest left as it is."""
    folder = Path(folder)
    read_manifest(folder, ManifestHeader)  # before taking a lock in a folder that is no store
    with _store_lock(folder):
        _, layout = read_manifest(folder, ManifestHeader)
        _remove_stale(folder, say)
        manifest = write_manifest(folder, layout, None, say)
        say(f"{len(manifest['shards'])} of {manifest['expected_shards']} shards verified")
        return manifest
