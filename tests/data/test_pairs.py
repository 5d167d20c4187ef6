import contextlib
import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgedit.cli import app
from edgedit.contract import staging
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.progress import reporting
from edgedit.data.pairs import (
    ManifestHeader,
    PairsStore,
    generate_pairs,
    import_get,
    inspect_shard,
    read_manifest,
    torch_dataset,
    verify_pairs,
)
from edgedit.models.checkpoint import save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.runtime.noise import noise_from_seeds
from tests.helpers import TINY_CONFIGS

runner = CliRunner()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    net = random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=2).eval()
    return save_model(net, tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory):
    net = random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=3).eval()
    return save_model(net, tmp_path_factory.mktemp("teacher2") / "teacher.safetensors")


@pytest.fixture(scope="module")
def made(teacher, tmp_path_factory):
    """A store of 10 pairs in shards of 4, 4, 2 (with labels and 2 trajectory states), made once."""
    folder = tmp_path_factory.mktemp("made") / "p"
    make(teacher, folder)
    return folder


@pytest.fixture
def store(made, tmp_path):
    """A private copy of `made` to damage."""
    return shutil.copytree(made, tmp_path / "p", symlinks=True)


def dead_writers_staging(store, name: str) -> "os.PathLike":
    """The staging folder a killed writer of `name` left (contract/staging.py names it after its pid)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    folder = store / f".{name}.{proc.pid}@{staging._HOST}.abcd1234.partial"
    folder.mkdir()
    return folder


def make(teacher, out, **kwargs):
    settings = dict(count=10, steps=4, trajectory=2, shard_size=4, batch=4)
    return generate_pairs(teacher, out, **{**settings, **kwargs})


def test_store_layout_and_contents(teacher, tmp_path):
    manifest = make(teacher, tmp_path / "p")
    assert manifest["complete"] and [s["count"] for s in manifest["shards"]] == [4, 4, 2]
    assert manifest["trajectory"]["steps"] == [1, 3] and len(manifest["trajectory"]["sigmas"]) == 2
    assert manifest["seeds"] == {"first": 0, "count": 10} and manifest["teacher"]["sha256"]
    store = PairsStore(tmp_path / "p")
    item = store[5]
    assert int(item["seeds"]) == 5 and item["image"].dtype == np.float16
    np.testing.assert_array_equal(item["z"], noise_from_seeds([5], (1, 16, 16))[0])  # unit variance, from the seed
    assert item["trajectory"].shape == (2, 1, 16, 16) and 0 <= item["label"] < 10
    assert isinstance(store.shards[0]["z"], np.memmap)


def test_pairs_regenerate_bit_identically_from_their_seeds(teacher, tmp_path):
    make(teacher, tmp_path / "a")
    make(teacher, tmp_path / "b", shard=(1, 2))  # another worker's share, then the rest
    make(teacher, tmp_path / "b", shard=(0, 2))
    a, b = PairsStore(tmp_path / "a"), PairsStore(tmp_path / "b")
    # every shard samples its own seeds in the same batches whichever worker makes it: the same operations in
    # the same order on this machine, so equal bits
    for i in range(len(a)):
        for key in ("z", "image", "label", "trajectory"):
            assert np.array_equal(a[i][key], b[i][key]), (i, key)


def test_a_damaged_or_partial_shard_is_regenerated_and_others_skipped(teacher, tmp_path):
    make(teacher, tmp_path / "p")
    shard1 = tmp_path / "p" / "shard-000001"
    good = (shard1 / "image.npy").read_bytes()
    (shard1 / "image.npy").write_bytes(good[:-8])  # truncated
    shutil.rmtree(tmp_path / "p" / "shard-000002")  # missing
    dead_writers_staging(tmp_path / "p", "shard-000002")  # an interrupted attempt's leftovers
    said = []
    assert not verify_pairs(tmp_path / "p", say=said.append)["complete"]
    assert said == [
        "removed 1 staging folder(s) of interrupted writers",
        "dropped shard-000001 (checksum of image.npy)",
        "1 of 3 shards verified",
    ]
    with pytest.raises(EdgeditError, match="incomplete \\(1 of 3 shards verified\\)"):
        PairsStore(tmp_path / "p")
    untouched = (tmp_path / "p" / "shard-000000" / "z.npy").stat().st_mtime_ns
    dead_writers_staging(tmp_path / "p", "shard-000001")  # a killed writer's, seen by the next one
    assert make(teacher, tmp_path / "p")["complete"]
    assert (shard1 / "image.npy").read_bytes() == good
    assert (tmp_path / "p" / "shard-000000" / "z.npy").stat().st_mtime_ns == untouched
    assert not list((tmp_path / "p").glob(".*.partial"))


def test_other_settings_do_not_mix_into_a_store(teacher, tmp_path):
    make(teacher, tmp_path / "p")
    with pytest.raises(EdgeditError, match="other settings \\(sampler differ\\)"):
        make(teacher, tmp_path / "p", sampler="euler")


def test_labels_balanced_or_from_the_seed(teacher, tmp_path):
    make(teacher, tmp_path / "b", class_balanced=True, trajectory=0)
    balanced = PairsStore(tmp_path / "b")
    assert [int(balanced[i]["label"]) for i in range(10)] == [i % 10 for i in range(10)]


def test_torch_dataset_reads_without_loading_everything(teacher, tmp_path):
    make(teacher, tmp_path / "p")
    dataset = torch_dataset(tmp_path / "p", trajectory=True)
    z, image, label, traj = dataset[9]
    assert len(dataset) == 10 and z.shape == image.shape == (1, 16, 16) and traj.shape == (2, 1, 16, 16)
    assert image.dtype == torch.float32 and 0 <= int(label) < 10
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    assert sum(len(b[0]) for b in loader) == 10


def write_get(folder, conditional):
    """Files laid out as GET's data/generate.py writes them: torch.save of whole tensors, 2 files."""
    (folder / "image").mkdir(parents=True)
    (folder / "latent").mkdir()
    gen = torch.Generator().manual_seed(0)
    for last in (2, 5):  # <last seed>.pkl, 3 pairs each
        z = torch.randn(3, 3, 8, 8, generator=gen)
        image = torch.randn(3, 3, 8, 8, generator=gen, dtype=torch.float64)
        latent = [z, torch.nn.functional.one_hot(torch.tensor([1, 2, 9]), 10).float()] if conditional else z
        torch.save(image if not conditional else image.float(), folder / "image" / f"{last:09d}.pkl")
        torch.save(latent, folder / "latent" / f"{last:09d}.pkl")


