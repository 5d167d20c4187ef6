"""Atomic file output and checksums: a file either appears whole or not at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (some writers create 0600 files)


@contextmanager
def atomic_output(path: str | os.PathLike, *companions: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for `path`; move it onto `path` only if the block succeeds.

    The temporary file lives in a private folder next to `path`, so the final rename is atomic.
    `companions` are files that belong with `path` (an ONNX model's external weights): the block
    writes them into the same temporary folder under their final names, and they are moved into
    place before `path` itself. On any failure, Ctrl-C included, everything temporary is removed
    and existing files are left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield staging / path.name
        for companion in map(Path, companions):
            staged, final = staging / companion.name, path.parent / companion.name
            if staged.exists():
                os.chmod(staged, _FILE_MODE)
                os.replace(staged, final)
            else:
                final.unlink(missing_ok=True)  # a stale companion of an earlier file
        if (staging / path.name).is_file():
            os.chmod(staging / path.name, _FILE_MODE)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike, arrays: dict) -> Path:
    """numpy arrays to an .npz, atomically (np.savez would append .npz to a temporary name)."""
    import io

    import numpy as np

    path = Path(path)
    with atomic_output(path) as tmp:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp.write_bytes(buffer.getvalue())
    return path


def load_npz(path: str | os.PathLike, what: str = "file") -> dict:
    """All arrays of an .npz, never unpickling objects; one-line errors for missing or bad files."""
    import numpy as np

    from edgedit.contract.errors import EdgeditError

    path = Path(path)
    if not path.is_file():
        raise EdgeditError(f"{path}: no such {what}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as err:
        raise EdgeditError(f"{path}: not a readable .npz of arrays ({str(err).splitlines()[0][:120]})") from err


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
