"""Image datasets as arrays: images (N, C, H, W) float32 in [-1, 1], labels (N,) int64 or None.

Data specs (`--data`):
  digits           the handwritten digits inside scikit-learn (no download), 8x8 -> 16x16, 1 channel, 10 classes
  cifar10:PATH     CIFAR-10 in its python format: the cifar-10-batches-py folder or its .tar.gz
  folder:PATH      PNG/JPEG images, one sub-folder per class (sorted names -> labels 0..C-1)
  npz:PATH         an .npz with `images` (N,C,H,W or N,H,W,C; uint8 0..255 or float in [-1, 1]) and optional `labels`

Splits are fixed: digits keeps a seeded 20% test split; CIFAR-10 has its own test batch; folder
and npz data are one "train" split. CIFAR-10's files are pickles: they are read with an
unpickler that admits only what that format holds (numpy arrays and dtypes, and protocol-2
bytes) and refuses anything else. Every source is refused in one line when it is not what it
claims: an unreadable or non-image file in a class folder, a decompression bomb, labels outside
the classes, non-square or non-finite images, or more images than the memory available can hold
(estimated before they are decoded).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedit.contract.deps import require
from edgedit.contract.device import available_memory_bytes
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import load_npz
from edgedit.contract.schema import MAX_CHANNELS

SPLITS = ("train", "test", "all")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
MAX_CLASSES = 100_000
CIFAR_BATCH_BYTES = 256 << 20  # a CIFAR-10 python batch is about 31 MB


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


def check_fits(where: str, n: int, shape: tuple[int, ...], extra_bytes: int = 0) -> None:
    """Refuse, before decoding, images whose float32 array (n*C*H*W*4 bytes) exceeds the memory available."""
    need = n * int(np.prod(shape)) * 4 + extra_bytes
    have = available_memory_bytes()
    if have is not None and need > have:
        raise EdgeditError(
            f"{where}: {n} images of {'x'.join(map(str, shape))} need about {need / 2**30:.1f} GiB "
            f"as float32, more than the {have / 2**30:.1f} GiB of memory available; use fewer or "
            "smaller images (a subset, or images resized first) or a machine with more memory"
        )


def _checked(data: ImageData, where: str) -> ImageData:
    """What every dataset must be: square images of 1..MAX_CHANNELS channels, labels within the classes."""
    n, c, h, w = data.images.shape
    if n < 1 or not 1 <= c <= MAX_CHANNELS or h != w:
        raise EdgeditError(
            f"{where}: images must be square with 1..{MAX_CHANNELS} channels (got {n} of {c}x{h}x{w}); "
            "crop or resize them first"
        )
    labels = data.labels
    if labels is not None and (labels.shape != (n,) or labels.min() < 0 or labels.max() >= data.num_classes):
        raise EdgeditError(
            f"{where}: need {n} labels in 0..{data.num_classes - 1} (got {labels.shape[0]} in "
            f"{labels.min()}..{labels.max()})"
        )
    return data


#################################################################################
#                                    digits                                     #
#################################################################################


def load_digits(split: str) -> ImageData:
    """scikit-learn's 1,797 8x8 digits (values 0..16), resized to 16x16 with bicubic interpolation."""
    datasets = require("sklearn.datasets", extra="train")
    from PIL import Image

    raw = datasets.load_digits()
    images = np.stack(
        [
            np.asarray(Image.fromarray((img * (255 / 16)).astype(np.uint8)).resize((16, 16), Image.BICUBIC))
            for img in raw.images
        ]
    )  # (N, 16, 16) uint8
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
            raise EdgeditError(
                f"{self.where}: refused to unpickle {module}.{name}: a CIFAR-10 batch holds only "
                "dicts, lists, bytes, numbers and numpy arrays; this file is not one (or was tampered "
                "with)"
            )
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
    pixels = batch[b"data"]
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3072:
        found = f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise EdgeditError(f"{where}: CIFAR-10 data must be uint8 (N, 3072), got {found}")
    labels = batch[b"labels"]
    if (
        not isinstance(labels, list)
        or len(labels) != len(pixels)
        or not all(type(y) is int and 0 <= y < 10 for y in labels)
    ):
        raise EdgeditError(f"{where}: CIFAR-10 labels must be a list of {len(pixels)} integers in 0..9, one per image")
    return pixels.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def load_cifar10(path: Path, split: str) -> ImageData:
    names = CIFAR_FILES["train"] + CIFAR_FILES["test"] if split == "all" else CIFAR_FILES[split]
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        for name in names:
            if not (folder / name).is_file():
                raise EdgeditError(
                    f"{folder}: no {name}; expected the cifar-10-batches-py folder (data_batch_1..5, "
                    "test_batch) or its .tar.gz"
                )
            if (folder / name).stat().st_size > CIFAR_BATCH_BYTES:
                raise EdgeditError(
                    f"{folder / name}: too large for a CIFAR-10 batch (at most {CIFAR_BATCH_BYTES} bytes)"
                )
            blobs[name] = (folder / name).read_bytes()
    elif path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise EdgeditError(f"{path}: the archive has no {name}; expected cifar-10-python.tar.gz")
                if members[name].size > CIFAR_BATCH_BYTES:
                    raise EdgeditError(
                        f"{path}:{name}: too large for a CIFAR-10 batch (at most {CIFAR_BATCH_BYTES} bytes)"
                    )
                blobs[name] = tar.extractfile(members[name]).read()
    else:
        raise EdgeditError(f"{path}: neither the cifar-10-batches-py folder nor its .tar.gz")
    parts = [_read_batch(blobs[name], f"{path}:{name}") for name in names]
    check_fits(str(path), sum(len(p) for p, _ in parts), (3, 32, 32))
    pixels = np.concatenate([p for p, _ in parts])
    data = ImageData("cifar10", pixels.astype(np.float32) / 127.5 - 1, np.concatenate([y for _, y in parts]), 10)
    return _checked(data, str(path))


