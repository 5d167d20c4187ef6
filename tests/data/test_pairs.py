import shutil

import numpy as np
import pytest
import torch

from edgedit.contract.errors import EdgeditError
from edgedit.data.pairs import PairsStore, generate_pairs, import_get, torch_dataset, verify_pairs
from edgedit.models.checkpoint import save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.runtime.noise import noise_from_seeds
from tests.helpers import TINY_CONFIGS


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    net = random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=2).eval()
    return save_model(net, tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


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
    for i in range(len(a)):
        for key in ("z", "image", "label", "trajectory"):
            assert np.array_equal(a[i][key], b[i][key]), (i, key)


def test_a_damaged_or_partial_shard_is_regenerated_and_others_skipped(teacher, tmp_path):
    make(teacher, tmp_path / "p")
    shard1 = tmp_path / "p" / "shard-000001"
    good = (shard1 / "image.npy").read_bytes()
    (shard1 / "image.npy").write_bytes(good[:-8])  # truncated
    shutil.rmtree(tmp_path / "p" / "shard-000002")  # missing
    (tmp_path / "p" / ".shard-000002.xyz.partial").mkdir()  # an interrupted attempt's leftovers
    assert not verify_pairs(tmp_path / "p")["complete"]
    with pytest.raises(EdgeditError, match="incomplete \\(1 of 3 shards verified\\)"):
        PairsStore(tmp_path / "p")
    untouched = (tmp_path / "p" / "shard-000000" / "z.npy").stat().st_mtime_ns
    assert make(teacher, tmp_path / "p")["complete"]
    assert (shard1 / "image.npy").read_bytes() == good
    assert (tmp_path / "p" / "shard-000000" / "z.npy").stat().st_mtime_ns == untouched


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
