"""The gradebook meets the LMS: Canvas bulk downloads and Gradescope exports read as students,
a roster that maps submissions to student ids, Canvas and Moodle grade imports, a reason for
every row not graded normally, and a batch that never grades its own output."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT

from grader.batch import grade_batch
from grader.cli import cli
from grader.course import load_course
from grader.errors import BadInput
from grader.lms import Person, class_list, exports
from grader.roster import find_students, stage

COURSE = load_course(ROOT)
CORRECT = (FIXTURES / "assignment1" / "correct" / "perceptron.py").read_text()
LIMITS = COURSE.assignment("assignment1").limits.with_overrides(call_timeout_s=5.0)
FILES = ("perceptron.py",)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


# -- what a submissions folder holds ---------------------------------------------------------


def test_a_canvas_bulk_download_is_grouped_per_student_and_named_by_the_student(tmp_path):
    subs = tmp_path / "subs"
    _write(subs / "smithalice_1234_5678_perceptron.py", "alice")
    _write(subs / "smithalice_1234_5679_notes.txt", "notes")
    _write(subs / "jonesbob_LATE_2345_6789_perceptron-1.py", "bob, resubmitted")
    _write(subs / "leecarl_3456_7890_perceptron-1.py", "carl, old")
    _write(subs / "leecarl_3456_7891_perceptron-2.py", "carl, latest")
    with zipfile.ZipFile(subs / "kimdana_4567_8901_work.zip", "w") as zf:
        zf.writestr("perceptron.py", "dana")
    _write(subs / "syllabus.pdf", "")
    students, ignored, warnings = find_students(subs, files=FILES)
    assert [s.name for s in students] == ["jonesbob", "kimdana", "leecarl", "smithalice"]
    assert ignored == ["syllabus.pdf"] and warnings == []
    by_name = {s.name: s for s in students}
    assert by_name["kimdana"].path == subs / "kimdana_4567_8901_work.zip"
    assert by_name["smithalice"].people == (Person(name="smithalice", canvas_id="1234"),)
    staged = {name: stage(s, tmp_path / "staging") for name, s in by_name.items()}
    assert (staged["smithalice"].path / "perceptron.py").read_text() == "alice"
    assert (staged["smithalice"].path / "notes.txt").read_text() == "notes"
    assert (staged["jonesbob"].path / "perceptron.py").read_text() == "bob, resubmitted"
    assert (staged["leecarl"].path / "perceptron.py").read_text() == "carl, latest"
    assert staged["kimdana"] == by_name["kimdana"]


def test_canvas_students_with_the_same_name_stay_two_students(tmp_path):
    subs = tmp_path / "subs"
    _write(subs / "leesam_111_1_perceptron.py", "one")
    _write(subs / "leesam_222_2_perceptron.py", "two")
    students, _, _ = find_students(subs, files=FILES)
    assert [s.name for s in students] == ["leesam_111", "leesam_222"]


def test_a_bulk_file_that_is_a_link_is_never_read(tmp_path):
    subs = tmp_path / "subs"
    secret = _write(tmp_path / "secret.py", "secret")
    subs.mkdir()
    (subs / "evemal_999_1_perceptron.py").symlink_to(secret)
    students, ignored, _ = find_students(subs, files=FILES)
    assert students == [] and ignored == ["evemal_999_1_perceptron.py"]


METADATA = """\
submission_101:
  :submitters:
  - :name: Alice Smith
    :sid: 00123
    :email: alice@example.edu
  :created_at: 2025-02-01 10:00:00.000000000 -08:00
  :score: !ruby/object:BigDecimal 18:0.9e2
submission_102:
  :submitters:
  - :name: "Bob \\e[31mJones"
    :sid: '456'
    :email: bob@example.edu
  - :name: Carol Lee
    :sid: '789'
    :email: carol@example.edu
submission_103:
  :submitters: []
