import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from edgedit.contract.device import available_memory_bytes
from edgedit.contract.errors import EdgeditError
from edgedit.data import datasets
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
    return {
        b"batch_label": b"training batch",
        b"labels": [(i + label_offset) % 10 for i in range(n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


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
    # channel-major rows, like CIFAR. uint8 -> float32 / 127.5 - 1 rounds twice, <= 9e-8 on [-1, 1] (IEEE ops:
    # the same on every CPU) against the float64 reference; 1e-6 leaves 10x
    np.testing.assert_allclose(train.images[:4], raw / 127.5 - 1, atol=1e-6)
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
    np.testing.assert_allclose(data.images[0, :, 3, 4], pixels[0, 3, 4] / 127.5 - 1, atol=1e-6)  # float32 as above
    np.savez(tmp_path / "bad.npz", images=np.full((2, 1, 4, 4), 3.0, np.float32))
    with pytest.raises(EdgeditError, match="must be in \\[-1, 1\\]"):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mnist", "expected digits, cifar10:PATH"),
        ("cifar10:/no/such/dir", "does not exist"),
        ("folder:", "expected digits"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(EdgeditError, match=message):
        load_data(spec)


def class_folders(root, images=2, side=8):
    for k, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i in range(images):
            Image.fromarray(np.full((side, side, 3), 40 * (k + i), np.uint8)).save(root / cls / f"{i}.png")
    return root


def one_line_refusal(spec, message):
    with pytest.raises(EdgeditError, match=message) as err:
        load_data(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.png", b"", "empty.png: not a readable image \\(cannot identify image file"),
        ("text.png", b"hello, not a PNG", "text.png: not a readable image"),
        ("cut.png", "truncated", "cut.png: not a readable image"),
        ("notes.txt", b"hello", "notes.txt: not a PNG or JPEG file; a class folder holds only"),
    ],
)
def test_unreadable_or_foreign_files_in_an_image_folder(tmp_path, name, content, message):
    root = class_folders(tmp_path / "imgs")
    if content == "truncated":  # noise, so that the pixels outlast the cut
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)).save(root / "dog" / name)
        content = (root / "dog" / name).read_bytes()[:120]
    (root / "dog" / name).write_bytes(content)
    one_line_refusal(f"folder:{root}", message)
    (root / "dog" / name).unlink()
    (root / "dog" / ".DS_Store").write_bytes(b"\0")  # hidden files are not the dataset's
    assert len(load_data(f"folder:{root}")) == 4


@pytest.mark.parametrize("limit", [40, 20])  # 8x8 = 64 pixels: PIL warns above the limit, raises above twice it
def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch, limit):
    root = class_folders(tmp_path / "imgs")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    one_line_refusal(f"folder:{root}", "0.png: refused, possibly a decompression bomb")


@pytest.mark.parametrize(
    "labels, message",
    [
        ([10, 1, 2, 3], "labels must be a list of 4 integers in 0..9"),
        ([-1, 1, 2, 3], "labels must be a list of 4 integers in 0..9"),
        ([b"cat", 1, 2, 3], "labels must be a list of 4 integers in 0..9"),
        ([1, 2, 3], "labels must be a list of 4 integers in 0..9, one per image"),
    ],
)
def test_cifar_labels_outside_the_classes_are_refused(cifar_folder, labels, message):
    batch = cifar_batch(4, 1)
    batch[b"labels"] = labels
    (cifar_folder / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    one_line_refusal(f"cifar10:{cifar_folder}", f"data_batch_2: CIFAR-10 {message}")


def test_images_beyond_the_memory_available_are_refused_before_decoding(tmp_path, cifar_folder, monkeypatch):
    assert 0 < available_memory_bytes() < 1 << 50
    root = class_folders(tmp_path / "imgs", images=3, side=16)
    np.savez(tmp_path / "d.npz", images=np.zeros((1000, 3, 64, 64), np.uint8))
    monkeypatch.setattr(datasets, "available_memory_bytes", lambda: 10_000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the memory check")

    monkeypatch.setattr(datasets, "load_npz", no_decoding)
    one_line_refusal(
        f"folder:{root}",
        "6 images of 3x16x16 need about 0.0 GiB as float32, more than the 0.0 GiB "
        "of memory available; use fewer or smaller images",
    )
    one_line_refusal(f"npz:{tmp_path / 'd.npz'}", "1000 images of 3x64x64 need about 0.1 GiB")
    one_line_refusal(f"cifar10:{cifar_folder}", "20 images of 3x32x32 need about")


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.full((2, 1, 4, 4), np.nan, np.float32)}, "'images' holds NaN or infinite values"),
        ({"images": np.zeros((2, 1, 4, 4), np.uint8), "labels": np.array([0.5, 1.0])}, "'labels' must be 2 integers"),
        ({"images": np.zeros((2, 1, 4, 4), np.uint8), "labels": np.array([0, 10**12])}, "'labels' must be 2 integers"),
        ({"images": np.zeros((2, 1, 4, 6), np.uint8)}, "images must be square"),
    ],
)
def test_npz_images_and_labels_are_checked(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    one_line_refusal(f"npz:{tmp_path / 'd.npz'}", message)
