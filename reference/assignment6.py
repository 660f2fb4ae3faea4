"""Reference solution for assignment6 (optimizers and initialisation), computed with PyTorch.

Each optimizer has the students' API, `update(params, grads)` on a dict of NumPy arrays that
it changes in place, but steps float64 tensors on the grade's device with `torch.optim`,
configured to match the course's rules (the comments say why each configuration matches).
Parameters are read from `params` on every call, so a check may change them between calls;
the optimizer state lives in the torch optimizer, created on the first call.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from grader.torchref import device, numpy, tensor


class _TorchOptimizer:
    """`update(params, grads)` for NumPy dicts, stepped by a torch optimizer."""

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}
        self._optimizer: torch.optim.Optimizer | None = None

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        """The torch optimizer over `tensors`, configured like the course's rule."""
        raise NotImplementedError

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """One step on every key: params[key] (any shape, 0-d included) changes in place."""
        if self._optimizer is None:
            self._tensors = {key: tensor(value) for key, value in params.items()}
            self._optimizer = self._make(list(self._tensors.values()))
        with torch.no_grad():
            for key, p in self._tensors.items():
                p.copy_(tensor(params[key]))
                p.grad = tensor(grads[key])
        self._optimizer.step()
        for key, p in self._tensors.items():
            params[key][...] = numpy(p)


class SGD(_TorchOptimizer):
    """p -= lr*g."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(tensors, lr=self.lr)


class Momentum(_TorchOptimizer):
    """v = m*v - lr*g; p += v.

    torch keeps b = m*b + g and steps p -= lr*b. With a constant lr, v = -lr*b at every
    step (both start at zero; torch's first b = g equals m*0 + g), so the two trajectories
    are the same; they would differ only if lr changed between steps, which the course's
    optimizers never do.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__()
        self.lr = lr
        self.momentum = momentum

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(tensors, lr=self.lr, momentum=self.momentum)


class Nesterov(_TorchOptimizer):
    """p += m*m*v - (1+m)*lr*g (with the old v); then v = m*v - lr*g.

    torch's nesterov=True keeps b = m*b + g and steps p -= lr*(g + m*b) with the new b,
    that is p -= lr*(m*m*b_old + (1+m)*g). With v = -lr*b (constant lr, as for Momentum)
    this is the course's step p += m*m*v_old - (1+m)*lr*g.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__()
        self.lr = lr
        self.momentum = momentum

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(tensors, lr=self.lr, momentum=self.momentum, nesterov=True)


class AdaGrad(_TorchOptimizer):
    """h += g*g; p -= lr*g/(sqrt(h)+1e-7).

    torch's Adagrad with initial_accumulator_value=0 and lr_decay=0 accumulates h the same
    way and divides by sqrt(h) + eps: the course's rule exactly with eps=1e-7.
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(
            tensors, lr=self.lr, lr_decay=0, initial_accumulator_value=0, eps=1e-7
        )


class RMSprop(_TorchOptimizer):
    """h = d*h + (1-d)*g*g; p -= lr*g/(sqrt(h)+1e-7).

    torch's RMSprop (alpha = d, no momentum, not centered) keeps the same average, starting
    at zero, and divides by sqrt(h) + eps: the course's rule exactly with eps=1e-7.
    """

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__()
        self.lr = lr
        self.decay_rate = decay_rate

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(tensors, lr=self.lr, alpha=self.decay_rate, eps=1e-7)


class Adam(_TorchOptimizer):
    """m += (1-b1)*(g-m); v += (1-b2)*(g*g-v); bias-corrected step, t counting from 1.

    torch's Adam is the standard form p -= lr * m_hat/(sqrt(v_hat)+eps) with
    m_hat = m/(1-b1**t), v_hat = v/(1-b2**t). The course's form
    p -= lr*sqrt(1-b2**t)/(1-b1**t) * m/(sqrt(v)+eps) is the same step with eps scaled by
    sqrt(1-b2**t); the checks' tolerance admits that difference and no more.
    """

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__()
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2

    def _make(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adam(tensors, lr=self.lr, betas=(self.beta1, self.beta2), eps=1e-7)


def _standard_normal(n_in: int, n_out: int, rng: np.random.Generator) -> torch.Tensor:
    """(n_in, n_out) draws from N(0, 1) on the device, seeded from `rng`."""
    generator = torch.Generator(device=device())
    generator.manual_seed(int(rng.integers(2**63 - 1)))
    return torch.randn(n_in, n_out, generator=generator, dtype=torch.float64, device=device())


def xavier_init(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """(n_in, n_out) weights from N(0, 1/n_in): std sqrt(1/n_in)."""
    return numpy(_standard_normal(n_in, n_out, rng) * math.sqrt(1.0 / n_in))


def he_init(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """(n_in, n_out) weights from N(0, 2/n_in): std sqrt(2/n_in)."""
    return numpy(_standard_normal(n_in, n_out, rng) * math.sqrt(2.0 / n_in))
