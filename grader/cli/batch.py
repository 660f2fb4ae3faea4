"""`grade batch ASSIGNMENT SUBMISSIONS_DIR -o OUT`: grade a class, show progress and a summary.

Parses options, calls `grader.batch.grade_batch`, and renders: a progress bar with ETA and
the running mean while grading (one line per student when stderr is not a terminal), then a
summary table, a score histogram, the checks most students failed and the submissions that
could not be graded. The grading, resuming and files are the library's.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from pathlib import Path

import click
from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from grader.batch import EXPORTS, FORMAT_EXTENSIONS, BatchPlan, BatchResult, grade_batch
from grader.cli.common import (
    assignment_argument,
    course_option,
    data_dir_option,
    grading_options,
    handle_errors,
)
from grader.cluster import connect
from grader.course import load_course
from grader.report.gradebook import StudentResult
from grader.safetext import one_line

STATUS_STYLE = {
    "graded": "green",
    "rejected": "yellow",
    "error": "red",
    "timeout": "yellow",
    "crashed": "red",
    "pending": "dim",
}
SHOWN_PROBLEMS = 10
BAR_WIDTH = 40


class BatchProgress:
    """The live view of a batch: a bar with ETA and the running mean, or plain lines."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task_id = None
        self.percents: list[float] = []
        self.done = 0
        self.total = 0

    def on_plan(self, plan: BatchPlan) -> None:
        self.total = plan.to_grade
        if plan.ignored:
            self.console.print(
                f"Ignoring {len(plan.ignored)} file(s) that are neither a folder, a .zip nor "
                "a notebook: "
                + ", ".join(one_line(name) for name in plan.ignored[:5])
                + (" ..." if len(plan.ignored) > 5 else ""),
                style="yellow",
                markup=False,
            )
        for warning in plan.warnings:
            self.console.print(f"Warning: {one_line(warning)}", style="yellow", markup=False)
        line = f"{plan.assignment}: {plan.students} submissions, {plan.to_grade} to grade"
        if plan.up_to_date:
            line += f", {plan.up_to_date} up to date (use --force to regrade)"
        where = f" {plan.where}" if plan.where else ""
        self.console.print(line + f", {plan.jobs} at a time{where}.", style="dim")
        for note in plan.notes:
            self.console.print(f"Note: {note}.", style="yellow", markup=False)
        if plan.to_grade and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]Grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[mean]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("grading", total=plan.to_grade, mean="")

    def on_result(self, row: StudentResult) -> None:
        self.done += 1
        if row.status != "pending":
            self.percents.append(row.percent)
        mean = f"mean {statistics.fmean(self.percents):.1f}%" if self.percents else ""
        if self.progress is not None:
            self.progress.update(self.task_id, advance=1, mean=mean)
            return
        width = len(str(self.total))
        text = Text(f"[{self.done:>{width}}/{self.total}] {one_line(row.student)}  ")
        text.append(f"{row.score:g}/{row.max_score:g}  ")
        text.append(row.status, style=STATUS_STYLE.get(row.status, ""))
        text.append(f"  {row.duration_s:.1f}s")
        if row.message:
            text.append(f"  {one_line(row.message, 160)}", style="dim")
        self.console.print(text, soft_wrap=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _number(value: float | None, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.1f}{suffix}"


def summary_table(result: BatchResult) -> Table:
    """Counts, score statistics, time and throughput of the batch."""
    summary = result.summary
    title = f"{result.assignment}: {result.title}"
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    statuses = summary["statuses"]
    counts = ", ".join(f"{n} {s}" for s, n in statuses.items() if n)
    table.add_row("Students", f"{summary['students']}" + (f" ({counts})" if counts else ""))
    score, percent = summary["score"], summary["percent"]
    table.add_row(
        "Score",
        f"mean {_number(score['mean'])}, median {_number(score['median'])}, "
        f"sd {_number(score['stdev'])}, min {_number(score['min'])}, "
        f"max {_number(score['max'])} of {score['max_score']:g}",
    )
    table.add_row("Percent", f"mean {_number(percent['mean'], '%')}")
    timing = summary["time"]
    throughput = timing["submissions_per_minute"]
    line = f"{timing['graded_this_run']} done in {result.wall_s:.1f} s"
    if throughput and timing["graded_this_run"]:
        line += f" ({throughput:.1f} per minute)"
    if result.up_to_date:
        line += f", {result.up_to_date} up to date"
    table.add_row("This run", line)
    cache = summary["reference_cache"]
    if cache["hits"] or cache["misses"]:
        table.add_row(
            "Reference cache",
            f"{cache['hits']} answered, {cache['misses']} computed, "
            f"{cache['saved_s']:.2f} s of reference computation saved",
        )
    cluster = summary.get("cluster")
    if cluster:
        nodes = cluster["nodes"]
        line = f"{sum(nodes.values())} graded on {len(nodes)} node(s) of {cluster['address']}"
        if cluster["overhead_ms"]:
            line += f", Ray's overhead {cluster['overhead_ms']['median']:.0f} ms a submission"
        table.add_row("Cluster", Text(line))
        for note in cluster["notes"]:
            table.add_row("Note", Text(note, style="yellow"))
    return table


def histogram_view(result: BatchResult) -> Group:
    """The score histogram as text bars."""
    bins = result.summary["histogram"]
    most = max((b["count"] for b in bins), default=0) or 1
    lines = [Text("Score histogram", style="bold")]
    for b in reversed(bins):
        bar = "█" * round(BAR_WIDTH * b["count"] / most)
        line = Text(f"{b['from']:>5g}–{b['to']:<4g}% │ ")
        lines.append(line.append(bar, "cyan").append(f" {b['count']}"))
    return Group(*lines)


def failed_checks_table(result: BatchResult) -> Table | None:
    """The checks most students failed, with their pass rate."""
    checks = {c["id"]: c for c in result.summary["checks"]}
    failing = [checks[i] for i in result.summary["most_failed"]]
    if not failing:
        return None
    table = Table(title="Checks most students failed", title_justify="left")
    table.add_column("Check")
    table.add_column("Passed", justify="right")
    table.add_column("Points", justify="right")
    for check in failing:
        name = check["name"] + (" (hidden)" if check["hidden"] else "")
        table.add_row(
            Text(one_line(name)),
            f"{check['passed']}/{check['ran']} ({100 * check['pass_rate']:.0f}%)",
            f"{check['max_score']:g}",
        )
    return table


def problems_table(result: BatchResult) -> Table | None:
    """Submissions that were not graded normally (rejected, or never imported), and why."""
    problems = [r for r in result.rows if r.status not in ("graded", "pending") or r.reason]
    if not problems:
        return None
    table = Table(title="Not graded normally", title_justify="left")
    table.add_column("Student")
    table.add_column("Status")
    table.add_column("Why")
    for row in problems[:SHOWN_PROBLEMS]:
        status = Text(row.status, STATUS_STYLE.get(row.status, ""))
        why = Text(one_line(row.reason or row.message))
        table.add_row(Text(one_line(row.student)), status, why)
    if len(problems) > SHOWN_PROBLEMS:
        table.add_row("…", "", f"{len(problems) - SHOWN_PROBLEMS} more in summary.json")
    return table


def render_summary(result: BatchResult, console: Console) -> None:
    """Everything printed after a batch."""
    console.print(summary_table(result))
    if result.summary["count"]:
        console.print(histogram_view(result))
    for table in (failed_checks_table(result), problems_table(result)):
        if table is not None:
            console.print(table)
    lms = result.summary.get("lms", {})
    for key, words in (
        ("unmatched_submissions", "submission(s) the roster has nobody for"),
        ("roster_without_submission", "student(s) in the roster with no submission"),
        ("roster_with_several_submissions", "student(s) with several submissions (best counts)"),
    ):
        names = lms.get(key, [])
        if names:
            shown = ", ".join(one_line(n) for n in names[:SHOWN_PROBLEMS])
            more = " ..." if len(names) > SHOWN_PROBLEMS else ""
            console.print(Text(f"{len(names)} {words}: {shown}{more}", style="yellow"))
    for name, export in lms.get("exports", {}).items():
        if export["left_out"]:
            shown = ", ".join(one_line(n) for n in export["left_out"][:SHOWN_PROBLEMS])
            line = f"{name}.csv leaves out {len(export['left_out'])} without an id: {shown}"
            console.print(Text(line, style="yellow"))
    written = [str(result.gradebook), *(str(result.output / e) for e in result.exports)]
    console.print(
        Text(
            f"Wrote {', '.join(written)}, {result.summary_path} and {result.output / 'results'}/",
            style="dim",
        )
    )


@click.command("batch", short_help="Grade a folder of submissions into a gradebook.")
@assignment_argument
@click.argument("submissions", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results/, gradebook.csv and summary.json (reused to resume).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=lambda: os.cpu_count() or 1,
    show_default="number of CPUs",
    help="Submissions graded at the same time.",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Grade on a Ray cluster: auto (the cluster this machine is part of) or "
    "ray://HOST:PORT; it decides how many run at once. Needs pip install 'dl-grader[ray]'.",
)
@click.option("--force", is_flag=True, help="Regrade students whose result is up to date.")
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="Grade (always regrade) only this student; repeatable.",
)
@click.option(
    "--retry-failed", is_flag=True, help="Regrade students whose grade ended in error or timeout."
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(sorted(FORMAT_EXTENSIONS)),
    help="Also write this report per student, to OUT/FORMAT/; repeatable.",
)
@click.option(
    "--roster",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Class list CSV mapping submissions to student ids (a Canvas gradebook export will do).",
)
@click.option(
    "--export",
    "lms_exports",
    multiple=True,
    type=click.Choice(EXPORTS),
    help="Also write OUT/canvas.csv or OUT/moodle.csv for the LMS's grade import; repeatable.",
)
@click.option(
    "--lms-column",
    metavar="TITLE",
    help="Canvas's assignment column, e.g. 'Assignment 3 (12345)' (default: the assignment's "
    "name).",
)
@click.option("--bom", is_flag=True, help="Write CSV files as UTF-8 with a BOM (for Excel).")
@grading_options
@click.option(
    "--call-timeout",
    type=click.FloatRange(min=0.1),
    help="Override the assignment's per-call time limit (seconds).",
)
@click.option(
    "--no-reference-cache",
    is_flag=True,
    help="Recompute reference results for every submission (for measuring the cache).",
)
@course_option
@data_dir_option
@handle_errors
def batch(
    assignment: str,
    submissions: Path,
    output: Path,
    jobs: int,
    cluster: str | None,
    force: bool,
    only: tuple[str, ...],
    retry_failed: bool,
    formats: tuple[str, ...],
    roster: Path | None,
    lms_exports: tuple[str, ...],
    lms_column: str | None,
    bom: bool,
    public_only: bool,
    device: str,
    seed: int,
    call_timeout: float | None,
    no_reference_cache: bool,
    course_dir: Path | None,
) -> None:
    """Grade every submission (folder, .zip or .ipynb) in SUBMISSIONS into a gradebook.

    Each child of SUBMISSIONS is one student, named by the child; the files of a Canvas bulk
    download are grouped per student, and the folders of a Gradescope export are named by
    who submitted them. Results are written as each student finishes; running the same
    command again resumes, skipping students whose submission, checks and grader are
    unchanged. With --cluster each submission is graded as a Ray task on the cluster's
    nodes, in the same sandbox.
    """
    course = load_course(course_dir)
    spec = course.assignment(assignment)
    limits = spec.limits.with_overrides(call_timeout_s=call_timeout)
    console = Console(stderr=True)
    progress = BatchProgress(console)
    try:
        with contextlib.ExitStack() as stack:
            executor = stack.enter_context(connect(cluster)) if cluster else None
            result = grade_batch(
                spec.name,
                submissions,
                output,
                course=course,
                jobs=jobs,
                force=force,
                only=only,
                retry_failed=retry_failed,
                seed=seed,
                device=device,
                public_only=public_only,
                limits=limits,
                formats=formats,
                roster=roster,
                lms_exports=lms_exports,
                lms_column=lms_column,
                bom=bom,
                reference_cache=not no_reference_cache,
                on_plan=progress.on_plan,
                on_result=progress.on_result,
                executor=executor,
            )
    except KeyboardInterrupt:
        progress.stop()
        console.print(
            f"Interrupted after {progress.done} of {progress.total}. The results written so far "
            "are kept; run the same command again to finish.",
            style="yellow",
        )
        raise
    progress.stop()
    render_summary(result, Console())