#################################################################################
#                               folder and npz                                  #
#################################################################################

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _read_image(file: Path, mode: str | None = None):
    """(mode, (width, height)) from the header, or the pixels converted to `mode` (uint8 array).
    Anything PIL cannot read, and any image over PIL's decompression-bomb limit (its warning
    included, https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.open), is
    one line."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                if mode is None:
                    return image.mode, image.size
                return np.asarray(image.convert(mode), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise EdgeditError(
            f"{file}: refused, possibly a decompression bomb ({err}); resize the image to what the model takes"
        ) from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError ... for damaged files
        reason = str(err).splitlines()[0][:100] if str(err) else type(err).__name__
        raise EdgeditError(f"{file}: not a readable image ({reason})") from None


def load_folder(path: Path) -> ImageData:
    if not path.is_dir():
        raise EdgeditError(f"{path}: no such folder")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise EdgeditError(f"{path}: expected one sub-folder of images per class, found none")
    files = []
    for k, c in enumerate(classes):
        for f in sorted((path / c).iterdir()):
            if f.name.startswith("."):
                continue  # hidden: .DS_Store and the like
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                raise EdgeditError(
                    f"{f}: not a PNG or JPEG file; a class folder holds only .png/.jpg/.jpeg images (move it out)"
                )
            files.append((k, f))
    if not files:
        raise EdgeditError(f"{path}: no PNG or JPEG images in its class folders")
    headers = [_read_image(f) for _, f in files[:64]]
    gray = all(m in ("L", "1", "I;16") for m, _ in headers)
    width, height = headers[0][1]
    check_fits(f"folder:{path}", len(files), (1 if gray else 3, height, width))
    images = np.empty((len(files), 1 if gray else 3, height, width), np.float32)
    for i, (_, file) in enumerate(files):
        array = _read_image(file, "L" if gray else "RGB")
        if array.shape[:2] != (height, width):
            raise EdgeditError(
                f"{file}: {array.shape[1]}x{array.shape[0]} differs from {width}x{height}; "
                "resize the images to one size first"
            )
        images[i] = (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)).astype(np.float32) / 127.5 - 1
    labels = np.asarray([label for label, _ in files], np.int64)
    return _checked(ImageData(f"folder:{path.name}", images, labels, len(classes)), f"folder:{path}")


def _npz_bytes(path: Path) -> tuple[int, tuple[int, ...] | None]:
    """(bytes of every array, shape of 'images') from the .npy headers inside an .npz, without
    decompressing anything; (0, None) where a header cannot be read (then loading says why)."""
    total, shape = 0, None
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = {
                        (1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0,
                    }.get(version)
                    if read is None:
                        continue
                    array_shape, _, dtype = read(f)
                total += int(np.prod(array_shape, dtype=np.float64)) * dtype.itemsize
                if name == "images.npy":
                    shape = tuple(array_shape)
    except Exception:  # not a zip, a damaged header ...: load_npz refuses it in one line
        return 0, None
    return total, shape


def load_npz_images(path: Path) -> ImageData:
    raw, shape = _npz_bytes(path)
    if shape is not None and len(shape) == 4:
        check_fits(f"npz:{path}", shape[0], shape[1:], extra_bytes=raw)
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
        if not np.isfinite(images).all():
            raise EdgeditError(f"{path}: 'images' holds NaN or infinite values")
        if images.min() < -1.001 or images.max() > 1.001:
            raise EdgeditError(
                f"{path}: float images must be in [-1, 1] (found {images.min():.3g}..{images.max():.3g})"
            )
    else:
        raise EdgeditError(f"{path}: 'images' must be uint8 or float, got {images.dtype}")
    labels = arrays.get("labels")
    if labels is not None:
        if (
            not np.issubdtype(labels.dtype, np.integer)
            or labels.shape != (len(images),)
            or (len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES))
        ):
            raise EdgeditError(
                f"{path}: 'labels' must be {len(images)} integers in 0..{MAX_CLASSES - 1} (got "
                f"{labels.dtype} {labels.shape})"
            )
        labels = labels.astype(np.int64)
    data = ImageData(f"npz:{path.name}", images, labels, int(labels.max()) + 1 if labels is not None else 0)
    return _checked(data, f"npz:{path}")


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
            raise EdgeditError(f"data spec {spec}: {path} does not exist")
        if kind == "cifar10":
            return load_cifar10(path, split)
        if split == "test":
            raise EdgeditError(f"data spec {spec}: {kind} data has no test split")
        return load_folder(path) if kind == "folder" else load_npz_images(path)
    raise EdgeditError(f"data spec '{spec}': expected digits, cifar10:PATH, folder:PATH or npz:PATH")
