"""Public checks: the truth tables of the gates, and the Perceptron's attributes."""

import numpy as np
import pytest

from grader.compare import as_array, assert_equal, expect

INPUTS = ((0, 0), (1, 0), (0, 1), (1, 1))


def check_truth_table(student, reference, gate: str) -> None:
    """Compare a gate with the reference on all four inputs, naming the first wrong row."""
    expected = reference.truth_table(gate)
    for (x1, x2), want in zip(INPUTS, expected, strict=True):
        got = getattr(student, gate)(x1, x2)
        assert_equal(got, want, name=f"{gate}({x1}, {x2})")


@pytest.mark.points(7)
@pytest.mark.hint("AND is one unit: w = (0.5, 0.5), b = -0.7 and output 1 only if w.x + b > 0.")
def test_and_truth_table(student, reference):
    """AND truth table"""
    check_truth_table(student, reference, "AND")


@pytest.mark.points(7)
@pytest.mark.hint("NAND is AND with every sign flipped: w = (-0.5, -0.5), b = 0.7.")
def test_nand_truth_table(student, reference):
    """NAND truth table"""
    check_truth_table(student, reference, "NAND")


@pytest.mark.points(7)
@pytest.mark.hint("OR fires when either input is 1: keep w = (0.5, 0.5) but use b = -0.2.")
def test_or_truth_table(student, reference):
    """OR truth table"""
    check_truth_table(student, reference, "OR")


@pytest.mark.points(7)
@pytest.mark.hint("NOR is OR with every sign flipped: w = (-0.5, -0.5), b = 0.2.")
def test_nor_truth_table(student, reference):
    """NOR truth table"""
    check_truth_table(student, reference, "NOR")


@pytest.mark.points(8)
@pytest.mark.hint("XOR needs two layers: s1 = NAND(x1, x2), s2 = OR(x1, x2), y = AND(s1, s2).")
def test_xor_truth_table(student, reference):
    """XOR truth table (two layers)"""
    check_truth_table(student, reference, "XOR")


@pytest.mark.points(4)
@pytest.mark.hint(
    "In __init__, set self.w = np.zeros(n_inputs) (or small random values) and self.b = 0.0."
)
def test_perceptron_has_weights_and_bias(student):
    """Perceptron starts with w of shape (n_inputs,) and a scalar b"""
    perceptron = student.Perceptron(3)
    w = as_array(perceptron.w, name="Perceptron(3).w")
    b = as_array(perceptron.b, name="Perceptron(3).b")
    expect(w.shape == (3,), f"Perceptron(3).w has shape {w.shape}, expected (3,).")
    expect(b.size == 1, f"Perceptron(3).b has shape {b.shape}, expected a single number.")
    expect(bool(np.all(np.isfinite(w))), "Perceptron(3).w contains NaN or Inf.")
