"""Data sets the grader trains and evaluates on: where they are kept, how they are read and fetched.

`mnist` reads the MNIST IDX files (or the small sample shipped inside this package) and
`download` fetches the IDX files from public mirrors. Both keep their files under one data
folder: `--data-dir` where a command has it, else `DL_GRADER_DATA`, else a per-user cache
folder (`$XDG_CACHE_HOME/dl-grader`, by default `~/.cache/dl-grader`). Nothing here runs
student code or decides points.
"""

from __future__ import annotations

import os
from pathlib import Path

from grader.errors import BadInput

ENV_VARIABLE = "DL_GRADER_DATA"


class DataError(BadInput):
    """A data file is missing, incomplete or corrupt; the message says which and how to fix it."""


def data_dir(explicit: Path | str | None = None) -> Path:
    """The data folder: `explicit`, else $DL_GRADER_DATA, else the per-user cache folder."""
    if explicit is not None and str(explicit):
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_VARIABLE)
    if from_env:
        return Path(from_env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dl-grader"
