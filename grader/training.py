"""Grading by training: the student's model is trained in the sandbox, judged in this process.

For assignments whose student API is `build_model()` and `train(model, X, y, device)`
(assignment8). This module is the trusted side: it reads the `[training]` table of
`assignment.toml` (time budgets by device and data set, accuracy thresholds, limits), asks
the worker-side harness (`grader.sandbox.torch_harness`) to build and train the model on
the training split, times that call with its own clock, and computes held-out accuracy
from the logits the worker returns, so the test labels never leave this process. Facts
that earn points come from this process's clock and from the data it received (logits,
the parameter arrays), never from a number the worker reports. It also times the reference
solution the same way, for comparison.

What it does not do: decide which checks exist or how many points each is worth (the
checks do), or load data (`grader.data.mnist`).
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.compare import as_array, expect, fail
from grader.data.mnist import load_mnist
from grader.errors import GraderError
from grader.sandbox.proxy import RemoteObject, StudentError, WorkerTimeout

DEVICES = ("cuda", "cpu")
DATA_KINDS = ("full", "sample")
FIT_LABEL = "train(model, X, y, device)"


@dataclass(frozen=True)
class Ramp:
    """Points by accuracy: none at `zero` or below, all at `full` or above, linear between."""

    zero: float
    full: float

    def fraction(self, accuracy: float) -> float:
        return float(np.clip((accuracy - self.zero) / (self.full - self.zero), 0.0, 1.0))


@dataclass(frozen=True)
class TrainingSettings:
    """The `[training]` table of an assignment.toml.

    `budget_s` maps "DEVICE_DATA" (cuda_full, cuda_sample, cpu_full, cpu_sample) to the
    seconds `train` may run; past the budget it is interrupted (and the check that times it
    fails), past budget + `grace_s` the worker is killed. `accuracy` maps the data kind to
    its `Ramp`.
    """

    budget_s: dict[str, float]
    grace_s: float
    max_parameters: int
    gpu_memory_fraction: float
    cpu_threads: int
    accuracy: dict[str, Ramp]

    @classmethod
    def load(cls, assignment_toml: Path) -> TrainingSettings:
        """Read the `[training]` table; `GraderError` naming the file if it is incomplete."""
        try:
            table = tomllib.loads(Path(assignment_toml).read_text(encoding="utf-8"))["training"]
            budgets = {
                f"{device}_{kind}": float(table["budget_s"][f"{device}_{kind}"])
                for device in DEVICES
                for kind in DATA_KINDS
            }
            ramps = {
                kind: Ramp(float(table["accuracy"][kind][0]), float(table["accuracy"][kind][1]))
                for kind in DATA_KINDS
            }
            if any(r.full <= r.zero for r in ramps.values()):
                raise ValueError("each accuracy ramp must be [zero, full] with zero < full")
            return cls(
                budget_s=budgets,
                grace_s=float(table["grace_s"]),
                max_parameters=int(table["max_parameters"]),
                gpu_memory_fraction=float(table["gpu_memory_fraction"]),
                cpu_threads=int(table["cpu_threads"]),
                accuracy=ramps,
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
            raise GraderError(f"{assignment_toml}: invalid [training] table: {e!r}") from e

    @classmethod
    def next_to(cls, check_file: str | Path) -> TrainingSettings:
        """The settings of the assignment a check file (checks/public/test_x.py) belongs to."""
        return cls.load(Path(check_file).resolve().parents[2] / "assignment.toml")

    def budget(self, device: str, kind: str) -> float:
        return self.budget_s[f"{device}_{kind}"]

    def call_limit(self, share: float = 1.0) -> CallLimit:
        """For `@pytest.mark.timeout(...)` on a check that trains: budget x share + grace."""
        return CallLimit(self, share)


class CallLimit:
    """A check's per-call limit that depends on the device and on the data found at run time.

    An object rather than a function: pytest would take a lone function passed to a marker
    for the function being decorated.
    """

    def __init__(self, settings: TrainingSettings, share: float) -> None:
        self.settings = settings
        self.share = share

    def budget(self, device: str) -> float:
        """The training time allowed on `device` with the data found (the check's share)."""
        return self.settings.budget(device, load_mnist().kind) * self.share

    def __call__(self, device: str) -> float:
        return self.budget(device) + self.settings.grace_s


class BudgetExceeded(StudentError):
    """`train` ran past its time budget and was interrupted (the check's status: timeout)."""

    status = "timeout"


@dataclass(frozen=True)
class TrainingRun:
    """What one call of the student's `train` did, as this process saw it.

    `seconds` is this process's clock, from the call of `train` until the held-out outputs
    (when asked for) were received; `parameters` and `changed` come from the parameter
    arrays received. `stopped` and `devices` are the worker's statements: `stopped` can only
    cost the submission points (a run the alarm stopped took longer than its budget on
    this clock too), and where the worker keeps its tensors cannot be observed from here.
    """

    model: RemoteObject
    seconds: float
    budget_s: float
    stopped: bool
    parameters: int
    changed: float
    devices: tuple[str, ...]
    held_out: Any = None  # the outputs for the held-out images (or the error asking for them)

    @property
    def within_budget(self) -> bool:
        """Trained in time, and usable in time: held-out outputs that did not come within
        the call's limit mean training went on past it."""
        late = isinstance(self.held_out, WorkerTimeout)
        return not self.stopped and not late and self.seconds <= self.budget_s


def describe_device(device: str) -> str:
    """ "cpu", or "cuda" with the GPU's name (as this process sees it)."""
    if device != "cuda":
        return device
    import torch

    return f"cuda ({torch.cuda.get_device_name()})"


def build_model(student: Any) -> RemoteObject:
    """`student.build_model()`, which must return an object (a torch.nn.Module) in the worker."""
    model = student.build_model()
    if not isinstance(model, RemoteObject):
        fail(
            f"build_model() returned {type(model).__name__} {model!r:.60}, not a model.",
            hint="End build_model() with `return model`, a torch.nn.Module such as nn.Sequential.",
        )
    return model


def train(
    student: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    settings: TrainingSettings,
    device: str,
    budget_s: float,
    seed: int,
    held_out: np.ndarray | None = None,
) -> TrainingRun:
    """Build a fresh model and train it in the worker on (images, labels) within `budget_s`.

    With `held_out` images, the model's outputs for them are asked for as soon as `train`
    returns, and the clock stops only when they are in: work a submission puts off until
    its model is used (training inside the first `forward` on many images) is training
    time too, and the outputs the accuracy is computed from are the ones that clock saw.
    """
    student.harness(
        "prepare",
        seed,
        settings.cpu_threads,
        device,
        settings.gpu_memory_fraction,
        label="preparing torch in the worker",
    )
    model = build_model(student)
    before = _parameters(student, model)
    data = student.harness(
        "to_device", images, labels, device, label="moving X and y to the device"
    )
    started = time.monotonic()
    outcome = student.harness("fit", student, model, data, device, budget_s, label=FIT_LABEL)
    outputs: Any = None
    if held_out is not None:
        try:
            outputs = student.harness("logits", model, held_out, device, label="model(x)")
        except StudentError as error:  # the accuracy check reports it; the others go on
            outputs = error
    seconds = time.monotonic() - started
    after = _parameters(student, model)
    facts = student.harness("describe", model, label="inspecting the trained model")
    return TrainingRun(
        model=model,
        seconds=seconds,
        budget_s=budget_s,
        stopped=isinstance(outcome, dict) and outcome.get("stopped") is True,
        parameters=sum(a.size for a in after),
        changed=_changed(before, after),
        devices=tuple(str(d) for d in facts.get("devices", ())) if isinstance(facts, dict) else (),
        held_out=outputs,
    )


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """The fraction of parameter values that differ (1 if the parameters were replaced)."""
    if [a.shape for a in after] != [b.shape for b in before]:
        return 1.0
    total = sum(b.size for b in before)
    differing = sum(int(np.sum(a != b)) for a, b in zip(after, before, strict=True))
    return differing / total if total else 0.0


def count_parameters(student: Any, model: RemoteObject) -> int:
    """How many parameters the model has: the values in the parameter arrays received."""
    return sum(a.size for a in _parameters(student, model))


def _parameters(student: Any, model: RemoteObject) -> list[np.ndarray]:
    values = student.harness("parameters", model, label="reading the model's parameters")
    if not isinstance(values, list):
        fail("the model's parameters could not be read back.")
    return [as_array(v, name="a parameter") for v in values]


def logits(student: Any, model: RemoteObject, images: np.ndarray, device: str) -> np.ndarray:
    """The model's outputs for `images` (eval mode, no gradients), checked to be (N, 10) finite."""
    return _checked_logits(
        student.harness("logits", model, images, device, label="model(x)"), len(images)
    )


def _checked_logits(outputs: Any, n: int) -> np.ndarray:
    out = as_array(outputs, name="model(x)")
    expect(
        out.shape == (n, 10),
        f"model(x) for x of shape ({n}, 1, 28, 28) returned shape {out.shape}; expected ({n}, 10).",
        hint="End with nn.Linear(..., 10) and keep the batch axis (no squeeze, no flatten of N).",
    )
    expect(
        bool(np.isfinite(out).all()),
        f"model(x) returned NaN or Inf for {int(np.sum(~np.isfinite(out).all(axis=1)))} of "
        f"{n} images.",
        hint="Check the learning rate and any log/division in forward.",
    )
    return out


def accuracy(
    student: Any, model: RemoteObject, images: np.ndarray, labels: np.ndarray, device: str
) -> float:
    """Held-out accuracy: the worker sees the images only; labels stay in this process."""
    predictions = logits(student, model, images, device).argmax(axis=1)
    return float(np.mean(predictions == labels))


def held_out_accuracy(run: TrainingRun, labels: np.ndarray) -> float:
    """Accuracy of the outputs `train` timed (`train(..., held_out=images)`) against `labels`,
    which never left this process."""
    if isinstance(run.held_out, Exception):
        raise run.held_out
    if run.held_out is None:
        raise GraderError("held_out_accuracy needs a run trained with held_out images")
    predictions = _checked_logits(run.held_out, len(labels)).argmax(axis=1)
    return float(np.mean(predictions == labels))


def time_reference(
    build: Callable[[], Any],
    fit: Callable[..., Any],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    device: str,
    threads: int,
    seed: int = 0,
) -> dict[str, float]:
    """Train a model in THIS process as the harness trains a submission (same tensors, same
    thread count, synchronized timing); its held-out accuracy and training seconds."""
    import torch

    x_train, y_train, x_test, y_test = data
    where = torch.device(device)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cuda = [torch.cuda.current_device()] if where.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = build()
            X = torch.from_numpy(np.array(x_train, dtype=np.uint8)).to(where)
            X = X.to(torch.float32).div_(255.0).unsqueeze(1)
            y = torch.from_numpy(np.asarray(y_train, dtype=np.int64)).to(where)
            _synchronize(where)
            started = time.perf_counter()
            fit(model, X, y, where)
            _synchronize(where)
            seconds = time.perf_counter() - started
            model.eval()
            predicted = []
            with torch.no_grad():
                for start in range(0, len(x_test), 1000):
                    x = torch.from_numpy(np.array(x_test[start : start + 1000], dtype=np.uint8))
                    out = model(x.to(where).to(torch.float32).div_(255.0).unsqueeze(1))
                    predicted.append(out.argmax(dim=1).cpu().numpy())
    finally:
        torch.set_num_threads(previous)
    hits = np.concatenate(predicted) == y_test
    return {"accuracy": float(np.mean(hits)), "training_s": seconds}


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
