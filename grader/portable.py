"""Check functions that run inside the worker: `@runs_in_worker` on a plain NumPy function.

A check passes functions to the student's code: the loss `f` that `numerical_gradient(f, x)`
calls once per element and step. By default such a function stays in the trusted process and
every call crosses the pipe twice (assignment4's gradient descent calls its `f` over a
thousand times). A function whose code holds no secret (the textbook's `f(x0, x1) = x0**2 +
x1**2`) can instead travel as its own source text and run in the worker, next to the student's
code, at the speed of a local call.

What the worker receives is that function's text and nothing else: no closure, no module
state, no other line of the check's file, and it runs there with only `np`, `numpy`, `math`
and the builtins in its namespace. `runs_in_worker` refuses a function that needs anything
more (a closure, another global, a lambda) and checks that the text it will send compiles to
the same code. Called in the trusted process (by a reference, or to build a hint), the
function runs there as usual. Running in the worker, it is the student's to tamper with, so
it must never be evidence: a check that learns something from how its function is called
(the points `f` is called at) keeps that function in the trusted process.

This module is the trusted side's; the worker compiles what it receives in
`grader.sandbox.worker`.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import math
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from grader.sandbox.codec import WorkerFunction

MODULES = {"np": np, "numpy": np, "math": math}  # the names a shipped function may use
IMPORTS = "import math\nimport numpy\nimport numpy as np\n"


def worker_namespace() -> dict[str, Any]:
    """The globals a shipped function runs with (here, to vouch for it; in the worker)."""
    return {"__builtins__": builtins, **MODULES}


def runs_in_worker(function: Callable[..., Any]) -> WorkerFunction:
    """Decorator: pass `function` to student code as source, to run in the worker.

    TypeError or ValueError (at import of the check file) if `function` is not a plain `def`
    that uses only its arguments, `np`/`numpy`/`math` and builtins.
    """
    if not isinstance(function, types.FunctionType) or function.__name__ == "<lambda>":
        raise TypeError("runs_in_worker takes a function defined with def")
    name = function.__name__
    if function.__code__.co_freevars:
        names = ", ".join(function.__code__.co_freevars)
        raise ValueError(f"{name} reads {names} from an enclosing function: it cannot travel")
    for used in sorted(_global_names(function.__code__)):
        bound = function.__globals__.get(used, _MISSING)
        if used in MODULES and bound is MODULES[used]:
            continue
        if bound is _MISSING and hasattr(builtins, used):
            continue
        raise ValueError(
            f"{name} uses the global {used!r}: a function that runs in the worker may use "
            "only its arguments, np, numpy, math and builtins"
        )
    source = own_source(function)
    _vouch(function, source)
    return WorkerFunction(function, name, source)


_MISSING = object()


def own_source(function: types.FunctionType) -> str:
    """The text of `function`'s own definition, without its decorators or anything else of
    its file."""
    text = textwrap.dedent(inspect.getsource(function))
    tree = ast.parse(text)
    definition = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(definition, ast.FunctionDef) or definition.name != function.__name__:
        raise ValueError(f"the source of {function.__name__} is not one function definition")
    definition.decorator_list = []
    return ast.unparse(definition)


def _global_names(code: types.CodeType) -> Iterator[str]:
    """The global names `code` (and any function or comprehension inside it) reads or writes."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            yield instruction.argval
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _global_names(constant)


def _vouch(function: types.FunctionType, source: str) -> None:
    """ValueError unless `source`, run the way the worker runs it, defines the same code with
    the same defaults: what travels is exactly `function`."""
    namespace = worker_namespace()
    try:  # imported, as in a check file: the compiler calls a module's functions differently
        exec(compile(IMPORTS + source, f"<{function.__name__}>", "exec"), namespace)
    except Exception as error:  # e.g. a default that names another global
        raise ValueError(f"{function.__name__} cannot run on its own: {error}") from None
    built = namespace.get(function.__name__)
    same = (
        isinstance(built, types.FunctionType)
        and _same_code(built.__code__, function.__code__)
        and _same_constant(built.__defaults__, function.__defaults__)
        and _same_constant(built.__kwdefaults__, function.__kwdefaults__)
    )
    if not same:
        raise ValueError(f"the source found for {function.__name__} is not the function itself")


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