"""


def test_a_gradescope_export_is_named_by_who_submitted(tmp_path):
    subs = tmp_path / "export"
    _write(subs / "submission_metadata.yml", METADATA)
    for number in (101, 102, 103):
        _write(subs / f"submission_{number}" / "perceptron.py", CORRECT)
    students, ignored, _ = find_students(subs, files=FILES)
    names = [s.shown for s in students]
    assert names == ["Alice Smith", "Bob \\x1b[31mJones & Carol Lee", "submission_103"]
    assert ignored == []
    alice = students[0]
    assert alice.path == subs / "submission_101"
    assert alice.people == (
        Person(
            name="Alice Smith",
            sis_user_id="00123",
            email="alice@example.edu",
            identifier="alice@example.edu",
        ),
    )
    assert [p.sis_user_id for p in students[1].people] == ["456", "789"]


def test_unreadable_gradescope_metadata_is_one_clear_line(tmp_path):
    subs = tmp_path / "export"
    _write(subs / "submission_metadata.yml", "a: [unclosed\n")
    with pytest.raises(BadInput, match=r"submission_metadata\.yml is not readable YAML"):
        find_students(subs, files=FILES)


def test_the_output_folder_inside_the_submissions_is_never_a_student(tmp_path):
    subs = tmp_path / "subs"
    _write(subs / "alice" / "perceptron.py", CORRECT)
    _write(subs / "grades" / "results" / "alice.json", "{}")
    _write(subs / "old" / "gradebook.csv", "")
    _write(subs / "old" / "summary.json", "{}")
    (subs / "old" / "results").mkdir()
    students, _, warnings = find_students(subs, output=subs / "grades")
    assert [s.name for s in students] == ["alice"]
    assert len(warnings) == 2
    assert all("is the output folder of a batch" in w for w in warnings)


def test_names_that_differ_only_in_case_are_warned_about(tmp_path):
    subs = tmp_path / "subs"
    for name in ("Kim", "kim", "lee"):
        _write(subs / name / "perceptron.py", CORRECT)
    students, _, warnings = find_students(subs)
    assert len(students) == 3
    assert warnings == [
        "Kim and kim differ only in case: a case-insensitive disk (macOS, Windows) would make "
        "them one folder; check that they are different students."
    ]


# -- the roster and the LMS files --------------------------------------------------------------

CANVAS_EXPORT = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Assignment 1 (77)\n"
    "    Points Possible,,,,,100\n"
    '"Smith, Alice",1234,S001,asmith,Sec 1,\n'
    '"Jones, Bob",2345,S002,bjones,Sec 2,\n'
    '"Lee, Carl",3456,S003,clee,Sec 1,\n'
)


def test_a_canvas_gradebook_export_is_a_roster(tmp_path):
    roster = class_list.load(_write(tmp_path / "roster.csv", "\ufeff" + CANVAS_EXPORT))
    assert [e.person.name for e in roster.entries] == ["Smith, Alice", "Jones, Bob", "Lee, Carl"]
    alice = roster.entries[0]
    assert alice.person == Person("Smith, Alice", "1234", "S001", "asmith", "Sec 1")
    assert roster.match("asmith", ()) == [alice]
    assert roster.match("ASmith", ()) == [alice]
    assert roster.match("smithalice", (Person(canvas_id="1234"),)) == [alice]
    assert roster.match("nobody", ()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,grade\nalice,1\n", "has none of the columns"),
        ("", "is empty"),
    ],
)
def test_a_roster_without_ids_is_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(BadInput, match=message):
        class_list.load(_write(tmp_path / "roster.csv", text))
    with pytest.raises(BadInput, match="cannot read the roster"):
        class_list.load(tmp_path / "missing.csv")


def test_grades_follow_the_roster_and_say_who_is_missing_or_unmatched():
    roster = class_list.ClassList(
        tuple(
            class_list.Entry(Person(name=name, sis_login_id=login))
            for name, login in (("Alice", "alice"), ("Bob", "bob"), ("Carl", "carl"))
        )
    )
    grades = class_list.grades_for(
        [("carl", (), 40.0), ("alice", (), 90.0), ("zed", (), 10.0), ("Alice", (), 95.0)],
        roster,
    )
    assert [(p.name, score) for p, score in grades.grades] == [("Alice", 95.0), ("Carl", 40.0)]
    assert grades.unmatched == ("zed",)
    assert grades.missing == ("Bob",)
    assert grades.ambiguous == ("Alice",)


def test_canvas_and_moodle_files_have_their_columns_and_no_formulas():
    people = [
        (Person("=HYPERLINK(1)", "1234", "S001", "asmith", "Sec 1", "a@x.edu"), 92.5),
        (Person("Bob", sis_user_id="S002", identifier="bob01"), 0.0),
    ]
    canvas = list(csv.reader(io.StringIO(exports.canvas_csv(people, "Assignment 1 (77)"))))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                         "Assignment 1 (77)"]  # fmt: skip
    assert canvas[1] == ["'=HYPERLINK(1)", "1234", "S001", "asmith", "Sec 1", "92.5"]
    assert canvas[2] == ["Bob", "", "S002", "", "", "0"]
    moodle = list(csv.reader(io.StringIO(exports.moodle_csv(people))))
    assert moodle == [["identifier", "grade"], ["a@x.edu", "92.5"], ["bob01", "0"]]


# -- a batch from a roster to the LMS files ----------------------------------------------------


@pytest.fixture(scope="module")
def lms_class(tmp_path_factory):
    """A Canvas bulk download with a syntax error, a truncated zip, a late resubmission and an
    output folder written inside it, graded with a Canvas gradebook export as the roster."""
    root = tmp_path_factory.mktemp("lms")
    subs = root / "subs"
    _write(subs / "smithalice_1234_1_perceptron.py", CORRECT)
    _write(subs / "jonesbob_LATE_2345_2_perceptron-1.py", CORRECT.replace("def XOR(", "def XOR"))
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w") as zf:
        zf.writestr("perceptron.py", CORRECT)
    (subs / "leecarl_3456_3_work.zip").write_bytes(whole.getvalue()[:40])
    _write(subs / "stranger_9999_4_perceptron.py", CORRECT)
    roster = _write(root / "roster.csv", CANVAS_EXPORT + '"Kim, Dana",4567,S004,dkim,Sec 2,\n')
    output = subs / "grades"
    result = grade_batch(
        "assignment1",
        subs,
        output,
        course=COURSE,
        jobs=1,
        device="cpu",
        limits=LIMITS,
        roster=roster,
        lms_exports=("canvas", "moodle"),
        lms_column="Assignment 1 (77)",
        bom=True,
    )
    return subs, output, result


def test_every_row_below_full_score_not_graded_normally_has_a_reason(lms_class):
    _, output, result = lms_class
    rows = {r["student"]: r for r in _rows(output / "gradebook.csv")}
    assert set(rows) == {"jonesbob", "leecarl", "smithalice", "stranger"}
    assert rows["smithalice"]["score"] == "100" and rows["smithalice"]["reason"] == ""
    assert rows["jonesbob"]["status"] == "graded"
    assert rows["jonesbob"]["reason"].startswith("perceptron.py could not be imported: SyntaxError")
    assert rows["leecarl"]["status"] == "rejected"
    assert "is not a readable zip file" in rows["leecarl"]["reason"]
    assert result.summary["lms"]["unmatched_submissions"] == ["stranger"]
    assert result.summary["lms"]["roster_without_submission"] == ["Kim, Dana"]


def test_the_canvas_and_moodle_files_carry_the_rosters_ids_in_points(lms_class):
    _, output, _ = lms_class
    for name in ("gradebook.csv", "canvas.csv", "moodle.csv"):
        assert (output / name).read_bytes().startswith(b"\xef\xbb\xbf"), name
    canvas = _rows(output / "canvas.csv")
    assert [(r["Student"], r["ID"], r["SIS Login ID"], r["Assignment 1 (77)"]) for r in canvas] == [
        ("Smith, Alice", "1234", "asmith", "100"),
        ("Jones, Bob", "2345", "bjones", "0"),
        ("Lee, Carl", "3456", "clee", "0"),
    ]
    moodle = _rows(output / "moodle.csv")
    assert [(r["identifier"], r["grade"]) for r in moodle] == [
        ("asmith", "100"),
        ("bjones", "0"),
        ("clee", "0"),
    ]


def test_the_batch_never_grades_its_own_output_folder(lms_class):
    subs, output, result = lms_class
    assert "grades" not in {r.student for r in result.rows}
    # the second run sees the output folder in the submissions: it is left out, and says so
    again = grade_batch("assignment1", subs, output, course=COURSE, device="cpu", limits=LIMITS)
    assert "grades" not in {r.student for r in again.rows}
    assert any("grades is the output folder" in w for w in again.warnings)
    assert again.graded == 0 and again.up_to_date == 4


def test_batch_cli_refuses_a_missing_roster_with_one_line(tmp_path):
    (tmp_path / "subs").mkdir()
    result = CliRunner().invoke(
        cli,
        ["batch", "assignment1", str(tmp_path / "subs"), "-o", str(tmp_path / "out"),
         "--roster", str(tmp_path / "nope.csv"), "--export", "canvas", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot read the roster" in result.stderr
    assert "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "out" / "canvas.csv")


def test_the_summary_lists_the_exports_and_warnings(lms_class):
    _, output, result = lms_class
    assert result.summary["lms"]["exports"]["canvas"] == {"rows": 3, "left_out": []}
    assert result.summary["warnings"] == list(result.warnings)
    assert set(json.loads((output / "summary.json").read_text())) >= {"lms", "warnings"}


def test_a_gradescope_export_without_pyyaml_says_how_to_install_it(tmp_path, monkeypatch):
    subs = tmp_path / "export"
    _write(subs / "submission_metadata.yml", METADATA)
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(BadInput, match=r"needs PyYAML: pip install 'dl-grader\[lms\]'"):
        find_students(subs, files=FILES)
