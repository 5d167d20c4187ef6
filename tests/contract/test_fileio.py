"""contract/staging.py and contract/fileio.py: atomic outputs, the staging a killed writer leaves,
and the output policy."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedit.contract import fileio, staging
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import Output, check_outputs, file_kind
from edgedit.contract.staging import atomic_output, remove_stale_staging

WRITER = """
import sys, time
from edgedit.contract.staging import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(120)
"""


def staging_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.partial"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def start_writer(path: Path) -> subprocess.Popen:
    """A process inside atomic_output(path), its partial file written."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    return proc


def fake_staging(path: Path, pid: int, host: str = staging._HOST) -> Path:
    folder = path.parent / f".{path.name}.{pid}@{host}.abcd1234.partial"
    folder.mkdir()
    (folder / path.name).write_bytes(b"half")
    return folder


#################################################################################
#                                 atomic_output                                 #
#################################################################################


def test_a_failed_block_leaves_the_old_file_and_no_staging(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"new")
        raise RuntimeError("parity failed")
    assert out.read_bytes() == b"old" and staging_of(out) == []


def test_staging_is_named_after_its_writer_and_locked_while_it_writes(tmp_path):
    import fcntl

    out = tmp_path / "m.onnx"
    with atomic_output(out) as tmp:
        (folder,) = staging_of(out)
        assert f".{os.getpid()}@{staging._HOST}." in folder.name and tmp.parent == folder
        fd = os.open(folder / staging._LOCK, os.O_WRONLY)
        with pytest.raises(BlockingIOError):  # another open file description: the writer's lock excludes it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and staging_of(out) == []


def test_companions_move_with_the_file_and_stale_ones_go(tmp_path):
    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    with atomic_output(out, data) as tmp:
        tmp.write_bytes(b"graph")
        (tmp.parent / data.name).write_bytes(b"weights")
    assert out.read_bytes() == b"graph" and data.read_bytes() == b"weights"
    with atomic_output(out, data) as tmp:  # a re-export with the weights inline
        tmp.write_bytes(b"graph2")
    assert out.read_bytes() == b"graph2" and not data.exists()


def test_missing_folders_are_made_and_impossible_places_are_one_line(tmp_path):
    with atomic_output(tmp_path / "a" / "b" / "m.npz") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "a" / "b" / "m.npz").read_bytes() == b"x"
    (tmp_path / "file").write_text("x")
    for bad, words in ((tmp_path / "file" / "m.npz", "is not a folder"), (tmp_path / "a", "is a folder")):
        with pytest.raises(EdgeditError, match=words) as err, atomic_output(bad) as tmp:
            tmp.write_bytes(b"never")
        assert "\n" not in str(err.value)


#################################################################################
#                        Staging that killed writers left                       #
#################################################################################


def test_a_killed_writers_staging_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "m.npz"
    writer = start_writer(out)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert len(staging_of(out)) == 1 and not out.exists()  # what SIGKILL leaves
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole" and staging_of(out) == []


def test_a_live_writers_staging_is_never_touched(tmp_path):
    out = tmp_path / "m.npz"
    writer = start_writer(out)
    try:
        (theirs,) = staging_of(out)
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"mine")
        assert remove_stale_staging(out) == [] and (theirs / out.name).read_bytes() == b"half"
        assert out.read_bytes() == b"mine"
    finally:
        writer.kill()
        writer.wait()
    assert remove_stale_staging(out) == [theirs]


