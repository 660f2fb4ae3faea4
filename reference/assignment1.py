"""Reference solution for assignment1 (perceptron), in PyTorch on the grade's device.

Gates are single threshold units y = [w . x + b > 0] with the course's weights; XOR is
AND(NAND, OR); the perceptron learning rule trains w and b sample by sample.
"""

import numpy as np
import torch

from grader.torchref import numpy, tensor

INPUTS = ((0, 0), (1, 0), (0, 1), (1, 1))
GATE_WEIGHTS = {
    "AND": ((0.5, 0.5), -0.7),
    "NAND": ((-0.5, -0.5), 0.7),
    "OR": ((0.5, 0.5), -0.2),
    "NOR": ((-0.5, -0.5), 0.2),
}


def predict(w, b, X) -> np.ndarray:
    """Threshold unit on a batch: X (N, n), w (n,), b scalar -> (N,) of 0/1."""
    return numpy((tensor(X) @ tensor(w) + b > 0).to(torch.int64))


def gate(name: str, x1: int, x2: int) -> int:
    """One of AND, NAND, OR, NOR, XOR on a pair of 0/1 inputs."""
    if name == "XOR":
        return gate("AND", gate("NAND", x1, x2), gate("OR", x1, x2))
    w, b = GATE_WEIGHTS[name]
    return int(predict(w, b, [[x1, x2]])[0])


def truth_table(name: str) -> np.ndarray:
    """The gate's outputs for INPUTS, shape (4,)."""
    return np.array([gate(name, x1, x2) for x1, x2 in INPUTS])


def fit(X, y, lr: float = 0.1, epochs: int = 100) -> tuple[np.ndarray, float]:
    """Perceptron learning rule in sample order; returns (w, b)."""
    X, y = tensor(X), tensor(y)
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    b = torch.zeros((), dtype=X.dtype, device=X.device)
    for _ in range(epochs):
        for xi, yi in zip(X, y, strict=True):
            error = yi - (xi @ w + b > 0).to(X.dtype)
            w += lr * error * xi
            b += lr * error
    return numpy(w), float(b)


def separable_data(rng: np.random.Generator, n: int, n_inputs: int, margin: float = 0.1):
    """Points labelled by a random hyperplane, keeping only those at least `margin` from it."""
    w_true = rng.normal(size=n_inputs)
    w_true /= np.linalg.norm(w_true)
    b_true = rng.uniform(-0.5, 0.5)
    X = rng.uniform(-2, 2, size=(4 * n, n_inputs))
    distance = numpy(tensor(X) @ tensor(w_true) + b_true)
    keep = np.abs(distance) >= margin
    X = X[keep][:n]
    return X, predict(w_true, b_true, X)
