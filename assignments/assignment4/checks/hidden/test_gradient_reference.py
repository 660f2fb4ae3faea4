"""Hidden checks for assignment4: numerical derivatives and gradients against autograd.

Each test function is written twice: in NumPy, as the student's code calls it, and in torch
(`TORCH_TWINS`), which the reference differentiates exactly with torch.autograd in float64;
the grader's own tests hold each pair to the same values. The NumPy one is marked
`runs_in_worker`: its text, and the arrays it reads, travel to the worker and it runs next
to the student's code instead of crossing the pipe twice per call. Where a check's evidence
is where f is called, each call is reported to an observer in this process (`reporting_to`),
which records it; the student's code gets f's value from the worker. Tolerances suit a central
difference with h = 1e-4 (error of order h**2); a forward difference (error of order h) is
far outside them. Failures are matched against the usual bugs so the hint can name them.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.compare import as_array, assert_close, expect, fail
from grader.portable import runs_in_worker

GRADIENT_HINT = (
    "For each element: save tmp_val = x[idx], evaluate f at x[idx] = tmp_val + h and at "
    "tmp_val - h, take (fxh1 - fxh2) / (2*h), then restore x[idx] = tmp_val before moving on "
    "(otherwise later elements are evaluated at a shifted x)."
)
FORWARD = (
    "Your result matches the forward difference (f(x+h) - f(x)) / h, whose error is of order h. "
    "Use the central difference (f(x+h) - f(x-h)) / (2*h): its error is of order h**2."
)
TOO_SMALL = (
    "Your result is all zeros: h is too small. With h like 1e-50, x + h rounds back to x in "
    "float64, so f(x+h) - f(x-h) is 0. Use h = 1e-4."
)
IGNORES_H = "Your result matches h = 1e-4, not the h passed in: use the h argument."
SHAPE = (
    "Return the gradient in x's shape: grad = np.zeros_like(x), and visit every element with "
    "its multi-index (np.nditer(x, flags=['multi_index'])), not only the first axis."
)


@runs_in_worker
def sin(x):
    return float(np.sin(np.asarray(x, dtype=np.float64)))


@runs_in_worker
def exp(x):
    return float(np.exp(np.asarray(x, dtype=np.float64)))


@runs_in_worker
def cubic(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x**3 - 2 * x)


@runs_in_worker
def log_one_plus_square(x):
    return float(np.log1p(np.asarray(x, dtype=np.float64) ** 2))


@runs_in_worker
def cube(x):
    return float(np.asarray(x, dtype=np.float64) ** 3)


@runs_in_worker
def sum_of_squares(x):
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


@runs_in_worker
def sum_of_cubes(x):
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 3))


@runs_in_worker
def tanh_sum_plus_square(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum(np.tanh(x)) + np.sum(x) ** 2)


@runs_in_worker
def simplenet_loss(w):
    """The textbook's simpleNet: cross-entropy of softmax(x @ W) for x = [0.6, 0.9], t = 2."""
    z = np.array([0.6, 0.9]) @ np.asarray(w, dtype=np.float64)
    shifted = z - np.max(z)
    return float(np.log(np.sum(np.exp(shifted))) - shifted[2])


def simplenet_loss_torch(w):
    """simplenet_loss in torch, for autograd."""
    x = torch.tensor([0.6, 0.9], dtype=w.dtype, device=w.device)
    label = torch.tensor([2], device=w.device)
    return F.cross_entropy((x @ w)[None], label)


TORCH_TWINS = {  # the NumPy functions the checks compare with autograd, and their torch twins
    sin: torch.sin,
    exp: torch.exp,
    cubic: lambda t: t**3 - 2 * t,
    log_one_plus_square: lambda t: torch.log1p(t**2),
    sum_of_squares: lambda t: (t**2).sum(),
    simplenet_loss: simplenet_loss_torch,
}


