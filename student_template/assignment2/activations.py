"""Assignment 2: activation functions and their derivatives.

Every function works elementwise on a NumPy array of any shape (0-d arrays included) and
returns a new array of the same shape. Never modify the input x: the caller still needs it.
See README.md for the formulas, worked examples and grading.
"""

import numpy as np


def step_function(x: np.ndarray) -> np.ndarray:
    """Step function: 1 where x > 0, 0 where x <= 0 (so step_function(0) is 0).

    Inputs:
    - x: array of any shape.

    Returns:
    - array of numbers (int or float, not booleans), same shape as x.
    """
    raise NotImplementedError


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Sigmoid: 1 / (1 + exp(-x)).

    Must not overflow for |x| up to 1e4: never take exp of a large positive number.

    Inputs:
    - x: array of any shape.

    Returns:
    - array of floats in [0, 1], same shape as x.
    """
    raise NotImplementedError


def relu(x: np.ndarray) -> np.ndarray:
    """ReLU: max(x, 0).

    Inputs:
    - x: array of any shape.

    Returns:
    - array, same shape as x.
    """
    raise NotImplementedError


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """Leaky ReLU: x where x > 0, alpha * x elsewhere.

    Inputs:
    - x: array of any shape.
    - alpha: slope for x <= 0.

    Returns:
    - array, same shape as x.
    """
    raise NotImplementedError


def softplus(x: np.ndarray) -> np.ndarray:
    """Softplus: log(1 + exp(x)), a smooth ReLU.

    Must not overflow for |x| up to 1e4: never take exp of a large positive number.

    Inputs:
    - x: array of any shape.

    Returns:
    - array of floats > 0 (or 0 where exp(x) underflows), same shape as x.
    """
    raise NotImplementedError


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent: (exp(x) - exp(-x)) / (exp(x) + exp(-x)).

    Inputs:
    - x: array of any shape.

    Returns:
    - array of floats in [-1, 1], same shape as x.
    """
    raise NotImplementedError


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """ELU: x where x > 0, alpha * (exp(x) - 1) where x <= 0.

    Inputs:
    - x: array of any shape.
    - alpha: scale of the negative branch.

    Returns:
    - array, same shape as x.
    """
    raise NotImplementedError


def identity_function(x: np.ndarray) -> np.ndarray:
    """Identity: returns x unchanged (the output layer's activation for regression).

    Inputs:
    - x: array of any shape.

    Returns:
    - x's values, same shape as x.
    """
    raise NotImplementedError


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """Derivative of sigmoid with respect to x, evaluated at x.

    Inputs:
    - x: array of any shape (the input of sigmoid, not its output).

    Returns:
    - array of d sigmoid(x) / dx, same shape as x.
    """
    raise NotImplementedError


def relu_grad(x: np.ndarray) -> np.ndarray:
    """Derivative of relu with respect to x, evaluated at x.

    At exactly x == 0 relu has no derivative; any value in [0, 1] is accepted there.

    Inputs:
    - x: array of any shape (the input of relu).

    Returns:
    - array of d relu(x) / dx (1 where x > 0, 0 where x < 0), same shape as x.
    """
    raise NotImplementedError


def tanh_grad(x: np.ndarray) -> np.ndarray:
    """Derivative of tanh with respect to x, evaluated at x.

    Inputs:
    - x: array of any shape (the input of tanh, not its output).

    Returns:
    - array of d tanh(x) / dx, same shape as x.
    """
    raise NotImplementedError
