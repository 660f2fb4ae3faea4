"""The pytest plugin that turns a course's checks into a grade.

It registers the markers (`points`, `hint`, `timeout`), provides the fixtures a check asks
for (`student`, `reference`, `rng`, `device`), enforces the grade's time limit and per-check
call timeouts, and collects one `CheckResult` per check through pytest's report hook.
Checks award points only for what this process computed or received as data: `student`
never writes the worker's changes into a check's arguments unless the check asks for them
with `student.inplace(...)`. It does
not decide which checks run or how results are printed: that is the runner's and the
reports' job.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.compare import CheckFailure
from grader.course import Assignment
from grader.errors import BadInput, GraderError
from grader.refcache import reference_for
from grader.result import CheckResult
from grader.sandbox.placement import TorchThreads
from grader.sandbox.proxy import Sandbox, StudentError, SubmissionProxy

MARKERS = {
    "points(n)": "points the check is worth",
    "hint(text, function=None)": "hint added to a failure message that has none, when the "
    "failure is a wrong value from, or an exception raised in, `function` (a name such as "
    "'sigmoid' or 'Sigmoid.backward', a class name for all its methods, or a tuple of them; "
    "by default any function the check calls); never to a timeout, a crash or a failed import",
    "timeout(seconds)": "time limit for each call into student code during this check "
    "(or a function of the device name returning it)",
}


# Called as each check starts: its name, its per-call limit in seconds, for a check that
# trains its time budget in seconds (None otherwise), and whether it is hidden (a service
# shows a student the running check's name only as the assignment's policy allows), for
# progress displays.
OnStart = Callable[[str, float, float | None, bool], None]


class Credit:
    """Partial credit for a check that grades on a scale (e.g. accuracy thresholds)."""

    def __init__(self) -> None:
        self.fraction: float | None = None
        self.message = ""

    def award(self, fraction: float, message: str) -> None:
        """Give `fraction` (0..1) of the check's points; `message` says why (shown always)."""
        self.fraction = min(1.0, max(0.0, float(fraction)))
        self.message = message


class GradeTimeLimit(Exception):
    """The grade's total time limit ran out before this check started."""


def check_id(item: pytest.Item, checks_dir: Path) -> str:
    """Stable id: path under checks/ plus the test name, e.g. `public/test_gates.py::test_and`."""
    relative = Path(item.path).resolve().relative_to(checks_dir.resolve()).as_posix()
    return f"{relative}::{item.nodeid.split('::', 1)[1]}"


def check_name(item: pytest.Item) -> str:
    """Human-readable name: the docstring's first line, else the function name in words."""
    function = getattr(item, "function", None)
    doc = (function.__doc__ or "").strip().splitlines() if function else []
    base = doc[0].rstrip(".") if doc else item.originalname.removeprefix("test_").replace("_", " ")
    param = getattr(item, "callspec", None)
    return f"{base} [{param.id}]" if param else base


def classify(
    error: BaseException, last_function: str | None
) -> tuple[str, str, str, bool, str | None]:
    """What ended a check: (status, one-line message, details, whether a hint may follow,
    the student function a hint must be about).

    A wrong value is blamed on `last_function`, the student function the check called last
    before it failed; an exception raised in student code, on the function that raised it.
    """
    if isinstance(error, CheckFailure):
        return "failed", error.message, error.details, error.hint is None, last_function
    if isinstance(error, StudentError):
        culprit = getattr(error, "function", None)
        return error.status, error.message, error.details, error.hintable, culprit
    if isinstance(error, GradeTimeLimit):
        return "timeout", str(error), "", False, None
    if isinstance(error, AssertionError):
        text = str(error).strip()
        first = text.splitlines()[0] if text else "assertion failed"
        return "failed", first, text, True, last_function
    summary = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    message = (
        f"the check could not evaluate your result ({summary}); "
        "check the types and shapes you return."
    )
    return "error", message, "", True, last_function


