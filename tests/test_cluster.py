"""Grading on a Ray cluster: the same gradebook as the local pool, nothing lost when a node dies.

One real Ray cluster of two nodes on this machine (Ray's cluster utilities: a head and a
second node, one CPU each; `ray_cluster`, shared with the service's cluster tests). A small
mixed class of assignment1 submissions (right, stub, buggy, a syntax error, a crash, a
corrupt zip, an escaping zip, a link in a zip, an empty folder) is graded once by the local
pool and once on the cluster; the course is a copy whose assignment1 asks for a GPU, which
this cluster lacks, so every report must say the grades ran on CPU. The other tests regrade
the same class: with a node killed mid-grade, and with the driver stopped and rerun; and a
grade that hangs or kills its grading process on a node costs one row. The placement rules,
the bundles that carry files to nodes and the missing-Ray message need no cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from ray_support import RAY_GROUP, add_node, killed_once_it_grades, node_ids, outlived
from support import FIXTURES, ROOT
from test_batch import LIMITS, make_class

from grader.batch import BatchPlan, BatchResult, grade_batch
from grader.cli import cli
from grader.cluster import INSTALL, check_address, connect
from grader.cluster.driver import cache_key, checked_reply, course_bundle, data_bundle
from grader.cluster.node import Shipment, materialize, private_folder
from grader.cluster.resources import TaskResources, cpu_fallback_note, place_on
from grader.cluster.transfer import Bundle, pack, unpack
from grader.course import Course, load_course
from grader.data import ENV_VARIABLE as DATA_VARIABLE
from grader.data.mnist import NAMES, locate, mnist_folder
from grader.errors import BadInput, GraderError
from grader.runner import grade

pytestmark = pytest.mark.xdist_group(RAY_GROUP)  # one cluster per run with --dist loadgroup


# -- a cluster and a class -----------------------------------------------------------------------


def gpu_course(folder: Path) -> Course:
    """A course holding only assignment1, which asks for one GPU per grade."""
    shutil.copytree(ROOT / "assignments" / "assignment1", folder / "assignments" / "assignment1")
    (folder / "reference").mkdir()
    shutil.copy(ROOT / "reference" / "assignment1.py", folder / "reference")
    toml = folder / "assignments" / "assignment1" / "assignment.toml"
    toml.write_text(toml.read_text() + "\n[cluster]\nnum_gpus = 1\n")
    return load_course(folder)


@dataclass(frozen=True)
class ClassOnCluster:
    """The module's class, its course, the local pool's gradebook and the cluster's run."""

    cluster: object
    course: Course
    submissions: Path
    local: BatchResult
    result: BatchResult
    plan: BatchPlan


