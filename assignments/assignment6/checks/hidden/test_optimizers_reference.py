"""Hidden checks for assignment6: whole trajectories against the PyTorch reference.

Each optimizer runs 50 updates next to the reference (torch.optim in float64), on seeded
random gradients and on the textbook's f(x, y) = x**2/20 + y**2 from (-7, 2), and the
parameters are compared after every update, so a failure names the first update that went
wrong. The student's updates run in the worker in one call (`student.run` of a
`@runs_in_worker` loop that copies the parameters after each update), not one call each: the
trajectory that comes back is the student's code's output, compared here step by step with
the reference's, which updates its own copy. Tolerances admit rounding and the placement
of Adam's 1e-7 epsilon (the course's form and the standard bias-corrected form differ by
about 1e-7 of sqrt(v)), nothing more: random gradient magnitudes lie in [0.5, 2], so that
epsilon stays negligible next to sqrt(v). A missing 1e-7 is caught by gradients with zero
entries. The initialisers are checked by their statistics and by drawing from the Generator
they are given.
"""

import math

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect
from grader.portable import runs_in_worker

HINTS = {
    "SGD": "SGD: p -= lr*g for every key of params, using the lr given to the constructor.",
    "Momentum": (
        "Momentum: v = momentum*v - lr*g (a minus sign: v points downhill), then p += v; "
        "v starts as zeros shaped like p, one per key, and is kept between calls."
    ),
    "Nesterov": (
        "Nesterov: change p first, with the old v: p += momentum*momentum*v - "
        "(1+momentum)*lr*g; only then v = momentum*v - lr*g (v: zeros at first, one per key)."
    ),
    "AdaGrad": (
        "AdaGrad: h += g*g, with h created as zeros on the first call (one per key) and kept "
        "between calls; then p -= lr*g/(sqrt(h)+1e-7)."
    ),
    "RMSprop": (
        "RMSprop: h = decay_rate*h + (1-decay_rate)*g*g (decay_rate multiplies the old h; h "
        "starts at zeros), then p -= lr*g/(sqrt(h)+1e-7)."
    ),
    "Adam": (
        "Adam: t counts calls from 1; m += (1-beta1)*(g-m); v += (1-beta2)*(g*g-v); "
        "p -= lr*sqrt(1-beta2**t)/(1-beta1**t) * m/(sqrt(v)+1e-7), where "
        "sqrt(1-beta2**t)/(1-beta1**t) is the bias correction; m, v start at zeros."
    ),
}
OPTIMIZERS = list(HINTS)

# Non-default hyper-parameters, so that each argument must reach the update rule.
RANDOM_SETTINGS = {
    "SGD": {"lr": 0.05},
    "Momentum": {"lr": 0.05, "momentum": 0.8},
    "Nesterov": {"lr": 0.05, "momentum": 0.7},
    "AdaGrad": {"lr": 0.1},
    "RMSprop": {"lr": 0.02, "decay_rate": 0.9},
    "Adam": {"lr": 0.01, "beta1": 0.8, "beta2": 0.99},
}
# The textbook's learning rates for f(x, y); the other hyper-parameters keep their defaults.
TEXTBOOK_SETTINGS = {
    "SGD": {"lr": 0.95},
    "Momentum": {"lr": 0.1},
    "Nesterov": {"lr": 0.1},
    "AdaGrad": {"lr": 1.5},
    "RMSprop": {"lr": 0.1},
    "Adam": {"lr": 0.3},
}
STEPS = 50
# |got - want| <= ATOL + RTOL*|want|. Parameters are of order 1 (random) and up to 7 (f(x, y),
# where the course's and the standard Adam drift apart by up to 1e-5 over 50 steps of lr 0.3);
# any wrong formula moves a parameter by a sizeable part of lr*g, above 1e-3.
RTOL = 1e-5
RANDOM_ATOL = 1e-5
TEXTBOOK_ATOL = 1e-4

