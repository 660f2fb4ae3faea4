"""What this machine offers the grader: Python, PyTorch, CUDA, and the sandbox's protections.

`probe()` starts a real worker on a one-line submission and reports the limits and the
protections it applied, with the reason for each one that is unavailable; nothing is
inferred without trying it.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

from grader import __version__
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, StudentError, SubmissionProxy
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
        (folder / "probe.py").write_text("def ping():\n    return 'pong'\n")
        sandbox = Sandbox(folder, "probe", Limits())
        try:
            answer = SubmissionProxy(sandbox).ping()
            facts["worker"] = "starts and answers" if answer == "pong" else f"answered {answer!r}"
        except StudentError as error:
            facts["worker"] = f"failed: {error.message}"
        finally:
            sandbox.close()
    protections = {"resource limits": ", ".join(sandbox.applied_limits) or "none applied"}
    protections.update(sandbox.protections)
    protections["forbidden imports"] = "active: source scan + import audit hook"
    return Diagnosis(facts, protections)
