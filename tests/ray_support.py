"""Helpers for the tests that grade on a real Ray cluster (`grade batch --cluster`, `grade
serve --cluster`): the cluster every such test shares, nodes that run this checkout's grader,
and the processes a node runs.

The cluster (the `ray_cluster` fixture in conftest.py) is started once per run: every test
that uses it is in the xdist group `RAY_GROUP`, so with `--dist loadgroup` they share one
worker, and that worker's process is the cluster's first driver.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import ROOT

RAY_GROUP = "ray-cluster"
NODE_CPUS = 1
FAST_NODE_DEATH = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}
# A node's Ray workers inherit its environment: the package as if installed, and the tests'
# modules (`misbehaving_grade`), whichever driver (a test, a server) sends them work.
NODE_PYTHONPATH = f"{ROOT}:{ROOT / 'tests'}"


@contextlib.contextmanager
def node_environment() -> Iterator[None]:
    """This process's environment as a node started now should have it."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = NODE_PYTHONPATH
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def start_cluster() -> Any:
    """A head and a second node, `NODE_CPUS` each, with this process connected to them."""
    import ray
    from ray.cluster_utils import Cluster

    with node_environment():
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": NODE_CPUS,
                "include_dashboard": False,
                "include_log_monitor": False,
                "_system_config": FAST_NODE_DEATH,
            },
        )
    try:
        add_node(cluster, num_cpus=NODE_CPUS)
        ray.init(address=cluster.address, logging_level="error", log_to_driver=False)
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def add_node(cluster: Any, **options: Any) -> Any:
    """Another node of `cluster` (Ray's `add_node` options), running this checkout's grader."""
    with node_environment():
        return cluster.add_node(**options)


def node_ids(cluster: Any) -> set[str]:
    """The cluster's nodes as rows name them (the start of Ray's node id)."""
    return {n.node_id[:8] for n in [cluster.head_node, *cluster.worker_nodes]}


def grading_processes_under(parent: int) -> list[int]:
    """The grading processes (`grader.pool.worker_main`) whose parent's parent is `parent`
    (a node's raylet starts Ray workers; a Ray worker starts a grading process)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found = []
    for pid, ppid in parents.items():
        with contextlib.suppress(OSError):
            grading = b"worker_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            if grading and parents.get(ppid) == parent:
                found.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def killed_once_it_grades(cluster: Any, node: Any) -> Iterator[list[int]]:
    """Remove `node` from `cluster` (as if its machine died: no goodbye) as soon as it runs a
    grading process; yields the list that then holds the grading processes it was running."""
    raylet = node.all_processes["raylet"][0].process.pid
    stop, killed = threading.Event(), []

    def kill_once_it_grades() -> None:
        while not stop.wait(0.05):
            grading = grading_processes_under(raylet)
            if grading:
                cluster.remove_node(node, allow_graceful=False)
                killed.extend(grading)
                return

    killer = threading.Thread(target=kill_once_it_grades)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join()


def outlived(pids: list[int], wait_s: float = 30.0) -> list[int]:
    """Those of `pids` still alive after up to `wait_s` (a killed node's processes go soon)."""
    deadline = time.monotonic() + wait_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]
