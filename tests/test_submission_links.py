"""A submission is copied by root without following a link or opening anything but a file.

Each test plants what an attacker would: links to the course's reference solution, a hidden
check, the MNIST test labels, /etc/shadow, the grader's environment or another student's
folder; devices, FIFOs and sockets; trees too big to copy. The copy must refuse each one with
a message naming it, and nothing the link names may reach the copy.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT

import grader.submission
from grader.cli import cli
from grader.errors import BadInput
from grader.safecopy import copy_folder
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox
from grader.submission import hash_files, prepare

CORRECT = FIXTURES / "assignment3" / "correct"
SECRETS = {
    "reference": ROOT / "reference" / "assignment3.py",
    "hidden-check": ROOT / "assignments/assignment3/checks/hidden/test_softmax_reference.py",
    "test-labels": ROOT / "grader" / "data" / "mnist_sample.npz",
    "shadow": Path("/etc/shadow"),
    "environment": Path("/proc/self/environ"),
    "null-device": Path("/dev/null"),
    "folder": ROOT / "reference",
}


@pytest.fixture
def assignment(course):
    return course.assignment("assignment3")


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    folder = tmp_path / "submission"
    shutil.copytree(CORRECT, folder)
    return folder


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _copied_bytes(folder: Path) -> bytes:
    """Everything the copy holds, concatenated (to look for leaked secrets)."""
    if not folder.exists():
        return b""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _refused(path: Path, assignment, work: Path) -> str:
    with pytest.raises(BadInput) as refused:
        prepare(path, assignment, work)
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_link_in_a_folder_submission_is_refused_and_never_read(
    submission, assignment, work, secret
):
    target = SECRETS[secret]
    (submission / "notes.txt").symlink_to(target)
    message = _refused(submission, assignment, work)
    assert "notes.txt is a symbolic link" in message
    if target.is_file() and target.stat().st_size:
        assert target.read_bytes()[:200] not in _copied_bytes(work / "submission")


def test_the_assignment_file_itself_may_not_be_a_link(tmp_path, assignment, work):
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "softmax.py").symlink_to(CORRECT / "softmax.py")
    assert "softmax.py is a symbolic link" in _refused(folder, assignment, work)


def test_a_link_deep_in_a_subfolder_is_refused(submission, assignment, work):
    deep = submission / "data" / "more"
    deep.mkdir(parents=True)
    (deep / "ref.py").symlink_to(SECRETS["reference"])
    assert "data/more/ref.py is a symbolic link" in _refused(submission, assignment, work)


def test_a_link_to_another_students_folder_is_never_graded_as_this_one(tmp_path, assignment, work):
    subs = tmp_path / "subs"
    shutil.copytree(CORRECT, subs / "alice")
    (subs / "eve").mkdir()
    (subs / "eve" / "x").symlink_to("../alice")
    assert "eve/x is a symbolic link" in _refused(subs / "eve", assignment, work)
    (subs / "eve" / "x").unlink()
    (subs / "eve" / "assignment3").symlink_to("../alice")
    assert "eve/assignment3 is a symbolic link" in _refused(subs / "eve", assignment, work)


@pytest.mark.parametrize(
    "kind", ["named pipe", "character device", "socket"], ids=lambda k: k.split()[0]
)
def test_devices_fifos_and_sockets_are_refused_without_being_opened(
    submission, assignment, work, kind
):
    special = submission / "special"
    if kind == "named pipe":
        os.mkfifo(special)
    elif kind == "character device":
        os.mknod(special, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(special))
        server.close()
    message = _refused(submission, assignment, work)
    assert f"special is a {kind}" in message


def test_caches_and_virtual_environments_are_skipped_unread(submission, assignment, work):
    (submission / "__pycache__").mkdir()
    (submission / "__pycache__" / "softmax.cpython-311.pyc").write_bytes(b"stale")
    (submission / ".git").symlink_to(SECRETS["folder"])
    (submission / ".venv" / "bin").mkdir(parents=True)
    (submission / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    prepared = prepare(submission, assignment, work)
    assert sorted(p.name for p in prepared.folder.iterdir()) == ["softmax.py"]


def test_a_submission_folder_the_user_named_through_a_link_is_followed(
    tmp_path, submission, assignment, work
):
    typed = tmp_path / "current"
    typed.symlink_to(submission)
    prepared = prepare(typed, assignment, work)
    assert (prepared.folder / "softmax.py").read_text() == (CORRECT / "softmax.py").read_text()
    assert not any(p.is_symlink() for p in prepared.folder.rglob("*"))


def test_the_copy_is_capped_in_bytes_as_it_reads(submission, assignment, work, monkeypatch):
    monkeypatch.setattr(grader.submission, "MAX_EXTRACTED_BYTES", 1 << 20)
    with (submission / "weights.bin").open("wb") as file:
        file.truncate((1 << 20) + 1)  # sparse: costs nothing to make
    assert "more than 1 MB" in _refused(submission, assignment, work)


def test_the_copy_is_capped_in_files(submission, assignment, work, monkeypatch):
    monkeypatch.setattr(grader.submission, "MAX_FILES", 20)
    for index in range(20):
        (submission / f"part{index}.py").write_text("")
    assert "more than 20 files and folders" in _refused(submission, assignment, work)


def test_the_copy_is_capped_in_depth(submission, assignment, work):
    deep = submission.joinpath(*["d"] * 40)
    deep.mkdir(parents=True)
    assert "nested more than" in _refused(submission, assignment, work)


def test_a_file_that_grows_while_copied_is_cut_at_the_cap(tmp_path, monkeypatch):
    """The size from stat is never trusted: bytes are counted as they are read."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "log.txt").write_bytes(b"x" * 10)
    real_read = os.read

    def endless(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        return data or b"y" * size  # the file never ends, whatever stat said

    monkeypatch.setattr(os, "read", endless)
    with pytest.raises(BadInput, match="holds more than 1000 bytes"):
        copy_folder(source, tmp_path / "copy", max_files=10, max_bytes=1000)
    assert (tmp_path / "copy" / "log.txt").stat().st_size <= 1000


def test_the_copy_of_a_non_utf8_name_names_it_readably(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    os.symlink("/etc/shadow", os.fsencode(source) + b"/caf\xe9\x1b[2J")
    with pytest.raises(BadInput) as refused:
        copy_folder(source, tmp_path / "copy", max_files=10, max_bytes=1000)
    assert "caf\\xe9\\x1b[2J is a symbolic link" in str(refused.value)


def test_hash_files_never_follows_a_link(tmp_path, assignment):
    outside = tmp_path / "outside.py"
    outside.write_text("one")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "softmax.py").symlink_to(outside)
    before = hash_files(folder, assignment.files)
    outside.write_text("two")
    assert hash_files(folder, assignment.files) == before


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat.S_IFIFO, "named pipe"),
        (stat.S_IFCHR, "character device"),
        (stat.S_IFBLK, "block device"),
        (stat.S_IFSOCK, "socket"),
    ],
    ids=["fifo", "char", "block", "socket"],
)
def test_zip_members_that_are_not_files_or_folders_are_refused(
    tmp_path, assignment, work, mode, kind
):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        member = zipfile.ZipInfo("softmax.py")
        member.external_attr = (mode | 0o644) << 16
        zf.writestr(member, (CORRECT / "softmax.py").read_text())
    message = _refused(archive, assignment, work)
    assert f"softmax.py' is a {kind}" in message


