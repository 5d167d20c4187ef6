"""Writing that is whole or nothing: a file or folder is made in a private staging folder beside its
final place and renamed there only when complete (a kill at any moment leaves the old one or none,
never a part). Staging folders are named after their writer (`.NAME.PID@HOST.XXXX.partial`) and
locked while it lives, so a later writer removes what a killed one left, and nothing else. Also the
exclusive lock of a long job's folder (`folder_lock`), and the file-name limits every output obeys.
Torch-free."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedit.contract.errors import EdgeditError

try:
    import fcntl
except ImportError:  # not on Windows: staging is then told live or stale by its pid alone
    fcntl = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file (mkstemp and some writers make 0600)
DIR_MODE = 0o777 & ~_UMASK  # what mkdir would give a new folder (mkdtemp makes 0700)


NAME_MAX = 255  # bytes in one path component on Linux filesystems (ext4, xfs, btrfs, tmpfs)


def name_problem(path: str | os.PathLike, reserve: int = 0) -> str | None:
    """Why a path cannot name a file on any common filesystem (a component over NAME_MAX bytes, less
    `reserve` for the file's own name: what staging adds to it), or None."""
    parts = [len(p.encode(errors="surrogateescape")) for p in Path(path).parts] or [0]
    limits = [NAME_MAX] * (len(parts) - 1) + [NAME_MAX - reserve]
    over = [(n, limit) for n, limit in zip(parts, limits) if n > limit]
    return f"file name too long ({over[0][0]} bytes in one name, at most {over[0][1]})" if over else None


STAGING_RESERVE = 64  # what staging adds to a name: ".NAME.PID@HOST.RANDOM.partial" is NAME + at most 59


def cannot_write(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be written as a file (or made and written in, as a folder), or None."""
    problem = name_problem(path, 0 if folder else STAGING_RESERVE)
    if problem:
        return problem
    if folder:
        if path.exists() and not path.is_dir():
            return "is a file, not a folder"
    elif path.is_dir():
        return "is a folder, not a file"
    elif path.exists() and not path.is_file():
        return "is not a regular file"  # /dev/null, a pipe: never renamed over
    existing = Path(os.path.abspath(path if folder else path.parent))
    while not os.path.lexists(existing):
        existing = existing.parent  # the folders atomic_output will make
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


@contextmanager
def atomic_output(path: str | os.PathLike, *companions: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for `path`; move it onto `path` only if the block succeeds.

    The temporary file lives in a private folder next to `path`, so the final rename is atomic.
    `companions` are files that belong with `path` (an ONNX model's external weights): the block
    writes them into the same temporary folder under their final names, and they are moved into
    place before `path` itself (an existing `path` is removed first, so that a kill between the
    renames leaves no file rather than an old one beside new companions). On any failure, Ctrl-C
    included, everything temporary is removed and existing files are left untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise EdgeditError(f"{path}: is a folder, not a file; choose another output path")
    if os.path.exists(path) and not path.is_file():  # a device, a pipe: renaming over it would destroy it
        raise EdgeditError(f"{path}: is not a regular file; choose another output path")
    with _staging(path, folder=False) as staging:
        yield staging / path.name
        staged = staging / path.name
        moves = [(staging / c.name, path.parent / c.name) for c in map(Path, companions)]
        try:
            if moves and staged.exists() and path.exists():
                path.unlink()
            for source, final in moves:
                if source.exists():
                    os.chmod(source, FILE_MODE)
                    os.replace(source, final)
                else:
                    final.unlink(missing_ok=True)  # a stale companion of an earlier file
            if staged.is_file():
                os.chmod(staged, FILE_MODE)
            os.replace(staged, path)
        except OSError as err:
            if isinstance(err, FileNotFoundError) and not staged.exists():
                raise  # the block wrote nothing: a bug of the writer, not of the place
            raise EdgeditError(
                f"{path}: cannot move the finished file into place ({err.strerror or err}); "
                "check the folder's permissions and free space"
            ) from err


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_STAGING = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.partial")
_LOCK = ".edgedit-writer.lock"


@contextmanager
def _staging(path: Path, folder: bool) -> Iterator[Path]:
    """A private folder beside `path`, locked by this writer, removed afterwards whatever happens."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".partial", dir=path.parent)
        )
    except OSError as err:
        raise EdgeditError(
            f"{path}: cannot write it: {cannot_write(path, folder) or err.strerror or err}; choose another output path"
        ) from err
    lock = None
    try:
        lock = _lock(staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def _lock(staging: Path) -> int | None:
    """Hold an exclusive flock on the staging folder's lock file for as long as this writer lives
    (the kernel drops it when the process dies, SIGKILL included)."""
    if fcntl is None:
        return None
    fd = os.open(staging / _LOCK, os.O_CREAT | os.O_WRONLY, 0o600)
    with contextlib.suppress(OSError):  # a filesystem without locks: the pid alone tells
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill(pid, 0) would send Ctrl-C:
        return True  # https://docs.python.org/3/library/os.html#os.kill
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, and belongs to someone else
    return True


def is_staging(name: str) -> bool:
    """Whether a folder entry is a writer's staging (a live or a dead one's)."""
    return _STAGING.fullmatch(name) is not None


def remove_stale_staging(path: str | os.PathLike, every: bool = False) -> list[Path]:
    """Remove the staging folders of `path` (with `every`: of anything in the folder `path`) that
    killed writers left; returns them.

    Stale means: made on this host (a folder shared between machines keeps the others'), by a
    process that is gone, and with its lock free (a writer in another pid namespace on a shared
    volume still holds it). A live writer's staging is never touched; a dead writer whose pid was
    reused is only cleaned once that process is gone too.
    """
    path = Path(path)
    folder = path if every else path.parent
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".partial")]
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING.fullmatch(entry.name)
        if (
            not match
            or (not every and match["name"] != path.name)
            or match["host"] != _HOST
            or _alive(int(match["pid"]))
            or not entry.is_dir(follow_symlinks=False)
        ):
            continue
        fd = None
        if fcntl is not None:
            try:
                fd = os.open(Path(entry.path) / _LOCK, os.O_WRONLY)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # held: its writer lives
            except OSError:
                pass  # no lock file (killed before making it) or no locks here: the pid said dead
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            if fd is not None:
                os.close(fd)
    return removed


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder that becomes `path`, with everything the block wrote in it, only if the
    block succeeds. Its files and the folder itself are synced before the rename, and the parent
    after it, so a power cut leaves the old folder or the new one. An existing folder at `path` is
    first renamed away into the staging (the name never holds a partial folder) and removed."""
    path = Path(path)
    with _staging(path, folder=True) as staging:
        built = staging / path.name
        built.mkdir()
        yield built
        for entry in os.scandir(built):
            if entry.is_file(follow_symlinks=False):
                _fsync(Path(entry.path))
        os.chmod(built, DIR_MODE)
        _fsync(built)
        if os.path.lexists(path):
            os.replace(path, staging / ".old")
        os.replace(built, path)
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


#################################################################################
#                    A long job's folder: one writer at a time                  #
#################################################################################


class FolderBusy(EdgeditError):
    """Another live process holds the folder's lock."""

    def __init__(self, folder: Path, pid: int | None):
        self.folder, self.pid = folder, pid
        super().__init__(f"{folder}: another process{f' (pid {pid})' if pid else ''} is writing here")


@contextmanager
def folder_lock(folder: str | os.PathLike, name: str = ".lock") -> Iterator[bool]:
    """Hold an exclusive flock on `folder/name`, with this process's pid written in it, for the block;
    yields whether the lock file was made here. A held lock raises FolderBusy at once (naming the
    holder's pid) rather than waiting. The kernel drops the lock when the process dies."""
    folder = Path(folder)
    path = folder / name
    made = not os.path.lexists(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise EdgeditError(f"{path}: cannot open the lock file ({err.strerror}); the folder must be writable") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EdgeditError(f"{path}: not a plain file; remove it")
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = re.match(rb"(\d{1,10})\n", os.pread(fd, 32, 0))
                raise FolderBusy(folder, int(holder[1]) if holder else None) from None
            except OSError as err:
                raise EdgeditError(f"{path}: cannot lock it ({err.strerror})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield made
    finally:
        os.close(fd)
