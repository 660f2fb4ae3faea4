"""Grade one submission: prepare it, run the assignment's checks under our plugin, return a Grade.

This is the library entry point the CLI, batch grading and the tests all call. It owns the
order of things (resolve course and device, copy the submission, start the sandbox, run
pytest in this trusted process, kill the worker, assemble the `Grade`) and the translation of
pytest's exit codes into `BadInput`/`GraderError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grader import __version__
from grader.course import Assignment, Course, load_course
from grader.data import data_dir
from grader.errors import BadInput, GraderError
from grader.fingerprint import grade_fingerprint
from grader.forbidden import scan
from grader.journal import Journal
from grader.plugin import GradePlugin, OnStart
from grader.result import CheckResult, Grade, SubmissionInfo
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, StudentError
from grader.scratch import ScratchFolder
from grader.submission import prepare

DEFAULT_SEED = 1234
DEVICES = ("auto", "cpu", "cuda")
# Plugins a grade never needs; unraisableexception alone costs ~0.7 s of gc.collect per grade.
UNUSED_PYTEST_PLUGINS = (
    "cacheprovider",
    "stepwise",
    "unraisableexception",
    "threadexception",
    "faulthandler",
    "doctest",
    "junitxml",
    "pastebin",
    "nose",
    "legacypath",
)


def check_device_name(device: str) -> None:
    """Refuse a device name before any work is started for it."""
    if device not in DEVICES:
        raise BadInput(f"unknown device '{device}' (choose from {', '.join(DEVICES)}).")


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver loaded: without one, CUDA cannot be usable,
    and there is no need to import torch (a second of start-up) to find that out."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def resolve_device(device: str) -> str:
    """ "auto" becomes "cuda" when a CUDA GPU is usable, else "cpu"."""
    check_device_name(device)
    if device == "cpu" or (device == "auto" and not nvidia_driver_present()):
        return "cpu"
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda was asked for, but no CUDA GPU is available here.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def _quiet_pytest() -> Iterator[io.StringIO]:
    """Keep pytest's own terminal output and third-party plugins out of the grade."""
    buffer = io.StringIO()
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        if previous is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous


def _forget_check_modules(checks_dir: Path) -> None:
    """Drop imported check modules so the next grade sees the files as they are now."""
    root = str(checks_dir.resolve())
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root):
            del sys.modules[name]


def run_checks(
    assignment: Assignment,
    plugin: GradePlugin,
    *,
    public_only: bool,
    keyword: str | None,
) -> None:
    """Run the assignment's checks in this process with `plugin` collecting the results."""
    paths = [assignment.public_checks]
    if not public_only and assignment.hidden_checks.is_dir():
        paths.append(assignment.hidden_checks)
    paths = [p for p in paths if p.is_dir()]
    if not paths:
        raise GraderError(f"{assignment.checks_dir} has no public/ or hidden/ checks.")
    args = [str(p) for p in paths] + [
        "-c",
        os.devnull,
        "--rootdir",
        str(assignment.course_root),
        "--confcutdir",
        str(assignment.checks_dir),
        "--import-mode=importlib",
        "--capture=sys",
        "--tb=native",  # failures are reported from the exception; pytest's own view is unused
        "-q",
        *(f"-pno:{name}" for name in UNUSED_PYTEST_PLUGINS),
    ]
    if keyword:
        args += ["-k", keyword]
    try:
        with _quiet_pytest() as output:
            code = pytest.main(args, plugins=[plugin])
    finally:
        _forget_check_modules(assignment.checks_dir)
    if plugin.collection_errors or plugin.authoring_errors:
        problems = plugin.collection_errors + plugin.authoring_errors
        raise GraderError(f"the checks of {assignment.name} are broken: {problems[0]}")
    if plugin.bad_input:
        raise plugin.bad_input[0]
    if plugin.internal_errors:
        raise GraderError(plugin.internal_errors[0])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        if keyword:
            raise BadInput(f"no checks of {assignment.name} match -k {keyword!r}.")
        raise GraderError(f"{assignment.name} has no checks.")
    if code == pytest.ExitCode.USAGE_ERROR and keyword:
        raise BadInput(f"invalid -k expression {keyword!r}.")
    if code == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise GraderError(f"pytest stopped with exit code {int(code)}:\n{output.getvalue()}")