@pytest.mark.parametrize("conditional", [False, True])
def test_get_import(tmp_path, conditional):
    write_get(tmp_path / "get", conditional)
    manifest = import_get(tmp_path / "get", tmp_path / "p", image_dtype="float32")
    assert manifest["complete"] and manifest["seeds"] == {"first": 0, "count": 6}
    store = PairsStore(tmp_path / "p")
    original = torch.load(tmp_path / "get" / "image" / "000000005.pkl", weights_only=True)
    # GET's images (float64 when unconditional) stored as float32: one rounding, <= 2^-24 = 6e-8 relative; 16x
    np.testing.assert_allclose(store[4]["image"], original[1].numpy(), rtol=1e-6)
    assert list(store[3]["seeds"].reshape(-1)) == [3]
    if conditional:
        assert [int(store[i]["label"]) for i in range(3)] == [1, 2, 9] and manifest["num_classes"] == 10
    else:
        assert "label" not in store[0]


def test_get_import_refuses_pickled_objects(tmp_path):
    write_get(tmp_path / "get", conditional=False)
    import argparse

    torch.save({"args": argparse.Namespace(x=1)}, tmp_path / "get" / "latent" / "000000005.pkl")
    with pytest.raises(EdgeditError, match="000000005.pkl: refused"):
        import_get(tmp_path / "get", tmp_path / "p")


