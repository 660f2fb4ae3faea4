"""Notebooks as submissions, and the starter notebooks students get.

A student's .ipynb is hostile data like any submission. Everything here runs on the trusted
side and never executes a cell: `reading` parses the file as JSON under size bounds and
validates it with nbformat (outputs dropped first, unread); `convert` writes its code cells,
in order, as the module the sandboxed worker imports, with IPython syntax (`magics`) turned
into `pass` and a `SourceMap` that points messages back at cells; `starter` builds the
notebooks `grade init --notebook` and `grade release --notebook` write.
"""

from __future__ import annotations

from types import ModuleType

from grader.errors import BadInput

INSTALL_HINT = "pip install 'dl-grader[notebooks]'"


def require_nbformat() -> ModuleType:
    """The nbformat package, or `BadInput` saying how to install it (an optional extra)."""
    try:
        import nbformat
    except ImportError:
        raise BadInput(f"notebooks need the nbformat package: {INSTALL_HINT}") from None
    return nbformat
