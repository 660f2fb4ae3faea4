"""Reference solution for assignment4 (numerical gradient), computed with PyTorch.

NumPy in, NumPy out. The numerical functions mirror the README's formulas with torch
tensors in float64 on the grade's device; the loss `f` stays a Python callable that takes
a NumPy array, exactly as a student's code calls it. `autograd_gradient` gives the exact
gradient of a torch function, the yardstick the numerical gradients are checked against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from grader.torchref import numpy, tensor

Loss = Callable[[np.ndarray], float]


def numerical_diff(f: Callable[[float], float], x: float, h: float = 1e-4) -> float:
    """Central difference (f(x + h) - f(x - h)) / (2h) of a scalar function at scalar x."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f: Loss, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central difference along each element of x (any shape). Returns an array of x's shape."""
    x = tensor(x)
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).view(-1)
        e[i] = h
        e = e.view_as(x)
        grad.view(-1)[i] = (f(numpy(x + e)) - f(numpy(x - e))) / (2 * h)
    return numpy(grad)


def gradient_descent(
    f: Loss, init_x: np.ndarray, lr: float = 0.01, step_num: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """step_num steps of x <- x - lr * grad f(x) from init_x.

    Returns (x after the last step, history of shape (step_num, *x.shape) holding x before
    each step).
    """
    x = tensor(init_x)
    history = []
    for _ in range(step_num):
        history.append(x.clone())
        x = x - lr * tensor(numerical_gradient(f, numpy(x)))
    return numpy(x), numpy(torch.stack(history))


def autograd_gradient(f: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Exact gradient of the scalar torch function f at x (any shape, also 0-d) by autograd."""
    x = tensor(x, requires_grad=True)
    (grad,) = torch.autograd.grad(f(x), x)
    return numpy(grad)