def test_an_official_style_ddpm_dit_serves_as_teacher(tmp_path):
    """A converted official DiT (epsilon + variance outputs) makes pairs with DDIM on its own schedule."""
    net = random_weights(DiT(TINY_CONFIGS["ddpm-cfg"]), seed=4).eval()
    teacher = save_model(net, tmp_path / "dit.safetensors")
    manifest = generate_pairs(teacher, tmp_path / "p", count=3, steps=5, trajectory=2, batch=4)
    assert manifest["sampler"]["sampler"] == "ddim" and manifest["sampler"]["type"] == "ddpm"
    assert manifest["trajectory"]["timesteps"] == [749.0, 0.0]  # states before steps 1 and 4 of 5
    item = PairsStore(tmp_path / "p")[0]
    assert item["image"].shape == (4, 8, 8) and item["trajectory"].shape == (2, 4, 8, 8)
    assert np.isfinite(item["image"].astype(np.float32)).all()


#################################################################################
#            hostile stores: the manifest, the shards, their data               #
#################################################################################


def edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def one_line(err) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


SETTINGS_CASES = [  # problems in the settings: nothing to rebuild a manifest from
    (lambda m: m.update(num_classes=True), "field 'num_classes': input should be a valid integer"),
    (lambda m: m["seeds"].update(count=-4), "field 'seeds.count': input should be greater than or equal to 1"),
    (lambda m: m.update(shape=[1, 16, 8]), "field 'shape': need \\[C, H, H\\]"),
    (lambda m: m.pop("sampler"), "field 'sampler': field required"),
    (lambda m: m.update(colour="blue"), "field 'colour': extra inputs are not permitted"),
    (lambda m: m.update(expected_shards=4), "field 'expected_shards': the settings make 3 shards"),
    (lambda m: m.update(image_dtype="float32"), "field 'settings_sha256': does not match the settings"),
    (lambda m: m["trajectory"].update(steps=[1, 2]), "field 'trajectory.steps'"),
    (lambda m: m.update(format="edgedit.pairs/1"), "another edgedit .*re-generate it"),
]
SHARD_LIST_CASES = [  # problems in the list of shards: `pairs verify` rebuilds it
    (lambda m: m["shards"][0].update(name="../shard-000000"), "field 'shards.0.name': string should match pattern"),
    (lambda m: m["shards"].append(dict(m["shards"][0])), "field 'shards.3.index': shards are listed once each"),
    (lambda m: m["shards"][1].update(count=5), "field 'shards.1.count'"),
    (lambda m: m.update(complete=False), "field 'complete': 3 of 3 shards are listed"),
    (lambda m: m["shards"][2].update(settings_sha256="0" * 64), "field 'shards.2.settings_sha256'"),
]


@pytest.mark.parametrize("change, message", SETTINGS_CASES + SHARD_LIST_CASES)
def test_a_malformed_manifest_is_refused_in_one_line(store, change, message):
    edit_manifest(store, change)
    with pytest.raises(EdgeditError, match=message) as err:
        PairsStore(store)
    assert one_line(err).startswith(f"{store / 'manifest.json'}: ")
    before = (store / "manifest.json").read_bytes()
    if (change, message) in SETTINGS_CASES:  # cannot be repaired: refused, the manifest left as it is
        with pytest.raises(EdgeditError, match=message):
            verify_pairs(store)
        assert (store / "manifest.json").read_bytes() == before
    else:
        assert verify_pairs(store)["complete"] and len(PairsStore(store)) == 10


@pytest.mark.parametrize(
    "text, message",
    [("{", "not JSON"), ('{"format": NaN}', "not JSON \\(NaN is not JSON\\)"), ("[1, 2]", "expected a JSON object")],
)
def test_a_manifest_that_is_not_a_json_object_is_refused(store, text, message):
    (store / "manifest.json").write_text(text)
    for reader in (PairsStore, verify_pairs):
        with pytest.raises(EdgeditError, match=message) as err:
            reader(store)
        one_line(err)
    assert (store / "manifest.json").read_text() == text


