"""Hidden check that Convolution.forward is vectorised, timed as a ratio in one check.

The baseline is a plain vectorised NumPy im2col convolution run here, in the trusted
process, on the same input; the student's forward (one sandbox call, data transfer
included) may take up to LIMIT times as long. Both are timed in alternation and the best
of each counts, retried for up to BUDGET_S seconds so that a burst of load on the machine
does not fail a vectorised solution; a Python-loop convolution is hundreds of times slower.

Only work whose result is checked is paid for: every round draws a new input (so an answer
remembered from an earlier call is no faster), and every timed call's result is compared
with the baseline's before its time counts. The clock is this process's own.
"""

import time

import numpy as np
import pytest

from grader.compare import assert_close, expect

LIMIT = 25
BUDGET_S = 0.5
MIN_ROUNDS = 2
SHAPE = (8, 3, 28, 28)


def _plain_forward(x, weights, bias, col):
    """Stride-1, pad-0 im2col convolution into the preallocated col (N, oh, ow, C, FH, FW).

    The product is an einsum, not `@`: NumPy's own loops run on one thread, as the student's
    worker does, while a multithreaded BLAS here would slow down by 10-100x whenever other
    processes keep the cores busy, which would make the bound meaningless.
    """
    N, oh, ow, _, FH, FW = col.shape
    for i in range(FH):
        for j in range(FW):
            col[..., i, j] = x[:, :, i : i + oh, j : j + ow].transpose(0, 2, 3, 1)
    rows = col.reshape(N * oh * ow, -1)
    out = np.einsum("rk,fk->rf", rows, weights.reshape(len(weights), -1)) + bias
    return out.reshape(N, oh, ow, -1).transpose(0, 3, 1, 2)


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _timed_forward(layer, x, want, round_number):
    """Seconds one call of layer.forward(x) took, once its result has been checked."""
    start = time.perf_counter()
    out = layer.forward(x)
    seconds = time.perf_counter() - start
    assert_close(
        out,
        want,
        rtol=1e-9,
        atol=1e-9,
        name=f"Convolution.forward(x) in round {round_number} of the speed check",
        hint="Only a correct result is timed: make forward right first (the other checks "
        "show where it differs).",
    )
    return seconds


@pytest.mark.points(8)
@pytest.mark.hint(
    "Your convolution is correct but slow: vectorise with im2col (one matrix product for all "
    "windows) instead of Python loops over images and output positions (one loop over output "
    "positions is within the bound; looping over images as well is not)."
)
def test_convolution_is_vectorised(student, rng):
    weights = rng.standard_normal((8, 3, 3, 3))
    bias = rng.standard_normal(8)
    col = np.empty((8, 26, 26, 3, 3, 3))
    layer = student.Convolution(weights, bias, stride=1, pad=0)

    x = rng.standard_normal(SHAPE)
    plain = min(_seconds(lambda: _plain_forward(x, weights, bias, col)) for _ in range(3))
    timed = float("inf")
    deadline = time.perf_counter() + BUDGET_S
    rounds = 0
    while True:
        x = rng.standard_normal(SHAPE)
        want = _plain_forward(x, weights, bias, col)
        rounds += 1
        timed = min(timed, _timed_forward(layer, x, want, rounds))
        plain = min(plain, _seconds(lambda x=x: _plain_forward(x, weights, bias, col)))
        if timed <= LIMIT * plain or (rounds >= MIN_ROUNDS and time.perf_counter() > deadline):
            break
    expect(
        timed <= LIMIT * plain,
        f"Convolution.forward on x of shape {SHAPE} with 8 filters of 3x3 took "
        f"{timed * 1e3:.1f} ms (best of {rounds}), {timed / plain:.0f}x a plain vectorised "
        f"NumPy im2col convolution ({plain * 1e3:.2f} ms on the same input); the limit is "
        f"{LIMIT}x.",
    )
