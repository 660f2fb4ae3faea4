"""The client's config file: `$XDG_CONFIG_HOME/dl-grader/config.toml` (default
`~/.config/dl-grader/config.toml`), readable by its owner only since it holds the token.

    server = "https://grader.example.edu"
    token = "dlg_..."
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from grader.errors import BadInput


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dl-grader" / "config.toml"


def load_config() -> dict[str, Any]:
    """The saved settings ({} when there is no file yet)."""
    path = config_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise BadInput(f"cannot read {path}: {error}; fix it or run grade login again.") from error


def save_config(values: dict[str, Any]) -> Path:
    """Merge `values` into the config file, written with mode 0600 and replaced atomically."""
    path = config_path()
    merged = {**load_config(), **values}
    lines = [f"{key} = {json.dumps(str(value))}" for key, value in merged.items()]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write("\n".join(lines) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
