"""Whether the sandbox here holds what a grading service needs, checked before it starts.

A service puts the sandbox on a network: anyone with a token can have code run on the
machine. `grade serve` therefore starts a probe worker (as `grade doctor` does) with each
set of limits the course grades under, and refuses to start when a protection it needs is
off: its own PID and network namespaces, a memory cgroup, a wall around the file system
(Landlock, or a private root in a mount namespace), no capabilities, no_new_privs and the
seccomp filter. `--allow-weak-sandbox` serves anyway and says what is off. Nothing here
guesses: every state is what a started worker applied.
"""

from __future__ import annotations

from collections.abc import Callable

from grader.course import Course
from grader.errors import BadInput
from grader.sandbox.limits import Limits

# (what a reader calls it, the protection names of which one must be on)
REQUIRED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PID namespace", ("processes",)),
    ("network isolation", ("network",)),
    ("memory cgroup", ("memory",)),
    ("file-system wall (Landlock or a private root)", ("filesystem", "view")),
    ("no capabilities", ("privileges",)),
    ("no_new_privileges", ("no_new_privileges",)),
    ("seccomp filter", ("user namespaces",)),
)
ALLOW_FLAG = "--allow-weak-sandbox"

Probe = Callable[[Limits], dict[str, str]]


def _is_on(state: str) -> bool:
    return state.startswith(("active", "not needed"))


def missing_protections(protections: dict[str, str]) -> list[str]:
    """The service's required protections that are off in `protections` (a probe's
    report), each with why, e.g. "memory cgroup (unavailable: no memory cgroup here)"."""
    missing = []
    for label, names in REQUIRED:
        states = [protections[name] for name in names if name in protections]
        if not any(_is_on(state) for state in states):
            why = states[0] if states else protections.get("worker", "not applied")
            missing.append(f"{label} ({why})")
    return missing


def sandbox_gaps(course: Course, probe: Probe | None = None) -> dict[str, list[str]]:
    """Per assignment of `course` whose grades would lack a required protection, which ones.
    One probe serves every assignment that hardens (the limits that switch protections on
    and off are the same for all); one whose [limits] say `harden = false` lacks them all."""
    if probe is None:
        from grader.doctor import sandbox_protections as probe
    gaps = {}
    machine: list[str] | None = None
    for name, assignment in sorted(course.assignments.items()):
        if not assignment.limits.harden:
            gaps[name] = ["every protection (its [limits] say harden = false)"]
            continue
        if machine is None:
            machine = missing_protections(probe(Limits()))
        if machine:
            gaps[name] = machine
    return gaps


def describe_gaps(gaps: dict[str, list[str]], every: int) -> str:
    """One line: which protections are off, for which assignments (`every`: how many the
    course has, so that a machine-wide gap reads as such)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, missing in gaps.items():
        groups.setdefault(tuple(missing), []).append(name)
    parts = []
    for missing, names in groups.items():
        where = "every assignment" if len(names) == every else ", ".join(names)
        parts.append(f"{where}: {', '.join(missing)}")
    return "; ".join(parts)


def check_sandbox(course: Course, allow_weak: bool, probe: Probe | None = None) -> str:
    """Refuse (BadInput) to serve `course` with a required protection off, unless
    `allow_weak`; then return the line saying what is off ("" when nothing is)."""
    gaps = sandbox_gaps(course, probe)
    if not gaps:
        return ""
    line = describe_gaps(gaps, len(course.assignments))
    if not allow_weak:
        raise BadInput(
            f"the sandbox lacks protections a grading service needs ({line}); "
            f"grade doctor shows why; {ALLOW_FLAG} serves anyway."
        )
    return f"serving with a weak sandbox ({ALLOW_FLAG}), off for {line}"
