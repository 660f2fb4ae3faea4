"""The grading service under a class-sized burst, against `grade batch` in the same run.

    python bench/serve.py [--assignment assignment3] [--count 200] [--jobs 2] [--ray]

Builds COUNT submissions of the assignment (correct ones with cosmetic edits and every
buggy variant in tests/fixtures/NAME/mutants.py), imports a roster of COUNT students, starts
`grade serve --jobs J` on a free loopback port and has every student submit at once (one
thread each) and wait for their grade; both sides start their grading processes cold. It
checks that every submission was graded exactly once (one result row each) with the score
`grade batch` gives the same files, and prints the p50/p95 submit-to-result latency and the
service's throughput as a ratio to `grade batch --jobs J` on the same submissions. With --ray
(needs `pip install 'dl-grader[ray]'`) the class submits again to `grade serve --cluster` on a
local Ray cluster of two one-CPU nodes, shown as its throughput over the local service's.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from service_support import admin, start_server, tokens  # noqa: E402
from support import load_mutants  # noqa: E402

from grader.batch import grade_batch  # noqa: E402
from grader.cli.client import QUEUED_WAIT_S, RUNNING_WAIT_S  # noqa: E402
from grader.course import load_course  # noqa: E402


def build_class(assignment: str, folder: Path, count: int) -> dict[str, bytes]:
    """COUNT students' files in `folder/<student>/`; returns {student: file content}."""
    spec = load_course(ROOT).assignment(assignment)
    module_file = spec.files[0]
    correct = (ROOT / "tests" / "fixtures" / assignment / "correct" / module_file).read_text()
    variants = [m.apply(correct) for m in load_mutants(assignment).values()]
    sources = {}
    for index in range(count):
        name = f"student{index:03d}"
        if index % 2 and variants:
            source = variants[(index // 2) % len(variants)]
        else:
            source = correct + f"\n# submitted by {name}\n"
        (folder / name).mkdir(parents=True)
        (folder / name / module_file).write_text(source)
        sources[name] = source.encode()
    return sources


def submit_all(server, assignment: str, module_file: str, sources, student_tokens):
    """Every student submits at once and waits; {student: (latency s, submission id, score)}."""
    results: dict[str, tuple[float, int, float]] = {}
    errors: list[str] = []
    barrier = threading.Barrier(len(sources))

    def one(student: str) -> None:
        with server.client(student_tokens[student]) as client:
            barrier.wait()
            started = time.perf_counter()
            answer = client.post(
                f"/assignments/{assignment}/submissions",
                files=[("files", (module_file, sources[student]))],
            ).json()
            while answer.get("status") in ("queued", "running"):
                wait = QUEUED_WAIT_S if answer["status"] == "queued" else RUNNING_WAIT_S
                answer = client.get(f"/submissions/{answer['id']}", params={"wait": wait}).json()
            if "error" in answer:
                errors.append(answer["error"])
                return
            results[student] = (time.perf_counter() - started, answer["id"], answer.get("score"))

    threads = [threading.Thread(target=one, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@dataclass
class Served:
    """One run of the class through a server: wall time, replies, rows in its database."""

    wall: float
    replies: dict[str, tuple[float, int, float]]
    errors: list[str]
    rows: list[tuple[str, int]]


def serve_class(work: Path, name: str, args, sources, cluster: str | None = None) -> Served:
    """Import the roster into a fresh data folder, start `grade serve` (on `cluster` when
    given), have the class submit at once, stop the server; what happened."""
    spec = load_course(ROOT).assignment(args.assignment)
    data = work / name
    admin(data, None, "roster", "import", str(work / "roster.csv"))
    server = start_server(ROOT, data, jobs=args.jobs, cluster=cluster)
    try:
        started = time.perf_counter()
        replies, errors = submit_all(server, args.assignment, spec.files[0], sources, tokens(data))
        wall = time.perf_counter() - started
    finally:
        server.stop()
    with sqlite3.connect(data / "grader.db") as db:
        rows = db.execute(
            "SELECT s.status, COUNT(r.id) FROM submissions s "
            "LEFT JOIN results r ON r.submission_id = s.id GROUP BY s.id"
        ).fetchall()
    return Served(wall, replies, errors, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="assignment3")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="add a local two-node Ray cluster")
    args = parser.parse_args()
    console = Console(width=120)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        sources = build_class(args.assignment, work / "class", args.count)
        roster = "id,name,email,section\n" + "".join(f"{s},{s},,\n" for s in sources)
        (work / "roster.csv").write_text(roster)
        runs = {"service": serve_class(work, "data", args, sources)}
        if args.ray:
            from ray_support import start_cluster

            cluster = start_cluster()
            try:
                runs["service on Ray"] = serve_class(work, "ray", args, sources, cluster.address)
            finally:
                import ray

                ray.shutdown()
                cluster.shutdown()
        started = time.perf_counter()
        batch = grade_batch(
            args.assignment, work / "class", work / "batch", jobs=args.jobs, device="cpu"
        )
        batch_wall = time.perf_counter() - started
        batch_scores = {row.student: row.score for row in batch.rows}

        table = Table(title=f"{args.count} students submit {args.assignment} at once")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row(
            f"batch --jobs {args.jobs}: per minute", f"{60 * args.count / batch_wall:.1f}"
        )
        failed = False
        for label, run in runs.items():
            mismatched = [
                s for s, (_, _, score) in run.replies.items() if score != batch_scores.get(s)
            ]
            lost = args.count - len(run.rows)
            twice = sum(count != 1 for _, count in run.rows)
            ungraded = sum(status != "graded" for status, _ in run.rows)
            latencies = sorted(latency for latency, _, _ in run.replies.values())
            p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)] if latencies else 0.0
            p50 = statistics.median(latencies) if latencies else 0.0
            table.add_row(f"{label}: submissions per minute", f"{60 * args.count / run.wall:.1f}")
            table.add_row(f"throughput, {label} / batch", f"{batch_wall / run.wall:.2f}x")
            table.add_row(f"{label}: submit-to-result p50", f"{p50:.1f} s")
            table.add_row(f"{label}: submit-to-result p95", f"{p95:.1f} s")
            table.add_row(
                f"{label}: lost / graded twice / not graded", f"{lost} / {twice} / {ungraded}"
            )
            table.add_row(f"{label}: scores differing from the batch's", str(len(mismatched)))
            table.add_row(f"{label}: requests answered with an error", str(len(run.errors)))
            failed |= bool(lost or twice or ungraded or mismatched or run.errors)
        if args.ray:
            ratio = runs["service"].wall / runs["service on Ray"].wall
            table.add_row("throughput, service on Ray (2 nodes) / service", f"{ratio:.2f}x")
        console.print(table)
        if failed:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
