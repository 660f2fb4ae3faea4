"""assignment8 beyond the generic fixture test: a model that never trains, training past the
budget (stopped, or killed when it ignores the stop), a submission looking for the test
labels, full MNIST read from IDX files, corrupt data, and the worker-side harness itself.

Grades run on the CPU with the shipped sample. The over-budget cases use a copy of the course
whose budgets are cut to 3 s (grace 3 s); the reference's figures are computed once for the
module through a reference cache.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import FIXTURES, ROOT

from grader.course import Course
from grader.data import DataError, mnist
from grader.refcache import ReferenceCache, caching
from grader.runner import grade
from grader.sandbox.codec import Channel
from grader.sandbox.proxy import Sandbox, StudentException, SubmissionProxy
from grader.server.leaderboard import figures

BUDGET_S = 3
GRACE_S = 3
CORRECT = FIXTURES / "assignment8" / "correct"


@pytest.fixture(scope="module")
def fast_course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """This repository's assignment8 with every training budget cut to BUDGET_S seconds."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "assignments" / "assignment8", root / "assignments" / "assignment8")
    (root / "reference").mkdir()
    shutil.copy(ROOT / "reference" / "assignment8.py", root / "reference")
    toml = root / "assignments" / "assignment8" / "assignment.toml"
    budgets = ", ".join(
        f"{k} = {BUDGET_S}" for k in ("cuda_full", "cuda_sample", "cpu_full", "cpu_sample")
    )
    text = re.sub(r"budget_s = \{[^}]*\}", f"budget_s = {{ {budgets} }}", toml.read_text())
    toml.write_text(re.sub(r"grace_s = \d+", f"grace_s = {GRACE_S}", text))
    return Course(root)


@pytest.fixture(scope="module", autouse=True)
def reference_cache():
    with caching(ReferenceCache()):
        yield


def graded(course: Course | None, submission: Path, keyword: str | None = None):
    return grade(
        "assignment8", submission, course=course or Course(ROOT), device="cpu", keyword=keyword
    )


def by_name(result) -> dict:
    return {t.id.split("::")[-1]: t for t in result.tests}


def submission(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "mnist.py").write_text(source)
    return folder


def with_train(body: str) -> str:
    """The correct fixture with its train() replaced by `body` (indented 4 spaces)."""
    source = (CORRECT / "mnist.py").read_text()
    start = source.index("def train(model, X, y, device):\n")
    return source[:start] + "def train(model, X, y, device):\n" + body


def test_a_model_that_never_trains_gets_no_accuracy_points(tmp_path):
    result = graded(None, submission(tmp_path, with_train("    model.to(device)\n")))
    checks = by_name(result)
    accuracy = checks["test_held_out_accuracy"]
    assert accuracy.score == 0 and accuracy.status == "failed"
    assert accuracy.metrics["accuracy"] < 0.3
    assert "reference reaches" in accuracy.message
    assert checks["test_train_updates_the_weights_on_the_device"].status == "failed"
    assert "changed 0%" in checks["test_train_updates_the_weights_on_the_device"].message
    assert checks["test_train_learns_the_labels_it_is_given"].status == "failed"
    assert checks["test_train_finishes_within_the_budget"].status == "passed"
    assert result.score == 10 + 5 + 10 + 5
    # The service's leaderboard finds its three figures among the public checks' metrics.
    assert set(figures(result.to_dict())) == {"accuracy", "training_s", "parameters"}


ENDLESS = """\
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    while True:
        order = torch.randperm(len(X), device=device)
        for start in range(0, len(X), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            loss = F.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
"""


def test_training_past_the_budget_is_stopped_and_graded_as_it_was(tmp_path, fast_course):
    result = graded(fast_course, submission(tmp_path, with_train(ENDLESS)))
    checks = by_name(result)
    budget = checks["test_train_finishes_within_the_budget"]
    assert budget.status == "timeout"
    assert f"after its budget of {BUDGET_S} s on cpu" in budget.message
    assert BUDGET_S <= budget.metrics["training_s"] < BUDGET_S + GRACE_S
    accuracy = checks["test_held_out_accuracy"]
    # Graded as it was when stopped: evaluated, not "no trained model" (how far 3 s of
    # training gets depends on the machine's load, so the points are not asserted).
    assert accuracy.status in ("passed", "failed")
    assert 0.0 <= accuracy.metrics["accuracy"] <= 1.0
    assert "stopped at its budget" in accuracy.message
    # How many weights a few seconds of training changes depends on the load too: the
    # check must have measured the stopped model, whatever it found.
    weights = checks["test_train_updates_the_weights_on_the_device"]
    assert weights.status in ("passed", "failed")
    assert 0.0 <= weights.metrics["weights_changed"] <= 1.0
    assert checks["test_model_maps_images_to_ten_logits"].status == "passed"
    assert len(result.tests) == 7
    assert result.worker["starts"] == 1


