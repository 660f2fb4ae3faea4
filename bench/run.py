"""Benchmarks of the grading engine: one command, one table, ratios measured in the same run.

    python bench/run.py [--repeats 5] [--device cpu|cuda] [--assignments assignment1,...]

Figures: worker start (NumPy-only and with torch), a small call's round trip, a 1 MB array's
round trip, `grade` end to end per assignment, and the same checks run the way same-process
graders run them (the submission imported straight into the pytest process) -- the ratio of
the two is the price of isolation. Each figure is a median over repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course import load_course  # noqa: E402
from grader.plugin import GradePlugin  # noqa: E402
from grader.runner import grade, resolve_device, run_checks  # noqa: E402
from grader.sandbox.limits import Limits  # noqa: E402
from grader.sandbox.proxy import Sandbox, SubmissionProxy  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
PROBE = "def echo(x):\n    return x\n"


def median_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker_start(folder: Path, source: str, repeats: int) -> float:
    (folder / "probe.py").write_text(source)

    def start() -> None:
        sandbox = Sandbox(folder, "probe", Limits(memory_kind="data", memory_mb=8192))
        sandbox.module_handle()
        sandbox.close()

    return median_time(start, repeats)


def round_trips(folder: Path) -> tuple[float, float]:
    (folder / "probe.py").write_text(PROBE)
    sandbox = Sandbox(folder, "probe", Limits())
    proxy = SubmissionProxy(sandbox)
    proxy.echo(1)
    small = statistics.median(median_time(lambda: proxy.echo(1), 1) for _ in range(3000))
    array = np.ones(1 << 17)
    big = statistics.median(median_time(lambda: proxy.echo(array), 1) for _ in range(50))
    sandbox.close()
    return small, big


class InProcessPlugin(GradePlugin):
    """Same checks, but `student` is the submission imported into this process (no sandbox)."""

    module = None

    @pytest.fixture
    def student(self):
        return self.module


def in_process_grade(assignment, submission: Path, device: str) -> None:
    spec = importlib.util.spec_from_file_location(
        f"bench_submission_{assignment.name}", submission / assignment.files[0]
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.errstate = np.errstate
    plugin = InProcessPlugin(
        assignment,
        Sandbox(submission, assignment.module, assignment.limits),
        seed=1234,
        device=device,
        deadline=time.monotonic() + 600,
    )
    plugin.module = module
    run_checks(assignment, plugin, public_only=False, keyword=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--assignments", default="")
    args = parser.parse_args()
    device = resolve_device(args.device)
    course = load_course(ROOT)
    names = [n for n in (args.assignments.split(",") if args.assignments else course.assignments)]
    names = [n for n in names if (FIXTURES / n / "correct").is_dir()]

    table = Table("figure", "median", "note", title=f"dl-grader benchmarks (reference on {device})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        numpy_start = worker_start(folder, "import numpy\n", args.repeats)
        torch_start = worker_start(
            folder, "import numpy\nimport torch\n", max(2, args.repeats // 2)
        )
        small, big = round_trips(folder)
    table.add_row("worker start, NumPy", f"{numpy_start * 1e3:.0f} ms", "spawn + import + ready")
    table.add_row("worker start, torch", f"{torch_start * 1e3:.0f} ms", "assignment8's worker")
    table.add_row("round trip, small call", f"{small * 1e6:.0f} µs", "target ≤ 100 µs")
    table.add_row("round trip, 1 MB array", f"{big * 1e3:.2f} ms", "1 MB each way")

    grade(names[0], FIXTURES / names[0] / "correct", course=course, device=device)  # warm-up
    for name in names:
        assignment = course.assignment(name)
        submission = FIXTURES / name / "correct"
        sandboxed = median_time(
            lambda n=name, s=submission: grade(n, s, course=course, device=device), args.repeats
        )
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "submission"
            shutil.copytree(submission, copy)
            in_process = median_time(
                lambda a=assignment, c=copy: in_process_grade(a, c, device), args.repeats
            )
        table.add_row(
            f"grade {name}",
            f"{sandboxed:.2f} s",
            f"same-process {in_process:.2f} s, isolation costs ×{sandboxed / in_process:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
