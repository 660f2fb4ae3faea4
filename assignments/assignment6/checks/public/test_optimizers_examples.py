"""Public checks for assignment6: the README's worked examples and the in-place contract.

These run without the reference solution: the expected values are the README's numbers,
and the initialisers are checked by their statistics.
"""

import math

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

HINTS = {
    "SGD": "SGD (default lr=0.01): p -= lr*g for every key of params.",
    "Momentum": (
        "Momentum (defaults lr=0.01, momentum=0.9): v = momentum*v - lr*g (a minus sign: v "
        "points downhill), then p += v; v starts as zeros shaped like p and is kept between "
        "calls."
    ),
    "Nesterov": (
        "Nesterov (defaults lr=0.01, momentum=0.9): change p first, with the old v: "
        "p += momentum*momentum*v - (1+momentum)*lr*g; only then v = momentum*v - lr*g."
    ),
    "AdaGrad": (
        "AdaGrad (default lr=0.01): h += g*g, with h created as zeros on the first call and "
        "kept between calls; then p -= lr*g/(sqrt(h)+1e-7)."
    ),
    "RMSprop": (
        "RMSprop (defaults lr=0.01, decay_rate=0.99): h = decay_rate*h + (1-decay_rate)*g*g "
        "(decay_rate multiplies the old h), then p -= lr*g/(sqrt(h)+1e-7)."
    ),
    "Adam": (
        "Adam (defaults lr=0.001, beta1=0.9, beta2=0.999): t counts calls from 1; "
        "m += (1-beta1)*(g-m); v += (1-beta2)*(g*g-v); "
        "p -= lr*sqrt(1-beta2**t)/(1-beta1**t) * m/(sqrt(v)+1e-7), where "
        "sqrt(1-beta2**t)/(1-beta1**t) is the bias correction."
    ),
}
OPTIMIZERS = list(HINTS)

W0 = [1.0, -2.0, 0.5]
GRADS = ([0.5, -1.0, 2.0], [0.25, 0.5, -1.0])
# params["W"] after the first and the second update, each optimizer with its defaults.
EXPECTED = {
    "SGD": ([0.995, -1.99, 0.48], [0.9925, -1.995, 0.49]),
    "Momentum": ([0.995, -1.99, 0.48], [0.988, -1.986, 0.472]),
    "Nesterov": ([0.9905, -1.981, 0.462], [0.9817, -1.9824, 0.4648]),
    "AdaGrad": (
        [0.9900000020, -1.9900000010, 0.4900000005],
        [0.9855278668, -1.9944721366, 0.4944721363],
    ),
    "RMSprop": (
        [0.9000002000, -1.9000001000, 0.4000000500],
        [0.8550989551, -1.9449013852, 0.4449013553],
    ),
    "Adam": (
        [0.9990000002, -1.9990000001, 0.4990000001],
        [0.9980678208, -1.9987336631, 0.4987336630],
    ),
}

IN_PLACE_HINT = (
    "Change the arrays in place: params[key] -= ... (or params[key][...] = ...), never "
    "params[key] = params[key] - ..., which puts a new array in the dict and leaves the "
    "network's own arrays untouched."
)
XAVIER_HINT = (
    "xavier_init: rng.standard_normal((n_in, n_out)) scaled by sqrt(1/n_in), with n_in the "
    "number of rows (inputs)."
)
HE_HINT = (
    "he_init: rng.standard_normal((n_in, n_out)) scaled by sqrt(2/n_in), sqrt(2) times "
    "Xavier's std, with n_in the number of rows (inputs)."
)


@pytest.mark.points(4)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_worked_example(student, name):
    optimizer = getattr(student, name)()
    params = {"W": np.array(W0)}
    for step, (grad, expected) in enumerate(zip(GRADS, EXPECTED[name], strict=True), start=1):
        with student.inplace(params):
            optimizer.update(params, {"W": np.array(grad)})
        assert_close(
            params["W"],
            np.array(expected),
            rtol=1e-6,
            atol=1e-9,
            name=f"{name}.update with the defaults: params['W'] after update {step}",
            hint=HINTS[name],
        )


@pytest.mark.points(2)
@pytest.mark.hint(IN_PLACE_HINT)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_changes_params_in_place(student, rng, name):
    optimizer = getattr(student, name)()
    params = {
        "W": rng.standard_normal((2, 3)),
        "b": rng.standard_normal(3),
        "s": np.array(rng.standard_normal()),
    }
    arrays = dict(params)
    for step in (1, 2):
        before = {key: value.copy() for key, value in arrays.items()}
        grads = {key: rng.uniform(0.5, 2.0, value.shape) for key, value in params.items()}
        with student.inplace(params):
            optimizer.update(params, grads)
        for key, array in arrays.items():
            expect(
                params[key] is array,
                f"{name}.update (call {step}) replaced params[{key!r}] with a new object "
                "instead of changing the array in place.",
                hint=IN_PLACE_HINT,
            )
            expect(
                not np.array_equal(array, before[key]),
                f"{name}.update (call {step}) left params[{key!r}] unchanged for a non-zero "
                "gradient.",
                hint=HINTS[name],
            )


def _check_init(student, rng, function: str, n_in: int, n_out: int, std: float, hint: str):
    label = f"{function}({n_in}, {n_out}, rng)"
    w = as_array(getattr(student, function)(n_in, n_out, rng), name=label, hint=hint)
    expect(
        w.shape == (n_in, n_out),
        f"{label} has shape {w.shape}; expected (n_in, n_out) = {(n_in, n_out)}.",
        hint=hint,
    )
    expect(w.dtype.kind == "f", f"{label} has dtype {w.dtype}; expected floats.", hint=hint)
    got_std = float(np.std(w))
    expect(
        abs(got_std / std - 1) < 0.02,
        f"{label} has standard deviation {got_std:.5g}; expected {std:.5g} (within 2%).",
        hint=hint,
    )
    got_mean = float(np.mean(w))
    expect(
        abs(got_mean) < 0.02 * std,
        f"{label} has mean {got_mean:.3g}; expected about 0 (within {0.02 * std:.2g}).",
        hint=hint,
    )


@pytest.mark.points(4)
@pytest.mark.hint(XAVIER_HINT)
def test_xavier_init_shape_and_std(student, rng):
    _check_init(student, rng, "xavier_init", 784, 1000, math.sqrt(1 / 784), XAVIER_HINT)


@pytest.mark.points(4)
@pytest.mark.hint(HE_HINT)
def test_he_init_shape_and_std(student, rng):
    _check_init(student, rng, "he_init", 784, 1000, math.sqrt(2 / 784), HE_HINT)