ZERO_GRADIENT_HINT = (
    "A zero gradient must leave the parameter unchanged and finite: keep the +1e-7 in the "
    "denominator so that 0/0 never happens."
)
XAVIER_HINT = (
    "xavier_init: rng.standard_normal((n_in, n_out)) scaled by sqrt(1/n_in), with n_in the "
    "number of rows (inputs)."
)
HE_HINT = (
    "he_init: rng.standard_normal((n_in, n_out)) scaled by sqrt(2/n_in), sqrt(2) times "
    "Xavier's std, with n_in the number of rows (inputs)."
)
RNG_HINT = (
    "Draw every random number from the rng argument (rng.standard_normal(...)), not from "
    "np.random.randn or a Generator of your own."
)


def _random_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Several keys of several shapes, a 0-d one included."""
    return {
        "W": rng.standard_normal((4, 3)),
        "b": rng.standard_normal(3),
        "s": np.array(rng.standard_normal()),
    }


def _random_grads(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    """Gradients with magnitudes in [0.5, 2] and random signs."""
    return {
        key: rng.uniform(0.5, 2.0, np.shape(p)) * rng.choice([-1.0, 1.0], np.shape(p))
        for key, p in params.items()
    }


def _copy(params: dict) -> dict[str, np.ndarray]:
    return {key: np.array(value, dtype=np.float64) for key, value in params.items()}


@runs_in_worker
def updates_along(optimizer, params, steps_grads):
    """The parameters after each update on the given gradients, as the optimizer leaves
    them (copied after each step: later updates may change the arrays in place)."""
    trajectory = []
    for grads in steps_grads:
        optimizer.update(params, grads)
        trajectory.append({key: np.array(value) for key, value in params.items()})
    return trajectory


@runs_in_worker
def updates_following(optimizer, params, steps, gradient):
    """`updates_along` on `gradient` at each step's parameters."""
    trajectory = []
    for _ in range(steps):
        optimizer.update(params, gradient(params))
        trajectory.append({key: np.array(value) for key, value in params.items()})
    return trajectory


def _steps(trajectory, steps: int, *, label: str, hint: str) -> list[dict]:
    """The parameters after each update, as the worker tells them: one dict per update, or
    the check fails (a worker that someone patched may send anything)."""
    expect(
        type(trajectory) is list
        and len(trajectory) == steps
        and all(type(params) is dict for params in trajectory),
        f"{label}: the parameters after each of the {steps} updates did not come back.",
        hint=hint,
    )
    return trajectory


def _follow(student, name, optimizer, expected, params, steps_grads, *, label, hint) -> None:
    """Run the student's updates on `steps_grads` in one call and compare the parameters
    after each with the reference's (which updates a copy of `params`)."""
    want = _copy(params)
    trajectory = student.run(
        updates_along, optimizer, params, steps_grads, label=f"{name}.update()"
    )
    trajectory = _steps(trajectory, len(steps_grads), label=label, hint=hint)
    for step, (grads, got) in enumerate(zip(steps_grads, trajectory, strict=True), start=1):
        expected.update(want, grads)
        _compare(got, want, label=label, step=step, atol=RANDOM_ATOL, hint=hint)


def _compare(params, want, *, label: str, step: int, atol: float, hint: str) -> None:
    for key, value in want.items():
        assert_close(
            params.get(key),
            value,
            rtol=RTOL,
            atol=atol,
            name=f"{label}: params[{key!r}] after update {step}",
            hint=hint,
        )


@pytest.mark.points(4)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trajectory_on_random_gradients(student, reference, rng, name):
    settings = RANDOM_SETTINGS[name]
    label = f"{name}.update with {', '.join(f'{k}={v}' for k, v in settings.items())}"
    optimizer = getattr(student, name)(**settings)
    expected = getattr(reference, name)(**settings)
    params = _random_params(rng)
    steps_grads = [_random_grads(rng, params) for _ in range(STEPS)]
    _follow(student, name, optimizer, expected, params, steps_grads, label=label, hint=HINTS[name])


@runs_in_worker
def textbook_grads(params):
    """Gradient of f(x, y) = x**2/20 + y**2: (x/10, 2y). Runs in the worker between the
    student's updates, and here for the reference's."""
    return {"x": np.array(params["x"] / 10.0), "y": np.array(2.0 * params["y"])}


