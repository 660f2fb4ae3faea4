"""Comparisons that explain themselves.

A failed check is only useful if the student can act on it, so every comparison here
raises `CheckFailure` with a one-line `message` (what is wrong, where, by how much, and a
hint) and multi-line `details` (the statistics behind it). Values compared here are always
plain data decoded from the sandbox, never objects the submission built.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "CheckFailure",
    "as_array",
    "assert_close",
    "assert_equal",
    "expect",
    "fail",
]

_NUMERIC_KINDS = "biuf"


class CheckFailure(AssertionError):
    """A check failed for a reason the student can fix."""

    def __init__(self, message: str, *, hint: str | None = None, details: str = "") -> None:
        self.summary = message
        self.hint = hint
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One line: what went wrong, then the hint."""
        line = " ".join(self.summary.split())
        if self.hint:
            line = f"{line} Hint: {' '.join(self.hint.split())}"
        return line


def fail(message: str, *, hint: str | None = None, details: str = "") -> None:
    """Fail the current check with a message the student reads."""
    raise CheckFailure(message, hint=hint, details=details)


def expect(condition: Any, message: str, *, hint: str | None = None) -> None:
    """Fail with `message` unless `condition` holds (a plain `bool`, never a student object)."""
    if not isinstance(condition, bool | np.bool_):
        fail(f"internal: expect() needs a bool, got {type(condition).__name__}")
    if not condition:
        fail(message, hint=hint)


def _describe(value: Any) -> str:
    kind = type(value).__name__
    if kind == "RemoteObject":
        return f"an object of class {value!r}"
    return f"a value of type {kind}"


def as_array(value: Any, *, name: str = "result", hint: str | None = None) -> np.ndarray:
    """Turn a returned value into a numeric ndarray, or fail saying what came back instead."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, bool | np.bool_ | numbers.Real | np.number):
        array = np.asarray(value)
    elif isinstance(value, list | tuple):
        try:
            array = np.asarray(value)
        except ValueError:
            fail(f"{name}: expected an array, got a ragged {type(value).__name__}", hint=hint)
    elif value is None:
        fail(f"{name}: expected an array, got None (did you forget to return?)", hint=hint)
    else:
        fail(f"{name}: expected an array, got {_describe(value)}", hint=hint)
    if array.dtype.kind not in _NUMERIC_KINDS:
        fail(f"{name}: expected numbers, got an array of dtype {array.dtype}", hint=hint)
    return array


def _to_numpy(want: Any) -> np.ndarray:
    if hasattr(want, "detach"):  # a torch tensor from a reference solution
        want = want.detach().cpu().numpy()
    return np.asarray(want)


def _index(flat: int, shape: tuple[int, ...]) -> str:
    if not shape:
        return ""
    return "[" + ", ".join(str(i) for i in np.unravel_index(flat, shape)) + "]"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _relative_error_line(rel_err: np.ndarray, defined: np.ndarray) -> str:
    """The largest relative error among the values off; a relative error is not defined
    where 0 was expected, so when every value off is there, the line says so instead of
    reporting the 0 of an empty maximum."""
    if not defined.any():
        return "max rel error: none (every value off is where 0 was expected)"
    return f"max rel error (values off, where expected != 0): {np.max(rel_err[defined]):.3e}"


def assert_close(
    got: Any,
    want: Any,
    *,
    rtol: float = 1e-7,
    atol: float = 0.0,
    name: str = "result",
    hint: str | None = None,
    equal_nan: bool = False,
) -> None:
    """Check `got` against `want` elementwise: |got - want| <= atol + rtol * |want|.

    Shapes must match exactly. On failure the message names the number of wrong values,
    the worst index with both values, the absolute and relative errors, and the hint.
    """
    got_array = as_array(got, name=name, hint=hint)
    want_array = _to_numpy(want)
    if got_array.shape != want_array.shape:
        fail(
            f"{name}: shape {tuple(got_array.shape)} but expected {tuple(want_array.shape)}.",
            hint=hint,
        )
    g = got_array.astype(np.float64)
    w = want_array.astype(np.float64)
    details = [
        f"shape {tuple(w.shape)}, your dtype {got_array.dtype}, expected dtype {want_array.dtype}",
        f"tolerance: |got - want| <= {atol:g} + {rtol:g} * |want|",
    ]
    bad_nan = np.isnan(g) & ~(equal_nan & np.isnan(w))
    bad_inf = np.isinf(g) & ~(np.isinf(w) & (np.sign(g) == np.sign(w)))
    if bad_nan.any() or bad_inf.any():
        which = "NaN" if bad_nan.any() else "Inf"
        mask = bad_nan if bad_nan.any() else bad_inf
        first = int(np.flatnonzero(mask)[0])
        fail(
            f"{name}: {int(mask.sum())} of {mask.size} values are {which}, first at "
            f"{_index(first, g.shape) or 'the scalar'} where {_fmt(w.flat[first])} was expected.",
            hint=hint or "NaN/Inf usually means overflow in exp or a log of 0.",
            details="\n".join(details),
        )
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.abs(g - w)
        both_inf = np.isinf(g) & np.isinf(w) & (np.sign(g) == np.sign(w))
        abs_err = np.where(both_inf | (equal_nan & np.isnan(g) & np.isnan(w)), 0.0, abs_err)
        allowed = atol + rtol * np.abs(np.where(np.isfinite(w), w, 0.0))
        wrong = ~(abs_err <= allowed)
    if not wrong.any():
        return
    rel_err = abs_err / np.maximum(np.abs(w), np.finfo(np.float64).tiny)
    excess = np.where(wrong, abs_err / np.maximum(allowed, np.finfo(np.float64).tiny), -1.0)
    worst = int(np.argmax(excess))
    where = _index(worst, g.shape)
    details += [
        f"values off: {int(wrong.sum())} of {wrong.size}",
        f"max abs error: {np.nanmax(abs_err):.3e}",
        _relative_error_line(rel_err, wrong & (w != 0) & np.isfinite(rel_err)),
        f"worst at {where or 'the scalar'}: got {_fmt(g.flat[worst])}, "
        f"expected {_fmt(w.flat[worst])}",
    ]
    count = "" if wrong.size == 1 else f"{int(wrong.sum())} of {wrong.size} values differ; worst "
    errors = f"abs error {abs_err.flat[worst]:.2e}"
    if w.flat[worst] != 0:
        errors += f", rel error {rel_err.flat[worst]:.2e}"
    fail(
        f"{name}: {count}{'at ' + where + ': ' if where else ''}got {_fmt(g.flat[worst])}, "
        f"expected {_fmt(w.flat[worst])} ({errors}).",
        hint=hint,
        details="\n".join(details),
    )


def assert_equal(got: Any, want: Any, *, name: str = "result", hint: str | None = None) -> None:
    """Exact comparison for integer-valued results (labels, 0/1 outputs, counts)."""
    assert_close(got, want, rtol=0.0, atol=0.0, name=name, hint=hint)