def central(f, x, h):
    """Central difference of a NumPy callable at every element of x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        tmp_val = x[idx]
        x[idx] = tmp_val + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        grad[idx] = (fxh1 - f(x)) / (2 * h)
        x[idx] = tmp_val
    return grad


def forward(f, x, h):
    """Forward difference of a NumPy callable at every element of x (a bug to recognise)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    fx = f(x)
    for idx in np.ndindex(x.shape):
        tmp_val = x[idx]
        x[idx] = tmp_val + h
        grad[idx] = (f(x) - fx) / h
        x[idx] = tmp_val
    return grad


def hint_for(got, want, f, x, h=1e-4):
    """The hint naming the bug `got` looks like, or None to use the check's own hint."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want)
    if got.shape != want.shape:
        return SHAPE if got.size == want.size else None
    if np.all(got == 0) and np.any(want != 0):
        return TOO_SMALL
    if np.allclose(got, forward(f, x, h), rtol=1e-9, atol=1e-12):
        return FORWARD
    if h != 1e-4 and np.allclose(got, central(f, x, 1e-4), rtol=1e-9, atol=1e-12):
        return IGNORES_H
    return None


def check_gradient(student, reference, f, fn, x, name, rtol=1e-6, atol=1e-8):
    """Compare the student's numerical gradient of `f` at x with autograd's exact gradient of
    its torch twin `fn`."""
    got = as_array(student.numerical_gradient(f, x.copy()), name=name)
    want = reference.autograd_gradient(fn, x)
    assert_close(got, want, rtol=rtol, atol=atol, name=name, hint=hint_for(got, want, f, x))


SCALAR_FUNCTIONS = {
    "sin(x)": sin,
    "exp(x)": exp,
    "x**3 - 2*x": cubic,
    "log(1 + x**2)": log_one_plus_square,
}


@pytest.mark.points(8)
@pytest.mark.hint("numerical_diff(f, x, h=1e-4) returns (f(x+h) - f(x-h)) / (2*h).")
def test_numerical_diff_matches_autograd(student, reference, rng):
    for label, f in SCALAR_FUNCTIONS.items():
        x = float(rng.uniform(-2.0, 2.0))
        name = f"numerical_diff({label}, x={x:.6g})"
        got = as_array(student.numerical_diff(f, x), name=name)
        want = reference.autograd_gradient(TORCH_TWINS[f], np.float64(x))
        assert_close(
            got, want, rtol=1e-6, atol=1e-7, name=name, hint=hint_for(got, want, f, np.float64(x))
        )


@pytest.mark.points(8)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_sum_of_squares_3d(student, reference, rng):
    x = rng.normal(size=(2, 3, 4))
    check_gradient(
        student,
        reference,
        sum_of_squares,
        TORCH_TWINS[sum_of_squares],
        x,
        "numerical_gradient(sum(x**2)) for x (2, 3, 4)",
    )


@pytest.mark.points(6)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_quadratic_form(student, reference, rng):
    m = rng.normal(size=(5, 5))
    a = m @ m.T / 5 + np.eye(5)
    b = rng.normal(size=5)

    @runs_in_worker  # a and b travel with it, as data
    def quadratic_form(x):
        x = np.asarray(x, dtype=np.float64)
        return float(0.5 * x @ a @ x + b @ x)

    def quadratic_form_torch(x):
        a_t = torch.as_tensor(a, dtype=x.dtype, device=x.device)
        b_t = torch.as_tensor(b, dtype=x.dtype, device=x.device)
        return 0.5 * x @ a_t @ x + b_t @ x

    x = rng.normal(size=5)
    name = "numerical_gradient(0.5 x.A.x + b.x) for x (5,)"
    check_gradient(student, reference, quadratic_form, quadratic_form_torch, x, name)


@pytest.mark.points(5)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_simplenet_loss(student, reference, rng):
    w = rng.normal(size=(2, 3))
    check_gradient(
        student,
        reference,
        simplenet_loss,
        TORCH_TWINS[simplenet_loss],
        w,
        "numerical_gradient(simpleNet loss) for W (2, 3)",
        rtol=1e-7,
        atol=1e-9,
    )


IN_PLACE_HINT = (
    "Perturb x itself, not a copy: x[idx] = tmp_val + h, then f(x). The course calls "
    "numerical_gradient(lambda w: net.loss(x, t), net.W): that f ignores its argument and "
    "reads the weights through the network, so it sees only changes made to the very array "
    "it was given (x.astype(...) or x.copy() makes a new one; convert only an integer x)."
)


@pytest.mark.points(5)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_perturbs_x_in_place(student, reference, rng):
    """numerical gradient perturbs x in place (f reads W through a closure)

    f is the textbook's `lambda w: net.loss(x, t)`: it never looks at its argument and reads
    W, the array numerical_gradient was given (in the worker, the very array the student's
    code receives), so only a perturbation of W itself moves it. Each call of f is reported
    to this process with W as the call had left it (`student.inplace`): the evidence.
    """
    w = rng.normal(size=(2, 3))
    pristine = w.copy()
    moved = {"argument": False, "closure": False}

    @runs_in_worker
    def f(_):  # simplenet_loss of W, whatever f is called at
        z = np.array([0.6, 0.9]) @ w
        shifted = z - np.max(z)
        return float(np.log(np.sum(np.exp(shifted))) - shifted[2])

    def witness(point):  # in this process: where f was called, and whether W had moved
        moved["argument"] |= not np.array_equal(np.asarray(point), pristine)
        moved["closure"] |= not np.array_equal(w, pristine)

    name = "numerical_gradient(lambda w: simpleNet loss of W, W) for W (2, 3)"
    with student.inplace(w):
        got = as_array(student.numerical_gradient(f.reporting_to(witness), w), name=name)
    if moved["argument"] and not moved["closure"]:
        fail(
            f"{name}: f was called at perturbed points, but W itself never changed, so an f "
            "that reads the weights through a closure saw the same loss every time.",
            hint=IN_PLACE_HINT,
        )
    want = reference.autograd_gradient(TORCH_TWINS[simplenet_loss], pristine)
    hint = hint_for(got, want, simplenet_loss, pristine)
    assert_close(got, want, rtol=1e-7, atol=1e-9, name=name, hint=hint)


@pytest.mark.points(6)
@pytest.mark.hint(
    "Use the central difference (f(x+h) - f(x-h)) / (2*h) with the h you are given: for "
    "f = x**3 it gives 3*x**2 + h**2, a forward difference gives 3*x**2 + 3*x*h + h**2."
)
def test_central_difference_uses_given_h(student, reference, rng):
    h = 1e-2
    x = float(rng.uniform(1.0, 2.0))
    name = f"numerical_diff(x**3, x={x:.6g}, h={h})"
    got = as_array(student.numerical_diff(cube, x, h=h), name=name)
    want = np.float64(reference.numerical_diff(cube, x, h=h))
    hint = hint_for(got, want, cube, np.float64(x), h)
    assert_close(got, want, rtol=1e-9, name=name, hint=hint)

    x = rng.uniform(-2.0, 2.0, size=(2, 2))
    name = f"numerical_gradient(sum(x**3), x (2, 2), h={h})"
    got = as_array(student.numerical_gradient(sum_of_cubes, x.copy(), h=h), name=name)
    want = reference.numerical_gradient(sum_of_cubes, x, h=h)
    hint = hint_for(got, want, sum_of_cubes, x, h)
    assert_close(got, want, rtol=1e-9, atol=1e-12, name=name, hint=hint)


ROUNDED_HINT = (
    "x was restored to a rounded value: undoing the perturbation with arithmetic "
    "(x[idx] -= h, x[idx] += h, ...) does not always give back the same float. Save "
    "tmp_val = x[idx] first and restore it with x[idx] = tmp_val."
)
NOT_RESTORED_HINT = (
    "x was not restored: after evaluating f at x[idx] + h and x[idx] - h, put the "
    "saved value back with x[idx] = tmp_val."
)


def _stray(point: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Where `point` differs bit for bit from `before`, except its largest change (the
    element being perturbed when f was called there)."""
    changed = point.view(np.uint64) != before.view(np.uint64)
    if changed.any():
        changed.flat[int(np.argmax(np.where(changed, np.abs(point - before), -1.0)))] = False
    return changed


