"""Worker-side glue for assignments graded by training a PyTorch model (assignment8).

The student's API takes tensors already on the device (`train(model, X, y, device)`), while
everything crossing the sandbox's pipe is NumPy. These functions run INSIDE the worker,
next to the student's code, and bridge the two: they turn NumPy images into float tensors
on the device, call the student's `train` under a time budget, and run the model on images
to return its logits. The trusted side calls them by name through `Sandbox.harness` (only
names in `FUNCTIONS`), passing the worker's own objects (the module, a model) by handle.

Nothing they return is trusted: they run where the submission can patch anything. That is
why they never receive labels the grader keeps secret (accuracy on the held-out split is
computed by the trusted process from the logits), why the trusted process times the `fit`
call itself, and why they send the parameter arrays rather than a count of them. The soft
time limit here (SIGALRM at the budget, raising `TrainingStopped` inside the student's
loop) is a courtesy so a model trained too long can still be evaluated; the hard limit is
the trusted side killing the worker.

Imported lazily by the worker on the first harness request, after the submission.
"""

from __future__ import annotations

import random
import signal
from typing import Any

import numpy as np

FUNCTIONS = frozenset({"prepare", "to_device", "fit", "logits", "parameters", "describe"})
EVAL_BATCH = 1000


class TrainingStopped(BaseException):
    """Raised inside the student's `train` when its time budget is used up."""


class TrainingData:
    """Training images X (N, 1, 28, 28) float32 in [0, 1] and labels y (N,) int64, on a device."""

    def __init__(self, X: Any, y: Any) -> None:
        self.X = X
        self.y = y


def prepare(seed: int, threads: int, device: str, gpu_memory_fraction: float) -> None:
    """Seed every generator, set torch's CPU threads and cap this process's share of the GPU."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    if device == "cuda":
        torch.cuda.set_per_process_memory_fraction(float(gpu_memory_fraction))


def to_device(images: np.ndarray, labels: np.ndarray, device: str) -> TrainingData:
    """uint8 images (N, 28, 28) and labels (N,) as the tensors `train` receives."""
    import torch

    X = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    X = X.to(torch.float32).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    return TrainingData(X, y)


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _stop(signum: int, frame: Any) -> None:
    raise TrainingStopped


def fit(module: Any, model: Any, data: TrainingData, device: str, budget_s: float) -> dict:
    """Call `module.train(model, X, y, device)`, interrupting it once `budget_s` has passed.

    Returns {"stopped": True} if it was interrupted there.
    """
    import torch

    _require_module(model)
    previous = signal.signal(signal.SIGALRM, _stop)
    stopped = False
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, max(float(budget_s), 1e-3))
            module.train(model, data.X, data.y, torch.device(device))
            _synchronize(device)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except TrainingStopped:
        stopped = True
    finally:
        signal.signal(signal.SIGALRM, previous)
    return {"stopped": stopped}


def logits(model: Any, images: np.ndarray, device: str) -> np.ndarray:
    """The model's outputs for uint8 images (N, 28, 28), in eval mode, as float32 NumPy."""
    import torch

    _require_module(model)
    where = next((p.device for p in model.parameters()), torch.device(device))
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), EVAL_BATCH):
            batch = np.ascontiguousarray(images[start : start + EVAL_BATCH])
            x = torch.from_numpy(batch).to(where).to(torch.float32).div_(255.0).unsqueeze(1)
            out = model(x)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"model(x) returned {type(out).__name__}, expected a tensor")
            outputs.append(out.detach().to("cpu", torch.float32).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)


def registered(model: Any) -> list[Any]:
    """Every parameter registered in the model's module tree, each once, in the order of
    `model.parameters()`, read from each module's own registry (`_parameters`, `_modules`)
    so that a `parameters()` the submission overrides or patches does not change it."""
    found: dict[int, Any] = {}
    seen: set[int] = set()
    pending = [model]
    while pending:
        module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        state = vars(module)
        for parameter in state.get("_parameters", {}).values():
            if parameter is not None:
                found.setdefault(id(parameter), parameter)
        children = [m for m in state.get("_modules", {}).values() if m is not None]
        pending.extend(reversed(children))
    return list(found.values())


def parameters(model: Any) -> list[np.ndarray]:
    """Copies of the model's parameters, as float32 NumPy arrays."""
    import torch

    _require_module(model)
    return [p.detach().to("cpu", torch.float32).numpy().copy() for p in registered(model)]


def describe(model: Any) -> dict[str, Any]:
    """Which devices the model's parameters are on."""
    _require_module(model)
    return {"devices": sorted({p.device.type for p in registered(model)})}


def _require_module(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"build_model() must return a torch.nn.Module, got {type(model).__name__}")
