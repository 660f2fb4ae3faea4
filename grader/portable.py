"""Check functions that run inside the worker: `@runs_in_worker` on a plain NumPy function.

A check passes functions to the student's code: the loss `f` that `numerical_gradient(f, x)`
calls once per element and step. By default such a function stays in the trusted process and
every call crosses the pipe twice (assignment4's gradient descent calls its `f` over a
thousand times). A function whose code holds no secret (the textbook's `f(x0, x1) = x0**2 +
x1**2`) can instead travel as its own source text and run in the worker, next to the student's
code, at the speed of a local call.

What the worker receives is that function's text and nothing else: no module state, no
other line of the check's file, and it runs there with only `np`, `numpy`, `math` and the
builtins in its namespace. A function defined inside a check may read the check's variables
(the matrix of a quadratic form drawn from `rng`): their values travel with the text as
data, read each time the function is sent, and only plain data may (numbers, strings,
numeric arrays, tuples of them: never a function, a container a check fills, or an object),
as copies the worker's changes never reach unless `student.inplace` names them.
`runs_in_worker` refuses a function that needs anything more (another global, a lambda, a
value that is not data, a `nonlocal` it assigns) and checks that the text it will send,
made into a function as the worker makes it, is the same code. Called in the trusted
process (by a reference, or to build a hint), the function runs there as usual. Running in
the worker, it is the student's to tamper with, so it must never be evidence: a check that
learns something from how its function is called (the points `f` is called at, a count
written into an array) keeps that function in the trusted process, or, where the evidence is
only where it is called, has each call reported to an observer there
(`WorkerFunction.reporting_to`), which receives the arguments as data, as a callback would.
What a function returns in the worker earns nothing: the check compares the student's result
with what the trusted side computes.

This module is the trusted side's; the worker compiles what it receives in
`grader.sandbox.worker`.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.sandbox.codec import WorkerFunction, define_function

MODULES = {"np": np, "numpy": np, "math": math}  # the names a shipped function may use


def worker_namespace() -> dict[str, Any]:
    """The globals a shipped function runs with (here, to vouch for it; in the worker)."""
    return {"__builtins__": builtins, **MODULES}


def runs_in_worker(function: Callable[..., Any]) -> WorkerFunction:
    """Decorator: pass `function` to student code as source, to run in the worker.

    TypeError or ValueError (where the check defines it) if `function` is not a plain `def`
    that uses only its arguments, `np`/`numpy`/`math`, builtins and, from an enclosing
    function, values that are plain data.
    """
    if not isinstance(function, types.FunctionType) or function.__name__ == "<lambda>":
        raise TypeError("runs_in_worker takes a function defined with def")
    name = function.__name__
    reading = _read(function)
    for used in reading.global_names:
        bound = function.__globals__.get(used, _MISSING)
        if used in MODULES and bound is MODULES[used]:
            continue
        if bound is _MISSING and hasattr(builtins, used):
            continue
        raise ValueError(
            f"{name} uses the global {used!r}: a function that runs in the worker may use "
            "only its arguments, np, numpy, math and builtins"
        )
    shipped = WorkerFunction(function, name, reading.source, function.__code__.co_freevars)
    _vouch(shipped, reading.maker, shipped.closure())  # TypeError: it closes over non-data
    return shipped


_MISSING = object()


@dataclass(frozen=True)
class _Reading:
    """What a function's code says about it: the same for every function made from that
    code (a check file is imported afresh for each grade, a check's inner function is
    made at each run), so it is worked out once per code."""

    global_names: tuple[str, ...]  # the globals it reads or writes
    source: str  # its own definition's text
    maker: Callable[..., Any]  # that text made into a function as the worker makes it


_READINGS: dict[tuple[types.CodeType, str], _Reading] = {}
MAX_READINGS = 1024


def _read(function: types.FunctionType) -> _Reading:
    """The `_Reading` of `function`'s code (equal code from the same file reads the same);
    ValueError if it writes a variable of an enclosing function or its text cannot be made
    into a function on its own."""
    code = function.__code__
    key = (code, code.co_filename)
    reading = _READINGS.get(key)
    if reading is not None:
        return reading
    written = sorted(set(_written_free_names(code, frozenset(code.co_freevars))))
    if written:
        raise ValueError(
            f"{function.__name__} assigns {', '.join(written)} of an enclosing function: what "
            "it records would stay in the worker (a function that keeps state stays in the "
            "trusted process)"
        )
    source = own_source(function)
    try:
        maker = define_function(function.__name__, source, code.co_freevars, worker_namespace())
    except Exception as error:  # e.g. a default that names another global
        raise ValueError(f"{function.__name__} cannot run on its own: {error}") from None
    reading = _Reading(tuple(sorted(set(_global_names(code)))), source, maker)
    if len(_READINGS) < MAX_READINGS:
        _READINGS[key] = reading
    return reading


def own_source(function: types.FunctionType) -> str:
    """The text of `function`'s own definition, without its decorators or anything else of
    its file."""
    text = inspect.getsource(function)
    if text[:1].isspace():  # nested: parsed where it stands (dedenting would change the
        body = ast.parse("if True:\n" + text).body[0].body  # lines of a multi-line string)
    else:
        body = ast.parse(text).body
    definition = body[0] if len(body) == 1 else None
    if not isinstance(definition, ast.FunctionDef) or definition.name != function.__name__:
        raise ValueError(f"the source of {function.__name__} is not one function definition")
    definition.decorator_list = []
    return ast.unparse(definition)


def _instructions(code: types.CodeType) -> Iterator[dis.Instruction]:
    """The instructions of `code` and of every function or comprehension inside it."""
    yield from dis.get_instructions(code)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _instructions(constant)


def _global_names(code: types.CodeType) -> Iterator[str]:
    """The global names `code` (and any function or comprehension inside it) reads or writes."""
    for instruction in _instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            yield instruction.argval


def _written_free_names(code: types.CodeType, free: frozenset[str]) -> Iterator[str]:
    """The names of `free` that `code` (or a function or comprehension inside it) assigns or
    deletes: `nonlocal` writes to the enclosing function's variables."""
    for instruction in _instructions(code):
        if instruction.opname in ("STORE_DEREF", "DELETE_DEREF") and instruction.argval in free:
            yield instruction.argval


