"""The grading service on a Ray cluster (`grade serve --cluster`): a real server on loopback
sends its queue to the run's two-node Ray cluster (`ray_cluster`), so each grade runs on a
node, never in the server; a check fixed while it serves reaches the nodes; a node killed
mid-grade and a server killed mid-grade cost no submission its grade and give none two.

The course's "slow" assignment sleeps 2 s in a check, so grades overlap and both nodes work.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ray_support import RAY_GROUP, add_node, killed_once_it_grades, node_ids, outlived
from service_support import ROSTER, admin, build_course, results, start_server, tokens

from grader.cli import cli
from grader.cluster import INSTALL
from grader.cluster.resources import cpu_fallback_note

pytest.importorskip("fastapi")
pytestmark = pytest.mark.xdist_group(RAY_GROUP)  # the run's one cluster, on one xdist worker

CORRECT = b"def double(x):\n    return x + x\n"
WRONG = b"def double(x):\n    return 3 * x\n"


def _course(root: Path, gpu: bool = False) -> tuple[Path, Path, dict[str, str]]:
    """The service tests' course (its "slow" assignment asking for a GPU per grade when
    `gpu`), a data folder with the roster imported and a staff account; the tokens."""
    course = build_course(root)
    if gpu:
        toml = course / "assignments" / "slow" / "assignment.toml"
        toml.write_text(toml.read_text() + "\n[cluster]\nnum_gpus = 1\n")
    (root / "roster.csv").write_text(ROSTER)
    data = root / "data"
    admin(data, None, "roster", "import", str(root / "roster.csv"))
    people = tokens(data)
    people["prof"] = admin(data, None, "staff", "add", "prof").strip()
    return course, data, people


def _submit(server, token: str, source: bytes, assignment: str = "slow") -> int:
    with server.client(token) as client:
        answer = client.post(
            f"/assignments/{assignment}/submissions", files=[("files", ("toy.py", source))]
        )
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]


def _descendants_grading(pid: int) -> list[int]:
    """Processes under `pid` (at any depth) running a grading process (`worker_main`)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])

    def under(child: int) -> bool:
        while child > 1:
            child = parents.get(child, 0)
            if child == pid:
                return True
        return False

    found = []
    for child in parents:
        with contextlib.suppress(OSError):
            if under(child) and b"worker_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def test_the_service_grades_each_submission_on_a_cluster_node(ray_cluster, tmp_path):
    course, data, people = _course(tmp_path, gpu=True)
    server = start_server(course, data, cluster=ray_cluster.address, device="auto")
    try:
        sent = [
            (_submit(server, people[login], source), login, score)
            for login, source, score in (
                ("ann", CORRECT, 15.0),
                ("bob", WRONG, 0.0),
                ("ann", WRONG, 0.0),
                ("bob", CORRECT, 15.0),
            )
        ]
        staff_views = []
        for submission, login, score in sent:
            own = server.wait_for(people[login], submission, ("graded",))
            assert own["score"] == score
            assert "node" not in own["report"]  # where it ran is the staff's business
            assert cpu_fallback_note("slow") in own["report"]["notes"]
            assert own["report"]["device"] == "cpu"
            staff_views.append(server.wait_for(people["prof"], submission, ("graded",)))
        used = {view["report"]["node"].split("/")[1] for view in staff_views}
        assert used == node_ids(ray_cluster)  # the grades overlapped: both nodes worked
        assert _descendants_grading(server.process.pid) == []  # none graded in the server

        # A check fixed while the service runs: the regrade runs the new check on the nodes.
        hidden = course / "assignments" / "slow" / "checks" / "hidden" / "test_slow_secret.py"
        hidden.write_text(hidden.read_text().replace("points(5)", "points(7)"))
        with server.client(people["prof"]) as client:
            assert client.post("/staff/assignments/slow/regrade").json() == {"queued": 4}
        for submission, login, score in sent:
            regraded = server.wait_for(people[login], submission, ("graded",))
            assert regraded["score"] == (17.0 if score else 0.0)
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert results(data) == {submission: ("graded", 2, 2) for submission, _, _ in sent}


def test_a_node_killed_mid_grade_costs_no_submission_its_grade_nor_gives_it_two(
    ray_cluster, tmp_path
):
    course, data, people = _course(tmp_path)
    doomed = add_node(ray_cluster, num_cpus=2)
    server = start_server(course, data, cluster=ray_cluster.address)
    try:
        with killed_once_it_grades(ray_cluster, doomed) as killed:
            sent = [_submit(server, people["ann"], CORRECT) for _ in range(4)]
            views = [server.wait_for(people["prof"], s, ("graded",)) for s in sent]
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert killed, "the node was never given a grade"
    assert [view["score"] for view in views] == [15.0] * 4
    assert not [v for v in views if v["report"]["node"].endswith(doomed.node_id[:8])]
    assert results(data) == {submission: ("graded", 1, 1) for submission in sent}
    assert not outlived(killed), "a grading process outlived its node"


def test_a_server_killed_mid_grade_requeues_it_and_sigterm_lets_the_clusters_grades_end(
    ray_cluster, tmp_path
):
    course, data, people = _course(tmp_path)
    ann = people["ann"]
    first = start_server(course, data, cluster=ray_cluster.address)
    sent = [_submit(first, ann, CORRECT) for _ in range(2)]
    first.wait_for(ann, sent[0], ("running",))
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start_server(course, data, cluster=ray_cluster.address)
    second.wait_for(ann, sent[0], ("running",))  # requeued; the slow check keeps it running
    assert second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    state = results(data)
    assert state[sent[0]] == ("graded", 2, 1)  # SIGTERM let it finish on the cluster

    third = start_server(course, data, cluster=ray_cluster.address)
    try:
        for submission in sent:
            assert third.wait_for(ann, submission, ("graded",))["score"] == 15.0
    finally:
        assert third.stop() in (0, -signal.SIGTERM)
    assert {s: row[0::2] for s, row in results(data).items()} == {s: ("graded", 1) for s in sent}


def test_serve_on_a_cluster_without_ray_installed_exits_2_with_the_install_command(
    monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    course, _, _ = _course(tmp_path)
    data = tmp_path / "served"
    arguments = ["serve", "--course", str(course), "--data", str(data), "--cluster", "auto"]
    outcome = CliRunner().invoke(cli, arguments)
    assert outcome.exit_code == 2
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and INSTALL in lines[0], outcome.output
    assert not data.exists()
