"""Reference solution for assignment2 (activation functions), computed with PyTorch.

NumPy in, NumPy out; every function computes in float64 on the grade's device with torch's
own ops. The derivatives come from autograd, so they are independent of any hand-written
formula a student might share with this file.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from grader.torchref import numpy, tensor


def step_function(x: np.ndarray) -> np.ndarray:
    """1 where x > 0, else 0 (also at x == 0). Same shape as x."""
    t = tensor(x)
    return numpy(torch.heaviside(t, torch.zeros_like(t)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), elementwise. Same shape as x."""
    return numpy(torch.sigmoid(tensor(x)))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), elementwise. Same shape as x."""
    return numpy(F.relu(tensor(x)))


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """x for x > 0, alpha * x otherwise. Same shape as x."""
    return numpy(F.leaky_relu(tensor(x), negative_slope=alpha))


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), elementwise. Same shape as x."""
    return numpy(F.softplus(tensor(x)))


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent, elementwise. Same shape as x."""
    return numpy(torch.tanh(tensor(x)))


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise. Same shape as x."""
    return numpy(F.elu(tensor(x), alpha=alpha))


def identity_function(x: np.ndarray) -> np.ndarray:
    """x itself (values and shape)."""
    return numpy(tensor(x))


def _derivative(f: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Elementwise derivative f'(x) by autograd: the gradient of sum(f(x)). Same shape as x."""
    t = tensor(x, requires_grad=True)
    (grad,) = torch.autograd.grad(f(t).sum(), t)
    return numpy(grad)


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """d sigmoid(x) / dx evaluated at x. Same shape as x."""
    return _derivative(torch.sigmoid, x)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """d relu(x) / dx evaluated at x (torch's choice at 0 is 0). Same shape as x."""
    return _derivative(F.relu, x)


def tanh_grad(x: np.ndarray) -> np.ndarray:
    """d tanh(x) / dx evaluated at x. Same shape as x."""
    return _derivative(torch.tanh, x)
