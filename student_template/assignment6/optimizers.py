"""Assignment 6: optimizers and weight initialisation.

Every optimizer has `update(params, grads)`: `params` and `grads` are dicts with the same
keys (for example "W1", "b1"), each value a NumPy array of any shape, 0-d included.
`update` changes the arrays of `params` IN PLACE (`params[key] -= ...`, never
`params[key] = params[key] - ...`) and returns nothing. Any state (velocities, running
averages, the step count) is created on the first call, with one array per key shaped like
the parameter, and kept between calls. See README.md for the formulas.
"""

import numpy as np


class SGD:
    """Stochastic gradient descent: p -= lr * g."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        """One step on every key of params, in place. Returns None."""
        raise NotImplementedError


class Momentum:
    """Momentum: v = momentum * v - lr * g; p += v (v starts at zeros)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        """One step on every key of params, in place; creates self.v on the first call."""
        raise NotImplementedError


class Nesterov:
    """Nesterov momentum (p first, using the OLD v):

    p += momentum * momentum * v - (1 + momentum) * lr * g
    v = momentum * v - lr * g
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        """One step on every key of params, in place; creates self.v on the first call."""
        raise NotImplementedError


class AdaGrad:
    """AdaGrad: h += g * g; p -= lr * g / (sqrt(h) + 1e-7) (h starts at zeros)."""

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        """One step on every key of params, in place; creates self.h on the first call."""
        raise NotImplementedError


class RMSprop:
    """RMSprop: h = decay_rate * h + (1 - decay_rate) * g * g; p -= lr * g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        """One step on every key of params, in place; creates self.h on the first call."""
        raise NotImplementedError


class Adam:
    """Adam with bias correction; t counts the calls to update, starting at 1:

    m += (1 - beta1) * (g - m)
    v += (1 - beta2) * (g * g - v)
    p -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + 1e-7)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        """One step on every key of params, in place; creates self.m, self.v on the first call."""
        raise NotImplementedError


def xavier_init(n_in, n_out, rng):
    """Xavier initial weights for a layer with n_in inputs and n_out outputs.

    Inputs:
    - n_in, n_out: ints
    - rng: a numpy.random.Generator; draw every random number from it (rng.standard_normal)

    Returns an array of shape (n_in, n_out) drawn from a normal distribution with mean 0 and
    standard deviation sqrt(1 / n_in).
    """
    raise NotImplementedError


def he_init(n_in, n_out, rng):
    """He initial weights (for ReLU layers) with n_in inputs and n_out outputs.

    Inputs:
    - n_in, n_out: ints
    - rng: a numpy.random.Generator; draw every random number from it (rng.standard_normal)

    Returns an array of shape (n_in, n_out) drawn from a normal distribution with mean 0 and
    standard deviation sqrt(2 / n_in).
    """
    raise NotImplementedError