def _vouch(shipped: WorkerFunction, maker: Callable[..., Any], closure: tuple[Any, ...]) -> None:
    """ValueError unless the function `maker` makes from the text `shipped` sends (as the
    worker makes it, `define_function`) has the same code and defaults: what travels is
    exactly the function."""
    function = shipped.function
    try:
        built = maker(*closure)
    except Exception as error:  # e.g. a default that names another global
        raise ValueError(f"{shipped.name} cannot run on its own: {error}") from None
    same = (
        isinstance(built, types.FunctionType)
        and _same_code(built.__code__, function.__code__)
        and _same_constant(built.__defaults__, function.__defaults__)
        and _same_constant(built.__kwdefaults__, function.__kwdefaults__)
    )
    if not same:
        raise ValueError(f"the source found for {shipped.name} is not the function itself")


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Same instructions, names and constants (line numbers may differ)."""
    return (
        a.co_code == b.co_code
        and a.co_names == b.co_names
        and a.co_varnames == b.co_varnames
        and a.co_freevars == b.co_freevars
        and a.co_cellvars == b.co_cellvars
        and _same_constant(a.co_consts, b.co_consts)
    )


def _same_constant(a: Any, b: Any) -> bool:
    if isinstance(a, types.CodeType) and isinstance(b, types.CodeType):
        return _same_code(a, b)
    if isinstance(a, tuple | frozenset) and type(a) is type(b):
        if isinstance(a, frozenset):
            return a == b
        return len(a) == len(b) and all(map(_same_constant, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_constant(a[k], b[k]) for k in a)
    return type(a) is type(b) and repr(a) == repr(b)
