"""MNIST data: the shipped sample, the IDX loader's errors, and downloads from local mirrors.

No network is needed: IDX files are generated here, and a small HTTP server on 127.0.0.1
plays the public mirrors (serving Range requests, a corrupted copy, a dropped connection).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.data import DataError, data_dir, download, mnist
from grader.data.download import DataSet, DownloadError, RemoteFile

NAMES = mnist.NAMES


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8 data: magic 0x0000 08 NDIM, big-endian dimensions, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def generated_set(n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_set(
    folder: Path, arrays: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch, gz: bool = True
) -> dict[str, bytes]:
    """Write the four files and make their digests the 'published' ones; return the bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, array in arrays.items():
        data = idx_bytes(array)
        filename = f"{name}.gz" if gz else name
        if gz:
            data = gzip.compress(data, mtime=0)
        (folder / filename).write_bytes(data)
        written[filename] = data
        monkeypatch.setitem(mnist.SHA256, filename, hashlib.sha256(data).hexdigest())
    return written


@pytest.fixture(autouse=True)
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("DL_GRADER_DATA", str(folder))
    return folder


# -- the shipped sample ---------------------------------------------------------------------


def test_sample_is_4000_train_and_1000_test_images_stratified():
    sample = mnist.load_sample()
    assert sample.kind == "sample"
    assert sample.x_train.shape == (4000, 28, 28) and sample.x_test.shape == (1000, 28, 28)
    assert sample.x_train.dtype == sample.y_train.dtype == np.uint8
    assert np.bincount(sample.y_train).tolist() == [400] * 10
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    assert 0 < sample.x_train.mean() < 60 and sample.x_train.max() == 255
    assert not sample.x_train.flags.writeable
    assert "4,000 train / 1,000 test" in sample.description


def test_sample_is_small_and_listed_as_package_data():
    assert mnist.SAMPLE.stat().st_size < 1_200_000
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert "mnist_sample.npz" in pyproject


def test_without_idx_files_the_sample_is_used(empty_data_dir):
    assert mnist.load_mnist().kind == "sample"
    assert mnist.mnist_folder() == empty_data_dir / "mnist"


