"""What one grade takes on a cluster, and how a batch fits the cluster it is given.

An assignment says what one grade of it needs in an optional `[cluster]` table of its
`assignment.toml`:

    [cluster]
    num_cpus = 1      # the default
    num_gpus = 1      # default 0; a fraction (0.5) lets that many grades share a GPU

so GPU trainings never share a device unless the course says they may, and their times stay
comparable. `place_on` turns that and the cluster's totals into the batch's placement: the
device ("auto" is "cuda" only for an assignment that asks for a GPU, on a cluster that has
one), the resources each task asks Ray for, how many grades run at once, and the note that
every report carries when a GPU assignment is graded on CPU because the cluster has no GPU.
Pure functions of their inputs: nothing here talks to Ray.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from grader.course import Assignment
from grader.errors import BadInput, GraderError
from grader.executor import Placement


@dataclass(frozen=True)
class TaskResources:
    """The Ray resources of one grade (`num_cpus`, `num_gpus`)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @classmethod
    def of(cls, assignment: Assignment) -> TaskResources:
        """The assignment's `[cluster]` table; GraderError naming the file if it is wrong."""
        path = assignment.folder / "assignment.toml"
        try:
            table = dict(tomllib.loads(path.read_text(encoding="utf-8")).get("cluster", {}))
            unknown = set(table) - {"num_cpus", "num_gpus"}
            if unknown:
                raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
            resources = cls(float(table.get("num_cpus", 1)), float(table.get("num_gpus", 0)))
        except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as error:
            raise GraderError(f"{path} [cluster] is invalid: {error}") from error
        gpus = resources.num_gpus
        if resources.num_cpus <= 0 or gpus < 0 or (gpus > 1 and not gpus.is_integer()):
            raise GraderError(
                f"{path} [cluster]: num_cpus must be positive and num_gpus 0, a fraction "
                "of one GPU or a whole number of GPUs."
            )
        return resources


def cpu_fallback_note(assignment: str) -> str:
    """What every report says when a GPU assignment is graded on a cluster without GPUs."""
    return (
        f"the Ray cluster has no GPU: {assignment} was graded on the CPU, with its CPU time budgets"
    )


def _fits(available: float, each: float) -> int:
    return math.floor(available / each + 1e-9)


def place_on(
    assignment: Assignment,
    wanted: TaskResources,
    totals: Mapping[str, float],
    device: str,
    where: str,
) -> tuple[Placement, TaskResources]:
    """The batch's placement on a cluster with resources `totals` (Ray's
    `cluster_resources()`) and what each task asks for; BadInput if no grade fits."""
    cpus, gpus = float(totals.get("CPU", 0)), float(totals.get("GPU", 0))
    notes: tuple[str, ...] = ()
    if device == "cuda":
        if gpus <= 0:
            raise BadInput("--device cuda was asked for, but the Ray cluster has no GPU.")
        request = TaskResources(wanted.num_cpus, wanted.num_gpus or 1.0)
    elif device == "auto" and wanted.num_gpus > 0 and gpus > 0:
        device, request = "cuda", wanted
    else:
        if device == "auto" and wanted.num_gpus > 0:
            notes = (cpu_fallback_note(assignment.name),)
        device, request = "cpu", TaskResources(wanted.num_cpus, 0.0)
    jobs = _fits(cpus, request.num_cpus)
    if request.num_gpus:
        jobs = min(jobs, _fits(gpus, request.num_gpus))
    if jobs < 1:
        needs = f"{request.num_cpus:g} CPU" + (
            f" and {request.num_gpus:g} GPU" if request.num_gpus else ""
        )
        raise BadInput(
            f"one grade of {assignment.name} needs {needs}; the Ray cluster at {where} has "
            f"{cpus:g} CPU and {gpus:g} GPU."
        )
    return Placement(device, jobs, f"on the Ray cluster at {where}", notes), request