def _fail_changed(what: str, changed: np.ndarray, now: np.ndarray, before: np.ndarray) -> None:
    first = tuple(int(i) for i in np.argwhere(changed)[0])
    off = float(np.max(np.abs(now - before)[changed]))
    fail(
        f"{what}: {int(changed.sum())} of {before.size} values differ by up to {off:.3g} "
        f"(x{list(first)} was {float(before[first])!r}, then {float(now[first])!r}).",
        hint=ROUNDED_HINT if off < 1e-8 else NOT_RESTORED_HINT,
    )


@pytest.mark.points(8)
@pytest.mark.hint(
    "Save tmp_val = x[idx] before perturbing and restore it with x[idx] = tmp_val afterwards."
)
def test_numerical_gradient_restores_x_bit_for_bit(student, rng):
    """numerical gradient restores x bit for bit.

    Two pieces of evidence: every point f is called at (reported to this process as data)
    may differ from x in the one element being perturbed only, which shows each earlier
    element restored; and x after the call, as the worker reports it (`student.inplace`),
    shows the last one restored. A worker that misreports its own x can hide only that last
    element.
    """
    # Columns of magnitude 1e-6 ... 1: for small values x[idx] + h drops low bits of x[idx],
    # so undoing the perturbation by arithmetic cannot give the same float back.
    x = rng.normal(size=(4, 5)) * np.logspace(-6, 0, 5)
    before = x.copy()
    points = []

    def record(point):  # in this process: every point f is called at
        points.append(np.array(point, dtype=np.float64))

    with student.inplace(x):
        student.numerical_gradient(tanh_sum_plus_square.reporting_to(record), x)
    for point in points:
        if point.shape == before.shape:
            stray = _stray(point, before)
            if stray.any():
                _fail_changed(
                    "numerical_gradient called f at an x where more than the element "
                    "being perturbed had changed",
                    stray,
                    point,
                    before,
                )
    changed = x.view(np.uint64) != before.view(np.uint64)
    if changed.any():
        _fail_changed("numerical_gradient changed its input x", changed, x, before)


@pytest.mark.points(5)
@pytest.mark.hint(
    "x may be an integer array: convert it to float first (x = x.astype(np.float64)), "
    "otherwise x[idx] = tmp_val + h is truncated back to an integer: with x = [3, 4] the "
    "central difference then divides 0 or 1 by 2h, giving [25000, 35000] instead of [6, 8]."
)
def test_numerical_gradient_integer_input(student, reference):
    f = sum_of_squares
    x = np.array([3.0, 4.0])
    name = "numerical_gradient(sum(x**2), [3.0, 4.0])"
    got = as_array(student.numerical_gradient(f, x.copy()), name=name)
    want = reference.autograd_gradient(TORCH_TWINS[f], x)
    assert_close(got, want, atol=1e-8, name=name, hint=hint_for(got, want, f, x) or GRADIENT_HINT)

    name = "numerical_gradient(sum(x**2), np.array([3, 4])) (integer x)"
    got = as_array(student.numerical_gradient(f, np.array([3, 4])), name=name)
    expect(
        got.dtype.kind == "f",
        f"{name}: returned dtype {got.dtype}, expected a float array.",
    )
    assert_close(got, want, atol=1e-8, name=name)