def test_a_train_that_ignores_the_stop_is_killed_after_the_grace_period(tmp_path, fast_course):
    stubborn = (
        "    import signal, time\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    while True:\n"
        "        time.sleep(0.01)\n"
    )
    result = graded(fast_course, submission(tmp_path, with_train(stubborn)))
    checks = by_name(result)
    budget = checks["test_train_finishes_within_the_budget"]
    assert budget.status == "timeout"
    assert f"did not finish within {BUDGET_S + GRACE_S:g} s" in budget.message
    for name in ("test_train_updates_the_weights_on_the_device", "test_held_out_accuracy"):
        assert checks[name].score == 0
        assert "no trained model to check" in checks[name].message
    assert checks["test_fresh_model_is_untrained"].status == "passed"
    assert checks["test_train_learns_the_labels_it_is_given"].status == "timeout"
    assert result.score == 10 + 5 + 5
    assert result.worker["starts"] == 2


SNOOP = '''

_reported = False


def _label_arrays():
    """Every integer vector of digits this process can reach: (length, per-digit counts)."""
    import gc
    import sys

    seen, found = set(), []

    def consider(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor) and obj.dim() == 1 and not obj.is_floating_point():
            obj = obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray) and obj.ndim == 1 and obj.dtype.kind in "iu" and len(obj):
            if 0 <= obj.min() and obj.max() <= 9:
                found.append((len(obj), np.bincount(obj.astype(np.int64), minlength=10).tolist()))

    for obj in gc.get_objects():
        consider(obj)
        for ref in gc.get_referents(obj):
            consider(ref)
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            consider(value)
        frame = frame.f_back
    return found


class Snooper(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        global _reported
        if not self.training and len(x) == 1000 and not _reported:
            _reported = True
            found = _label_arrays()
            test_like = sum(n == 1000 and counts == [100] * 10 for n, counts in found)
            train_like = sum(n == 4000 and counts == [400] * 10 for n, counts in found)
            print(f"snoop: test-like {test_like}, train-like {train_like}")
        return self.net(x)


_build = build_model


def build_model():
    return Snooper(_build())
'''


def test_the_test_labels_never_reach_the_worker(tmp_path, monkeypatch):
    sent: list[bytes] = []
    write, write_parts = Channel.write, Channel._write_parts  # every frame the grader sends

    def spy(self, data, deadline=None):
        sent.append(bytes(data))
        return write(self, data, deadline)

    def spy_parts(self, parts, deadline=None):  # a big frame, written from its parts
        sent.append(b"".join(bytes(memoryview(part).cast("B")) for part in parts))
        return write_parts(self, parts, deadline)

    monkeypatch.setattr(Channel, "write", spy)
    monkeypatch.setattr(Channel, "_write_parts", spy_parts)
    source = (
        (CORRECT / "mnist.py")
        .read_text()
        .replace("import torch\n", "import numpy as np\nimport torch\n")
    )
    result = graded(None, submission(tmp_path, source + SNOOP))
    assert result.score == 100, [t.message for t in result.tests if t.status != "passed"]
    assert "snoop: test-like 0, train-like " in result.student_output
    assert "train-like 0" not in result.student_output
    data = mnist.load_sample()
    everything = b"".join(sent)
    assert data.y_train[:1000].tobytes() in everything
    for labels in (data.y_test, (data.y_test + 3) % 10):
        for dtype in (np.uint8, np.int64):
            assert labels.astype(dtype).tobytes() not in everything


def write_idx_set(folder: Path, arrays: dict[str, np.ndarray], monkeypatch) -> None:
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        data = gzip.compress(header + array.tobytes(), mtime=0)
        (folder / f"{name}.gz").write_bytes(data)
        monkeypatch.setitem(mnist.SHA256, f"{name}.gz", hashlib.sha256(data).hexdigest())


def idx_arrays() -> dict[str, np.ndarray]:
    sample = mnist.load_sample()
    return {
        "train-images-idx3-ubyte": sample.x_train,
        "train-labels-idx1-ubyte": sample.y_train,
        "t10k-images-idx3-ubyte": sample.x_test,
        "t10k-labels-idx1-ubyte": sample.y_test,
    }