def resign(folder, shard, name, array=None, raw=None):
    """Replace one array of a shard and re-sign it (meta.json and the manifest), as a hostile store
    would: the checksums pass, only the data checks can tell."""
    tmp = folder / shard / "new.npy"
    if raw is not None:
        tmp.write_bytes(raw)
    else:
        np.save(tmp, array, allow_pickle=True)
    os.replace(tmp, folder / shard / f"{name}.npy")
    digest = sha256_file(folder / shard / f"{name}.npy")
    meta = json.loads((folder / shard / "meta.json").read_text())
    meta["sha256"][name] = digest
    (folder / shard / "meta.json").write_text(json.dumps(meta))
    edit_manifest(folder, lambda m: [e["sha256"].update({name: digest}) for e in m["shards"] if e["name"] == shard])


def truncated_z(folder):
    return (folder / "shard-000001" / "z.npy").read_bytes()[:300]


@pytest.mark.parametrize(
    "name, make_array, message",
    [
        ("label", lambda f: np.full(4, 10, np.int64), "label.npy: labels 10..10 outside 0..9"),
        ("label", lambda f: np.array([0, -1, 2, 3], np.int64), "label.npy: labels -1..3 outside 0..9"),
        ("label", lambda f: np.zeros(3, np.int64), "label.npy: int64 \\(3,\\), the settings call for int64 \\(4,\\)"),
        ("z", lambda f: np.array([{"x": 1}] * 4, dtype=object), "z.npy: not a readable .npy array"),
        ("z", truncated_z, "z.npy: not a readable .npy array \\(mmap length is greater than file size\\)"),
        ("z", lambda f: np.full((4, 1, 16, 16), np.nan, np.float32), "z.npy: holds NaN or infinite values"),
        (
            "image",
            lambda f: np.zeros((4, 1, 8, 8), np.float16),
            "image.npy: float16 \\(4, 1, 8, 8\\), the settings call for float16 \\(4, 1, 16, 16\\)",
        ),
        ("image", lambda f: np.zeros((4, 1, 16, 16), np.float32), "image.npy: float32 .* call for float16"),
        (
            "trajectory",
            lambda f: np.full((4, 2, 1, 16, 16), np.inf, np.float16),
            "trajectory.npy: holds NaN or infinite",
        ),
        ("seeds", lambda f: np.arange(100, 104), "seeds.npy: not the seeds 4..7"),
    ],
)
def test_shard_data_is_checked_against_the_settings_before_use(store, name, make_array, message):
    array = make_array(store)
    resign(store, "shard-000001", name, **({"raw": array} if isinstance(array, bytes) else {"array": array}))
    with pytest.raises(EdgeditError, match=f"shard-000001: {message}") as err:
        PairsStore(store)
    assert "pairs verify" in one_line(err)
    said = []
    assert not verify_pairs(store, say=said.append)["complete"]
    assert said[0].startswith("dropped shard-000001 (") and said[-1] == "2 of 3 shards verified"


def test_shard_metadata_and_links_are_checked(store, tmp_path):
    meta = json.loads((store / "shard-000000" / "meta.json").read_text())
    (store / "shard-000000" / "meta.json").write_text(json.dumps({**meta, "count": True}))
    with pytest.raises(EdgeditError, match="shard-000000: meta.json: not a valid shard record: field 'count'"):
        PairsStore(store)
    (store / "shard-000000" / "meta.json").write_text(json.dumps(meta))
    outside = shutil.copytree(store / "shard-000002", tmp_path / "elsewhere")  # a valid shard, outside the store
    shutil.rmtree(store / "shard-000002")
    (store / "shard-000002").symlink_to(outside)
    with pytest.raises(EdgeditError, match="shard-000002: shard-000002 is a symbolic link"):
        PairsStore(store)
    (store / "shard-000002").unlink()
    shutil.copytree(outside, store / "shard-000002")
    (store / "shard-000002" / "z.npy").unlink()
    (store / "shard-000002" / "z.npy").symlink_to(outside / "z.npy")
    with pytest.raises(EdgeditError, match="shard-000002: z.npy is a symbolic link"):
        PairsStore(store)


