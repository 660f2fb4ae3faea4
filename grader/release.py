"""Build a student bundle: the stub, the README, assignment.toml and the public checks.

A bundle is a course root the grader finds by itself (`assignments/NAME/`, `student_template/
NAME/`) plus a working folder `NAME/`, so `grade NAME` inside it grades the student's copy
with the public checks and says that hidden checks run at submission (assignment.toml gets a
`[release]` table). It never holds hidden checks or reference code.

Public checks may still ask the `reference` fixture for expected values. Instead of shipping
the reference, `build_release` runs the public checks in the full course with a
`refcache.Recorder` active -- on the stub and, when given, on a known-correct solution -- and
ships every answer the reference gave as data (`checks/reference_answers.json`); in the
bundle, `refcache.RecordedReference` replays them and skips a check (saying why) when asked
for an input it has no answer for. The bundle is then verified: the same submissions graded
inside it must score exactly what the public checks gave them in the full course.

With `notebook`, the working folder holds the starter notebook (`grader.notebook.starter`)
instead of the stub module, and it must score in the bundle what the stub scores.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader import __version__
from grader.course import Assignment, Course, load_course
from grader.errors import BadInput, GraderError
from grader.notebook.starter import starter_notebook
from grader.refcache import ANSWERS_FILE, Recorder, caching
from grader.result import Grade
from grader.runner import DEFAULT_SEED, grade

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".DS_Store")
REQUIREMENTS = "requirements.txt"


def default_requirement() -> str:
    """The pip requirement of this grader's own version, which a bundle pins by default."""
    return f"dl-grader=={__version__}"


def _requirements(requirement: str) -> str:
    return (
        "# The grader this assignment is graded with, pinned to the version the course uses:\n"
        "#   pip install -r requirements.txt      (torch first, for a CPU-only machine:\n"
        "#   pip install torch --index-url https://download.pytorch.org/whl/cpu)\n"
        f"{requirement}\n"
    )


@dataclass(frozen=True)
class Release:
    """A built bundle: where it is, what it holds, and how it was verified."""

    assignment: str
    folder: Path
    files: tuple[str, ...]
    answers: int
    public_points: float
    hidden_points: float
    verified: tuple[str, ...]
    warnings: tuple[str, ...]


def _outcome(result: Grade) -> list[tuple[str, float, str]]:
    return [(t.id, t.score, t.status) for t in result.tests]


def _record(
    assignment: Assignment, course: Course, submissions: list[Path], seed: int
) -> tuple[Recorder, dict[Path, Grade]]:
    """Grade `submissions` with the public checks, recording every reference answer."""
    recorder = Recorder()
    grades = {}

    def on_start(name: str, limit: float, budget: float | None, hidden: bool) -> None:
        recorder.current_check = name

    with caching(recorder):
        for submission in submissions:
            grades[submission] = grade(
                assignment.name,
                submission,
                course=course,
                seed=seed,
                device="cpu",
                public_only=True,
                on_start=on_start,
            )
    if recorder.problems:
        raise BadInput(
            "the public checks use the reference in a way a student bundle cannot answer "
            f"(only plain-data calls can be recorded): {recorder.problems[0]}. Make the check "
            "compute its expected value itself, or move it to the hidden checks."
        )
    return recorder, grades


def _toml_with_release(assignment: Assignment, public: float, hidden: float) -> str:
    text = (assignment.folder / "assignment.toml").read_text(encoding="utf-8")
    return (
        text.rstrip("\n")
        + "\n\n[release]\n"
        + "# A student bundle made by `grade release`: public checks only; the hidden checks\n"
        + "# run when you submit.\n"
        + f"public_points = {public:g}\n"
        + f"hidden_points = {hidden:g}\n"
        + f'grader_version = "{__version__}"\n'
    )


def _readme(assignment: Assignment, public: float, hidden: float, notebook: bool) -> str:
    name = assignment.name
    files = f"{assignment.module}.ipynb" if notebook else ", ".join(assignment.files)
    return f"""# {name}: {assignment.title}

Your work goes in `{name}/` ({files}); the exercise is in `{name}/README.md`.

Grade it from this folder, with the course's grader installed (`requirements.txt` pins
it):

```bash
pip install -r requirements.txt
grade {name}
```

This bundle has the public checks, worth {public:g} of the {assignment.points:g} points. The
hidden checks ({hidden:g} points) run when you submit, on inputs you have not seen, so test
more than the public checks do.
"""


def _is_bundle(folder: Path) -> bool:
    return any(
        "[release]" in toml.read_text(encoding="utf-8", errors="replace")
        for toml in folder.glob("assignments/*/assignment.toml")
    )


def _check_output(output: Path, force: bool) -> None:
    """Refuse to overwrite anything but an empty folder or, with `force`, an older bundle."""
    if not output.exists():
        return
    if not output.is_dir():
        raise BadInput(f"{output} exists and is not a folder.")
    if not any(output.iterdir()):
        return
    if not force:
        raise BadInput(f"{output} already exists and is not empty; use --force to replace it.")
    if not _is_bundle(output):
        raise BadInput(f"{output} is not a student bundle; refusing to replace it.")


