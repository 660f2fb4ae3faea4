"""Gradescope's "Export Submissions": a `submission_metadata.yml` beside one folder per
submission (`submission_123456/`), naming who submitted each.

The file is YAML written by Ruby (`:submitters:` keys, `!ruby/...` tags). It is read with
PyYAML (the `lms` extra) by a loader that constructs nothing but strings, lists and dicts:
every scalar stays a string (a student id `00123` is not the number 83) and every tag is
ignored, so no object is ever built from the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from grader.errors import BadInput
from grader.lms import Person
from grader.safecopy import FILE_FLAGS, shown

METADATA = "submission_metadata.yml"
MAX_METADATA_BYTES = 32 << 20


def _plain_loader() -> type:
    try:
        import yaml
    except ImportError:
        raise BadInput(
            f"reading Gradescope's {METADATA} needs PyYAML: pip install 'dl-grader[lms]'."
        ) from None

    class PlainLoader(yaml.BaseLoader):
        """Strings, lists and dicts only, whatever tags the file carries."""

    def plain(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    PlainLoader.add_multi_constructor("!", plain)
    PlainLoader.add_multi_constructor("tag:yaml.org,2002:", plain)
    return PlainLoader


def _read(path: Path) -> bytes:
    """The file's bytes, never through a link, refused past the size cap."""
    try:
        fd = os.open(path, FILE_FLAGS)
    except OSError as error:
        raise BadInput(f"cannot read {shown(path)}: {error.strerror or error}") from error
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadInput(f"{shown(path)} is not a regular file.")
        data = file.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise BadInput(f"{shown(path)} is larger than {MAX_METADATA_BYTES >> 20} MB.")
    return data


def _field(record: dict, name: str) -> Any:
    """`record[":name"]` (Ruby's symbol keys) or `record["name"]`."""
    return record.get(f":{name}", record.get(name))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def read_metadata(folder: Path) -> dict[str, tuple[Person, ...]]:
    """Who submitted each submission folder of a Gradescope export in `folder`."""
    loader = _plain_loader()  # first: it says how to install PyYAML when it is missing
    import yaml

    path = folder / METADATA
    try:
        data = yaml.load(_read(path).decode("utf-8"), Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise BadInput(f"{shown(path)} is not readable YAML ({type(error).__name__}).") from None
    if not isinstance(data, dict):
        raise BadInput(f"{shown(path)} does not list submissions.")
    found = {}
    for submission, record in data.items():
        submitters = _field(record, "submitters") if isinstance(record, dict) else None
        people = tuple(
            Person(
                name=_text(_field(s, "name")),
                sis_user_id=_text(_field(s, "sid")),
                email=_text(_field(s, "email")),
                identifier=_text(_field(s, "email")),
            )
            for s in (submitters if isinstance(submitters, list) else [])
            if isinstance(s, dict)
        )
        if isinstance(submission, str):
            found[submission] = people
    return found