def test_only_this_outputs_staging_of_dead_writers_on_this_host_is_removed(tmp_path):
    import fcntl

    out = tmp_path / "m.onnx"
    pid = dead_pid()
    stale = fake_staging(out, pid)
    other_host = fake_staging(out, pid, "another-machine")  # a shared folder: that host's writer may live
    other_output = fake_staging(tmp_path / "m.onnx.data", pid)
    legacy = tmp_path / ".m.onnx.k2j4h5g6.partial"  # no pid: cannot be told stale
    legacy.mkdir()
    locked = fake_staging(tmp_path / "n.onnx", pid)  # pid gone, lock held (a writer in another pid namespace)
    (locked / staging._LOCK).touch()
    fd = os.open(locked / staging._LOCK, os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert remove_stale_staging(out) == [stale]
        assert remove_stale_staging(tmp_path / "n.onnx") == []
    finally:
        os.close(fd)
    assert other_host.exists() and other_output.exists() and legacy.exists() and locked.exists()
    assert remove_stale_staging(tmp_path / "n.onnx") == [locked]


def test_checking_outputs_removes_their_stale_staging(tmp_path):
    out = tmp_path / "m.onnx"
    stale = [fake_staging(out, dead_pid()), fake_staging(tmp_path / "m.onnx.data", dead_pid())]
    check_outputs([Output("-o", out, "onnx", (tmp_path / "m.onnx.data",))])
    assert not any(s.exists() for s in stale)


#################################################################################
#                              Kinds of files                                   #
#################################################################################


def test_file_kinds_come_from_the_first_bytes(tmp_path):
    from edgedit.models.checkpoint import save_model
    from edgedit.models.dit import DiT
    from tests.helpers import TINY_CONFIGS

    save_model(DiT(TINY_CONFIGS["onestep-cond"]), tmp_path / "student.bin")
    save_model(DiT(TINY_CONFIGS["edm-cond"]), tmp_path / "teacher.bin")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "foreign.bin"))
    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "state.bin"), metadata={"format": "edgedit.train-state/1"})
    np.savez(tmp_path / "a.bin", x=np.zeros(2))
    os.replace(tmp_path / "a.bin.npz", tmp_path / "a.bin")
    np.save(tmp_path / "a.npy", np.zeros(2))
    from PIL import Image

    Image.new("L", (2, 2)).save(tmp_path / "grid.bin", format="PNG")
    (tmp_path / "r.bin").write_text(json.dumps([{"a": 1}]))
    (tmp_path / "notes.onnx").write_text("# not a model\n")
    (tmp_path / "m.plan").write_bytes(b"\x00\x01engine")
    (tmp_path / "blob").write_bytes(b"\x00\x01\x02")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x0a\x12\x07edgedit")  # ir_version 10, producer_name
    expected = {
        "student.bin": "student",
        "teacher.bin": "denoiser",
        "foreign.bin": "checkpoint",
        "state.bin": "train-state",
        "a.bin": "npz",
        "a.npy": "npy",
        "grid.bin": "png",
        "r.bin": "json",
        "notes.onnx": "text",
        "m.plan": "engine",
        "blob": "unknown",
        "empty.onnx": None,
        "m.onnx": "onnx",
    }
    assert {name: file_kind(tmp_path / name) for name in expected} == expected


#################################################################################
#                               check_outputs                                   #
#################################################################################


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("s.train-state.safetensors", "s.onnx.data", "e.plan", "e.plan.json"):
        Path(name).write_bytes(b"x")
    Path("s.safetensors").write_bytes(b"\x02" + bytes(7) + b"{}")  # an empty safetensors file
    Path("s.onnx").write_bytes(b"\x08\x0a\x12\x07edgedit")
    Path("pairs").mkdir()
    (Path("pairs") / "manifest.json").write_text("{}")
    os.symlink("s.safetensors", "link.safetensors")
    os.link("s.onnx", "hard.onnx")
    return tmp_path


@pytest.mark.parametrize(
    "outputs, inputs, words",
    [
        (
            [Output("-o", "s.safetensors", "onnx")],
            {"MODEL": "s.safetensors"},
            "-o s.safetensors would overwrite the input MODEL s.safetensors",
        ),
        ([Output("-o", "./x/../s.safetensors", "onnx")], {"MODEL": "s.safetensors"}, "would overwrite the input MODEL"),
        ([Output("-o", "{abs}/s.onnx", "npz")], {"MODEL": "s.onnx"}, "would overwrite the input MODEL"),
        ([Output("-o", "link.safetensors", "onnx")], {"MODEL": "s.safetensors"}, "would overwrite"),  # a symlink
        ([Output("-o", "hard.onnx", "npz")], {"MODEL": "s.onnx"}, "would overwrite"),  # a hard link
        ([Output("-o", "s.onnx.data", "npz")], {"MODEL": "s.onnx"}, "s.onnx.data, which belongs to the input MODEL"),
        ([Output("-o", "e.plan.json", "json")], {"ENGINE": "e.plan"}, "which belongs to the input ENGINE e.plan"),
        ([Output("-o", "s.train-state.safetensors", "onnx")], {"MODEL": "s.safetensors"}, "belongs to the input"),
        (
            [Output("-o", "x.onnx", "onnx", ("s.safetensors",))],
            {"MODEL": "s.safetensors"},
            "s.safetensors (written with -o x.onnx) would overwrite the input MODEL",
        ),
        ([Output("-o", "t.safetensors", "student", (), ("s.onnx",))], {"M": "s.onnx"}, "written with -o t.safetensors"),
        (
            [Output("-o", "pairs/student.safetensors", "student")],
            {"--pairs": "pairs"},
            "is inside the input --pairs pairs",
        ),
        ([Output("-o", ".", "folder")], {"--pairs": "pairs"}, "-o . is a folder that holds the input --pairs pairs"),
        ([Output("-o", "pairs", "folder")], {"--pairs": "pairs"}, "would overwrite the input --pairs pairs"),
        (
            [Output("--json", "r.json", "json"), Output("--csv", "./r.json", "text")],
            {},
            "--json r.json and --csv ./r.json are the same file",
        ),
        ([Output("-o", "pairs", "onnx")], {}, "-o pairs: is a folder, not a file"),
        ([Output("-o", "s.onnx", "folder")], {}, "-o s.onnx: is a file, not a folder"),
        ([Output("-o", "s.onnx/x/m.onnx", "onnx")], {}, "s.onnx is not a folder"),
        ([Output("-o", "/dev/null", "npz")], {}, "is not a regular file"),
        (
            [Output("-o", "s.safetensors", "onnx")],
            {},
            "-o s.safetensors: exists and is a safetensors file, not an ONNX "
            "model; choose another path, or pass `force` to replace it",
        ),
    ],
)
def test_outputs_that_would_destroy_something_are_refused_in_one_line(files, outputs, inputs, words):
    outputs = [Output(o.flag, str(o.path).format(abs=files), o.kind, o.companions, o.folders) for o in outputs]
    before = {p: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    with pytest.raises(EdgeditError) as err:
        check_outputs(outputs, inputs)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert {p: p.read_bytes() for p in files.rglob("*") if p.is_file()} == before


def test_no_permission_is_one_line(files, monkeypatch):
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: False)  # tests may run as root
    with pytest.raises(EdgeditError, match=r"-o new/m.onnx: no permission to write in .*; choose another"):
        check_outputs([Output("-o", "new/m.onnx", "onnx")])