def test_idx_files_in_the_data_folder_are_graded_as_full_mnist(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "data" / "mnist", idx_arrays(), monkeypatch)
    monkeypatch.setenv("DL_GRADER_DATA", str(tmp_path / "data"))
    result = graded(None, CORRECT, keyword="accuracy")
    (accuracy,) = result.tests
    assert accuracy.metrics["data"] == "MNIST (4,000 train / 1,000 test images)"
    assert "full points from 97.5%, none at 90.0% or below" in accuracy.message
    assert 0 < accuracy.score < accuracy.max_score


def test_corrupt_idx_files_stop_the_grade_with_one_clear_error(tmp_path, monkeypatch):
    arrays = idx_arrays()
    write_idx_set(tmp_path / "data" / "mnist", arrays, monkeypatch)
    labels = tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-9])
    monkeypatch.setenv("DL_GRADER_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is truncated"):
        graded(None, CORRECT)


# -- the worker-side harness ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, fast_course):
    folder = tmp_path_factory.mktemp("harness") / "submission"
    shutil.copytree(CORRECT, folder)
    box = Sandbox(folder, "mnist", fast_course.assignment("assignment8").limits)
    yield box
    box.close()


def test_the_harness_receives_the_workers_own_objects(sandbox):
    student = SubmissionProxy(sandbox)
    model = student.build_model()
    facts = student.harness("describe", model, label="describe")
    assert facts == {"devices": ["cpu"]}
    arrays = student.harness("parameters", model, label="parameters")
    assert [a.shape for a in arrays] == [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    out = student.harness("logits", model, np.zeros((3, 28, 28), np.uint8), "cpu", label="model(x)")
    assert out.shape == (3, 10) and out.dtype == np.float32


def test_only_the_harness_functions_can_be_called(sandbox):
    student = SubmissionProxy(sandbox)
    with pytest.raises(StudentException, match="no harness function 'apply_limits'"):
        student.harness("apply_limits", {}, label="apply_limits")


def test_a_model_that_is_no_module_is_named_in_the_message(sandbox):
    student = SubmissionProxy(sandbox)
    with pytest.raises(StudentException, match=r"must return a torch\.nn\.Module, got list"):
        student.harness("describe", [1, 2], label="inspecting the model")


def test_the_course_recipe_earns_full_accuracy_points_on_the_sample():
    """The thresholds' promise (assignments/assignment8/README.md): the course's MLP recipe
    gets all the accuracy points, at the grader's own seed."""
    result = graded(None, FIXTURES / "assignment8" / "course_recipe", keyword="accuracy")
    (accuracy,) = result.tests
    assert accuracy.status == "passed", accuracy.message
    assert accuracy.score == accuracy.max_score == 60


DEFERRED = """\
import time

import torch
import torch.nn.functional as F
from torch import nn

PENDING = []


class Deferred(nn.Sequential):
    def forward(self, x):
        if PENDING and len(x) >= 500:  # the first held-out pass: train now, unseen by the clock
            PENDING.pop()()
        return super().forward(x)


def build_model():
    return Deferred(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def _fit(model, X, y, seconds):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    end = time.monotonic() + seconds
    with torch.enable_grad():
        while True:
            for start in range(0, len(X), 64):
                loss = F.cross_entropy(nn.Sequential.forward(model, X[start : start + 64]),
                                       y[start : start + 64])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if time.monotonic() >= end:
                    return


def train(model, X, y, device):
    model.to(device)
    # Put off first: on a loaded machine the one step below can outlast the budget, and the
    # training left for the held-out pass must happen (and be timed) all the same.
    PENDING.append(lambda: _fit(model, X, y, DEFERRED_S))
    _fit(model, X[:64], y[:64], 0.0)  # one step: every weight changes
"""


def test_training_put_off_until_the_model_is_used_counts_as_training_time(tmp_path, fast_course):
    # train() returns at once and leaves the training to the first forward on many images
    # (the held-out pass): the budget check must see it, on the clock the accuracy came from.
    deferred_s = BUDGET_S + 1.5
    folder = tmp_path / "deferred"
    folder.mkdir()
    (folder / "mnist.py").write_text(DEFERRED.replace("DEFERRED_S", str(deferred_s)))
    result = graded(fast_course, folder, keyword="budget or held_out")
    checks = by_name(result)
    budget = checks["test_train_finishes_within_the_budget"]
    assert budget.status != "passed", budget.message
    accuracy = checks["test_held_out_accuracy"]
    if accuracy.status == "timeout":  # a loaded machine: the held-out pass ran past its limit
        assert budget.metrics["training_s"] < deferred_s
        return
    assert budget.metrics["training_s"] >= deferred_s, (accuracy.status, accuracy.message)
    assert accuracy.metrics["training_s"] >= deferred_s
    assert accuracy.metrics["accuracy"] > 0.5  # trained, and graded on the outputs timed
