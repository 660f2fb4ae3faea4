"""Assignment 5: backpropagation layers.

Every layer is a class with a `forward` pass that caches what its `backward` pass needs.
`backward(dout)` receives the gradient of the loss with respect to the layer's output and
returns the gradient with respect to the layer's input(s); layers with parameters also store
their parameter gradients as attributes (`dW`, `db`, `dgamma`, `dbeta`).

Rules (see README.md): batch axis first; `forward` must not modify its input arrays;
`backward(dout)` may modify `dout`; `backward` is always called after a `forward`.
Use NumPy only. This file must be self-contained (no imports from other course files).
"""

import numpy as np


class MulLayer:
    """Multiplication node: out = x * y."""

    def __init__(self):
        self.x = None
        self.y = None

    def forward(self, x, y):
        """Return x * y (numbers or arrays of the same shape); remember x and y for backward."""
        raise NotImplementedError

    def backward(self, dout):
        """Return the tuple (dx, dy) = (dout * y, dout * x)."""
        raise NotImplementedError


class AddLayer:
    """Addition node: out = x + y."""

    def __init__(self):
        pass

    def forward(self, x, y):
        """Return x + y (numbers or arrays of the same shape)."""
        raise NotImplementedError

    def backward(self, dout):
        """Return the tuple (dx, dy): an addition passes dout unchanged to both inputs."""
        raise NotImplementedError


class Relu:
    """ReLU: out = max(0, x) elementwise."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        """Return max(0, x), same shape as x, WITHOUT modifying x (work on a copy).

        Remember where x <= 0 for backward.
        """
        raise NotImplementedError

    def backward(self, dout):
        """Return dx, same shape as dout: dout where x > 0, and 0 where x <= 0."""
        raise NotImplementedError


class Sigmoid:
    """Sigmoid: out = 1 / (1 + exp(-x)) elementwise."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        """Return the sigmoid of x, same shape as x; remember the OUTPUT for backward."""
        raise NotImplementedError

    def backward(self, dout):
        """Return dx = dout * out * (1 - out), with out the output of forward."""
        raise NotImplementedError


class Affine:
    """Fully connected layer: out = x @ W + b, with x flattened per sample.

    W has shape (D, M) and b shape (M,).
    """

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        """x has shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D (a plain (N, D) included).

        Flatten x to (N, D), remember it (and x's original shape) and return
        out = x @ W + b of shape (N, M).
        """
        raise NotImplementedError

    def backward(self, dout):
        """dout has shape (N, M).

        Set self.dW (D, M) = x.T @ dout and self.db (M,) = dout summed over the batch axis,
        and return dx = dout @ W.T reshaped to x's ORIGINAL shape (N, d_1, ..., d_k).
        """
        raise NotImplementedError


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, averaged over the batch."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        """x: scores (N, C); t: one-hot labels (N, C) or label indices (N,).

        Return the scalar loss: mean over the batch of -log(softmax(x)[n, t_n]).
        Remember the softmax output y and t for backward.
        """
        raise NotImplementedError

    def backward(self, dout=1):
        """Return dx of shape (N, C): (y - t_one_hot) / N, with N the batch size."""
        raise NotImplementedError


class Dropout:
    """Dropout in the course's (non-inverted) form."""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        """Training (train_flg=True): draw a fresh mask = (np.random.rand(*x.shape) >
        dropout_ratio), remember it and return x * mask (NO rescaling).

        Test (train_flg=False): return x * (1 - dropout_ratio).
        """
        raise NotImplementedError

    def backward(self, dout):
        """Return dx = dout * mask, with the mask of the last training forward."""
        raise NotImplementedError


class BatchNormalization:
    """Batch normalisation over the batch axis, one mean and variance per feature.

    gamma and beta have shape (D,). A 4-D input (N, C, H, W) is flattened to (N, C*H*W),
    so D = C*H*W and every element is a feature. eps = 1e-6.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        """Return gamma * x_hat + beta, same shape as x.

        Training: x_hat = (x - mu) / sqrt(var + eps) with mu and var the batch mean and the
        BIASED batch variance (divide by N) of each feature; then update
        running = momentum * running + (1 - momentum) * batch statistic for the mean and the
        variance (self.running_mean, self.running_var; zeros of shape (D,) when None).
        Test: use self.running_mean and self.running_var instead of the batch statistics.
        """
        raise NotImplementedError

    def backward(self, dout):
        """dout has x's shape. Set self.dgamma and self.dbeta (D,) and return dx (x's shape)."""
        raise NotImplementedError


class TwoLayerNet:
    """Affine -> Relu -> Affine -> SoftmaxWithLoss, built from the layers above."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        """Create self.params, a dict of the arrays
        W1 (input_size, hidden_size), b1 (hidden_size,), W2 (hidden_size, output_size),
        b2 (output_size,): weights weight_init_std * np.random.randn(...), biases zeros;
        then the layers, sharing these arrays (so that changing params changes the layers).
        """
        raise NotImplementedError

    def predict(self, x):
        """Return the scores (N, output_size) for x (N, input_size): no softmax."""
        raise NotImplementedError

    def loss(self, x, t):
        """Return the scalar loss of SoftmaxWithLoss for x and t (one-hot or labels)."""
        raise NotImplementedError

    def accuracy(self, x, t):
        """Return the fraction of samples whose highest score is the true class."""
        raise NotImplementedError

    def numerical_gradient(self, x, t):
        """Return {"W1": ..., "b1": ..., "W2": ..., "b2": ...}: the gradients of the loss by
        central differences (h = 1e-4), each the shape of its parameter."""
        raise NotImplementedError

    def gradient(self, x, t):
        """Return the same dict as numerical_gradient, computed by backpropagation:
        a forward pass (loss), then backward through the layers in reverse order."""
        raise NotImplementedError
