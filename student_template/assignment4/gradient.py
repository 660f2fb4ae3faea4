"""Assignment 4: numerical differentiation and gradient descent.

Implement the three functions below with NumPy. `f` is always a Python function you call:
numerical_diff's f takes a number, the others' f takes an array and returns a number.
Read README.md for the formulas and worked examples.
"""

import numpy as np


def numerical_diff(f, x, h=1e-4):
    """
    Derivative of a scalar function at a point, by the central difference.

    Inputs:
    - f: a function of one number, returning a number
    - x: a number (float or int)
    - h: the step, default 1e-4

    Returns:
    - a float: (f(x + h) - f(x - h)) / (2 * h)
    """
    raise NotImplementedError


def numerical_gradient(f, x, h=1e-4):
    """
    Gradient of f at x, one central difference per element of x.

    Inputs:
    - f: a function taking an array shaped like x and returning a number
    - x: a NumPy array of any shape (1-D, 2-D, 3-D, ...); it may hold integers
    - h: the step, default 1e-4

    For each element x[idx]: set it to x[idx] + h and call f, set it to x[idx] - h and
    call f, take the central difference, then put the original value back exactly. When
    the function returns, x must hold exactly the values it held before the call.
    Integer input has to be converted to float first (x + h must not be truncated).

    Returns:
    - grad: a float array of the same shape as x, grad[idx] = df/dx[idx]
    """
    raise NotImplementedError


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """
    Minimise f by step_num steps of gradient descent from init_x.

    Inputs:
    - f: a function taking an array shaped like init_x and returning a number
    - init_x: a float NumPy array, the starting point (you may update it in place)
    - lr: the learning rate
    - step_num: the number of steps

    Each step appends a copy of the current x to the history, then updates
    x <- x - lr * numerical_gradient(f, x).

    Returns a tuple (x, history):
    - x: the array after the last step, same shape as init_x
    - history: an array of shape (step_num, *init_x.shape); history[i] is x before step i
      (so history[0] equals init_x)
    """
    raise NotImplementedError