def _copy_bundle(
    assignment: Assignment,
    stage: Path,
    recorder: Recorder,
    seed: int,
    points: tuple[float, float],
    requirement: str,
    notebook: bool,
) -> None:
    public, hidden = points
    name = assignment.name
    target = stage / "assignments" / name
    (target / "checks").mkdir(parents=True)
    (target / "assignment.toml").write_text(
        _toml_with_release(assignment, public, hidden), encoding="utf-8"
    )
    shutil.copytree(assignment.public_checks, target / "checks" / "public", ignore=IGNORED)
    conftest = assignment.checks_dir / "conftest.py"
    if conftest.is_file():
        shutil.copy2(conftest, target / "checks" / "conftest.py")
    recorder.write(target / "checks" / ANSWERS_FILE, name, seed)
    if assignment.template_dir.is_dir():
        shutil.copytree(assignment.template_dir, stage / "student_template" / name, ignore=IGNORED)
    if notebook:
        (stage / name).mkdir()
        (stage / name / f"{assignment.module}.ipynb").write_text(
            starter_notebook(assignment), encoding="utf-8"
        )
    elif assignment.template_dir.is_dir():
        shutil.copytree(assignment.template_dir, stage / name, ignore=IGNORED)
    if assignment.readme.is_file():
        shutil.copy2(assignment.readme, target / "README.md")
        (stage / name).mkdir(exist_ok=True)
        shutil.copy2(assignment.readme, stage / name / "README.md")
    readme = _readme(assignment, public, hidden, notebook)
    (stage / "README.md").write_text(readme, encoding="utf-8")
    (stage / REQUIREMENTS).write_text(_requirements(requirement), encoding="utf-8")


def _verify(
    assignment: Assignment, bundle: Path, expected: dict[Path, Grade], seed: int
) -> list[str]:
    """Grade each submission inside the bundle; it must score what the full course gave it."""
    course = Course(bundle.resolve())
    notes = []
    for submission, want in expected.items():
        got = grade(assignment.name, submission, course=course, seed=seed, device="cpu")
        if not got.public_only:
            raise GraderError("the bundle's assignment.toml is not marked as a release.")
        if _outcome(got) != _outcome(want):
            differences = [
                f"{a[0]}: {a[1]:g} ({a[2]}) in the bundle, {b[1]:g} ({b[2]}) in the course"
                for a, b in zip(_outcome(got), _outcome(want), strict=False)
                if a != b
            ] or ["the bundle ran different checks"]
            raise GraderError(f"the bundle grades {submission} differently: {differences[0]}")
        score = f"{got.score:g}/{got.max_score:g}"
        notes.append(f"{submission}: {score} in the bundle, as in the full course")
    return notes


def _verify_notebook(
    assignment: Assignment, bundle: Path, expected: dict[Path, Grade], seed: int
) -> str:
    """Grade the bundle's starter notebook: it must score what the stub scores in the course."""
    stub = expected.get(assignment.template_dir)
    if stub is None:
        raise BadInput(f"{assignment.name} has no student template to make a notebook of.")
    path = bundle / assignment.name / f"{assignment.module}.ipynb"
    got = grade(assignment.name, path, course=Course(bundle.resolve()), seed=seed, device="cpu")
    if _outcome(got) != _outcome(stub):
        raise GraderError(f"the bundle's notebook grades differently from the stub {path.name}.")
    name = f"{assignment.name}/{path.name}"
    return f"{name}: {got.score:g}/{got.max_score:g} in the bundle, as the stub in the full course"


def build_release(
    assignment_name: str,
    output: Path,
    *,
    course: Course | None = None,
    solution: Path | None = None,
    force: bool = False,
    seed: int = DEFAULT_SEED,
    requirement: str | None = None,
    notebook: bool = False,
) -> Release:
    """Write the student bundle of `assignment_name` to `output` and verify it.

    `solution` is a known-correct submission: the answers it makes the reference give are
    recorded too, and the bundle must give it the same full public score as the course.
    `requirement` is the pip requirement of the grader that the bundle's requirements.txt
    pins (default: this grader's version on the package index, `dl-grader==VERSION`).
    With `notebook`, students start from the starter notebook rather than the stub module.
    """
    requirement = requirement or default_requirement()
    if "\n" in requirement or "\r" in requirement or not requirement.strip():
        raise BadInput("--grader-requirement must be one pip requirement on one line.")
    course = course or load_course()
    assignment = course.assignment(assignment_name)
    if not assignment.public_checks.is_dir():
        raise BadInput(f"{assignment.name} has no public checks to release.")
    if solution is not None and not solution.exists():
        raise BadInput(f"solution not found: {solution}")
    output = Path(output)
    _check_output(output, force)
    submissions = [p for p in (assignment.template_dir, solution) if p is not None and p.exists()]
    if not submissions:
        raise BadInput(f"{assignment.name} has no student template and no --solution was given.")
    recorder, grades = _record(assignment, course, submissions, seed)
    public = next(iter(grades.values())).max_score
    hidden = max(0.0, assignment.points - public)
    warnings = []
    if recorder.answers and solution is None:
        warnings.append(
            "the public checks use the reference and no --solution was given: answers were "
            "recorded on the stub only, so a check whose reference inputs depend on the "
            "student's results may be skipped in the bundle."
        )
    if solution is not None and grades[solution].score < public:
        raise BadInput(
            f"--solution {solution} scores {grades[solution].score:g}/{public:g} on the public "
            "checks; a solution used to record answers must pass them all."
        )

    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        _copy_bundle(assignment, stage, recorder, seed, (public, hidden), requirement, notebook)
        verified = _verify(assignment, stage, grades, seed)
        if notebook:
            verified.append(_verify_notebook(assignment, stage, grades, seed))
        if output.exists():
            shutil.rmtree(output)
        stage.rename(output)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
        raise
    files = tuple(
        sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    )
    return Release(
        assignment=assignment.name,
        folder=output,
        files=files,
        answers=len(recorder.answers),
        public_points=public,
        hidden_points=hidden,
        verified=tuple(verified),
        warnings=tuple(warnings),
    )