def test_verify_says_what_it_dropped_and_lists_only_plain_shards_inside(store, tmp_path):
    image = store / "shard-000001" / "image.npy"
    image.write_bytes(image.read_bytes()[:-1] + b"\x01")  # one flipped byte
    outside = shutil.copytree(store / "shard-000002", tmp_path / "elsewhere")
    shutil.rmtree(store / "shard-000002")
    (store / "shard-000002").symlink_to(outside)
    shutil.copytree(store / "shard-000000", store / "shard-000009")  # beyond the store's 3 shards
    shutil.copytree(store / "shard-000000", store / "shard-0")  # not a shard name
    result = runner.invoke(app, ["pairs", "verify", str(store)])
    assert result.exit_code == 1  # incomplete
    said = [  # one line each (rich may wrap them on a narrow terminal)
        "ignored shard-0 (not a shard name: shard-NNNNNN)",
        "dropped shard-000001 (checksum of image.npy)",
        "dropped shard-000002 (shard-000002 is a symbolic link (a store's files live inside it))",
        "dropped shard-000009 (the store has 3 shards)",
        "1 of 3 shards verified",
    ]
    assert " ".join(result.stderr.split()) == " ".join(said)
    assert "4 pairs in 1 shards (incomplete: 1 of 3 shards)" in " ".join(result.stdout.split())  # wrapped at words
    manifest = json.loads((store / "manifest.json").read_text())
    assert [s["name"] for s in manifest["shards"]] == ["shard-000000"] and not manifest["complete"]


def test_a_foreign_shard_is_not_adopted(store, made, teacher, other_teacher, tmp_path):
    make(other_teacher, tmp_path / "other")
    shutil.rmtree(store / "shard-000001")
    shutil.copytree(tmp_path / "other" / "shard-000001", store / "shard-000001")  # same seeds, another teacher
    said = []
    verify_pairs(store, say=said.append)
    assert said[0] == (
        "dropped shard-000001 (made with other settings (its settings_sha256 differs from the manifest's))"
    )
    assert make(teacher, store)["complete"]  # the re-run redoes it with the store's own teacher
    assert (store / "shard-000001" / "image.npy").read_bytes() == (made / "shard-000001" / "image.npy").read_bytes()


#################################################################################
#           one writer, settings before shards, kills and failures             #
#################################################################################


class Stop(BaseException):
    """Stands for a kill: raised from the progress callback once a shard is written."""


@contextlib.contextmanager
def stop_after(shards: int, size: int = 4):
    """Generation interrupted (as by Ctrl-C) once `shards` shards of `size` pairs are written: the
    store's progress task (contract/progress.py) is the hook."""

    @contextlib.contextmanager
    def reporter(label, total):
        done = []

        def advance(k):
            done.append(k)
            if label == "teacher pairs" and sum(done) >= shards * size:
                raise Stop

        yield advance

    with reporting(reporter):
        yield


def test_settings_are_recorded_before_the_first_shard(teacher, other_teacher, tmp_path):
    out = tmp_path / "p"
    with pytest.raises(Stop), stop_after(1):  # interrupted after one shard
        make(teacher, out)
    header, _ = read_manifest(out, ManifestHeader)
    assert not header.complete and header.teacher.sha256 == sha256_file(teacher)
    for other, differing in (
        ({"teacher": other_teacher}, "teacher"),
        ({"steps": 5}, "sampler, trajectory"),
        ({"count": 12}, "seeds"),
        ({"image_dtype": "float32"}, "image_dtype"),
    ):
        args = {"teacher": teacher, **other}
        with pytest.raises(EdgeditError, match=f"other settings \\({differing} differ\\).*`force`") as err:
            make(args.pop("teacher"), out, **args)
        one_line(err)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000"]
    said = []
    manifest = make(other_teacher, out, force=True, say=said.append)  # starts it over
    assert said == ["starting over: removed the 1 shards of the old store in " + str(out)]
    assert manifest["complete"] and manifest["teacher"]["sha256"] == sha256_file(other_teacher)
    assert len(PairsStore(out)) == 10


