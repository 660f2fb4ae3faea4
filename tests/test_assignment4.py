"""assignment4's reference solution reproduces the textbook's numbers the checks rely on."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from support import ROOT

_spec = importlib.util.spec_from_file_location(
    "reference_assignment4", ROOT / "reference" / "assignment4.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


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
