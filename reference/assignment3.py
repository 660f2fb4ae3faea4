"""Reference solution for assignment3 (softmax stability and losses), computed with PyTorch.

NumPy in, NumPy out; everything runs in float64 on the grade's device with torch's own ops
(torch.softmax, torch.log_softmax, F.nll_loss, F.mse_loss, F.cross_entropy), so it shares no
code with a NumPy solution. Targets `t` may be one-hot (same shape as the scores) or label
indices (one per row); a 1-D input is a batch of one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from grader.torchref import numpy, tensor


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum(exp(x)) over the last axis. x: (C,) or (N, C); same shape out."""
    return numpy(torch.softmax(tensor(x), dim=-1))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log(softmax(x)) over the last axis, computed stably. x: (C,) or (N, C); same shape out."""
    return numpy(torch.log_softmax(tensor(x), dim=-1))


def _batch(scores: np.ndarray, t: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores as (N, C) and targets as (N,) label indices, from one-hot or index targets."""
    s = tensor(scores)
    if s.dim() == 1:
        s = s.reshape(1, -1)
    labels = np.asarray(t)
    if labels.size == s.numel():  # one-hot rows -> the index of each row's 1
        labels = labels.reshape(s.shape).argmax(axis=-1)
    return s, tensor(labels.reshape(-1), dtype=torch.int64)


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Mean over the batch of -sum(t * log(y + 1e-7)). y: (C,) or (N, C) probabilities."""
    probs, labels = _batch(y, t)
    return numpy(F.nll_loss(torch.log(probs + 1e-7), labels))


def mean_squared_error(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """0.5 * sum((y - t)**2) over all elements (no mean). y, t: same shape; a scalar out."""
    return numpy(0.5 * F.mse_loss(tensor(y), tensor(t), reduction="sum"))


def softmax_cross_entropy(logits: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Mean over the batch of -log_softmax(logits)[true class]. logits: (C,) or (N, C)."""
    scores, labels = _batch(logits, t)
    return numpy(F.cross_entropy(scores, labels))
