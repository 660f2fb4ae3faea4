"""Hidden checks for assignment2: sigmoid and softplus stay finite and warning-free for
|x| up to 1e4, with NumPy overflow turned into an error in the submission's process.

What the grader sees is the values returned and whether the call raised. The naive softplus
returns inf, which the comparison catches whatever the worker says; the naive sigmoid
returns values within tolerance, so for sigmoid the check rests on the worker raising the
overflow: a submission that silences it in its own process (np.errstate inside sigmoid, a
patched np.seterr) is not detected.
"""

import numpy as np
import pytest

from grader.compare import assert_close

LARGE = np.array([-1e4, -1000.0, -710.0, -100.0, -1.0, 0.0, 1.0, 100.0, 710.0, 1000.0, 1e4])

SIGMOID_STABLE_HINT = (
    "Never take exp of a large positive number. np.where evaluates both branches, so first "
    "compute z = exp(-|x|), then use 1 / (1 + z) where x >= 0 and z / (1 + z) where x < 0 "
    "(the stable form)."
)
SOFTPLUS_STABLE_HINT = (
    "log(1 + exp(x)) overflows for large x: use the stable form max(x, 0) + log1p(exp(-|x|)), "
    "which never takes exp of a positive number."
)


def _without_overflow(student, reference, rng, name, hint):
    inputs = [LARGE, rng.uniform(-1e4, 1e4, size=(3, 4))]
    with student.errstate(over="raise"):
        results = [getattr(student, name)(x.copy()) for x in inputs]
    for x, got in zip(inputs, results, strict=True):
        assert_close(
            got,
            getattr(reference, name)(x),
            rtol=1e-9,
            atol=1e-15,
            name=f"{name}(x) for |x| up to 1e4, shape {x.shape}",
            hint=hint,
        )


@pytest.mark.points(4)
@pytest.mark.hint(SIGMOID_STABLE_HINT)
def test_sigmoid_no_overflow_for_large_inputs(student, reference, rng):
    _without_overflow(student, reference, rng, "sigmoid", SIGMOID_STABLE_HINT)


@pytest.mark.points(4)
@pytest.mark.hint(SOFTPLUS_STABLE_HINT)
def test_softplus_no_overflow_for_large_inputs(student, reference, rng):
    _without_overflow(student, reference, rng, "softplus", SOFTPLUS_STABLE_HINT)