def test_a_fifo_given_as_the_submission_is_refused_without_blocking(tmp_path, assignment, work):
    fifo = tmp_path / "s.zip"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b""), daemon=True)
    writer.start()  # lets a blocking open return, so old code cannot hang this test
    try:
        assert "neither a folder nor a .zip" in _refused(fifo, assignment, work)
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # releases the writer, if waiting
        writer.join()
        os.close(reader)


def test_grade_exits_2_with_one_line_naming_the_link(submission):
    (submission / "ref\x1b]52;c;aGk=\x07.txt").symlink_to(SECRETS["reference"])
    result = CliRunner().invoke(
        cli,
        ["assignment3", "--submission", str(submission), "--course", str(ROOT), "--device", "cpu"],
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ref\\x1b]52;c;aGk=\\x07.txt is a symbolic link" in lines[0]
    assert "\x1b" not in result.output
    assert "def softmax" not in result.output


def test_the_workers_copy_never_recreates_a_link(tmp_path):
    """The proxy copies the prepared submission again for each worker: never a link either."""
    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "probe.py").write_text("")
    (folder / "secret.py").symlink_to(SECRETS["reference"])
    box = Sandbox(folder, "probe", Limits(call_timeout_s=2.0))
    try:
        with pytest.raises(BadInput, match=r"secret\.py is a symbolic link"):
            box._prepare_folder()
        assert not (box.folder / "submission" / "secret.py").is_symlink()
    finally:
        box.close()