def test_allowed_outputs_pass_and_nothing_is_made(files):
    check_outputs([Output("-o", "export/deep/m.onnx", "onnx", ("export/deep/m.onnx.data",))], {"MODEL": "s.onnx"})
    assert not Path("export").exists()  # atomic_output makes the folders, once the work is done
    check_outputs([Output("-o", "s.onnx", "onnx")], {"MODEL": "DiT-Nano-S/2"})  # same kind: a re-run; presets skipped
    check_outputs([Output("-o", "s.safetensors", "onnx")], {}, force=True)  # another kind, forced
    check_outputs([Output("-o", "s.onnx", None)], {})  # a file also read (a timing cache): no kind check
    check_outputs([Output("-o", "sweep", "folder")], {"--pairs": "pairs"})
    check_outputs([Output("--npz", None, "npz")], {"MODEL": None})


def test_checkpoints_are_told_apart_by_role(tmp_path):
    from edgedit.models.checkpoint import save_model
    from edgedit.models.dit import DiT
    from tests.helpers import TINY_CONFIGS

    teacher = save_model(DiT(TINY_CONFIGS["edm-cond"]), tmp_path / "teacher.safetensors")
    check_outputs([Output("-o", teacher, "denoiser")])  # re-training a teacher
    with pytest.raises(EdgeditError, match="is a multi-step denoiser checkpoint .a teacher., not a one-step student"):
        check_outputs([Output("-o", teacher, "student")])  # distill -o teacher.safetensors
    (tmp_path / "damaged.safetensors").write_bytes(b"\x10\x00")
    check_outputs([Output("-o", tmp_path / "damaged.safetensors", "student")])  # a checkpoint of unknown role


def test_atomic_folder_replaces_a_folder_whole_or_leaves_the_old_one(tmp_path):
    from edgedit.contract.staging import DIR_MODE, atomic_folder

    out = tmp_path / "shard"
    out.mkdir()
    (out / "old.npy").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_folder(out) as built:
        (built / "new.npy").write_bytes(b"new")
        raise RuntimeError("killed mid-shard")
    assert sorted(p.name for p in out.iterdir()) == ["old.npy"]  # the old folder, untouched
    with atomic_folder(out) as built:
        (built / "new.npy").write_bytes(b"new")
        assert not (out / "new.npy").exists()  # nothing appears before the block ends
    assert sorted(p.name for p in out.iterdir()) == ["new.npy"]  # the new one, whole; the old one gone
    assert out.stat().st_mode & 0o777 == DIR_MODE  # mkdtemp's 0700 is not what a folder gets
    assert list(tmp_path.glob(".*.partial")) == []


def test_atomic_output_never_renames_over_a_device(tmp_path):
    """As root, a rename over /dev/null would replace the device with a file for every process."""
    with pytest.raises(EdgeditError, match="/dev/null: is not a regular file"), atomic_output("/dev/null") as tmp:
        tmp.write_bytes(b"x")
    assert not Path("/dev/null").is_file()
