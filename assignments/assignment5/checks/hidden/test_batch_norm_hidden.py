"""Hidden checks for assignment5's BatchNormalization against torch's batch_norm.

Inputs have a batch variance of at least 25 in every feature, so any eps from 1e-8 to 1e-5
changes the normalised values by less than 2e-7 (relative); the tolerance (1e-6) allows that
and nothing more. The running statistics carry no eps and are compared tightly.
"""

import numpy as np
import pytest

from grader.compare import assert_close

EPS_RTOL = 1e-6


def _close(got, want, name: str, rtol: float = EPS_RTOL) -> None:
    """Relative error `rtol`, with the same bound relative to the largest expected value."""
    want = np.asarray(want)
    assert_close(got, want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))), name=name)


def _batch(rng, shape: tuple[int, ...]) -> np.ndarray:
    """x of `shape` whose features (per sample flattened) have batch std in [5, 15]."""
    z = rng.standard_normal(shape).reshape(shape[0], -1)
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    scale, shift = rng.uniform(5.0, 15.0, z.shape[1]), rng.uniform(-20.0, 20.0, z.shape[1])
    return (shift + scale * z).reshape(shape)


def _affine_params(rng, D: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.5, 2.0, D), rng.standard_normal(D)


def _check_train_step(student, reference, rng, shape: tuple[int, ...]) -> None:
    x = _batch(rng, shape)
    gamma, beta = _affine_params(rng, int(np.prod(shape[1:])))
    dout = rng.standard_normal(shape)
    out, dx, dgamma, dbeta = reference.batch_norm_train(x, gamma, beta, dout)
    layer = student.BatchNormalization(gamma.copy(), beta.copy())
    name = f"BatchNormalization.forward(x) for x of shape {shape}"
    _close(layer.forward(x.copy(), train_flg=True), out, name)
    _close(layer.backward(dout.copy()), dx, "dx from BatchNormalization.backward(dout)")
    _close(layer.dgamma, dgamma, "dgamma from BatchNormalization.backward(dout)")
    _close(layer.dbeta, dbeta, "dbeta from BatchNormalization.backward(dout)")


FORWARD_HINT = (
    "In training, normalise each feature with the batch mean and the biased batch variance "
    "(divide by N, not N - 1): out = gamma * (x - mu) / sqrt(var + 1e-6) + beta. Never the "
    "running statistics in training."
)


@pytest.mark.points(5)
@pytest.mark.hint(FORWARD_HINT)
def test_batch_norm_train_forward_matches_torch(student, reference, rng):
    x = _batch(rng, (16, 5))
    gamma, beta = _affine_params(rng, 5)
    out, *_ = reference.batch_norm_train(x, gamma, beta, np.zeros_like(x))
    layer = student.BatchNormalization(gamma.copy(), beta.copy())
    _close(layer.forward(x.copy(), train_flg=True), out, "BatchNormalization.forward(x)")


@pytest.mark.points(5)
@pytest.mark.hint(FORWARD_HINT, function="BatchNormalization.forward")
@pytest.mark.hint(
    "dbeta = sum(dout, axis=0), dgamma = sum(dout * x_hat, axis=0); dx goes back through "
    "x_hat = (x - mu) / std, mu and the biased variance (divide by N) all depend on x.",
    function="BatchNormalization.backward",
)
def test_batch_norm_backward_matches_autograd(student, reference, rng):
    _check_train_step(student, reference, rng, (16, 5))


@pytest.mark.points(4)
@pytest.mark.hint(
    "Running statistics start at zeros; each training forward does running = momentum * "
    "running + (1 - momentum) * batch statistic, with the biased batch variance (divide by "
    "N), stored in running_mean and running_var."
)
def test_batch_norm_running_statistics(student, reference, rng):
    batches = 3.0 * rng.standard_normal((3, 10, 4)) + rng.uniform(-5.0, 5.0, 4)
    gamma, beta = _affine_params(rng, 4)
    layer = student.BatchNormalization(gamma, beta, momentum=0.8)
    for x in batches:
        layer.forward(x.copy(), train_flg=True)
    mean, var = reference.batch_norm_running_stats(batches, 0.8)
    steps = "after 3 calls of BatchNormalization.forward(x, train_flg=True)"
    _close(layer.running_mean, mean, f"running_mean {steps}", rtol=1e-9)
    _close(layer.running_var, var, f"running_var {steps}", rtol=1e-9)


@pytest.mark.points(3)
@pytest.mark.hint(
    "At test time (train_flg=False) normalise with running_mean and running_var: "
    "out = gamma * (x - running_mean) / sqrt(running_var + 1e-6) + beta, and leave the "
    "running statistics unchanged."
)
def test_batch_norm_inference_uses_running_stats(student, reference, rng):
    D = 6
    x = 10.0 * rng.standard_normal((7, D))
    gamma, beta = _affine_params(rng, D)
    running_mean, running_var = 5.0 * rng.standard_normal(D), rng.uniform(25.0, 100.0, D)
    layer = student.BatchNormalization(
        gamma, beta, running_mean=running_mean.copy(), running_var=running_var.copy()
    )
    want = reference.batch_norm_eval(x, gamma, beta, running_mean, running_var)
    call = "BatchNormalization.forward(x, train_flg=False)"
    _close(layer.forward(x.copy(), train_flg=False), want, call)
    _close(layer.running_mean, running_mean, f"running_mean after {call}", 1e-12)
    _close(layer.running_var, running_var, f"running_var after {call}", 1e-12)


@pytest.mark.points(4)
@pytest.mark.hint(
    "Flatten a 4-D x to (N, C*H*W) so every element is a feature (gamma has C*H*W values), "
    "use the biased batch variance (divide by N), and reshape out and dx back to x's shape."
)
def test_batch_norm_4d_input(student, reference, rng):
    _check_train_step(student, reference, rng, (16, 2, 3, 3))