def test_the_cli_refuses_another_teacher_in_one_line(teacher, other_teacher, tmp_path):
    args = ["pairs", "generate", "-o", str(tmp_path / "p"), "-n", "8", "--shard-size", "4", "--steps", "3"]
    with pytest.raises(Stop), stop_after(1):
        generate_pairs(teacher, tmp_path / "p", count=8, shard_size=4, steps=3)
    result = runner.invoke(app, [*args[:2], str(other_teacher), *args[2:]])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"edgedit: error: {tmp_path / 'p'}: holds pairs made with other settings (teacher differ); use another output "
        "folder, the same settings to continue it, or --force to start it over"
    ]
    assert runner.invoke(app, [*args[:2], str(other_teacher), *args[2:], "--force"]).exit_code == 0


def test_a_second_writer_is_refused_at_once(store, teacher):
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live writer
        os.ftruncate(fd, 0)
        os.write(fd, b"4242\n")
        live = dead_writers_staging(store, "shard-000001")  # the shard it is writing, from another pid namespace
        held = os.open(live / staging._LOCK, os.O_WRONLY | os.O_CREAT)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for writer in (lambda: make(teacher, store), lambda: verify_pairs(store)):
            with pytest.raises(EdgeditError, match="another process \\(pid 4242\\) is writing this pairs store"):
                writer()
        assert live.is_dir()  # not stale: its writer holds the lock
    finally:
        os.close(fd)
        os.close(held)
    make(teacher, store)
    assert not live.exists()  # stale now


