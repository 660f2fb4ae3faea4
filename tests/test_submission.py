"""Finding a submission's files, and refusing archives that could escape or explode."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from support import FIXTURES

from grader.errors import BadInput
from grader.submission import MAX_EXTRACTED_BYTES, hash_files, prepare

SOURCE = (FIXTURES / "assignment1" / "correct" / "perceptron.py").read_text()


@pytest.fixture
def assignment(course):
    return course.assignment("assignment1")


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "layout",
    ["perceptron.py", "assignment1/perceptron.py", "wrapper/perceptron.py",
     "wrapper/assignment1/perceptron.py"],
)  # fmt: skip
def test_files_are_found_in_each_accepted_layout(tmp_path, assignment, layout):
    archive = _zip(tmp_path / "s.zip", {layout: SOURCE.encode()})
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare(archive, assignment, work)
    assert (prepared.folder / "perceptron.py").read_text() == SOURCE


def test_hash_depends_only_on_the_assignment_files(tmp_path, assignment):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "perceptron.py").write_text(SOURCE)
    before = hash_files(folder, assignment.files)
    (folder / "notes.txt").write_text("scratch")
    assert hash_files(folder, assignment.files) == before
    (folder / "perceptron.py").write_text(SOURCE + "\n# edit\n")
    assert hash_files(folder, assignment.files) != before


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../escape.py": b"x", "perceptron.py": b"x"}, "unsafe path"),
        ({"/abs/perceptron.py": b"x"}, "unsafe path"),
        ({"notes.txt": b"nothing here"}, "no perceptron.py"),
    ],
)
def test_unsafe_or_empty_archives_are_refused(tmp_path, assignment, members, message):
    archive = _zip(tmp_path / "s.zip", members)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BadInput, match=message):
        prepare(archive, assignment, work)
    assert not (tmp_path / "escape.py").exists()


def test_symlinks_in_archives_are_refused(tmp_path, assignment):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("perceptron.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BadInput, match="symbolic link"):
        prepare(archive, assignment, work)


def test_zip_bombs_are_refused_before_extraction(tmp_path, assignment):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("perceptron.py", SOURCE)
        zf.writestr("padding.bin", b"\0" * (MAX_EXTRACTED_BYTES + 1))
    assert archive.stat().st_size < 1 << 20
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BadInput, match="unpacks to more than"):
        prepare(archive, assignment, work)
    assert not (work / "unpacked" / "padding.bin").exists()


def test_a_file_that_is_not_a_zip_is_refused(tmp_path, assignment):
    path = tmp_path / "perceptron.txt"
    path.write_text("hello")
    with pytest.raises(BadInput, match=r"neither a folder nor a \.zip"):
        prepare(path, assignment, tmp_path)


@pytest.mark.parametrize("cut", [10, 0.5, -22])
def test_a_truncated_zip_is_not_a_readable_zip_file(tmp_path, assignment, cut):
    data = _zip(tmp_path / "whole.zip", {"perceptron.py": SOURCE.encode()}).read_bytes()
    archive = tmp_path / "bob.zip"
    archive.write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(BadInput, match=r"bob\.zip is not a readable zip file"):
        prepare(archive, assignment, tmp_path)


@pytest.mark.parametrize("zipped", [False, True])
def test_a_submission_with_two_copies_of_a_file_says_which_it_graded(tmp_path, assignment, zipped):
    members = {
        "perceptron.py": SOURCE.encode(),
        "assignment1/perceptron.py": b"raise SystemExit('the other copy')\n",
    }
    if zipped:
        source = _zip(tmp_path / "s.zip", members)
    else:
        source = tmp_path / "s"
        for name, data in members.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare(source, assignment, work)
    assert (prepared.folder / "perceptron.py").read_text() == SOURCE
    assert prepared.notes == (
        "graded perceptron.py; assignment1/perceptron.py was ignored (a submission holds "
        "one copy of each file).",
    )


def test_a_submission_with_one_copy_has_no_notes(tmp_path, assignment):
    archive = _zip(tmp_path / "s.zip", {"assignment1/perceptron.py": SOURCE.encode()})
    work = tmp_path / "work"
    work.mkdir()
    assert prepare(archive, assignment, work).notes == ()
