"""`grade data ...`: fetch the data sets the grader trains on and say which one it would use."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from grader.cli.common import handle_errors
from grader.data import ENV_VARIABLE, data_dir
from grader.data.download import DATASETS, download
from grader.data.mnist import load_idx_folder, load_mnist, mnist_folder

DATA_DIR_HELP = f"Data folder (default: ${ENV_VARIABLE}, else ~/.cache/dl-grader)."


@click.group("data")
def data() -> None:
    """Data sets for the training assignments (MNIST for assignment8)."""


@data.command("download")
@click.argument("name", type=click.Choice(sorted(DATASETS)))
@click.option(
    "--data-dir",
    "data_folder",
    type=click.Path(file_okay=False, path_type=Path),
    help=DATA_DIR_HELP,
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="Base URL to fetch the files from (repeatable; default: the public mirrors).",
)
@handle_errors
def download_command(name: str, data_folder: Path | None, mirrors: tuple[str, ...]) -> None:
    """Download NAME's files, verify their SHA-256 and keep them in the data folder."""
    dataset = DATASETS[name]
    folder = data_dir(data_folder) / dataset.folder
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        fetched = download(dataset.files, folder, mirrors or dataset.mirrors, progress=progress)
    mnist = load_idx_folder(folder)
    new = sum(f.status != "present" for f in fetched)
    click.echo(
        f"{name}: {len(fetched)} files verified in {folder} ({new} downloaded); "
        f"{mnist.description} will be used for grading."
    )


@data.command("status")
@click.option(
    "--data-dir",
    "data_folder",
    type=click.Path(file_okay=False, path_type=Path),
    help=DATA_DIR_HELP,
)
@handle_errors
def status(data_folder: Path | None) -> None:
    """Say which MNIST assignment8 would be graded on, checking the files' SHA-256."""
    folder = mnist_folder(data_folder)
    mnist = load_mnist(data_folder)
    if mnist.kind == "full":
        click.echo(f"{mnist.description} from {folder} (SHA-256 verified).")
    else:
        click.echo(
            f"no MNIST files in {folder}: grading uses the {mnist.description} shipped with the "
            "grader. `grade data download mnist` fetches the full data set."
        )
