"""Find the course (assignments, references, templates) and read each `assignment.toml`.

Course content is data for the tool: a folder with `assignments/NAME/` (assignment.toml,
README.md, checks/public, checks/hidden), `reference/NAME.py` and `student_template/NAME/`.
It is found from `--course`, then `DL_GRADER_COURSE`, then the current folder and its
parents, then the folder the grader package was installed from.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from grader.errors import BadInput, GraderError
from grader.sandbox.limits import Limits

ENV_VARIABLE = "DL_GRADER_COURSE"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


@dataclass(frozen=True)
class Assignment:
    """One assignment's metadata and where its parts live."""

    name: str
    title: str
    points: float
    files: tuple[str, ...]
    limits: Limits
    folder: Path
    course_root: Path
    forbidden_imports: tuple[str, ...] = ()
    hidden_visibility: str = "after_published"
    release_bundle: bool = False

    @property
    def module(self) -> str:
        """The module name the `student` fixture imports (the first file, without .py)."""
        return Path(self.files[0]).stem

    @property
    def checks_dir(self) -> Path:
        return self.folder / "checks"

    @property
    def public_checks(self) -> Path:
        return self.checks_dir / "public"

    @property
    def hidden_checks(self) -> Path:
        return self.checks_dir / "hidden"

    @property
    def readme(self) -> Path:
        return self.folder / "README.md"

    @property
    def template_dir(self) -> Path:
        return self.course_root / "student_template" / self.name

    @property
    def reference_path(self) -> Path:
        return self.course_root / "reference" / f"{self.name}.py"


@dataclass(frozen=True)
class Course:
    """All assignments under one course root."""

    root: Path

    @cached_property
    def assignments(self) -> dict[str, Assignment]:
        folder = self.root / "assignments"
        found = {}
        for toml_path in sorted(folder.glob("*/assignment.toml")):
            assignment = _load_assignment(toml_path, self.root)
            found[assignment.name] = assignment
        return found

    def assignment(self, name: str) -> Assignment:
        """The named assignment, or `BadInput` naming the closest match."""
        if name in self.assignments:
            return self.assignments[name]
        close = difflib.get_close_matches(name, list(self.assignments), n=1)
        suggestion = f" Did you mean '{close[0]}'?" if close else ""
        known = ", ".join(self.assignments) or "none"
        raise BadInput(f"unknown assignment '{name}'.{suggestion} Known: {known}.")


def _load_assignment(path: Path, root: Path) -> Assignment:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        limits = Limits.from_mapping(data.get("limits", {}))
        files = tuple(data["files"])
        visibility = dict(data.get("gradescope", {})).get("hidden_visibility", "after_published")
        if visibility not in VISIBILITIES:
            raise ValueError(f"[gradescope] hidden_visibility must be one of {VISIBILITIES}")
        if not files or not all(isinstance(f, str) and f.endswith(".py") for f in files):
            raise ValueError("`files` must list the .py files students edit")
        return Assignment(
            name=path.parent.name,
            title=str(data["title"]),
            points=float(data["points"]),
            files=files,
            limits=limits,
            folder=path.parent,
            course_root=root,
            forbidden_imports=tuple(str(m) for m in data.get("forbidden_imports", ())),
            hidden_visibility=visibility,
            release_bundle="release" in data,
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise GraderError(f"{path} is invalid: {error}") from error


def _is_course(folder: Path) -> bool:
    return (folder / "assignments").is_dir()


def load_course(explicit: Path | None = None) -> Course:
    """Locate the course root (see module docstring) and return it."""
    if explicit is not None:
        if not _is_course(explicit):
            raise BadInput(f"{explicit} is not a course folder (it has no assignments/ folder).")
        return Course(explicit.resolve())
    from_env = os.environ.get(ENV_VARIABLE)
    if from_env:
        if not _is_course(Path(from_env)):
            raise BadInput(f"{ENV_VARIABLE}={from_env} is not a course folder.")
        return Course(Path(from_env).resolve())
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_course(folder):
            return Course(folder)
    installed = Path(__file__).resolve().parent.parent
    if _is_course(installed):
        return Course(installed)
    raise BadInput(f"no course found: pass --course DIR or set {ENV_VARIABLE}.")
