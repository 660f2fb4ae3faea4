"""Reference for assignment5 (backpropagation layers), computed with PyTorch autograd.

Each function takes NumPy arrays, runs the forward pass in float64 on the grade's device,
lets autograd produce the gradients for a given upstream gradient `dout`, and returns NumPy
arrays. Functions are pure (no state), so one input always gives one answer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from grader.torchref import numpy, tensor

EPS = 1e-6  # the course's batch-norm eps (the textbook's 10e-7)


def _backprop(out: torch.Tensor, inputs: list[torch.Tensor], dout: ArrayLike) -> list[np.ndarray]:
    """Vector-Jacobian product: the gradient of sum(out * dout) w.r.t. each input."""
    grads = torch.autograd.grad(out, inputs, grad_outputs=tensor(dout).reshape(out.shape))
    return [numpy(g) for g in grads]


def mul(x: ArrayLike, y: ArrayLike, dout: ArrayLike) -> tuple[np.ndarray, ...]:
    """out = x * y (same shapes). Returns (out, dx, dy)."""
    xs, ys = tensor(x, requires_grad=True), tensor(y, requires_grad=True)
    out = xs * ys
    return (numpy(out), *_backprop(out, [xs, ys], dout))


def add(x: ArrayLike, y: ArrayLike, dout: ArrayLike) -> tuple[np.ndarray, ...]:
    """out = x + y (same shapes). Returns (out, dx, dy)."""
    xs, ys = tensor(x, requires_grad=True), tensor(y, requires_grad=True)
    out = xs + ys
    return (numpy(out), *_backprop(out, [xs, ys], dout))


def relu(x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """out = max(0, x) elementwise. Returns (out, dx)."""
    xs = tensor(x, requires_grad=True)
    out = torch.relu(xs)
    return (numpy(out), *_backprop(out, [xs], dout))


def sigmoid(x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """out = 1 / (1 + exp(-x)) elementwise. Returns (out, dx)."""
    xs = tensor(x, requires_grad=True)
    out = torch.sigmoid(xs)
    return (numpy(out), *_backprop(out, [xs], dout))


def affine(x: np.ndarray, W: np.ndarray, b: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """x (N, d_1, ..., d_k) flattened to (N, D); W (D, M); b (M,); out (N, M).

    Returns (out, dx, dW, db) with dx in x's original shape.
    """
    xs, Ws, bs = (tensor(a, requires_grad=True) for a in (x, W, b))
    out = xs.reshape(xs.shape[0], -1) @ Ws + bs
    return (numpy(out), *_backprop(out, [xs, Ws, bs], dout))


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores x (N, C)."""
    return numpy(torch.softmax(tensor(x), dim=-1))


def softmax_with_loss(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax(x) (N, C) against t: one-hot (N, C) or labels (N,).

    Returns (loss, dx) with dx the gradient of the loss (upstream gradient 1).
    """
    xs = tensor(x, requires_grad=True)
    target = tensor(t) if np.ndim(t) == 2 else tensor(t, dtype=torch.int64)
    loss = F.cross_entropy(xs, target)
    return (numpy(loss), *_backprop(loss, [xs], 1.0))


def dropout_test(x: np.ndarray, dropout_ratio: float) -> np.ndarray:
    """Non-inverted dropout at test time: every unit scaled by the keep rate 1 - ratio."""
    return numpy(tensor(x) * (1.0 - dropout_ratio))


def batch_norm_train(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray, eps: float = EPS
) -> tuple[np.ndarray, ...]:
    """Training-mode batch norm of x (N, ...) flattened to (N, D); gamma, beta (D,).

    Normalises each feature with the batch mean and the biased batch variance.
    Returns (out, dx, dgamma, dbeta) with out and dx in x's original shape.
    """
    xs, gs, bs = (tensor(a, requires_grad=True) for a in (x, gamma, beta))
    flat = xs.reshape(xs.shape[0], -1)
    out = F.batch_norm(flat, None, None, gs, bs, training=True, eps=eps).reshape(xs.shape)
    return (numpy(out), *_backprop(out, [xs, gs, bs], dout))


def batch_norm_running_stats(batches: np.ndarray, momentum: float) -> tuple[np.ndarray, ...]:
    """Running mean and variance (D,) after training-mode forward passes over `batches`.

    batches (steps, N, ...): one batch per step, each flattened to (N, D). The statistics
    start at zeros; each step does running = momentum * running + (1 - momentum) * batch
    statistic, with the biased batch variance.
    """
    flat = tensor(batches).reshape(len(batches), len(batches[0]), -1)
    mean = torch.zeros(flat.shape[2], dtype=flat.dtype, device=flat.device)
    var = torch.zeros_like(mean)
    for xs in flat:
        mean = momentum * mean + (1 - momentum) * xs.mean(dim=0)
        var = momentum * var + (1 - momentum) * xs.var(dim=0, correction=0)
    return numpy(mean), numpy(var)


def batch_norm_eval(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float = EPS,
) -> np.ndarray:
    """Inference-mode batch norm: normalise x (N, ...) with the running statistics (D,)."""
    xs = tensor(x)
    flat = xs.reshape(xs.shape[0], -1)
    out = F.batch_norm(
        flat,
        tensor(running_mean),
        tensor(running_var),
        tensor(gamma),
        tensor(beta),
        training=False,
        eps=eps,
    )
    return numpy(out.reshape(xs.shape))


def two_layer_net(
    x: np.ndarray, t: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """scores = relu(x @ W1 + b1) @ W2 + b2; loss = mean cross-entropy against t.

    x (N, D); t one-hot (N, C) or labels (N,). Returns (scores, loss, accuracy, grads) with
    grads a dict of the gradients of the loss for W1, b1, W2, b2.
    """
    params = {
        name: tensor(p, requires_grad=True)
        for name, p in zip(("W1", "b1", "W2", "b2"), (W1, b1, W2, b2), strict=True)
    }
    scores = torch.relu(tensor(x) @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    labels = tensor(t).argmax(dim=1) if np.ndim(t) == 2 else tensor(t, dtype=torch.int64)
    loss = F.cross_entropy(scores, labels)
    accuracy = (scores.argmax(dim=1) == labels).to(torch.float64).mean()
    grads = dict(zip(params, _backprop(loss, list(params.values()), 1.0), strict=True))
    return numpy(scores), numpy(loss), numpy(accuracy), grads
