"""Atomic whole-file writes: old or new content, never a torn file or a stray temporary."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT

from grader.atomicfile import write_atomic
from grader.cli import cli


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


# -- targets that are not regular files ------------------------------------------------------
# As root, the old write renamed a temporary file over whatever the path named, so
# `grade -o /dev/null` replaced the machine's /dev/null. These tests never touch the real
# /dev: they make their own device node (1, 3 is /dev/null's) and FIFOs under tmp_path.


def _null_device(path: Path) -> Path:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


def _is_null_device(path: Path) -> bool:
    status = os.lstat(path)
    return stat.S_ISCHR(status.st_mode) and status.st_rdev == os.makedev(1, 3)


def test_a_character_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    null = _null_device(tmp_path / "null")
    write_atomic(null, b"a report nobody keeps")
    assert _is_null_device(null)
    assert os.listdir(tmp_path) == ["null"]


def test_a_fifo_is_written_into_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, b"report\n")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert os.read(reader, 100) == b"report\n"
    finally:
        os.close(reader)


def test_an_open_stream_named_through_proc_is_appended_to(tmp_path: Path) -> None:
    """/dev/stdout, /dev/fd/N and /proc/self/fd/N name a stream the caller has open: the
    report joins it (as `grade -o /dev/stdout > out.txt` expects), the file is not replaced."""
    stream = tmp_path / "stream.txt"
    fd = os.open(stream, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"table\n")
        inode = os.fstat(fd).st_ino
        write_atomic(Path(f"/proc/self/fd/{fd}"), b"report\n")
        os.write(fd, b"more\n")
    finally:
        os.close(fd)
    assert stream.read_bytes() == b"table\nreport\nmore\n"
    assert stream.stat().st_ino == inode


def test_a_link_to_a_regular_file_updates_that_file_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "runs" / "latest.json"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "report.json"
    link.symlink_to(Path("runs") / "latest.json")
    write_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == "runs/latest.json"
    assert real.read_bytes() == b"new"
    assert sorted(os.listdir(real.parent)) == ["latest.json"]


def test_a_link_to_a_device_writes_into_the_device(tmp_path: Path) -> None:
    null = _null_device(tmp_path / "null")
    link = tmp_path / "out.json"
    link.symlink_to(null)
    write_atomic(link, b"report")
    assert link.is_symlink() and _is_null_device(null)


def test_a_dangling_link_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    link = tmp_path / "results.json"
    link.symlink_to(tmp_path / "elsewhere" / "planted.json")
    with pytest.raises(OSError, match="link to nothing"):
        write_atomic(link, b"report")
    assert link.is_symlink()
    assert not (tmp_path / "elsewhere").exists()


def test_folders_and_sockets_are_refused(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "folder", b"x")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket"))
    server.close()
    with pytest.raises(OSError, match="socket"):
        write_atomic(tmp_path / "socket", b"x")
    assert stat.S_ISSOCK(os.lstat(tmp_path / "socket").st_mode)


def test_a_name_as_long_as_the_file_system_allows_can_be_written(tmp_path: Path) -> None:
    target = tmp_path / ("a" * 250 + ".json")
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"


def test_grade_dash_o_a_device_leaves_the_device_in_place(tmp_path: Path) -> None:
    null = _null_device(tmp_path / "null")
    result = CliRunner().invoke(
        cli,
        ["assignment1", "--submission", str(FIXTURES / "assignment1" / "correct"),
         "--course", str(ROOT), "--device", "cpu", "-k", "xor", "--format", "json",
         "-o", str(null)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _is_null_device(null)
