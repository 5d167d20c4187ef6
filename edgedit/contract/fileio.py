"""Reading files safely and the output policy: regular files told from what is not one
(`regular_file`), file kinds by their first bytes, checksums, bounded .npz reading, and the policy
every command applies before it starts (`check_outputs`): never over one of its own inputs, never
over a file of another kind without --force, and one clear line for a path it cannot write.
Writing itself (whole or nothing) is `contract/staging.py`."""

from __future__ import annotations

import codecs
import contextvars
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgedit.contract import artefacts
from edgedit.contract.errors import EdgeditError
from edgedit.contract.staging import atomic_output, cannot_write, name_problem, remove_stale_staging

_VERIFY = contextvars.ContextVar("edgedit_verify_content", default=True)


@contextmanager
def verification(enabled: bool) -> Iterator[None]:
    """Check (the default) or skip the content hash of every checkpoint and ONNX file read in the block
    (the CLI's --no-verify, to recover a damaged file)."""
    token = _VERIFY.set(enabled)
    try:
        yield
    finally:
        _VERIFY.reset(token)


def verifying() -> bool:
    return _VERIFY.get()


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` as a Path when it is a regular file (a symlink to one counts); else one line that names
    the real problem: missing, a directory, a FIFO, a device or socket, a symlink loop, a name too long."""
    import errno
    import stat

    path = Path(path)
    problem = name_problem(path)
    if problem is None:
        try:
            mode = path.stat().st_mode
        except OSError as err:
            problem = {
                errno.ENOENT: f"no such {what}",
                errno.ELOOP: "a symlink loop (too many levels of symbolic links)",
                errno.ENAMETOOLONG: "file name too long",
                errno.EACCES: "permission denied",
                errno.ENOTDIR: f"no such {what} (a part of the path is not a folder)",
            }.get(err.errno, f"cannot be read ({err.strerror})")
        else:
            if stat.S_ISREG(mode):
                return path
            problem = (
                "is a directory, not a file"
                if stat.S_ISDIR(mode)
                else "is a FIFO (named pipe), not a regular file"
                if stat.S_ISFIFO(mode)
                else "is a device, not a regular file"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "is a socket, not a regular file"
                if stat.S_ISSOCK(mode)
                else "is not a regular file"
            )
    raise EdgeditError(f"{path}: {problem}")


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


def load_npz(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> dict:
    """All arrays of an .npz, never unpickling objects; one-line errors for missing or bad files.

    Before anything is decompressed, every member's declared size (its zip entry and its .npy
    header) is checked: together at most `max_bytes` (default: half the memory available), and no
    .npy may declare more data than its entry holds. A small zip bomb is refused, not inflated."""
    import math
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    from edgedit.contract import device
    from edgedit.contract.errors import EdgeditError

    path = Path(path)
    if not path.is_file():
        raise EdgeditError(f"{path}: no such {what}")
    if max_bytes is None:
        available = device.available_memory_bytes()
        max_bytes = available // 2 if available else 8 << 30
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
            unpacked = sum(m.file_size for m in archive.infolist())
            if unpacked > max_bytes:
                raise EdgeditError(
                    f"{path}: unpacks to {unpacked / 2**20:.0f} MB, more than the "
                    f"{max_bytes / 2**20:.0f} MB this {what} may use here"
                )
            for member in members:
                with archive.open(member) as f:
                    version = npy.read_magic(f)  # 1.0, else 2.0 (3.0 only changes the header's encoding)
                    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read_header(f)
                if dtype.hasobject:
                    raise EdgeditError(
                        f"{path}: array {member.filename} holds Python objects, which edgedit never unpickles"
                    )
                if math.prod(shape) * dtype.itemsize > member.file_size:
                    raise EdgeditError(
                        f"{path}: array {member.filename} declares {list(shape)} {dtype}, more data "
                        "than the file holds (damaged or forged)"
                    )
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except EdgeditError:
        raise
    except Exception as err:
        raise EdgeditError(f"{path}: not a readable .npz of arrays ({str(err).splitlines()[0][:120]})") from None


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


#################################################################################
#     The output policy: never over an input, never over another kind of file    #
#################################################################################

# What commands write, by kind: (the words for messages, the suffixes that name it).
KINDS = {
    "checkpoint": ("a safetensors file", (artefacts.CHECKPOINT,)),
    "denoiser": ("a multi-step denoiser checkpoint (a teacher)", ()),
    "student": ("a one-step student checkpoint", ()),
    "train-state": ("an edgedit training state", ()),
    "onnx": ("an ONNX model", (artefacts.ONNX,)),
    "npz": ("an .npz archive", (".npz",)),
    "samples": ("an .npz of sampled images (`edgedit sample --npz`)", ()),
    "npy": ("a .npy array", (".npy",)),
    "png": ("a PNG image", (".png",)),
    "json": ("a JSON file", (".json",)),
    "text": ("a text file", (".md", ".csv", ".txt", ".log")),
    "engine": ("a TensorRT engine", artefacts.ENGINE_READ),
    "torch": ("a torch file", (".pt", ".pth")),
    "onnx-data": ("ONNX external weights", (artefacts.ONNX_DATA,)),
    "timing-cache": ("a TensorRT timing cache", ()),  # opaque bytes: any file of no other kind
    "unknown": ("a file of unknown kind", ()),
}


def suffix_kind(path: str | os.PathLike) -> str | None:
    suffix = Path(path).suffix.lower()
    return next((kind for kind, (_, suffixes) in KINDS.items() if suffix in suffixes), None)


def file_kind(path: str | os.PathLike) -> str | None:
    """The kind of an existing file: from its first bytes, else its suffix, else "unknown"; None
    for an empty file (nothing to lose)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "unknown"
    if not head:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):  # https://www.w3.org/TR/png/#5PNG-file-signature
        return "png"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip: np.savez, and torch.save since torch 1.6
        return "torch" if suffix_kind(path) == "torch" else _npz_kind(path)
    if head.startswith(b"\x93NUMPY"):  # https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
        return "npy"
    if len(head) > 8 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return _safetensors_kind(path, int.from_bytes(head[:8], "little"))
    if len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] & 7 in (0, 2):
        return (
            "onnx"  # ModelProto field 1 (ir_version) first, as onnx writes it: https://onnx.ai/onnx/repo-docs/IR.html
        )
    if b"\0" not in head:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at 4096 is fine
        except UnicodeDecodeError:
            text = None
        if text is not None:
            return "json" if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[") else "text"
    return suffix_kind(path) or "unknown"


SAMPLES_NPZ = ("images", "seeds", "labels")  # what `edgedit sample --npz` writes


def _npz_kind(path: Path) -> str:
    """An .npz told apart by its members (the zip's central directory only): sampled images, or another
    archive (calibration inputs, a dataset, ...)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = {n.removesuffix(".npy") for n in archive.namelist()[:64]}
    except (OSError, zipfile.BadZipFile, ValueError):
        return "npz"
    return "samples" if names == set(SAMPLES_NPZ) else "npz"


def _safetensors_kind(path: Path, header_bytes: int) -> str:
    """A safetensors file (a u64 header size, then a JSON header: https://github.com/huggingface/safetensors)
    told apart by its metadata: a teacher, a student, a training state, or another file."""
    import json

    if header_bytes > 64 << 20:
        return "checkpoint"
    try:
        with open(path, "rb") as f:
            f.seek(8)
            meta = json.loads(f.read(header_bytes)).get("__metadata__") or {}
        if str(meta.get("format", "")).startswith("edgedit.train-state/"):
            return "train-state"
        diffusion = json.loads(meta["edgedit.config"])["diffusion"]
    except Exception:  # not edgedit's, or damaged: a safetensors file all the same
        return "checkpoint"
    return "student" if diffusion == "one-step" else "denoiser"


def _same_kind(written: str, found: str) -> bool:
    """A checkpoint of unknown role (another tool's, a damaged one) may be replaced by any checkpoint;
    a timing cache (TensorRT's own opaque format) replaces a file of no kind edgedit can tell."""
    roles = ("checkpoint", "denoiser", "student")
    return (
        written == found
        or (written in roles and found in roles and "checkpoint" in (written, found))
        or (written == "timing-cache" and found == "unknown")
    )


@dataclass(frozen=True)
class Output:
    """A path a command writes. `kind`: a KINDS key (what is written there, whatever the suffix),
    "folder" for a folder the command writes in, or None for a file checked against the inputs
    only. `companions` are files written with it (an
    ONNX's external data, an engine's sidecar, a checkpoint's training state) and `folders` the
    folders (a training run's sample grids); `flag` names it in messages: the CLI's option, or a
    library caller's `field`."""

    flag: str
    path: str | os.PathLike | None
    kind: str | None
    companions: tuple[str | os.PathLike, ...] = ()
    folders: tuple[str | os.PathLike, ...] = ()


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))  # symlinks and .. resolved, also below missing parts


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """The same file: one path resolving to the other (symlinks, .., loops included) or a hard link."""
    a, b = Path(a), Path(b)
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return _real(folder) in _real(path).parents


def check_outputs(
    outputs: Iterable[Output],
    inputs: Mapping[str, str | os.PathLike | Iterable | None] | None = None,
    *,
    force: bool = False,
) -> None:
    """Refuse, before any work starts, outputs that would destroy something; one line, exit 2.

    - an output (or a file written with it) that is one of the inputs or their companions, however
      spelled (relative, absolute, through a symlink, a hard link); an output inside an input
      folder; an output folder that holds an input; two outputs naming one file;
    - a path that cannot be written: a folder where a file is wanted (or the reverse), a file
      where a folder must be made, no permission;
    - an existing file of another kind than the one written (an ONNX over a checkpoint, a PNG over
      an .npz), told by its first bytes, unless `force`. Same kind is replaced, as re-runs expect.

    `inputs` maps an option or argument name to the path(s) it reads; paths that do not exist
    (preset names) are skipped. Passing checks also removes stale staging of the outputs.
    """
    outputs = [o for o in outputs if o.path is not None]
    protected: list[tuple[Path, str, bool]] = []  # (path, words, may contain others)
    for label, given in (inputs or {}).items():
        for value in [given] if isinstance(given, (str, os.PathLike)) else (given or []):
            path = Path(value).expanduser()
            if not os.path.exists(path):
                continue
            protected.append((path, f"the input {label} {value}", path.is_dir()))
            protected += [
                (c, f"{c}, which belongs to the input {label} {value}", False)
                for c in artefacts.companions(path)
                if c.exists()
            ]
    written: list[tuple[Path, str, bool]] = []  # (path, words, is a folder)
    for o in outputs:
        words = f"{o.flag} {o.path}"
        written.append((Path(o.path), words, o.kind == "folder"))
        written += [(Path(c), f"{c} (written with {words})", False) for c in o.companions]
        written += [(Path(f), f"{f} (written with {words})", True) for f in o.folders]

    for path, words, folder in written:
        for source, what, source_folder in protected:
            if same_file(path, source):
                raise EdgeditError(f"{words} would overwrite {what}; choose another output path")
            if source_folder and _inside(path, source):
                raise EdgeditError(f"{words} is inside {what}; write it outside that folder")
            if folder and _inside(source, path):
                raise EdgeditError(f"{words} is a folder that holds {what}; choose another output folder")
    for i, (path, words, _) in enumerate(written):
        for other, other_words, _ in written[:i]:
            if same_file(path, other):
                raise EdgeditError(f"{other_words} and {words} are the same file; give each output its own path")
    for path, words, folder in written:
        reason = cannot_write(path, folder)
        if reason:
            raise EdgeditError(f"{words}: {reason}; choose another output path")
    for o in outputs:
        if o.kind in KINDS and not force and Path(o.path).is_file():
            found = file_kind(o.path)
            if found is not None and not _same_kind(o.kind, found):
                raise EdgeditError(
                    f"{o.flag} {o.path}: exists and is {KINDS[found][0]}, not {KINDS[o.kind][0]}; "
                    "choose another path, or pass `force` to replace it"
                )
    for path, _, folder in written:
        if not folder:
            remove_stale_staging(path)