@pytest.fixture(scope="module")
def class_on_cluster(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster-class")
    course = gpu_course(root / "course")
    submissions = root / "submissions"
    make_class(submissions)
    shutil.rmtree(submissions / "gina")  # a hang costs seconds; the pool's watchdog is tested
    (submissions / "liam.zip").unlink()  # 60 MB; the size cap is tested in test_batch
    (submissions / "zed").symlink_to(submissions / "alice")
    options = {"course": course, "device": "auto", "limits": LIMITS}
    local = grade_batch("assignment1", submissions, root / "local", jobs=2, **options)
    plans = []
    with connect(ray_cluster.address) as executor:
        result = grade_batch(
            "assignment1",
            submissions,
            root / "ray",
            executor=executor,
            on_plan=plans.append,
            **options,
        )
    return ClassOnCluster(ray_cluster, course, submissions, local, result, plans[0])


# -- on the cluster ----------------------------------------------------------------------------


def test_a_two_node_cluster_writes_the_local_pools_gradebook(class_on_cluster):
    local, result = class_on_cluster.local, class_on_cluster.result
    assert result.gradebook.read_bytes() == local.gradebook.read_bytes()
    assert [(r.student, r.status, r.score) for r in result.rows] == [
        (r.student, r.status, r.score) for r in local.rows
    ]
    statuses = {r.status for r in result.rows}
    assert statuses == {"graded", "rejected"}
    zed = next(r for r in result.rows if r.student == "zed")
    assert "symbolic link" in zed.message
    plan = class_on_cluster.plan
    assert plan.jobs == 2 and "Ray cluster" in plan.where


def test_tasks_land_on_both_nodes_and_each_result_names_its_node(class_on_cluster):
    cluster = class_on_cluster.result.summary["cluster"]
    assert cluster["executor"] == "ray" and cluster["slots"] == 2
    used = {name.split("/")[1] for name in cluster["nodes"]}
    assert used == node_ids(class_on_cluster.cluster)
    graded = [r for r in class_on_cluster.result.rows if r.status == "graded"]
    assert sum(cluster["nodes"].values()) == len(graded)
    assert cluster["overhead_ms"]["median"] >= 0
    results = class_on_cluster.result.output / "results"
    for row in graded:
        document = json.loads((results / f"{row.student}.json").read_text())
        assert document["batch"]["node"].split("/")[1] in used


def test_a_gpu_assignment_on_a_cluster_without_gpus_is_graded_on_cpu_and_every_report_says_so(
    class_on_cluster,
):
    result = class_on_cluster.result
    note = cpu_fallback_note("assignment1")
    assert class_on_cluster.plan.notes == (note,)
    assert result.summary["cluster"]["notes"] == [note]
    assert result.summary["cluster"]["task_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    for path in (result.output / "results").glob("*.json"):
        document = json.loads(path.read_text())
        assert document["batch"]["notes"] == [note], path.name
        assert document["device"] == "cpu"


def test_a_node_killed_mid_grade_loses_nothing_and_the_gradebook_is_unchanged(
    class_on_cluster, tmp_path
):
    cluster = class_on_cluster.cluster
    doomed = add_node(cluster, num_cpus=2)
    with killed_once_it_grades(cluster, doomed) as killed, connect(cluster.address) as executor:
        result = grade_batch(
            "assignment1",
            class_on_cluster.submissions,
            tmp_path / "out",
            course=class_on_cluster.course,
            limits=LIMITS,
            executor=executor,
        )
    assert killed, "the node was never given a grade"
    assert result.gradebook.read_bytes() == class_on_cluster.local.gradebook.read_bytes()
    assert result.summary["statuses"]["crashed"] == 0
    nodes = result.summary["cluster"]["nodes"]
    assert not [n for n in nodes if n.endswith(doomed.node_id[:8])]  # its grades ran elsewhere
    assert sum(nodes.values()) == sum(r.status == "graded" for r in result.rows)
    assert not outlived(killed), "a grading process outlived its node"


def misbehaving_grade(assignment, submission, **options):
    """Stands in for `grade` in a node's grading process: a submission saying so breaks it."""
    source = (Path(submission) / "perceptron.py").read_text()
    if "# hang" in source:
        time.sleep(600)
    if "# die" in source:
        os._exit(7)
    return grade(assignment, submission, **options)


def test_a_grade_that_never_returns_or_kills_its_process_on_a_node_costs_one_row(
    class_on_cluster, tmp_path
):
    subs = tmp_path / "subs"
    correct = (FIXTURES / "assignment1" / "correct" / "perceptron.py").read_text()
    for name, extra in (("dies", "# die"), ("hangs", "# hang"), ("ok", "")):
        (subs / name).mkdir(parents=True)
        (subs / name / "perceptron.py").write_text(correct + extra)
    with connect(class_on_cluster.cluster.address) as executor:
        result = grade_batch(
            "assignment1",
            subs,
            tmp_path / "out",
            course=class_on_cluster.course,
            watchdog_s=3,
            grade_function=misbehaving_grade,
            executor=executor,
        )
    rows = {r.student: r for r in result.rows}
    assert (rows["dies"].status, rows["hangs"].status) == ("crashed", "timeout")
    assert "exit status 7" in rows["dies"].message
    assert "within 3 s" in rows["hangs"].message
    assert (rows["ok"].status, rows["ok"].score) == ("graded", 100)


def test_a_driver_stopped_mid_batch_resumes_like_a_local_batch(class_on_cluster, tmp_path):
    output = tmp_path / "out"
    submissions = class_on_cluster.submissions
    options = {"course": class_on_cluster.course, "limits": LIMITS}
    seen = []

    def stop_after_two(row):
        seen.append(row)
        if len([r for r in seen if r.status == "graded"]) == 2:
            raise KeyboardInterrupt

    address = class_on_cluster.cluster.address
    with connect(address) as executor, pytest.raises(KeyboardInterrupt):
        grade_batch(
            "assignment1",
            submissions,
            output,
            executor=executor,
            on_result=stop_after_two,
            **options,
        )
    plans = []
    with connect(address) as executor:
        result = grade_batch(
            "assignment1", submissions, output, executor=executor, on_plan=plans.append, **options
        )
    assert plans[0].up_to_date == len(seen)
    assert plans[0].to_grade == len(result.rows) - len(seen)
    assert result.gradebook.read_bytes() == class_on_cluster.local.gradebook.read_bytes()


def test_the_cli_says_where_it_grades_and_what_every_report_notes(class_on_cluster, tmp_path):
    course, address = class_on_cluster.course, class_on_cluster.cluster.address
    arguments = ["batch", "assignment1", str(class_on_cluster.submissions), "-o", str(tmp_path)]
    arguments += ["--only", "alice", "--cluster", address, "--course", str(course.root)]
    arguments += ["--call-timeout", str(LIMITS.call_timeout_s)]  # the module's grading processes
    outcome = CliRunner().invoke(cli, arguments, env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    assert f"2 at a time on the Ray cluster at {address}" in outcome.output.replace("\n", " ")
    assert cpu_fallback_note("assignment1") in outcome.output
    assert "1 graded on 1 node(s)" in outcome.output


def test_a_node_running_another_grader_version_stops_the_batch_with_the_reason(
    class_on_cluster, tmp_path, monkeypatch
):
    monkeypatch.setattr("grader.cluster.driver.__version__", "0.0.0-driver")
    with (
        connect(class_on_cluster.cluster.address) as executor,
        pytest.raises(BadInput, match=r"runs dl-grader \S+ and the batch's driver 0.0.0-driver"),
    ):
        grade_batch(
            "assignment1",
            class_on_cluster.submissions,
            tmp_path,
            course=class_on_cluster.course,
            only=["alice", "bob"],
            executor=executor,
        )
    assert "pending" in (tmp_path / "gradebook.csv").read_text()


# -- without a cluster ---------------------------------------------------------------------------


def test_cluster_without_ray_installed_exits_2_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "subs").mkdir()
    outcome = CliRunner().invoke(
        cli,
        [
            "batch",
            "assignment1",
            str(tmp_path / "subs"),
            "-o",
            str(tmp_path / "out"),
            "--cluster",
            "auto",
        ],
    )
    assert outcome.exit_code == 2
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and INSTALL in lines[0], outcome.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["auto", "ray://head:10001", "10.0.0.5:6379", "[::1]:6379"])
def test_ray_addresses_are_accepted(address):
    check_address(address)


@pytest.mark.parametrize("address", ["", "head", "http://head:80", "ray://head", "a b:1"])
def test_other_addresses_are_refused_in_one_line(address):
    with pytest.raises(BadInput, match="not a Ray address"):
        check_address(address)


def _assignment(course: Course, cluster_table: str) -> object:
    toml = course.root / "assignments" / "assignment1" / "assignment.toml"
    toml.write_text(toml.read_text().split("\n[cluster]")[0] + cluster_table)
    return Course(course.root).assignment("assignment1")


def test_placement_gives_gpus_to_assignments_that_ask_and_cpu_budgets_without_them(tmp_path):
    course = gpu_course(tmp_path / "course")
    one_gpu = _assignment(course, "\n[cluster]\nnum_gpus = 1\n")
    wanted = TaskResources.of(one_gpu)
    assert wanted == TaskResources(1.0, 1.0)
    place = lambda totals, device="auto": place_on(one_gpu, wanted, totals, device, "auto")  # noqa: E731

    placement, request = place({"CPU": 16, "GPU": 2})
    assert (placement.device, placement.jobs, placement.notes) == ("cuda", 2, ())
    assert request == TaskResources(1.0, 1.0)
    placement, request = place({"CPU": 16})
    assert (placement.device, placement.jobs) == ("cpu", 16)
    assert placement.notes == (cpu_fallback_note("assignment1"),) and request.num_gpus == 0
    placement, _ = place({"CPU": 16}, device="cpu")
    assert placement.notes == ()  # asked for: nothing to say
    with pytest.raises(BadInput, match="no GPU"):
        place({"CPU": 16}, device="cuda")
    with pytest.raises(BadInput, match="needs 1 CPU"):
        place({"CPU": 0.5, "GPU": 1})

    shared = _assignment(course, "\n[cluster]\nnum_gpus = 0.25\nnum_cpus = 2\n")
    placement, request = place_on(
        shared, TaskResources.of(shared), {"CPU": 16, "GPU": 2}, "auto", "a"
    )
    assert (placement.device, placement.jobs, request) == ("cuda", 8, TaskResources(2.0, 0.25))
    numpy_only = _assignment(course, "")
    placement, request = place_on(
        numpy_only, TaskResources.of(numpy_only), {"CPU": 3, "GPU": 2}, "auto", "a"
    )
    assert (placement.device, placement.jobs, request) == ("cpu", 3, TaskResources(1.0, 0.0))
    for table in ("num_gpus = 1.5", "num_cpus = 0", "num_gpu = 1", "num_gpus = 'one'"):
        with pytest.raises(GraderError, match=r"\[cluster\]"):
            TaskResources.of(_assignment(course, f"\n[cluster]\n{table}\n"))


def test_a_bundle_carries_files_and_odd_names_exactly_and_refuses_escapes(tmp_path):
    source = tmp_path / "source"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("x = 1\n")
    odd = source / "pkg" / "caf\udce9 \n.txt"
    odd.write_bytes(b"\x00\xff")
    (source / "empty").mkdir()
    (source / "__pycache__").mkdir()
    bundle = pack(source, skip=True)
    unpack(bundle, tmp_path / "copy", max_files=10, max_bytes=100)
    assert (tmp_path / "copy" / "pkg" / "a.py").read_text() == "x = 1\n"
    assert (tmp_path / "copy" / "pkg" / odd.name).read_bytes() == b"\x00\xff"
    assert (tmp_path / "copy" / "empty").is_dir()
    assert not (tmp_path / "copy" / "__pycache__").exists()
    assert pack(tmp_path / "copy").digest == bundle.digest

    with pytest.raises(GraderError, match="entries"):
        unpack(bundle, tmp_path / "few", max_files=3, max_bytes=100)
    with pytest.raises(GraderError, match="bytes"):
        unpack(bundle, tmp_path / "small", max_files=10, max_bytes=7)
    for path in (b"../escape.py", b"/etc/passwd", b"a/../../b", b"a//b", b"a\0b"):
        with pytest.raises(GraderError, match="unsafe path"):
            unpack(Bundle(((path, 0o644, b"x"),)), tmp_path / "bad", max_files=9, max_bytes=9)
        shutil.rmtree(tmp_path / "bad", ignore_errors=True)
    assert not (tmp_path / "escape.py").exists()
    (source / "link").symlink_to(source / "pkg")
    with pytest.raises(GraderError, match="symbolic link"):
        pack(source)


def test_the_course_bundle_is_all_a_node_needs_to_grade(course, tmp_path):
    bundle = course_bundle(course.assignment("assignment1"))
    folder = private_folder(tmp_path / "node")
    fetched = []

    def fetch(ref):
        fetched.append(ref)
        return bundle

    shipment = Shipment(bundle.digest, ["ref"])
    root = materialize(folder, "course", shipment, fetch)
    assert materialize(folder, "course", shipment, fetch) == root and fetched == ["ref"]
    assert sorted(p.name for p in root.iterdir()) == ["assignments", "reference"]
    result = grade(
        "assignment1", FIXTURES / "assignment1" / "correct", course=Course(root), device="cpu"
    )
    assert result.score == result.max_score == 100
    with pytest.raises(GraderError, match="damaged"):
        materialize(folder, "other", Shipment("0" * 64, ["ref"]), fetch)


def test_mnist_goes_to_the_nodes_only_for_an_assignment_that_trains(course, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_VARIABLE, str(tmp_path / "driver"))
    assert data_bundle(course.assignment("assignment8")) is None  # the nodes use the sample too
    (tmp_path / "driver" / "mnist").mkdir(parents=True)
    for name in NAMES:
        (tmp_path / "driver" / "mnist" / f"{name}.gz").write_bytes(name.encode())
    assert data_bundle(course.assignment("assignment1")) is None
    bundle = data_bundle(course.assignment("assignment8"))
    folder = private_folder(tmp_path / "node")
    data = materialize(folder, "data", Shipment(bundle.digest, ["ref"]), lambda ref: bundle)
    found = locate(mnist_folder(data))
    assert sorted(found) == sorted(NAMES)
    assert all(path.read_bytes() == name.encode() for name, path in found.items())


def test_a_node_folder_that_is_a_link_or_someone_elses_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(GraderError, match="not a folder of this user"):
        private_folder(tmp_path / "planted")
    assert private_folder(tmp_path / "fresh").stat().st_mode & 0o777 == 0o700


def test_the_nodes_reference_cache_lives_as_long_as_the_batchs_own(tmp_path):
    folder = tmp_path / "out" / ".cache" / "reference"
    key = cache_key(folder)
    assert cache_key(folder) == key  # a resumed batch finds its cache on the nodes
    (folder / "cluster-key").write_text("../../etc")
    assert cache_key(folder) not in (key, "../../etc")
    shutil.rmtree(tmp_path / "out")
    assert cache_key(folder) != key  # a fresh output folder starts a fresh cache


@pytest.mark.parametrize(
    "reply",
    [
        "not json",
        json.dumps(["a list"]),
        json.dumps({"status": "passed", "node": "n"}),
        json.dumps({"status": "graded"}),
        json.dumps({"status": "graded", "node": "n", "report": "text"}),
        json.dumps({"status": "graded", "node": "n", "formats": {"junit": 3}}),
        json.dumps({"status": "graded", "node": "n", "duration_s": "slow"}),
    ],
)
def test_a_malformed_reply_from_a_node_is_a_grader_error(reply):
    with pytest.raises(GraderError, match="malformed reply"):
        checked_reply(reply)
