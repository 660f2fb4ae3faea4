"""`grade doctor` reports what it found by starting a real worker."""

from __future__ import annotations

from click.testing import CliRunner

from grader.cli import cli
from grader.doctor import probe
from grader.sandbox import forkserver
from grader.sandbox.hardening import landlock_abi


def test_probe_reports_a_working_worker_and_each_protection():
    diagnosis = probe()
    assert diagnosis.facts["worker"] == "starts and answers"
    for name in ("network", "filesystem", "signals", "no_new_privileges", "privileges"):
        state = diagnosis.protections[name]
        assert state.startswith(("active", "unavailable", "not needed")), (name, state)
    expected = "active" if landlock_abi() > 0 else "unavailable"
    assert diagnosis.protections["filesystem"].startswith(expected)
    fork_server = "works: batches and --repeat fork" if forkserver.supported() else "unavailable"
    assert diagnosis.facts["fork server"].startswith(fork_server)
    assert forkserver.current() is None  # the probe leaves no template behind


def test_doctor_command_prints_both_tables():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "Sandbox" in result.output
    assert "filesystem" in result.output