class GradePlugin:
    """Fixtures, markers and result collection for one grade."""

    def __init__(
        self,
        assignment: Assignment,
        sandbox: Sandbox,
        *,
        seed: int,
        device: str,
        deadline: float,
        on_result: Callable[[CheckResult], None] | None = None,
        on_start: OnStart | None = None,
        resumed: dict[str, CheckResult] | None = None,
    ) -> None:
        self.assignment = assignment
        self.sandbox = sandbox
        self.seed = seed
        self.device_name = device
        self.deadline = deadline
        self.on_result = on_result
        self.on_start = on_start
        self.resumed = dict(resumed or {})
        self._credits: dict[str, Credit] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self.results: list[CheckResult] = []
        self.authoring_errors: list[str] = []
        self.collection_errors: list[str] = []
        self.internal_errors: list[str] = []
        self.bad_input: list[BadInput] = []  # e.g. corrupt data files: the grade stops here
        self._phases: dict[str, dict[str, Any]] = {}
        self._torch_threads = TorchThreads()  # the references' threads beside the worker

    # -- configuration and collection -------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        for marker, text in MARKERS.items():
            config.addinivalue_line("markers", f"{marker}: {text}")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {report.longreprtext}")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("points")
            if marker is None or not marker.args or not isinstance(marker.args[0], int | float):
                self.authoring_errors.append(f"{item.nodeid} has no @pytest.mark.points(n)")

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def student(self) -> SubmissionProxy:
        """The submission's module, running in the sandboxed worker.

        Arguments travel as copies: what the student's code writes into an array, dict or
        list a check passed stays in the worker, so a check's arrays, and any reference
        computed from them, are the check's own whatever the submission does. A check of an
        in-place rule names what should receive the worker's changes, and nothing else does:
        `with student.inplace(params): optimizer.update(params, grads)` (params updated in
        place), or `with student.inplace(x): layer.forward(x)` followed by a comparison of x
        with a copy taken before (forward must not modify x). References take that copy,
        never an object named in `inplace`.
        """
        self.sandbox.module_handle()
        return SubmissionProxy(self.sandbox)

    @pytest.fixture(scope="session")
    def reference(self) -> Any:
        """The assignment's reference solution, computing on the grade's device."""
        try:
            return reference_for(self.assignment, self.device_name)
        except Exception as error:
            message = f"reference solution failed to load: {type(error).__name__}: {error}"
            self.internal_errors.append(message)
            raise GraderError(message) from error

    @pytest.fixture
    def rng(self, request: pytest.FixtureRequest) -> np.random.Generator:
        """A generator seeded from the grade's seed and the check's id (order-independent)."""
        return self._generator(check_id(request.node, self.assignment.checks_dir))

    @pytest.fixture
    def named_rng(self) -> Callable[[str], np.random.Generator]:
        """`named_rng(name)`: a generator seeded from the grade's seed and `name` alone, for
        state several checks share (a model trained once): its seed must not depend on
        which of them runs first, or `-k` would change it."""
        return self._generator

    def _generator(self, name: str) -> np.random.Generator:
        salt = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
        return np.random.default_rng([self.seed, salt])

    @pytest.fixture
    def credit(self, request: pytest.FixtureRequest) -> Credit:
        """Partial credit: `credit.award(fraction, message)` scales the check's points."""
        return self._credits.setdefault(request.node.nodeid, Credit())

    @pytest.fixture
    def metrics(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        """Numbers the check measured (accuracy, seconds...), reported with its result."""
        return self._metrics.setdefault(request.node.nodeid, {})

    @pytest.fixture
    def device(self) -> str:
        """The device reference computations run on: "cpu" or "cuda"."""
        return self.device_name

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Every check and fixture is done with the worker (pytest's own hook tore the
        fixtures down first): let it end while pytest finishes up."""
        self.sandbox.stop()
        self._torch_threads.restore()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        # A reference fixture may have imported torch, and a worker may have settled.
        self._torch_threads.fit(self.sandbox.spins, self.sandbox.co_located)

    # -- running and reporting --------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> bool | None:
        """Report a check an interrupted run already finished instead of running it again."""
        done = self.resumed.get(check_id(item, self.assignment.checks_dir))
        if done is None:
            return None
        self.results.append(done)
        if self.on_result is not None:
            self.on_result(done)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.sandbox.last_function = None
        self._torch_threads.fit(self.sandbox.spins, self.sandbox.co_located)
        if time.monotonic() > self.deadline:
            raise GradeTimeLimit(
                f"not run: the grade's time limit ({self.sandbox.limits.total_timeout_s:g} s) "
                "was used up by earlier checks."
            )
        marker = item.get_closest_marker("timeout")
        limit = marker.args[0] if marker else self.sandbox.limits.call_timeout_s
        self.sandbox.call_timeout = float(limit(self.device_name) if callable(limit) else limit)
        if self.on_start is not None:
            budget = getattr(limit, "budget", None)  # a training check's limit knows its budget
            budget_s = float(budget(self.device_name)) if callable(budget) else None
            hidden = self._is_hidden(item)
            self.on_start(check_name(item), self.sandbox.call_timeout, budget_s, hidden)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo
    ) -> pytest.TestReport:
        report = yield
        phases = self._phases.setdefault(item.nodeid, {"duration": 0.0})
        phases["duration"] += report.duration
        if report.failed and "error" not in phases and call.excinfo is not None:
            phases["error"] = call.excinfo.value
            phases["last_function"] = self.sandbox.last_function
            if isinstance(call.excinfo.value, BadInput) and not self.bad_input:
                self.bad_input.append(call.excinfo.value)
                item.session.shouldstop = str(call.excinfo.value)
        if report.skipped and "skipped" not in phases:
            phases["skipped"] = report.longrepr
        if report.when == "teardown":
            self._finish(item, self._phases.pop(item.nodeid))
        return report

    def _is_hidden(self, item: pytest.Item) -> bool:
        relative = Path(item.path).resolve().relative_to(self.assignment.checks_dir.resolve())
        return "hidden" in relative.parts[:1]

    def _finish(self, item: pytest.Item, phases: dict[str, Any]) -> None:
        points = float(item.get_closest_marker("points").args[0])
        hidden = self._is_hidden(item)
        error = phases.get("error")
        if error is not None:
            status, message, details, hintable, culprit = classify(
                error, phases.get("last_function")
            )
            if hintable:
                message = _with_hint(item, message, culprit)
            score = 0.0
        elif "skipped" in phases:
            status, message, details, score = "skipped", _skip_reason(phases["skipped"]), "", 0.0
        else:
            status, message, details, score = "passed", "", "", points
        credit = self._credits.pop(item.nodeid, None)
        if credit is not None and credit.fraction is not None and status == "passed":
            score = round(points * credit.fraction, 4)
            status = "passed" if credit.fraction >= 1 else "failed"
            message = credit.message
        ident = check_id(item, self.assignment.checks_dir)
        self.sandbox.output.cut(ident)  # what the submission printed during this check
        result = CheckResult(
            id=ident,
            name=check_name(item),
            score=score,
            max_score=points,
            status=status,
            hidden=hidden,
            message=message,
            details=details,
            duration_s=phases["duration"],
            metrics=self._metrics.pop(item.nodeid, {}),
        )
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


def _with_hint(item: pytest.Item, message: str, culprit: str | None) -> str:
    """`message` with the closest hint marker that is about `culprit`, if there is one."""
    for marker in item.iter_markers("hint"):
        if _is_about(marker.kwargs.get("function"), culprit):
            return f"{message} Hint: {' '.join(str(marker.args[0]).split())}"
    return message


def _is_about(subject: str | tuple[str, ...] | None, culprit: str | None) -> bool:
    """Whether a hint for `subject` (None: whatever the check calls) fits a failure of the
    student function `culprit`; a class name covers its constructor and its methods."""
    if subject is None:
        return True
    if culprit is None:
        return False
    names = (subject,) if isinstance(subject, str) else tuple(subject)
    return any(culprit == name or culprit.startswith(f"{name}.") for name in names)


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return "skipped"
