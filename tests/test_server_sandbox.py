"""`grade serve` refuses to start without the sandbox's protections a service needs, and
with --allow-weak-sandbox starts and says which are off."""

from __future__ import annotations

import signal

import httpx
import pytest
from click.testing import CliRunner
from service_support import build_course, start_server

from grader import doctor
from grader.cli import cli
from grader.course import load_course
from grader.errors import BadInput
from grader.server.protections import check_sandbox, missing_protections

pytest.importorskip("fastapi")

STRONG = {
    "processes": "active: own PID namespace; everything the worker starts dies with it",
    "network": "active: empty network namespace",
    "memory": "active: 2304 MB of memory and 512 processes for the worker",
    "filesystem": "active: Landlock ABI 7",
    "view": "active: a root of its own",
    "privileges": "active: runs as a uid of its own, no groups, no capabilities",
    "no_new_privileges": "active",
    "user namespaces": "active: seccomp refuses new user namespaces",
}
NO_CGROUP = STRONG | {"memory": "unavailable: no memory cgroup here"}


def _harden_off(course, name: str) -> None:
    toml = course / "assignments" / name / "assignment.toml"
    toml.write_text(toml.read_text().replace("[limits]", "[limits]\nharden = false"))


def test_each_required_protection_that_is_off_is_named_with_why():
    assert missing_protections(STRONG) == []
    # One wall of the two is enough; a grader that is not root needs no capability dropped.
    other_wall = STRONG | {"filesystem": "unavailable: no Landlock on this kernel"}
    not_root = STRONG | {"privileges": "not needed: the grader does not run as root"}
    assert missing_protections(other_wall) == missing_protections(not_root) == []
    assert missing_protections(NO_CGROUP) == ["memory cgroup (unavailable: no memory cgroup here)"]
    no_walls = {k: v for k, v in STRONG.items() if k not in ("filesystem", "view")}
    wall = "file-system wall (Landlock or a private root) (not applied)"
    assert missing_protections(no_walls) == [wall]
    assert len(missing_protections({"worker": "failed: it crashed"})) == 7


def test_check_sandbox_refuses_unless_allowed_and_then_says_what_is_off(tmp_path):
    course = load_course(build_course(tmp_path))
    assert check_sandbox(course, False, probe=lambda limits: STRONG) == ""
    with pytest.raises(BadInput) as refused:
        check_sandbox(course, False, probe=lambda limits: NO_CGROUP)
    assert "every assignment: memory cgroup" in str(refused.value)
    assert "--allow-weak-sandbox" in str(refused.value)
    weak = check_sandbox(course, True, probe=lambda limits: NO_CGROUP)
    assert "memory cgroup (unavailable: no memory cgroup here)" in weak


def test_serve_exits_2_naming_the_missing_protection_and_the_flag(tmp_path, monkeypatch):
    course = build_course(tmp_path)
    monkeypatch.setattr(doctor, "sandbox_protections", lambda limits=None: NO_CGROUP)
    args = ["serve", "--course", str(course), "--data", str(tmp_path / "data"), "--port", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "memory cgroup" in result.output and "--allow-weak-sandbox" in result.output
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_an_assignment_that_turns_hardening_off_stops_the_start(tmp_path):
    course = build_course(tmp_path)
    _harden_off(course, "closed")
    args = ["serve", "--course", str(course), "--data", str(tmp_path / "data"), "--port", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "closed: every protection (its [limits] say harden = false)" in result.output


def test_allow_weak_sandbox_starts_and_logs_which_protections_are_off(tmp_path):
    course = build_course(tmp_path)
    _harden_off(course, "closed")
    data = tmp_path / "data"
    server = start_server(course, data, options=("--allow-weak-sandbox",))
    try:
        assert httpx.get(server.url + "/api/v1/health").json()["status"] == "ok"
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    log = (tmp_path / "data.log").read_text()
    assert "serving with a weak sandbox" in log
    assert "closed: every protection" in log
