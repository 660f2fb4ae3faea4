"""Batch grading throughput and the reference cache's saving, measured as ratios in one run.

    python bench/batch.py [--assignment assignment7] [--count 50] [--repeats 1] [--device cpu]
                          [--ray]

Builds a class of COUNT submissions from the assignment's fixtures -- correct ones with
cosmetic edits, every buggy variant in tests/fixtures/NAME/mutants.py, untouched stubs,
syntax errors, a crash at import, zips (good, corrupt, escaping), an empty folder -- then
grades it into fresh output folders three ways: --jobs 1, --jobs 2, and --jobs 2 with the
reference cache off (REPEATS rounds, the order alternating; medians shown). It prints
submissions per minute, CPU seconds per submission (the batch's whole process tree, which a
busy machine disturbs less than wall time), the jobs-2/jobs-1 speedup, what the cache saved
(reference calls and their time), and checks that the three gradebooks have one row per
student and are identical. With --ray (needs `pip install 'dl-grader[ray]'`) the class is
also graded on a local Ray cluster of two nodes with one CPU each (`--cluster`), shown as its
throughput over --jobs 2's and the overhead Ray adds to each submission (median).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import load_mutants  # noqa: E402

from grader.batch import BatchResult, grade_batch  # noqa: E402
from grader.cluster import connect  # noqa: E402
from grader.course import load_course  # noqa: E402


def build_class(assignment: str, folder: Path, count: int) -> dict[str, str]:
    """`count` submissions in `folder`; returns {student: what kind of submission it is}."""
    course = load_course(ROOT)
    spec = course.assignment(assignment)
    module_file = spec.files[0]
    correct = (ROOT / "tests" / "fixtures" / assignment / "correct" / module_file).read_text()
    stub = (spec.template_dir / module_file).read_text()
    variants = [
        ("mutant " + name, m.apply(correct)) for name, m in load_mutants(assignment).items()
    ]
    first_def = correct.index("\ndef ")
    broken = correct[:first_def] + "\ndef broken(:\n" + correct[first_def:]
    crash = "import os\nos._exit(3)\n" + correct
    special = [
        ("stub", stub),
        ("syntax error", broken),
        ("crash at import", crash),
        ("zip", None),
        ("corrupt zip", None),
        ("zip escaping its folder", None),
        ("empty folder", None),
    ]
    kinds: dict[str, str] = {}
    folder.mkdir(parents=True)
    for index in range(count):
        name = f"student{index:03d}"
        if index % 3 == 2 and index // 3 < len(special) * 2:
            kind, source = special[(index // 3) % len(special)]
        elif index % 3 == 1 and variants:
            kind, source = variants[(index // 3) % len(variants)]
        else:
            kind, source = "correct", correct + f"\n# submitted by {name}\n"
        kinds[name] = kind
        if kind == "zip":
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
                zf.writestr(f"{name}/{module_file}", correct)
        elif kind == "corrupt zip":
            (folder / f"{name}.zip").write_bytes(b"PK\x03\x04 truncated")
        elif kind == "zip escaping its folder":
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
                zf.writestr(f"../{module_file}", correct)
        elif kind == "empty folder":
            (folder / name).mkdir()
        else:
            (folder / name).mkdir()
            (folder / name / module_file).write_text(source)
    return kinds


@dataclass
class Measured:
    """One configuration's runs: wall and CPU seconds (the whole process tree) per round."""

    jobs: int
    cache: bool
    cluster: str | None = None
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    result: BatchResult | None = None

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def cpu_seconds() -> float:
    """CPU time of this process and every finished descendant (workers, sandboxes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(run: Measured, assignment: str, submissions: Path, output: Path, device: str):
    shutil.rmtree(output, ignore_errors=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    with connect(run.cluster) if run.cluster else contextlib.nullcontext() as executor:
        run.result = grade_batch(
            assignment,
            submissions,
            output,
            jobs=run.jobs,
            device=device,
            reference_cache=run.cache,
            executor=executor,
        )
    run.walls.append(time.perf_counter() - wall)
    run.cpus.append(cpu_seconds() - cpu)


@contextlib.contextmanager
def local_ray_cluster(nodes: int) -> Iterator[str]:
    """A Ray cluster of `nodes` nodes with one CPU each on this machine; its address."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        runtime_env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
        ray.init(address=cluster.address, logging_level="error", runtime_env=runtime_env)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="assignment7")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1, help="rounds; medians are shown")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ray", action="store_true", help="add a local two-node Ray cluster")
    args = parser.parse_args()
    console = Console(width=140)
    runs = {
        "jobs 1, cache on": Measured(1, True),
        "jobs 2, cache on": Measured(2, True),
        "jobs 2, cache off": Measured(2, False),
    }
    with contextlib.ExitStack() as stack:
        if args.ray:
            address = stack.enter_context(local_ray_cluster(2))
            runs["ray, 2 local nodes"] = Measured(2, True, address)
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="dl-grader-bench-"))
        scratch = Path(scratch)
        kinds = build_class(args.assignment, scratch / "submissions", args.count)
        counts = Counter("mutant" if k.startswith("mutant") else k for k in kinds.values())
        console.print(
            f"{args.count} {args.assignment} submissions: "
            + ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
        )
        for round_number in range(args.repeats):
            order = list(runs.items())
            if round_number % 2:
                order.reverse()
            for label, run in order:
                console.print(f"round {round_number + 1}/{args.repeats}: {label} ...")
                output = scratch / label.replace(" ", "").replace(",", "-")
                measure(run, args.assignment, scratch / "submissions", output, args.device)
        gradebooks = {label: run.result.gradebook.read_text() for label, run in runs.items()}

    table = Table(title=f"Batch grading, {args.assignment}, {args.count} submissions")
    columns = ("run", "wall s", "per minute", "CPU s per submission", "graded", "not graded")
    columns += ("reference calls run", "answered by cache", "reference s")
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, run in runs.items():
        result, cache = run.result, run.result.cache
        graded = sum(r.status == "graded" for r in result.rows)
        # Ray's processes are not this process's children: their CPU time is not seen here.
        cpu = "–" if run.cluster else f"{run.cpu / len(result.rows):.2f}"
        table.add_row(
            label,
            f"{run.wall:.1f}",
            f"{60 * len(result.rows) / run.wall:.1f}",
            cpu,
            str(graded),
            str(len(result.rows) - graded),
            str(cache.misses + cache.uncacheable),
            str(cache.hits),
            f"{cache.compute_s:.2f}",
        )
    console.print(table)

    one, two, off = list(runs.values())[:3]
    console.print(f"throughput, jobs 2 / jobs 1: {one.wall / two.wall:.2f}x (wall clock)")
    console.print(
        f"reference cache, on / off at jobs 2: {off.wall / two.wall:.2f}x wall clock, "
        f"{off.cpu / two.cpu:.2f}x CPU time; reference calls run "
        f"{off.result.cache.misses + off.result.cache.uncacheable} -> "
        f"{two.result.cache.misses + two.result.cache.uncacheable}; time in the reference "
        f"{off.result.cache.compute_s:.2f} s -> {two.result.cache.compute_s:.2f} s"
    )
    if args.ray:
        ray_run = runs["ray, 2 local nodes"]
        overhead = ray_run.result.summary["cluster"]["overhead_ms"]
        console.print(
            f"throughput, ray 2 nodes / jobs 2: {two.wall / ray_run.wall:.2f}x (wall clock); "
            f"Ray's overhead per submission: median {overhead['median']:.0f} ms, "
            f"max {overhead['max']:.0f} ms (the first tasks start the grading processes)"
        )
    rows = {label: text.count("\n") - 1 for label, text in gradebooks.items()}
    same = len(set(gradebooks.values())) == 1
    console.print(
        f"gradebook rows: {', '.join(f'{k}: {v}' for k, v in rows.items())}; "
        f"identical across runs: {'yes' if same else 'NO'}"
    )
    if not same or any(n != args.count for n in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
