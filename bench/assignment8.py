"""Measure what assignment8's budgets and accuracy thresholds rest on.

Trains a few recipes on the data the grader would use (full MNIST when its IDX files are in
the data folder, else the shipped sample) on one device, timed the way the grader times the
reference (`grader.training.time_reference`: tensors already on the device, synchronized
clock, the assignment's CPU thread count), over several seeds, and prints a Markdown table
with each recipe's training time also as a ratio to the reference's, measured in the same run:

    python bench/assignment8.py --device cpu --seeds 3
    python bench/assignment8.py --device cuda --seeds 5 --data-dir ~/mnist

Recipes: the reference solution, the correct test fixture, the course's MLP recipe (784-256-
256-10, Adam 1e-3, batch 100, 20 epochs), a linear softmax classifier, and the reference CNN
with random +-2 pixel shifts for 15 epochs. This script is for course staff calibrating
`[training]` in assignment.toml; grading never runs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from grader import training  # noqa: E402
from grader.data.mnist import load_mnist  # noqa: E402


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sgd_loop(epochs: int, batch_size: int, lr: float, shift: int = 0) -> Callable[..., None]:
    """A plain Adam training loop over shuffled batches kept on the device."""

    def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
        model.to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(X), device=device)
            for start in range(0, len(X), batch_size):
                batch = order[start : start + batch_size]
                x = X[batch]
                if shift:
                    dx, dy = torch.randint(-shift, shift + 1, (2,)).tolist()
                    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                loss = F.cross_entropy(model(x), y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    return train


def recipes() -> dict[str, tuple[Callable[[], nn.Module], Callable[..., None]]]:
    reference = load(ROOT / "reference" / "assignment8.py", "reference_assignment8")
    fixtures = ROOT / "tests" / "fixtures" / "assignment8"
    fixture = load(fixtures / "correct" / "mnist.py", "fixture8")
    course = load(fixtures / "course_recipe" / "mnist.py", "course_recipe8")

    def linear() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    return {
        "reference: CNN, Adam + one-cycle, 5 epochs": (reference.build_model, reference.train),
        "fixture: MLP 784-256-256-10 + dropout, one-cycle, 12 epochs": (
            fixture.build_model,
            fixture.train,
        ),
        "course recipe: MLP 784-256-256-10, Adam 1e-3, batch 100, 20 epochs": (
            course.build_model,
            course.train,
        ),
        "linear softmax, Adam 1e-3, batch 100, 10 epochs": (linear, sgd_loop(10, 100, 1e-3)),
        "reference CNN, Adam 1e-3, +-2 px shifts, 15 epochs": (
            reference.build_model,
            sgd_loop(15, 64, 1e-3, shift=2),
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, help="CPU threads (default: the assignment's)")
    parser.add_argument(
        "--only", default="", help="run the reference and recipes whose name contains this"
    )
    args = parser.parse_args(argv)
    settings = training.TrainingSettings.load(
        ROOT / "assignments" / "assignment8" / "assignment.toml"
    )
    data = load_mnist(args.data_dir)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    threads = args.threads or settings.cpu_threads
    where = args.device
    if where == "cuda":
        where = f"cuda ({torch.cuda.get_device_name()})"
    ramp = settings.accuracy[data.kind]
    print(f"{data.description} on {where}, {threads} CPU thread(s), {args.seeds} seeds")
    print(f"accuracy points: none at {ramp.zero:.1%}, all from {ramp.full:.1%}\n")
    print(
        "| recipe | training s (median, min-max) | x reference"
        " | held-out accuracy (median, min-max) | seeds at full points | share of the points |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    reference_s = None
    for name, (build, fit) in recipes().items():
        if args.only not in name and not name.startswith("reference:"):
            continue
        runs = [
            training.time_reference(
                build, fit, arrays, device=args.device, threads=threads, seed=seed
            )
            for seed in range(args.seeds)
        ]
        seconds = [r["training_s"] for r in runs]
        accuracy = [r["accuracy"] for r in runs]
        median = statistics.median(seconds)
        reference_s = reference_s or median
        at_full = sum(a >= ramp.full for a in accuracy)
        share = statistics.mean(ramp.fraction(a) for a in accuracy)
        print(
            f"| {name} | {median:.2f} ({min(seconds):.2f}-{max(seconds):.2f})"
            f" | {median / reference_s:.2f} | {statistics.median(accuracy):.2%}"
            f" ({min(accuracy):.2%}-{max(accuracy):.2%}) | {at_full}/{len(accuracy)}"
            f" | {share:.0%} (min {min(ramp.fraction(a) for a in accuracy):.0%}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
