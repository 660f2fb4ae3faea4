"""Atomic whole-file writes: old or new content, never a torn file or a stray temporary."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from grader.atomicfile import write_atomic


def test_creates_parents_and_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["report.json"]


def test_mode_follows_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "gradebook.csv", b"a,b\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "gradebook.csv").stat().st_mode) == 0o640


def test_failed_write_keeps_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "journal.jsonl"
    write_atomic(target, b"graded so far")

    def interrupted(source: str, destination: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"half")
    assert target.read_bytes() == b"graded so far"
    assert os.listdir(tmp_path) == ["journal.jsonl"]
