"""Commands that help a student start: `grade list` and `grade init ASSIGNMENT`."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from grader.cli.common import assignment_argument, course_option, handle_errors
from grader.course import Assignment, load_course
from grader.errors import BadInput


@click.command("list")
@course_option
@handle_errors
def list_assignments(course_dir: Path | None) -> None:
    """List the course's assignments."""
    course = load_course(course_dir)
    table = Table("Assignment", "Title", "Points", "Files")
    for assignment in course.assignments.values():
        table.add_row(
            assignment.name,
            assignment.title,
            f"{assignment.points:g}",
            ", ".join(assignment.files),
        )
    Console().print(table)


@click.command("init")
@assignment_argument
@click.option(
    "--dir",
    "target_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the folder (default: ./ASSIGNMENT).",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option(
    "--notebook",
    is_flag=True,
    help="Start from a notebook (MODULE.ipynb: the README and the stubs as cells) instead.",
)
@course_option
@handle_errors
def init(
    assignment: str, target_dir: Path | None, force: bool, notebook: bool, course_dir: Path | None
) -> None:
    """Create ./ASSIGNMENT with the starter code and the exercise's README."""
    course = load_course(course_dir)
    spec = course.assignment(assignment)
    target = target_dir or Path.cwd() / spec.name
    if notebook:
        _init_notebook(spec, target, force)
        return
    sources = [p for p in spec.template_dir.iterdir() if p.is_file()] + [spec.readme]
    existing = [target / p.name for p in sources if (target / p.name).exists()]
    if existing and not force:
        raise BadInput(
            f"{existing[0]} already exists; your work is kept. Use --force to overwrite it."
        )
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copy2(source, target / source.name)
    click.echo(f"Created {target} with {', '.join(p.name for p in sources)}.")
    click.echo(f"Edit {spec.files[0]}, then run: grade {spec.name}")


def _init_notebook(spec: Assignment, target: Path, force: bool) -> None:
    """Write the starter notebook into `target`, never beside the module it stands for."""
    path = target / f"{spec.module}.ipynb"
    module = target / spec.files[0]
    if module.exists():
        raise BadInput(
            f"{module} already exists; a notebook beside it would leave two submissions. "
            "Use another --dir."
        )
    if path.exists() and not force:
        raise BadInput(f"{path} already exists; your work is kept. Use --force to overwrite it.")
    from grader.notebook.starter import starter_notebook  # `list` need not import it

    text = starter_notebook(spec)
    target.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    click.echo(f"Created {path}: the exercise and the stubs as cells.")
    click.echo(f"Open it in Jupyter (or upload it to Colab), then run: grade {spec.name}")
