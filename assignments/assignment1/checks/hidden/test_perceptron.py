"""Hidden checks: NumPy inputs to the gates, and a Perceptron that really learns."""

import numpy as np
import pytest

from grader.compare import as_array, assert_equal, expect, fail

GATES = ("AND", "NAND", "OR", "NOR")
INPUTS = np.array([(0, 0), (1, 0), (0, 1), (1, 1)], dtype=float)


def predictions(perceptron, X: np.ndarray, name: str) -> np.ndarray:
    """The perceptron's predictions on X, checked for shape and 0/1 values."""
    got = as_array(perceptron.predict(X), name=name)
    expect(
        got.shape == (len(X),),
        f"{name} returned shape {got.shape}; expected ({len(X)},), one label per row.",
        hint="Return a 1-D array: (X @ self.w + self.b > 0).astype(int).",
    )
    expect(
        bool(np.isin(got, (0, 1)).all()),
        f"{name} returned values other than 0 and 1.",
        hint="Threshold the weighted sum: 1 where X @ w + b > 0, else 0.",
    )
    return got


# One point per gate, two for XOR (two layers of gates): each gate earns its own.
NUMPY_GATE_POINTS = {"AND": 1, "NAND": 1, "OR": 1, "NOR": 1, "XOR": 2}


@pytest.mark.hint("Gates must work for any integer type: use arithmetic, not `is` or type checks.")
@pytest.mark.parametrize(
    "gate",
    [pytest.param(g, marks=pytest.mark.points(n)) for g, n in NUMPY_GATE_POINTS.items()],
)
def test_gates_accept_numpy_integers(student, reference, gate):
    """Gates accept NumPy integers"""
    for x1, x2 in ((np.int64(1), np.int32(0)), (np.int64(1), np.int64(1))):
        want = reference.gate(gate, int(x1), int(x2))
        assert_equal(getattr(student, gate)(x1, x2), want, name=f"{gate}({x1!r}, {x2!r})")


@pytest.mark.points(6)
@pytest.mark.parametrize("gate", GATES)
@pytest.mark.hint(
    "Use the perceptron rule with the prediction from the CURRENT weights: "
    "w += lr * (y - y_hat) * x and b += lr * (y - y_hat)."
)
def test_perceptron_learns_gate(student, reference, gate):
    """Perceptron learns a linearly separable gate to 100%"""
    y = reference.truth_table(gate)
    perceptron = student.Perceptron(2, lr=0.1, seed=0)
    perceptron.fit(INPUTS, y, epochs=100)
    what = f"Perceptron.predict after Perceptron.fit on the {gate} truth table"
    got = predictions(perceptron, INPUTS, what)
    assert_equal(got, y, name=what)


@pytest.mark.points(6)
@pytest.mark.hint(
    "A single perceptron draws one straight line; XOR needs two. Do not special-case it."
)
def test_perceptron_cannot_learn_xor(student, reference):
    """A single perceptron cannot learn XOR"""
    y = reference.truth_table("XOR")
    perceptron = student.Perceptron(2, lr=0.1, seed=0)
    perceptron.fit(INPUTS, y, epochs=100)
    what = "Perceptron.predict after Perceptron.fit on the XOR truth table"
    accuracy = float(np.mean(predictions(perceptron, INPUTS, what) == y))
    expect(
        accuracy <= 0.75,
        f"Perceptron.fit reached {accuracy:.0%} on XOR, which no single threshold unit can.",
    )


@pytest.mark.points(12)
@pytest.mark.hint(
    "Update on every misclassified sample, for every epoch, and use the learned w and b in predict."
)
def test_perceptron_generalises_on_separable_data(student, reference, rng):
    """Perceptron reaches >= 95% held-out accuracy on separable data"""
    X, y = reference.separable_data(rng, 300, 3)
    train, test = slice(0, 200), slice(200, 300)
    perceptron = student.Perceptron(3, lr=0.1, seed=0)
    perceptron.fit(X[train], y[train], epochs=20)
    what = "Perceptron.predict after Perceptron.fit on separable data"
    accuracy = float(np.mean(predictions(perceptron, X[test], what) == y[test]))
    expect(
        accuracy >= 0.95,
        f"{what}: held-out accuracy is {accuracy:.1%}; a perceptron should reach at least "
        "95% here.",
    )


@pytest.mark.points(6)
@pytest.mark.hint("fit must change both self.w and self.b (the bias is learned too).")
def test_fit_updates_weights_and_bias(student, reference):
    """fit updates both w and b"""
    y = reference.truth_table("AND")
    perceptron = student.Perceptron(2, lr=0.1, seed=0)
    w0, b0 = as_array(perceptron.w).copy(), as_array(perceptron.b).copy()
    perceptron.fit(INPUTS, y, epochs=10)
    w1, b1 = as_array(perceptron.w, name="w after fit"), as_array(perceptron.b, name="b after fit")
    if np.array_equal(w0, w1):
        fail("Perceptron.fit did not change w.")
    if np.array_equal(b0, b1):
        fail("Perceptron.fit did not change b.")


@pytest.mark.points(6)
@pytest.mark.hint("predict must use X @ self.w + self.b > 0 over the whole batch at once.")
def test_predict_is_vectorised(student, reference, rng):
    """predict works on a whole batch with the given w and b"""
    perceptron = student.Perceptron(4)
    w, b = rng.normal(size=4), float(rng.normal())
    perceptron.w = w
    perceptron.b = b
    X = rng.normal(size=(500, 4))
    what = "Perceptron.predict on a (500, 4) batch"
    got = predictions(perceptron, X, what)
    assert_equal(got, reference.predict(w, b, X), name=what)
