"""assignment4's reference solution reproduces the textbook's numbers the checks rely on, and
each NumPy function its hidden checks run in the worker equals the torch twin autograd
differentiates for the reference."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load("reference_assignment4", ROOT / "reference" / "assignment4.py")
with warnings.catch_warnings():  # its markers are the grader plugin's, not registered here
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    checks = _load(
        "hidden_checks_assignment4",
        ROOT / "assignments" / "assignment4" / "checks" / "hidden" / "test_gradient_reference.py",
    )


def function_2(x: np.ndarray) -> float:
    return x[0] ** 2 + x[1] ** 2


@pytest.mark.parametrize(
    ("lr", "textbook"),
    [
        (0.1, [-6.11110793e-10, 8.14814391e-10]),
        (10.0, [-2.58983747e13, -1.29524862e12]),
        (1e-10, [-2.99999994, 3.99999992]),
    ],
)
def test_reference_gradient_descent_reproduces_textbook(lr: float, textbook: list[float]) -> None:
    init_x = np.array([-3.0, 4.0])
    x, history = reference.gradient_descent(function_2, init_x, lr=lr, step_num=100)
    np.testing.assert_allclose(x, textbook, rtol=1e-8)
    assert history.shape == (100, 2)
    assert np.array_equal(history[0], init_x)


def test_reference_numerical_gradient_agrees_with_autograd() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3))

    def loss(t: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(t.reshape(-1), dim=0) + (t**3).sum()

    numeric = reference.numerical_gradient(lambda a: float(loss(torch.as_tensor(a))), x)
    exact = reference.autograd_gradient(loss, x)
    np.testing.assert_allclose(numeric, exact, rtol=1e-6, atol=1e-8)


SHAPES = {"sum_of_squares": (2, 3, 4), "simplenet_loss": (2, 3)}  # the others take a scalar


@pytest.mark.parametrize("function", list(checks.TORCH_TWINS), ids=lambda f: f.name)
def test_each_numpy_function_of_the_checks_equals_its_torch_twin(function) -> None:
    twin = checks.TORCH_TWINS[function]
    rng = np.random.default_rng(4)
    for _ in range(20):
        x = rng.uniform(-3.0, 3.0, size=SHAPES.get(function.name, ()))
        want = float(twin(torch.as_tensor(x, dtype=torch.float64)))
        assert function(x) == pytest.approx(want, rel=1e-13, abs=1e-13)