def test_data_dir_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("DL_GRADER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "dl-grader"


# -- the IDX loader ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_files_are_read_gzipped_or_raw(empty_data_dir, monkeypatch, gz):
    arrays = generated_set()
    write_set(empty_data_dir / "mnist", arrays, monkeypatch, gz=gz)
    data = mnist.load_mnist()
    assert data.kind == "full"
    np.testing.assert_array_equal(data.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.description == "MNIST (60 train / 20 test images)"


def test_published_checksums_are_pinned():
    assert len(mnist.SHA256) == 8
    assert mnist.SHA256["t10k-labels-idx1-ubyte.gz"].startswith("f7ae60f92e00")


def corrupt(folder: Path, name: str, monkeypatch, change) -> Path:
    """Write a generated set, then replace file `name` (raw) by change(its bytes)."""
    write_set(folder, generated_set(), monkeypatch, gz=False)
    path = folder / name
    path.write_bytes(change(path.read_bytes()))
    return path


def test_wrong_magic_number_is_reported(empty_data_dir, monkeypatch):
    folder = empty_data_dir / "mnist"
    corrupt(folder, "train-labels-idx1-ubyte", monkeypatch, lambda b: b"\x12\x34" + b[2:])
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte is not an IDX file \(wrong magic"
    ):
        mnist.load_mnist()


def test_images_where_labels_belong_are_reported(empty_data_dir, monkeypatch):
    folder = empty_data_dir / "mnist"
    write_set(folder, generated_set(), monkeypatch, gz=False)
    images = (folder / "t10k-images-idx3-ubyte").read_bytes()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(images)
    monkeypatch.setitem(mnist.SHA256, "t10k-labels-idx1-ubyte", hashlib.sha256(images).hexdigest())
    with pytest.raises(DataError, match="magic number 0x00000803, expected 0x00000801"):
        mnist.load_mnist()


def test_truncated_file_is_reported(empty_data_dir, monkeypatch):
    corrupt(empty_data_dir / "mnist", "t10k-images-idx3-ubyte", monkeypatch, lambda b: b[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated: .* promises"):
        mnist.load_mnist()


def test_truncated_gzip_file_is_reported(empty_data_dir, monkeypatch):
    folder = empty_data_dir / "mnist"
    write_set(folder, generated_set(), monkeypatch)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="is truncated"):
        mnist.load_mnist()


def test_trailing_bytes_are_reported(empty_data_dir, monkeypatch):
    corrupt(empty_data_dir / "mnist", "train-labels-idx1-ubyte", monkeypatch, lambda b: b + b"xx")
    with pytest.raises(DataError, match="2 bytes after the data"):
        mnist.load_mnist()


def test_checksum_mismatch_is_reported(empty_data_dir, monkeypatch):
    folder = empty_data_dir / "mnist"
    write_set(folder, generated_set(), monkeypatch, gz=False)
    other = idx_bytes(generated_set(seed=1)["t10k-labels-idx1-ubyte"])
    (folder / "t10k-labels-idx1-ubyte").write_bytes(other)
    with pytest.raises(
        DataError, match=r"not the published MNIST file .*grade data download mnist"
    ):
        mnist.load_mnist()


def test_part_of_a_set_is_an_error_not_a_silent_fallback(empty_data_dir, monkeypatch):
    folder = empty_data_dir / "mnist"
    write_set(folder, generated_set(), monkeypatch)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="only part of MNIST: t10k-labels-idx1-ubyte"):
        mnist.load_mnist()


def test_labels_must_match_the_images_in_number(empty_data_dir, monkeypatch):
    arrays = generated_set()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    write_set(empty_data_dir / "mnist", arrays, monkeypatch)
    with pytest.raises(DataError, match=r"has 60 images but train-labels-idx1-ubyte\.gz has 59"):
        mnist.load_mnist()


# -- downloads from local mirrors ---------------------------------------------------------------


class MirrorServer(ThreadingHTTPServer):
    """Serves `files` (URL path -> bytes); `ranges` honours Range; `cut` drops a response early."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{prefix}/"


class MirrorHandler(BaseHTTPRequestHandler):
    server: MirrorServer

    def do_GET(self) -> None:
        server = self.server
        wanted = self.headers.get("Range")
        server.requests.append((self.path, wanted))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if wanted and server.ranges:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch) -> Iterator[MirrorServer]:
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    mirror = MirrorServer()
    thread = threading.Thread(target=mirror.serve_forever, daemon=True)
    thread.start()
    yield mirror
    mirror.shutdown()
    mirror.server_close()


@pytest.fixture
def published(tmp_path, monkeypatch) -> dict[str, bytes]:
    """A generated MNIST set as the mirrors would serve it (gzipped), made 'published'."""
    return write_set(tmp_path / "origin", generated_set(n_train=200), monkeypatch)


def remote_files(files: dict[str, bytes]) -> list[RemoteFile]:
    return [RemoteFile(n, hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()]


def serve(server: MirrorServer, prefix: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        server.files[f"/{prefix}/{name}"] = data
    return server.url(prefix)


def test_download_fetches_and_verifies_every_file(server, published, empty_data_dir):
    folder = empty_data_dir / "mnist"
    fetched = download.download(remote_files(published), folder, [serve(server, "a", published)])
    assert [f.status for f in fetched] == ["downloaded"] * 4
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        published
    )
    assert mnist.load_mnist().kind == "full"


def test_a_corrupted_copy_is_rejected_and_the_next_mirror_used(server, published, empty_data_dir):
    broken = dict(published)
    name = "t10k-images-idx3-ubyte.gz"
    broken[name] = (
        published[name][:100] + bytes([published[name][100] ^ 0xFF]) + published[name][101:]
    )
    mirrors = [serve(server, "bad", broken), serve(server, "good", published)]
    folder = empty_data_dir / "mnist"
    fetched = download.download(remote_files(published), folder, mirrors)
    assert fetched[NAMES.index("t10k-images-idx3-ubyte")].url.endswith(f"/good/{name}")
    assert (folder / name).read_bytes() == published[name]
    assert not list(folder.glob("*.part"))


def test_a_checksum_mismatch_everywhere_fails_and_leaves_no_file(server, published, empty_data_dir):
    name = "train-labels-idx1-ubyte.gz"
    wrong = dict(published, **{name: gzip.compress(b"not the labels")})
    folder = empty_data_dir / "mnist"
    with pytest.raises(DownloadError, match=f"could not download {name}: .*SHA-256 mismatch"):
        download.download(remote_files(published), folder, [serve(server, "a", wrong)])
    assert not (folder / name).exists()
    assert not (folder / f"{name}.part").exists()


def test_an_interrupted_download_resumes_with_a_range_request(server, published, empty_data_dir):
    name = "train-images-idx3-ubyte.gz"
    url = serve(server, "a", published)
    server.cut[f"/a/{name}"] = 1000
    folder = empty_data_dir / "mnist"
    with pytest.raises(
        DownloadError, match=r"kept and resumed next time.*connection closed after 1,000 of"
    ):
        download.download(remote_files(published), folder, [url])
    assert (folder / f"{name}.part").stat().st_size == 1000
    assert not (folder / name).exists()
    fetched = download.download(remote_files(published), folder, [url])
    assert fetched[0].status == "resumed"
    assert (f"/a/{name}", "bytes=1000-") in server.requests
    assert (folder / name).read_bytes() == published[name]


def test_a_server_without_ranges_restarts_the_file(server, published, empty_data_dir):
    name = "train-images-idx3-ubyte.gz"
    folder = empty_data_dir / "mnist"
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(published[name][:700])
    server.ranges = False
    fetched = download.download(remote_files(published), folder, [serve(server, "a", published)])
    assert fetched[0].status == "downloaded"
    assert (folder / name).read_bytes() == published[name]


def test_a_stale_partial_file_that_fails_the_checksum_is_fetched_again(
    server, published, empty_data_dir
):
    name = "t10k-labels-idx1-ubyte.gz"
    folder = empty_data_dir / "mnist"
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(b"garbage from somewhere else")
    download.download(remote_files(published), folder, [serve(server, "a", published)])
    assert (folder / name).read_bytes() == published[name]
    assert [r for r in server.requests if r[0].endswith(name)][-1] == (f"/a/{name}", None)


def test_files_already_verified_are_not_fetched_again(server, published, empty_data_dir):
    folder = empty_data_dir / "mnist"
    url = serve(server, "a", published)
    download.download(remote_files(published), folder, [url])
    count = len(server.requests)
    fetched = download.download(remote_files(published), folder, [url])
    assert [f.status for f in fetched] == ["present"] * 4
    assert len(server.requests) == count


def test_unreachable_mirrors_give_one_line_per_mirror(published, empty_data_dir):
    with pytest.raises(DownloadError, match="cannot connect"):
        download.download(remote_files(published), empty_data_dir, ["http://127.0.0.1:9/"])


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def mnist_from(monkeypatch, published):
    """Point `grade data download mnist` at the generated set."""
    dataset = DataSet("mnist", "mnist", tuple(remote_files(published)), ("http://unused/",))
    monkeypatch.setitem(download.DATASETS, "mnist", dataset)


def test_cli_downloads_then_reports_full_mnist(server, published, mnist_from, tmp_path):
    target = tmp_path / "elsewhere"
    url = serve(server, "a", published)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["data", "download", "mnist", "--data-dir", str(target), "--mirror", url]
    )
    assert result.exit_code == 0, result.output
    assert "4 files verified" in result.output
    assert "MNIST (200 train / 20 test images) will be used" in result.output
    status = runner.invoke(cli, ["data", "status", "--data-dir", str(target)])
    assert status.exit_code == 0, status.output
    assert "MNIST (200 train / 20 test images)" in status.output


def test_cli_reports_a_corrupt_download_in_one_line(server, published, mnist_from, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    url = serve(server, "a", dict(published, **{name: b"corrupt"}))
    result = CliRunner().invoke(
        cli, ["data", "download", "mnist", "--data-dir", str(tmp_path), "--mirror", url]
    )
    assert result.exit_code == 2
    assert "SHA-256 mismatch" in result.output
    assert "Traceback" not in result.output


def test_cli_status_names_the_sample_when_there_is_no_data(tmp_path):
    result = CliRunner().invoke(cli, ["data", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "MNIST sample (4,000 train / 1,000 test images)" in result.output


def test_cli_status_explains_corrupt_files(empty_data_dir, monkeypatch):
    corrupt(empty_data_dir / "mnist", "t10k-images-idx3-ubyte", monkeypatch, lambda b: b[:-1])
    result = CliRunner().invoke(cli, ["data", "status"])
    assert result.exit_code == 2
    assert "t10k-images-idx3-ubyte is truncated" in result.output
