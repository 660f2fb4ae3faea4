"""Student bundles: public checks only, no reference code, and they grade like the course.

The assignment1 bundle is built once per module with the correct fixture as `--solution`
(its public checks ask the reference for truth tables, so the bundle ships recorded answers).
"""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT

from grader import __version__
from grader.cli import cli
from grader.course import Course, load_course
from grader.errors import BadInput
from grader.refcache import ANSWERS_FILE, CachedReference, RecordedReference, Recorder
from grader.release import build_release
from grader.runner import grade

COURSE = load_course(ROOT)
CORRECT = FIXTURES / "assignment1" / "correct"
STUB = ROOT / "student_template" / "assignment1"
REFERENCE_SOURCE = "import numpy as np\n\ndef double(x):\n    return np.asarray(x) * 2\n\nK = 3\n"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / "assignment1-bundle"
    return build_release("assignment1", folder, course=COURSE, solution=CORRECT)


def test_hidden_checks_absent_from_release_bundle(bundle):
    files = {bundle.folder / f for f in bundle.files}
    assert not any("hidden" in f.relative_to(bundle.folder).parts for f in files)
    assert not (bundle.folder / "reference").exists()
    secret = [*(COURSE.assignment("assignment1").hidden_checks.glob("*.py"))]
    secret.append(ROOT / "reference" / "assignment1.py")
    contents = {f.read_bytes() for f in files}
    assert not any(s.read_bytes() in contents for s in secret)
    for source in (f for f in files if f.suffix == ".py"):
        assert "torchref" not in source.read_text() and "import torch" not in source.read_text()
    assert bundle.hidden_points == 60 and bundle.public_points == 40


def test_bundle_holds_the_stub_readme_toml_and_public_checks(bundle):
    assert set(bundle.files) == {
        "README.md",
        "requirements.txt",
        "assignment1/README.md",
        "assignment1/perceptron.py",
        "assignments/assignment1/README.md",
        "assignments/assignment1/assignment.toml",
        "assignments/assignment1/checks/public/test_gates.py",
        f"assignments/assignment1/checks/{ANSWERS_FILE}",
        "student_template/assignment1/perceptron.py",
    }
    assert (bundle.folder / "assignment1" / "perceptron.py").read_bytes() == (
        STUB / "perceptron.py"
    ).read_bytes()
    assignment = Course(bundle.folder).assignment("assignment1")
    assert assignment.release_bundle
    assert not COURSE.assignment("assignment1").release_bundle
    answers = json.loads((assignment.checks_dir / ANSWERS_FILE).read_text())
    assert answers["functions"] == ["truth_table"] and len(answers["answers"]) == bundle.answers


def test_bundle_pins_the_grader_in_a_requirements_file(bundle, tmp_path):
    # setup-python's pip cache needs a requirements file, and students must grade with the
    # course's version of the grader: the bundle ships one that pins it.
    lines = (bundle.folder / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [f"dl-grader=={__version__}"]
    assert "pip install -r requirements.txt" in (bundle.folder / "README.md").read_text()
    wheel = "dl-grader @ https://example.edu/dl_grader-0.1.0-py3-none-any.whl"
    other = build_release("assignment1", tmp_path / "b", course=COURSE, requirement=wheel)
    assert (other.folder / "requirements.txt").read_text().endswith(f"\n{wheel}\n")
    with pytest.raises(BadInput, match="one pip requirement on one line"):
        build_release("assignment1", tmp_path / "c", course=COURSE, requirement="a\nb")


def test_bundle_gives_the_correct_fixture_full_public_points_and_the_stub_none(bundle):
    course = Course(bundle.folder)
    correct = grade("assignment1", CORRECT, course=course, device="cpu")
    assert (correct.score, correct.max_score) == (40, 40)
    assert correct.public_only
    assert all(not t.hidden for t in correct.tests)
    stub = grade("assignment1", STUB, course=course, device="cpu")
    assert stub.score == 0 and len(stub.tests) == len(correct.tests)


def test_grade_inside_the_bundle_says_hidden_checks_run_at_submission(
    bundle, tmp_path, monkeypatch
):
    work = tmp_path / "bundle"
    shutil.copytree(bundle.folder, work)
    shutil.copy2(CORRECT / "perceptron.py", work / "assignment1" / "perceptron.py")
    monkeypatch.chdir(work)
    monkeypatch.delenv("DL_GRADER_COURSE", raising=False)
    result = CliRunner().invoke(cli, ["assignment1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "40/40" in result.output
    assert "hidden checks run when you submit" in " ".join(result.output.split())


def test_release_refuses_to_overwrite_what_is_not_an_older_bundle(bundle, tmp_path):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(BadInput, match="not empty"):
        build_release("assignment1", mine, course=COURSE)
    with pytest.raises(BadInput, match="not a student bundle"):
        build_release("assignment1", mine, course=COURSE, force=True)
    assert (mine / "notes.txt").read_text() == "precious"


def test_release_cli_writes_a_zip_and_replaces_an_older_bundle_with_force(bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(bundle.folder, target)
    (target / "stale.txt").write_text("old")
    arguments = ["release", "assignment1", "-o", str(target), "--course", str(ROOT), "--zip"]
    refused = CliRunner().invoke(cli, arguments)
    assert refused.exit_code == 2 and "--force" in refused.output
    result = CliRunner().invoke(cli, [*arguments, "--force"])
    assert result.exit_code == 0, result.output
    assert "public checks worth 40 points" in result.output
    assert not (target / "stale.txt").exists()
    assert (tmp_path / "b.zip").is_file()


def test_recorded_reference_replays_answers_and_skips_unknown_inputs(tmp_path):
    reference = types.ModuleType("reference")
    exec(REFERENCE_SOURCE, reference.__dict__)
    recorder = Recorder()
    recorded = CachedReference(reference, recorder, "")
    recorded.double(np.arange(3))
    assert recorded.K == 3
    recorder.write(tmp_path / ANSWERS_FILE, "assignmentX", 1234)
    replay = RecordedReference(tmp_path / ANSWERS_FILE)
    np.testing.assert_array_equal(replay.double(np.arange(3)), [0, 2, 4])
    assert replay.K == 3
    with pytest.raises(pytest.skip.Exception, match="default seed 1234"):
        replay.double(np.arange(4))
    with pytest.raises(pytest.skip.Exception):
        replay.triple(1)


def test_a_bundle_from_an_older_answers_format_says_to_release_again(bundle, tmp_path):
    work = tmp_path / "bundle"
    shutil.copytree(bundle.folder, work)
    answers = next(work.rglob(ANSWERS_FILE))
    document = json.loads(answers.read_text())
    answers.write_text(json.dumps({**document, "version": 1}))
    shutil.copy2(CORRECT / "perceptron.py", work / "assignment1" / "perceptron.py")
    result = CliRunner().invoke(
        cli, ["assignment1", "--course", str(work), "--submission", str(work / "assignment1")]
    )
    assert result.exit_code == 3
    assert "run `grade release` again" in " ".join(result.output.split())
