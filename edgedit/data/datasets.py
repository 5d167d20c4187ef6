"""Image datasets as arrays: images (N, C, H, W) float32 in [-1, 1], labels (N,) int64 or None.

Data specs (`--data`):
  digits           the handwritten digits inside scikit-learn (no download), 8x8 -> 16x16, 1 channel, 10 classes
  cifar10:PATH     CIFAR-10 in its python format: the cifar-10-batches-py folder or its .tar.gz
  folder:PATH      PNG/JPEG images, one sub-folder per class (sorted names -> labels 0..C-1)
  npz:PATH         an .npz with `images` (N,C,H,W or N,H,W,C; uint8 0..255 or float in [-1, 1]) and optional `labels`

Splits are fixed: digits keeps a seeded 20% test split; CIFAR-10 has its own test batch; folder
and npz data are one "train" split. CIFAR-10's files are pickles: they are read with an
unpickler that admits only what that format holds (numpy arrays and dtypes, and protocol-2
bytes) and refuses anything else.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import load_npz

SPLITS = ("train", "test", "all")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclass
class ImageData:
    name: str
    images: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    labels: np.ndarray | None  # (N,) int64, or None for unlabelled data
    num_classes: int  # 0 when unlabelled

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)


#################################################################################
#                                    digits                                     #
#################################################################################


def load_digits(split: str) -> ImageData:
    """scikit-learn's 1,797 8x8 digits (values 0..16), resized to 16x16 with bicubic interpolation."""
    datasets = require("sklearn.datasets", extra="train")
    from PIL import Image

    raw = datasets.load_digits()
    images = np.stack([np.asarray(Image.fromarray((img * (255 / 16)).astype(np.uint8)).resize((16, 16), Image.BICUBIC))
                       for img in raw.images])  # (N, 16, 16) uint8
    images = images[:, None].astype(np.float32) / 127.5 - 1  # (N, 1, 16, 16)
    labels = raw.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    n_test = round(len(images) * DIGITS_TEST_FRACTION)
    pick = {"test": order[:n_test], "train": order[n_test:], "all": np.arange(len(images))}[split]
    return ImageData("digits", images[pick], labels[pick], 10)


#################################################################################
#                        CIFAR-10 (restricted unpickling)                       #
#################################################################################

# What CIFAR-10's python batches contain: a dict of bytes keys, a list of int labels, a list of
# filenames and one uint8 numpy array. Protocol-2 pickles spell bytes with _codecs.encode.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise EdgeditError(f"{self.where}: refused to unpickle {module}.{name}: a CIFAR-10 batch holds only "
                               "dicts, lists, bytes, numbers and numpy arrays; this file is not one (or was tampered "
                               "with)")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _read_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = RestrictedUnpickler(io.BytesIO(data), where).load()
    except EdgeditError:
        raise
    except Exception as err:
        raise EdgeditError(f"{where}: not a readable CIFAR-10 batch ({err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise EdgeditError(f"{where}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    pixels = np.asarray(batch[b"data"])
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3072:
        raise EdgeditError(f"{where}: CIFAR-10 data must be uint8 (N, 3072), got {pixels.dtype} {pixels.shape}")
    return pixels.reshape(-1, 3, 32, 32), np.asarray(batch[b"labels"], dtype=np.int64)


CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def load_cifar10(path: Path, split: str) -> ImageData:
    names = CIFAR_FILES["train"] + CIFAR_FILES["test"] if split == "all" else CIFAR_FILES[split]
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        for name in names:
            if not (folder / name).is_file():
                raise EdgeditError(f"{folder}: no {name}; expected the cifar-10-batches-py folder (data_batch_1..5, "
                                   "test_batch) or its .tar.gz")
            blobs[name] = (folder / name).read_bytes()
    elif path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise EdgeditError(f"{path}: the archive has no {name}; expected cifar-10-python.tar.gz")
                blobs[name] = tar.extractfile(members[name]).read()
    else:
        raise EdgeditError(f"{path}: neither the cifar-10-batches-py folder nor its .tar.gz")
    parts = [_read_batch(blobs[name], f"{path}:{name}") for name in names]
    pixels = np.concatenate([p for p, _ in parts])
    return ImageData("cifar10", pixels.astype(np.float32) / 127.5 - 1, np.concatenate([y for _, y in parts]), 10)


#################################################################################
#                               folder and npz                                  #
#################################################################################

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def load_folder(path: Path) -> ImageData:
    from PIL import Image

    if not path.is_dir():
        raise EdgeditError(f"{path}: no such folder")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise EdgeditError(f"{path}: expected one sub-folder of images per class, found none")
    images, labels, size = [], [], None
    files = [(k, f) for k,
             c in enumerate(classes) for f in sorted((path / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise EdgeditError(f"{path}: no PNG or JPEG images in its class folders")
    gray = all(Image.open(f).mode in ("L", "1", "I;16") for _, f in files[:64])
    for label, file in files:
        try:
            image = Image.open(file).convert("L" if gray else "RGB")
        except OSError as err:
            raise EdgeditError(f"{file}: not a readable image ({err})") from err
        if size is None:
            size = image.size
        elif image.size != size:
            raise EdgeditError(f"{file}: {image.size[0]}x{image.size[1]} differs from {size[0]}x{size[1]}; "
                               "resize the images to one size first")
        array = np.asarray(image, dtype=np.uint8)
        images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        labels.append(label)
    stacked = np.stack(images).astype(np.float32) / 127.5 - 1
    return ImageData(f"folder:{path.name}", stacked, np.asarray(labels, np.int64), len(classes))


def load_npz_images(path: Path) -> ImageData:
    arrays = load_npz(path)
    if "images" not in arrays:
        raise EdgeditError(f"{path}: no 'images' array (found {', '.join(arrays) or 'nothing'})")
    images = arrays["images"]
    if images.ndim != 4:
        raise EdgeditError(f"{path}: 'images' must be 4-D (N,C,H,W or N,H,W,C), got shape {images.shape}")
    if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 127.5 - 1
    elif np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
        if images.min() < -1.001 or images.max() > 1.001:
            raise EdgeditError(f"{path}: float images must be in [-1, 1] (found "
                               f"{images.min():.3g}..{images.max():.3g})")
    else:
        raise EdgeditError(f"{path}: 'images' must be uint8 or float, got {images.dtype}")
    labels = arrays.get("labels")
    if labels is not None:
        labels = labels.astype(np.int64)
        if labels.shape != (len(images),) or labels.min() < 0:
            raise EdgeditError(f"{path}: 'labels' must be {len(images)} non-negative integers")
    return ImageData(f"npz:{path.name}", images, labels, int(labels.max()) + 1 if labels is not None else 0)


def has_test_split(spec: str) -> bool:
    """digits and CIFAR-10 have a held-out test split; folders and npz files are one set."""
    return spec.partition(":")[0] in ("digits", "cifar10")


def load_data(spec: str, split: str = "train") -> ImageData:
    """The dataset a `--data` spec names (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    kind, _, rest = spec.partition(":")
    if kind == "digits" and not rest:
        return load_digits(split)
    if kind in ("cifar10", "folder", "npz") and rest:
        path = Path(rest).expanduser()
        if not path.exists():
            raise EdgeditError(f"--data {spec}: {path} does not exist")
        if kind == "cifar10":
            return load_cifar10(path, split)
        if split == "test":
            raise EdgeditError(f"--data {spec}: {kind} data has no test split")
        return load_folder(path) if kind == "folder" else load_npz_images(path)
    raise EdgeditError(f"--data '{spec}': expected digits, cifar10:PATH, folder:PATH or npz:PATH")
