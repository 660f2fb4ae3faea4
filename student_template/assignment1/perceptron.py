"""Assignment 1: logic gates as perceptrons, and a perceptron that learns them.

Read README.md first. Use NumPy only. Every function below raises NotImplementedError
until you write it; run `grade assignment1` to see your score.
"""

import numpy as np


def AND(x1, x2):
    """Return 1 if both inputs are 1, else 0, as ONE threshold unit.

    x1, x2: 0 or 1 (Python or NumPy integers). Compute y = w . x + b with weights and a
    bias you choose (e.g. w = (0.5, 0.5), b = -0.7) and return 1 if y > 0 else 0.
    """
    raise NotImplementedError


def NAND(x1, x2):
    """Return 0 if both inputs are 1, else 1: one threshold unit, like AND."""
    raise NotImplementedError


def OR(x1, x2):
    """Return 1 if at least one input is 1, else 0: one threshold unit."""
    raise NotImplementedError


def NOR(x1, x2):
    """Return 1 only if both inputs are 0: one threshold unit."""
    raise NotImplementedError


def XOR(x1, x2):
    """Return 1 if exactly one input is 1. No single unit can: combine NAND, OR and AND."""
    raise NotImplementedError


class Perceptron:
    """A single threshold unit trained with the perceptron learning rule.

    Attributes:
        w: weights, shape (n_inputs,), float.
        b: bias, a float.
    """

    def __init__(self, n_inputs, lr=0.1, seed=None):
        """Store lr and create w (zeros or small random values from `seed`) and b = 0.0."""
        raise NotImplementedError

    def predict(self, X):
        """X: (N, n_inputs). Return (N,) integers: 1 where X @ w + b > 0, else 0.

        Vectorise it: no Python loop over the rows.
        """
        raise NotImplementedError

    def fit(self, X, y, epochs=100):
        """Train on X (N, n_inputs) and labels y (N,) of 0/1; return self.

        For each epoch and each sample x_i with label y_i:
            error = y_i - prediction(x_i)
            w += lr * error * x_i
            b += lr * error
        """
        raise NotImplementedError