def test_a_failed_run_leaves_no_folder_it_made(teacher, tmp_path, monkeypatch):
    import edgedit.runtime.samplers

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(edgedit.runtime.samplers, "generate", broken)
    with pytest.raises(RuntimeError):
        make(teacher, tmp_path / "new" / "p")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError):
        make(teacher, tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []
    (tmp_path / "other" / "notes").mkdir(parents=True)  # not a pairs store: refused, untouched
    with pytest.raises(EdgeditError, match="holds files but no manifest.json \\(not a pairs store\\)"):
        make(teacher, tmp_path / "other")
    assert os.listdir(tmp_path / "other") == ["notes"]


@pytest.mark.slow
def test_a_killed_run_resumes_bit_identically(teacher, tmp_path):
    """SIGKILL at a random moment of `edgedit pairs generate`, then a re-run: every file as an
    uninterrupted run writes it (same --batch: other batch shapes round differently), and after the
    kill no final file is half-written."""
    start = time.perf_counter()
    reference = tmp_path / "reference"
    make(teacher, reference, count=48, shard_size=4)  # 12 shards
    duration = time.perf_counter() - start
    out = tmp_path / "p"
    command = [
        sys.executable,
        "-m",
        "edgedit",
        "pairs",
        "generate",
        str(teacher),
        "-o",
        str(out),
        "-n",
        "48",
        "--steps",
        "4",
        "--trajectory",
        "2",
        "--shard-size",
        "4",
        "--batch",
        "4",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "manifest.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)  # the settings are recorded: shards are being written from here on
    delay = random.uniform(0, duration)
    time.sleep(delay)
    process.kill()
    process.wait()
    _, layout = read_manifest(out, ManifestHeader)  # whole
    for shard in out.glob("shard-*"):
        inspect_shard(out, int(shard.name[6:]), layout)  # whole: every file as its meta.json says
    make(teacher, out, count=48, shard_size=4)
    assert not list(out.glob(".*.partial")), delay
    for shard in reference.glob("shard-*"):
        for file in shard.iterdir():
            assert file.read_bytes() == (out / shard.name / file.name).read_bytes(), (delay, file)
    ours, theirs = (json.loads((f / "manifest.json").read_text()) for f in (out, reference))
    assert {**ours, "updated": None} == {**theirs, "updated": None}, delay


def test_distill_and_sweep_check_the_store_before_training(store, tmp_path):
    from edgedit.design.sweep import SweepOptions, sweep
    from edgedit.train.distill import DistillOptions, distill
    from edgedit.train.trainer import TrainSettings

    image = store / "shard-000002" / "image.npy"
    image.write_bytes(image.read_bytes()[:-1] + b"\x01")  # one flipped byte
    settings = TrainSettings(steps=2, batch=4, lr=2e-3, checkpoint_every=2)
    with pytest.raises(EdgeditError, match="shard-000002: checksum of image.npy"):
        distill(
            DistillOptions(pairs=store, output=tmp_path / "s.safetensors", settings=settings, student="DiT-Nano-XS/2")
        )
    with pytest.raises(EdgeditError, match="shard-000002: checksum of image.npy"):
        sweep(
            SweepOptions(pairs=store, output=tmp_path / "sweep", budgets=(40_000,), settings=settings),
            say=lambda text: None,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # nothing written


def write_get_files(folder, files, latent=None, image=None):
    """GET-style files: {name: number of pairs}; `latent`/`image` replace the first file's content."""
    (folder / "image").mkdir(parents=True)
    (folder / "latent").mkdir()
    for k, (name, n) in enumerate(files.items()):
        torch.save(
            torch.randn(n, 3, 8, 8, dtype=torch.float64) if image is None or k else image, folder / "image" / name
        )
        torch.save(torch.randn(n, 3, 8, 8) if latent is None or k else latent, folder / "latent" / name)


@pytest.mark.parametrize(
    "files, latent, image, message",
    [
        ({"abc.pkl": 3}, None, None, "abc.pkl: not a GET pairs file name"),
        ({"-5.pkl": 3}, None, None, "-5.pkl: not a GET pairs file name"),
        ({"2.pkl": 3, "000000002.pkl": 3}, None, None, "000000002.pkl and 2.pkl both end at seed 2"),
        (
            {"2.pkl": 3, "4.pkl": 3},
            None,
            None,
            "4.pkl: the files up to this one hold 6 pairs but their names allow at "
            "most 5 seeds \\(0..4\\): their seeds overlap or start below 0",
        ),
        ({"1.pkl": 3}, None, None, "hold 3 pairs but their names allow at most 2 seeds"),
        ({"5.pkl": 3}, [torch.randn(3, 3, 8, 8)] * 3, None, "holds \\[z, one-hot labels\\], this holds a list of 3"),
        ({"5.pkl": 3}, torch.randn(3, 3, 8, 4), None, "noise of shape \\(3, 3, 8, 4\\): need .* square images"),
        ({"5.pkl": 3}, [torch.randn(3, 3, 8, 8), torch.ones(2, 10)], None, "labels of shape \\(2, 10\\)"),
        ({"5.pkl": 3}, torch.full((3, 3, 8, 8), float("nan")), None, "noise holds NaN"),
        ({"5.pkl": 3}, None, {"x": torch.zeros(1)}, "expected images as a float \\(n, C, H, W\\) tensor, found a dict"),
        ({"5.pkl": 3}, None, torch.zeros(2, 3, 8, 8), "images \\(2, 3, 8, 8\\) do not match"),
    ],
)
def test_get_import_refuses_bad_names_seeds_and_contents(tmp_path, files, latent, image, message):
    write_get_files(tmp_path / "get", files, latent, image)
    with pytest.raises(EdgeditError, match=message) as err:
        import_get(tmp_path / "get", tmp_path / "p")
    one_line(err)
    assert not (tmp_path / "p").exists()
