"""`grade release ASSIGNMENT --output DIR`: write a student bundle and say what is in it.

Parses options and prints; building and verifying the bundle is `grader.release`'s job.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from grader.cli.common import assignment_argument, course_option, handle_errors
from grader.course import load_course
from grader.release import build_release


@click.command("release", short_help="Write a student bundle: stub, README, public checks.")
@assignment_argument
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create with the bundle.",
)
@click.option(
    "--solution",
    type=click.Path(exists=True, path_type=Path),
    help="A correct submission: its reference answers are recorded too, and the bundle must "
    "give it full public points.",
)
@click.option(
    "--grader-requirement",
    metavar="SPEC",
    help="The pip requirement of the grader that the bundle's requirements.txt pins "
    "(default: dl-grader==THIS VERSION), e.g. a wheel's URL.",
)
@click.option("--zip", "make_zip", is_flag=True, help="Also write DIR.zip.")
@click.option(
    "--notebook", is_flag=True, help="Students start from a notebook instead of the stub .py."
)
@click.option("--force", is_flag=True, help="Replace an existing bundle at DIR.")
@course_option
@handle_errors
def release(
    assignment: str,
    output: Path,
    solution: Path | None,
    grader_requirement: str | None,
    make_zip: bool,
    notebook: bool,
    force: bool,
    course_dir: Path | None,
) -> None:
    """Write the student bundle of ASSIGNMENT: stub, README and public checks, never the
    hidden checks or reference code."""
    course = load_course(course_dir)
    bundle = build_release(
        assignment,
        output,
        course=course,
        solution=solution,
        force=force,
        requirement=grader_requirement,
        notebook=notebook,
    )
    click.echo(
        f"Wrote {bundle.folder}: {len(bundle.files)} files, public checks worth "
        f"{bundle.public_points:g} points (hidden checks: {bundle.hidden_points:g} points, "
        "not included)."
    )
    if bundle.answers:
        click.echo(
            f"The public checks' {bundle.answers} reference answers are included as data; "
            "no reference code is."
        )
    for note in bundle.verified:
        click.echo(f"Verified: {note}")
    for warning in bundle.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if make_zip:
        archive = shutil.make_archive(str(output), "zip", output.parent, output.name)
        click.echo(f"Wrote {archive}")
