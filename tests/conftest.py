"""Shared fixtures for the grader's own tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import FIXTURES, ROOT

from grader.cluster import INSTALL
from grader.course import Course, load_course


@pytest.fixture(scope="session", autouse=True)
def no_user_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Grade on the shipped MNIST sample, never on data in the developer's cache folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DL_GRADER_DATA", str(tmp_path_factory.mktemp("no-user-data")))
        yield


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A real Ray cluster of two one-CPU nodes on this machine, this process connected to it:
    started once per run for every test in the xdist group `ray_support.RAY_GROUP` (with
    --dist loadgroup they share a worker), shut down when the run ends."""
    try:
        import ray
    except ImportError:
        pytest.fail(f"the Ray tests need the ray extra: {INSTALL}")
    from ray_support import start_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def course() -> Course:
    """The course shipped in this repository."""
    return load_course(ROOT)


@pytest.fixture
def make_submission(tmp_path: Path) -> Callable[[str, Callable[[str], str]], Path]:
    """Copy an assignment's correct fixture into tmp_path, with its source transformed."""

    def make(assignment: str, transform: Callable[[str], str] = lambda s: s) -> Path:
        target = tmp_path / "submission"
        shutil.copytree(FIXTURES / assignment / "correct", target)
        for source in target.glob("*.py"):
            source.write_text(transform(source.read_text()))
        return target

    return make
