import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from edgedit.contract.errors import EdgeditError
from edgedit.data.datasets import load_data


def test_digits_are_16x16_in_range_with_a_fixed_split():
    train, test, every = load_data("digits", "train"), load_data("digits", "test"), load_data("digits", "all")
    assert train.shape == (1, 16, 16) and train.images.dtype == np.float32 and train.num_classes == 10
    assert len(train) + len(test) == len(every) == 1797 and len(test) == 359
    assert train.images.min() >= -1 and train.images.max() <= 1 and train.images.max() > 0.9
    assert set(np.unique(test.labels)) == set(range(10))
    assert np.array_equal(load_data("digits", "test").images, test.images)  # the split is deterministic


def cifar_batch(n, seed, label_offset=0):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"training batch", b"labels": [(i + label_offset) % 10 for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


@pytest.fixture
def cifar_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(4, i), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(3, 9), protocol=2))
    return tmp_path


def test_cifar10_from_the_python_folder_and_the_tarball(cifar_folder):
    train = load_data(f"cifar10:{cifar_folder}", "train")
    assert train.shape == (3, 32, 32) and len(train) == 20 and train.num_classes == 10
    raw = cifar_batch(4, 1)[b"data"].reshape(4, 3, 32, 32)
    np.testing.assert_allclose(train.images[:4], raw / 127.5 - 1, atol=1e-6)  # channel-major rows, like CIFAR
    tarball = cifar_folder / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(cifar_folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    test = load_data(f"cifar10:{tarball}", "test")
    assert len(test) == 3 and list(test.labels) == [0, 1, 2]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/edgedit-pwned",))


def test_a_poisoned_cifar_pickle_is_refused(cifar_folder):
    poisoned = cifar_batch(4, 1)
    poisoned[b"batch_label"] = Evil()
    (cifar_folder / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(poisoned, protocol=2))
    with pytest.raises(EdgeditError, match="data_batch_3: refused to unpickle posix.system") as err:
        load_data(f"cifar10:{cifar_folder}")
    assert "\n" not in str(err.value) and not os.path.exists("/tmp/edgedit-pwned")


def test_cifar_with_the_wrong_layout(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"junk")
    with pytest.raises(EdgeditError, match="no data_batch_2"):
        load_data(f"cifar10:{tmp_path}")


def test_image_folders(tmp_path):
    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * (k + i), np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_data(f"folder:{tmp_path}")
    assert data.shape == (3, 8, 8) and list(data.labels) == [0, 0, 0, 1, 1, 1] and data.num_classes == 2
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(EdgeditError, match="odd.png: 9x9 differs from 8x8"):
        load_data(f"folder:{tmp_path}")


def test_npz_in_either_layout(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=pixels, labels=np.arange(5) % 2)
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.shape == (3, 12, 12) and data.num_classes == 2
    np.testing.assert_allclose(data.images[0, :, 3, 4], pixels[0, 3, 4] / 127.5 - 1, atol=1e-6)
    np.savez(tmp_path / "bad.npz", images=np.full((2, 1, 4, 4), 3.0, np.float32))
    with pytest.raises(EdgeditError, match="must be in \\[-1, 1\\]"):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


@pytest.mark.parametrize("spec, message", [
    ("mnist", "expected digits, cifar10:PATH"),
    ("cifar10:/no/such/dir", "does not exist"),
    ("folder:", "expected digits"),
])
def test_bad_specs(spec, message):
    with pytest.raises(EdgeditError, match=message):
        load_data(spec)
