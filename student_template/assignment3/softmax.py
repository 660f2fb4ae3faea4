"""Assignment 3: softmax stability and losses.

Implement the functions below in NumPy. Scores are rows: a 1-D array of C values, or a 2-D
array of shape (N, C) with one example per row (batch axis first). Targets `t` are either
one-hot (the same shape as the scores) or label indices (one integer class per row).
Do not modify the arrays you are given. See README.md for the formulas and worked examples.
"""

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis.

    Inputs:
    - x: scores, shape (C,) or (N, C).

    Returns:
    - probabilities of the same shape as x; each row is positive and sums to 1.

    It must stay finite for large inputs such as [900, 1000, 1000] (subtract each row's own
    max before exp) and work row by row for a 2-D x.
    """
    raise NotImplementedError


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Logarithm of softmax over the last axis, computed without taking log(softmax(x)).

    Inputs:
    - x: scores, shape (C,) or (N, C).

    Returns:
    - log-probabilities of the same shape as x; finite even when the scores of a row are far
      apart (e.g. [0, 1000, -1000]).
    """
    raise NotImplementedError


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """Cross-entropy -sum(t * log(y + 1e-7)), averaged over the batch.

    Inputs:
    - y: probabilities, shape (N, C), or (C,) for a batch of one.
    - t: one-hot targets of the same shape as y, or label indices of shape (N,).

    Returns:
    - the mean loss over the N examples, a float.
    """
    raise NotImplementedError


def mean_squared_error(y: np.ndarray, t: np.ndarray) -> float:
    """The course's mean squared error: 0.5 * sum((y - t)**2) over all elements.

    Inputs:
    - y: outputs, any shape.
    - t: targets of the same shape as y (one-hot for classification).

    Returns:
    - a float (summed over all elements, not averaged).
    """
    raise NotImplementedError


def softmax_cross_entropy(logits: np.ndarray, t: np.ndarray) -> float:
    """Softmax followed by cross-entropy in one stable step, averaged over the batch.

    Inputs:
    - logits: scores, shape (N, C), or (C,) for a batch of one.
    - t: one-hot targets of the same shape as logits, or label indices of shape (N,).

    Returns:
    - the mean over the batch of -log_softmax(logits)[true class], a float. It must stay
      finite and exact for logits as large as 1e4.
    """
    raise NotImplementedError
