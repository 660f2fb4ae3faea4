"""Hidden checks for assignment4: numerical derivatives and gradients against autograd.

Each test function is written once in torch: the student's code calls it back with NumPy
arrays (through the sandbox, one round trip per call, so the arrays stay small) and the
reference differentiates it exactly with torch.autograd in float64. Tolerances suit a central
difference with h = 1e-4 (error of order h**2); a forward difference (error of order h) is
far outside them. Failures are matched against the usual bugs so the hint can name them.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.compare import as_array, assert_close, expect, fail

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


def callback(fn):
    """The NumPy-facing version of the torch function `fn`, as the student's code calls it."""

    def f(x):
        return float(fn(torch.as_tensor(np.asarray(x, dtype=np.float64))))

    return f


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


def check_gradient(student, reference, fn, x, name, rtol=1e-6, atol=1e-8):
    """Compare the student's numerical gradient of `fn` at x with autograd's exact one."""
    f = callback(fn)
    x_arg = x.copy()
    got = as_array(student.numerical_gradient(f, x_arg), name=name)
    want = reference.autograd_gradient(fn, x)
    assert_close(got, want, rtol=rtol, atol=atol, name=name, hint=hint_for(got, want, f, x))


SCALAR_FUNCTIONS = {
    "sin(x)": torch.sin,
    "exp(x)": torch.exp,
    "x**3 - 2*x": lambda x: x**3 - 2 * x,
    "log(1 + x**2)": lambda x: torch.log1p(x**2),
}


@pytest.mark.points(8)
@pytest.mark.hint("numerical_diff(f, x, h=1e-4) returns (f(x+h) - f(x-h)) / (2*h).")
def test_numerical_diff_matches_autograd(student, reference, rng):
    for label, fn in SCALAR_FUNCTIONS.items():
        x = float(rng.uniform(-2.0, 2.0))
        f = callback(fn)
        name = f"numerical_diff({label}, x={x:.6g})"
        got = as_array(student.numerical_diff(f, x), name=name)
        want = reference.autograd_gradient(fn, np.float64(x))
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
        lambda t: (t**2).sum(),
        x,
        "numerical_gradient(sum(x**2)) for x (2, 3, 4)",
    )


@pytest.mark.points(6)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_quadratic_form(student, reference, rng):
    m = rng.normal(size=(5, 5))
    a = m @ m.T / 5 + np.eye(5)
    b = rng.normal(size=5)

    def fn(x):
        a_t = torch.as_tensor(a, dtype=x.dtype, device=x.device)
        b_t = torch.as_tensor(b, dtype=x.dtype, device=x.device)
        return 0.5 * x @ a_t @ x + b_t @ x

    x = rng.normal(size=5)
    check_gradient(student, reference, fn, x, "numerical_gradient(0.5 x.A.x + b.x) for x (5,)")


def simplenet_loss(w):
    """The textbook's simpleNet: cross-entropy of softmax(x @ W) for x = [0.6, 0.9], t = 2."""
    x = torch.tensor([0.6, 0.9], dtype=w.dtype, device=w.device)
    label = torch.tensor([2], device=w.device)
    return F.cross_entropy((x @ w)[None], label)


@pytest.mark.points(5)
@pytest.mark.hint(GRADIENT_HINT)
def test_numerical_gradient_simplenet_loss(student, reference, rng):
    w = rng.normal(size=(2, 3))
    check_gradient(
        student,
        reference,
        simplenet_loss,
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
    W, the array numerical_gradient was given, so only a perturbation of W itself moves it.
    The worker's changes to W reach this process before each call of f (`student.inplace`).
    """
    w = rng.normal(size=(2, 3))
    pristine = w.copy()
    loss = callback(simplenet_loss)
    moved = {"argument": False, "closure": False}

    def f(point):
        moved["argument"] |= not np.array_equal(np.asarray(point), pristine)
        moved["closure"] |= not np.array_equal(w, pristine)
        return loss(w)

    name = "numerical_gradient(lambda w: simpleNet loss of W, W) for W (2, 3)"
    with student.inplace(w):
        got = as_array(student.numerical_gradient(f, w), name=name)
    if moved["argument"] and not moved["closure"]:
        fail(
            f"{name}: f was called at perturbed points, but W itself never changed, so an f "
            "that reads the weights through a closure saw the same loss every time.",
            hint=IN_PLACE_HINT,
        )
    want = reference.autograd_gradient(simplenet_loss, pristine)
    hint = hint_for(got, want, loss, pristine)
    assert_close(got, want, rtol=1e-7, atol=1e-9, name=name, hint=hint)


@pytest.mark.points(6)
@pytest.mark.hint(
    "Use the central difference (f(x+h) - f(x-h)) / (2*h) with the h you are given: for "
    "f = x**3 it gives 3*x**2 + h**2, a forward difference gives 3*x**2 + 3*x*h + h**2."
)
def test_central_difference_uses_given_h(student, reference, rng):
    h = 1e-2
    x = float(rng.uniform(1.0, 2.0))
    f = callback(lambda t: t**3)
    name = f"numerical_diff(x**3, x={x:.6g}, h={h})"
    got = as_array(student.numerical_diff(f, x, h=h), name=name)
    want = np.float64(reference.numerical_diff(f, x, h=h))
    assert_close(got, want, rtol=1e-9, name=name, hint=hint_for(got, want, f, np.float64(x), h))

    x = rng.uniform(-2.0, 2.0, size=(2, 2))
    f = callback(lambda t: (t**3).sum())
    name = f"numerical_gradient(sum(x**3), x (2, 2), h={h})"
    got = as_array(student.numerical_gradient(f, x.copy(), h=h), name=name)
    want = reference.numerical_gradient(f, x, h=h)
    assert_close(got, want, rtol=1e-9, atol=1e-12, name=name, hint=hint_for(got, want, f, x, h))


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

    Two pieces of evidence: every point f is called at (data this process receives) may
    differ from x in the one element being perturbed only, which shows each earlier element
    restored; and x after the call, as the worker reports it (`student.inplace`), shows the
    last one restored. A worker that misreports its own x can hide only that last element.
    """
    # Columns of magnitude 1e-6 ... 1: for small values x[idx] + h drops low bits of x[idx],
    # so undoing the perturbation by arithmetic cannot give the same float back.
    x = rng.normal(size=(4, 5)) * np.logspace(-6, 0, 5)
    before = x.copy()
    fn = callback(lambda t: torch.tanh(t).sum() + t.sum() ** 2)
    points = []

    def f(point):
        points.append(np.array(point, dtype=np.float64))
        return fn(point)

    with student.inplace(x):
        student.numerical_gradient(f, x)
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
    fn = lambda t: (t**2).sum()  # noqa: E731
    f = callback(fn)
    x = np.array([3.0, 4.0])
    name = "numerical_gradient(sum(x**2), [3.0, 4.0])"
    got = as_array(student.numerical_gradient(f, x.copy()), name=name)
    want = reference.autograd_gradient(fn, x)
    assert_close(got, want, atol=1e-8, name=name, hint=hint_for(got, want, f, x) or GRADIENT_HINT)

    name = "numerical_gradient(sum(x**2), np.array([3, 4])) (integer x)"
    got = as_array(student.numerical_gradient(f, np.array([3, 4])), name=name)
    expect(
        got.dtype.kind == "f",
        f"{name}: returned dtype {got.dtype}, expected a float array.",
    )
    assert_close(got, want, atol=1e-8, name=name)