def grade(
    assignment_name: str,
    submission: Path | None = None,
    *,
    course: Course | None = None,
    seed: int = DEFAULT_SEED,
    device: str = "auto",
    public_only: bool = False,
    keyword: str | None = None,
    limits: Limits | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: OnStart | None = None,
    journal_dir: Path | None = None,
) -> Grade:
    """Grade the submission at `submission` (default: the current folder) and return the Grade.

    With `journal_dir`, each finished check is journaled there as it completes, and checks
    that an interrupted run of the same grade finished are reported from its journal.
    """
    started = time.monotonic()
    course = course or load_course()
    assignment = course.assignment(assignment_name)
    limits = limits or assignment.limits
    check_device_name(device)
    source = Path(submission) if submission is not None else Path.cwd()
    with ScratchFolder("grade", remove_later=True) as workdir:
        prepared = prepare(source, assignment, workdir)
        sandbox = Sandbox(
            prepared.folder,
            assignment.module,
            limits,
            assignment.forbidden_imports,
            hidden_paths=(course.root, data_dir()),
            sources=prepared.sources,
        )
        violations = scan(prepared.folder, assignment.forbidden_imports)
        if violations:
            where = violations[0].describe(prepared.sources)
            sandbox.refuse(
                f"{where}, which this assignment does not allow: write it with NumPy yourself."
            )
        sandbox.spawn()
        sandbox.deadline = started + limits.total_timeout_s
        journal: Journal | None = None
        try:
            device = resolve_device(device)  # imports torch while the worker starts
            if journal_dir is not None:
                identity = {
                    "assignment": assignment.name,
                    **grade_fingerprint(assignment, seed, device, public_only, limits),
                    "submission_sha256": prepared.sha256,
                    "keyword": keyword,
                }
                journal = _open_journal(Path(journal_dir), identity)
            plugin = GradePlugin(
                assignment,
                sandbox,
                seed=seed,
                device=device,
                deadline=sandbox.deadline,
                on_result=_journaling(journal, on_result),
                on_start=on_start,
                resumed=journal.resumed if journal else {},
            )
            run_checks(assignment, plugin, public_only=public_only, keyword=keyword)
            if plugin.resumed and not sandbox.protections:
                with contextlib.suppress(StudentError):  # all resumed: still say what protects
                    sandbox.module_handle()
        except BaseException:
            if journal is not None:
                journal.close(completed=False)
            raise
        finally:
            sandbox.close(finish_later=True)
        if journal is not None:
            journal.close(completed=True)
    return Grade(
        assignment=assignment.name,
        title=assignment.title,
        seed=seed,
        device=device,
        grader_version=__version__,
        duration_s=time.monotonic() - started,
        submission=SubmissionInfo(path=str(source), sha256=prepared.sha256),
        tests=tuple(plugin.results),
        public_only=public_only or assignment.release_bundle,
        student_output=sandbox.output.text(),
        printed=tuple(sandbox.output.sections()),
        notes=prepared.notes,
        import_error=sandbox.import_failure.message if sandbox.import_failure else "",
        worker={
            "starts": sandbox.starts,
            "limits": sandbox.applied_limits,
            "protections": sandbox.protections,
        },
        hidden_visibility=assignment.hidden_visibility,
        resumed_checks=len(plugin.resumed),
    )


def _open_journal(folder: Path, identity: dict) -> Journal | None:
    """The grade's journal, holding what an interrupted run finished; None if it cannot be
    written (the grade then runs without one, as it would have before journals existed)."""
    journal = Journal(folder, identity)
    try:
        journal.start(journal.finished())
    except OSError:
        return None
    return journal


def _journaling(
    journal: Journal | None, on_result: Callable[[CheckResult], None] | None
) -> Callable[[CheckResult], None] | None:
    if journal is None:
        return on_result

    def record(result: CheckResult) -> None:
        if result.id not in journal.resumed:
            journal.record(result)
        if on_result is not None:
            on_result(result)

    return record
