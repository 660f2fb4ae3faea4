"""Grading time of this checkout against another one (say, the last release), in one run.

    python bench/compare.py --baseline DIR [--repeats 5] [--rounds 3] [--assignments a1,a3]

For each assignment, grades its correct fixture with fresh workers (as a single `grade`
does) in this checkout and in the baseline checkout, alternating rounds between the two so
that a machine's changing load hits both alike, and prints each one's median and their
ratio. Each round is a new process per checkout that imports the grader once and grades
`--repeats` times; the reference cache is warmed first, so the figures are what a student's
repeated `grade` costs. Each checkout grades with its own course and fixtures (the checks
change with the grader), or, with `--same-checks`, both grade the baseline's course and
fixtures, so that the ratio is the grader's own cost (sandbox, wire, plugin) alone; that
needs checks the two graders both run (the baseline's must not rely on what this one
dropped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
ROUND = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from grader.course import load_course
from grader.runner import grade
course = load_course(Path(sys.argv[2]))
times = {}
for name in sys.argv[4].split(","):
    submission = Path(sys.argv[2]) / "tests" / "fixtures" / name / "correct"
    grade(name, submission, course=course, device="cpu")  # warms the reference cache
    spent = []
    for _ in range(int(sys.argv[3])):
        start = time.perf_counter()
        result = grade(name, submission, course=course, device="cpu")
        spent.append(time.perf_counter() - start)
        assert result.score == result.max_score, (name, result.score)
    times[name] = spent
print(json.dumps(times))
"""
DEFAULT = "assignment1,assignment2,assignment3,assignment4,assignment5,assignment6,assignment7"


def one_round(
    tree: Path, course: Path, names: str, repeats: int, data: str
) -> dict[str, list[float]]:
    done = subprocess.run(
        [sys.executable, "-c", ROUND, str(tree), str(course), str(repeats), names],
        capture_output=True, text=True, check=True, cwd=tree,
        env={"PATH": "/usr/bin:/bin", "DL_GRADER_DATA": data, "HOME": data},
    )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--assignments", default=DEFAULT)
    parser.add_argument(
        "--same-checks", action="store_true", help="both grade the baseline's course"
    )
    args = parser.parse_args()
    trees = {"this": ROOT, "baseline": args.baseline.resolve()}
    courses = {label: trees["baseline" if args.same_checks else label] for label in trees}
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in trees}
    with tempfile.TemporaryDirectory() as data:
        for _ in range(args.rounds):
            for label, tree in trees.items():
                graded = one_round(tree, courses[label], args.assignments, args.repeats, data)
                for name, spent in graded.items():
                    samples[label].setdefault(name, []).extend(spent)
    checks = "the baseline's checks" if args.same_checks else "each its own checks"
    table = Table(
        title=f"grade, correct fixture, fresh workers, warm reference cache, {checks} (median)"
    )
    for column in ("assignment", "this checkout", "baseline", "ratio"):
        table.add_column(column, justify="right" if column != "assignment" else "left")
    for name in args.assignments.split(","):
        this = statistics.median(samples["this"][name])
        base = statistics.median(samples["baseline"][name])
        table.add_row(name, f"{this * 1e3:.0f} ms", f"{base * 1e3:.0f} ms", f"{this / base:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