@pytest.mark.points(3)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trajectory_on_textbook_function(student, reference, name):
    settings = TEXTBOOK_SETTINGS[name]
    label = f"{name}.update with lr={settings['lr']} on f(x, y) = x**2/20 + y**2 from (-7, 2)"
    optimizer = getattr(student, name)(**settings)
    expected = getattr(reference, name)(**settings)
    params = {"x": np.array(-7.0), "y": np.array(2.0)}
    want = _copy(params)
    trajectory = student.run(
        updates_following, optimizer, params, STEPS, textbook_grads, label=f"{name}.update()"
    )
    trajectory = _steps(trajectory, STEPS, label=label, hint=HINTS[name])
    for step, got in enumerate(trajectory, start=1):
        expected.update(want, textbook_grads(want))
        _compare(got, want, label=label, step=step, atol=TEXTBOOK_ATOL, hint=HINTS[name])


@pytest.mark.points(2)
@pytest.mark.parametrize("name", ["AdaGrad", "RMSprop", "Adam"])
def test_zero_gradient_entries_stay_finite(student, reference, rng, name):
    label = f"{name}.update with zero gradients in column 1 of W and all of b"
    optimizer = getattr(student, name)()
    expected = getattr(reference, name)()
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    steps_grads = [_random_grads(rng, params) for _ in range(5)]
    for grads in steps_grads:
        grads["W"][:, 1] = 0.0
        grads["b"][:] = 0.0
    hint = f"{ZERO_GRADIENT_HINT} {HINTS[name]}"
    _follow(student, name, optimizer, expected, params, steps_grads, label=label, hint=hint)


INITS = {
    "xavier": ("xavier_init", lambda n_in: math.sqrt(1 / n_in), XAVIER_HINT),
    "he": ("he_init", lambda n_in: math.sqrt(2 / n_in), HE_HINT),
}


@pytest.mark.points(3)
@pytest.mark.parametrize("kind", list(INITS))
def test_init_statistics(student, rng, kind):
    function, std_for, hint = INITS[kind]
    n_in, n_out = 100, 3000
    label = f"{function}({n_in}, {n_out}, rng)"
    std = std_for(n_in)
    w = as_array(getattr(student, function)(n_in, n_out, rng), name=label, hint=hint)
    expect(
        w.shape == (n_in, n_out),
        f"{label} has shape {w.shape}; expected (n_in, n_out) = {(n_in, n_out)}.",
        hint=hint,
    )
    got_std = float(np.std(w))
    other = "he" if kind == "xavier" else "xavier"
    confused = abs(got_std / INITS[other][1](n_in) - 1) < 0.02
    expect(
        abs(got_std / std - 1) < 0.02,
        f"{label} has standard deviation {got_std:.5g}; expected {std:.5g} (within 2%)"
        + (f", and {got_std:.5g} is {INITS[other][0]}'s std." if confused else "."),
        hint=hint,
    )
    got_mean = float(np.mean(w))
    expect(
        abs(got_mean) < 0.02 * std,
        f"{label} has mean {got_mean:.3g}; expected about 0 (within {0.02 * std:.2g}).",
        hint=hint,
    )


@pytest.mark.points(1)
@pytest.mark.hint(RNG_HINT)
@pytest.mark.parametrize("function", ["xavier_init", "he_init"])
def test_init_draws_from_given_rng(student, rng, function):
    seed = int(rng.integers(2**32))
    first = as_array(getattr(student, function)(30, 20, np.random.default_rng(seed)))
    again = as_array(getattr(student, function)(30, 20, np.random.default_rng(seed)))
    other = as_array(getattr(student, function)(30, 20, np.random.default_rng(seed + 1)))
    expect(
        first.shape == again.shape == other.shape and np.array_equal(first, again),
        f"{function}(30, 20, rng) gave different weights for two Generators in the same state.",
        hint=RNG_HINT,
    )
    expect(
        not np.array_equal(first, other),
        f"{function}(30, 20, rng) gave the same weights for Generators seeded differently.",
        hint=RNG_HINT,
    )
