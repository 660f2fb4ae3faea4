"""What this machine offers the grader: Python, PyTorch, CUDA, and the sandbox's protections.

`probe()` starts a real worker on a one-line submission and reports the limits and the
protections it applied, with the reason for each one that is unavailable; nothing is
inferred without trying it.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import __version__
from grader.sandbox import forkserver
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, StudentError, SubmissionProxy, use_fork_server
from grader.scratch import ScratchFolder


@dataclass(frozen=True)
class Diagnosis:
    """The machine's facts and the sandbox's protections, as name -> description."""

    facts: dict[str, str] = field(default_factory=dict)
    protections: dict[str, str] = field(default_factory=dict)


def _torch_facts() -> dict[str, str]:
    try:
        import torch
    except ImportError as error:
        return {"torch": f"not importable ({error})"}
    facts = {"torch": torch.__version__}
    if torch.cuda.is_available():
        facts["cuda"] = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    else:
        facts["cuda"] = "not available: reference solutions run on the CPU"
    return facts


PROBE = "def answer():\n    return 42\n"


def _parent_of(pid: int | None) -> int | str:
    """The parent of process `pid`, from /proc (the worker sees only its own namespace)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return "unknown (no /proc)"


def _start_worker(
    folder: Path, limits: Limits | None = None
) -> tuple[str | None, int | str, Sandbox, float]:
    """Start a worker on the probe: what went wrong (None if nothing), the pid of the process
    that started it, the sandbox, and the seconds it took."""
    sandbox = Sandbox(folder, "probe", limits or Limits(), forbidden_imports=("torch",))
    started = time.perf_counter()
    problem, parent = None, _parent_of(None)
    try:
        answer = SubmissionProxy(sandbox).answer()
        parent = _parent_of(sandbox.pid)
        problem = None if answer == 42 else f"answered {answer!r}"
    except StudentError as error:
        problem = f"failed: {error.message}"
    finally:
        sandbox.close()
    return problem, parent, sandbox, time.perf_counter() - started


def _try_fork_server(folder: Path, fresh_s: float) -> str:
    """Whether batches and --repeat can fork workers from a template here, and the saving."""
    if not use_fork_server():
        return "unavailable: needs Linux; workers start anew (slower, same grades)"
    try:
        server = forkserver.current()
        if server is None or not server.ready(wait_s=30):
            return "unavailable: the template did not start; workers start anew"
        _, parent, _, forked_s = _start_worker(folder)
        if parent != server.process.pid:
            return f"failed: the worker was not forked from the template ({parent})"
        return (
            f"works: batches and --repeat fork each worker ({forked_s * 1e3:.0f} ms "
            f"instead of {fresh_s * 1e3:.0f} ms)"
        )
    finally:
        forkserver.disable()


def sandbox_protections(limits: Limits | None = None) -> dict[str, str]:
    """The protections a worker started with `limits` applies on this machine, found by
    starting one (what `grade serve` checks before it takes submissions); a worker that
    does not start has none, and says why under "worker"."""
    with ScratchFolder("doctor") as tmp:
        folder = tmp / "submission"
        folder.mkdir()
        (folder / "probe.py").write_text(PROBE)
        problem, _, sandbox, _ = _start_worker(folder, limits)
    if problem is not None:
        return {"worker": f"failed: {problem}"}
    return dict(sandbox.protections)


def probe() -> Diagnosis:
    """Start a sandboxed worker and report what it could apply."""
    facts = {
        "grader": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        **_torch_facts(),
    }
    with ScratchFolder("doctor") as tmp:
        folder = tmp / "submission"
        folder.mkdir()
        (folder / "probe.py").write_text(PROBE)
        problem, _, sandbox, fresh_s = _start_worker(folder)
        facts["worker"] = problem or "starts and answers"
        facts["fork server"] = _try_fork_server(folder, fresh_s)
    protections = {"resource limits": ", ".join(sandbox.applied_limits) or "none applied"}
    protections.update(sandbox.protections)
    protections["forbidden imports"] = "active: source scan + import audit hook"
    return Diagnosis(facts, protections)
