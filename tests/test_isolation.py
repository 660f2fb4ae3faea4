"""The worker's namespaces: nothing it starts or writes outlives it, and it sees nothing else.

Each test is an attack a submission made against an earlier version of the sandbox (daemons
that survived the grade, /dev/shm shared between students, other processes' command lines,
root-only files read through a kept capability, torch loaded past the import hook, workers
orphaned by a killed grader). Where the machine cannot give the protection (not Linux, no
namespaces), the test checks that the report says so instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import survivors, unique_marker

from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, StudentError, SubmissionProxy

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import os


def read(path):
    with open(path, "rb") as f:
        return len(f.read())


def write(path, megabytes=1):
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(b"x" * (1 << 20))
    return path


def exists(path):
    return os.path.exists(path)


def capabilities():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return status["CapEff"].strip(), status["CapPrm"].strip(), status["CapBnd"].strip()


def command_lines():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.append(open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace"))
            except OSError:
                pass
    return found


def daemons(marker, count):
    for _ in range(count):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", marker])
            os._exit(0)
        os.wait()
    return count


def new_user_namespace(how):
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    if how == "unshare":
        result = libc.unshare(0x10000000)
    else:  # clone(CLONE_NEWUSER | SIGCHLD) on a stack of its own
        stack = mmap.mmap(-1, 1 << 16)
        top = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(stack)) + (1 << 16))
        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(lambda _: 0)
        result = libc.clone(callback, top, 0x10000000 | 17, None)
        if result > 0:
            os.waitpid(result, 0)
    if result < 0:
        raise PermissionError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return True


def hold_memory(children, megabytes):
    # Fork children that each fill `megabytes` at once and hold it; how many held to the end.
    import time

    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            block = bytearray(megabytes << 20)
            block[::4096] = b"x" * len(block[::4096])
            time.sleep(2)
            os._exit(0)
        pids.append(pid)
    return sum(os.waitpid(pid, 0)[1] == 0 for pid in pids)


def size_of(path):
    return os.stat(path).st_size


def gcd_import(name):
    import importlib._bootstrap
    return repr(importlib._bootstrap._gcd_import(name))


def spin():
    while True:
        pass


def open_device(path):
    os.close(os.open(path, os.O_RDWR | os.O_NOCTTY))
    return path


def connect(path):
    import socket

    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
    return path
"""


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


@pytest.fixture
def worker(submission: Path) -> Iterator[tuple[Sandbox, SubmissionProxy]]:
    sandbox = Sandbox(submission, "probe", Limits(call_timeout_s=20.0), ("torch",))
    try:
        yield sandbox, SubmissionProxy(sandbox)
    finally:
        sandbox.close()


def active(sandbox: Sandbox, protection: str) -> bool:
    return sandbox.protections.get(protection, "").startswith("active")


def test_double_forked_setsid_daemons_die_with_the_worker(worker):
    sandbox, proxy = worker
    marker = unique_marker()
    assert proxy.daemons(marker, 200) == 200
    if not active(sandbox, "processes"):
        pytest.fail(f"no PID namespace: {sandbox.protections.get('processes')}")
    assert len(survivors(marker)) == 200  # running while the worker runs
    sandbox.close()
    deadline = time.monotonic() + 5
    while survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(marker) == []


def test_the_worker_holds_no_capability_and_cannot_read_root_only_files(worker):
    sandbox, proxy = worker
    capabilities = proxy.capabilities()
    if not sandbox.protections.get("privileges", "").startswith("active"):
        assert os.geteuid() != 0
        return
    assert capabilities == ("0000000000000000", "0000000000000000", "0000000000000000")
    for secret in ("/etc/shadow", "/etc/gshadow"):
        if os.path.exists(secret) and not os.stat(secret).st_mode & 0o004:
            with pytest.raises(StudentError, match="PermissionError"):
                proxy.read(secret)


def test_other_processes_command_lines_are_out_of_sight(worker):
    sandbox, proxy = worker
    marker = unique_marker()
    bystander = subprocess.Popen(["sleep", marker])
    try:
        seen = proxy.command_lines()
    finally:
        bystander.kill()
        bystander.wait()
    assert active(sandbox, "proc"), sandbox.protections
    assert not [line for line in seen if marker in line]
    assert not [line for line in seen if "pytest" in line]  # nor the grader's own
    assert len(seen) <= 3  # the namespace's init, the worker, and nothing else


def test_tmp_and_shared_memory_are_private_capped_and_gone_with_the_worker(submission):
    marker = unique_marker()
    names = [f"/tmp/dl-grader-test-{marker}", f"/dev/shm/dl-grader-test-{marker}"]
    first = Sandbox(submission, "probe", Limits(call_timeout_s=20.0, scratch_mb=8))
    try:
        proxy = SubmissionProxy(first)
        for name in names:
            assert proxy.write(name) == name
        assert active(first, "scratch"), first.protections
        assert not any(os.path.exists(name) for name in names)  # not on the machine's /tmp
        with pytest.raises(StudentError, match="No space left on device"):
            proxy.write("/tmp/big", 16)
    finally:
        first.close()
    second = Sandbox(submission, "probe", Limits(call_timeout_s=20.0))
    try:
        assert [SubmissionProxy(second).exists(name) for name in names] == [False, False]
    finally:
        second.close()


TORCH = importlib.util.find_spec("torch")


@pytest.mark.parametrize("attack", ["read", "gcd_import"])
def test_torch_files_are_unreadable_where_torch_is_forbidden(worker, attack):
    sandbox, proxy = worker
    assert TORCH is not None and TORCH.submodule_search_locations
    init = str(Path(TORCH.submodule_search_locations[0]) / "version.py")
    with pytest.raises(StudentError) as failure:
        proxy.read(init) if attack == "read" else proxy.gcd_import("torch")
    assert "torch may not be used" in failure.value.message
    assert active(sandbox, "forbidden files") or active(sandbox, "filesystem")


def test_torch_stays_readable_where_it_is_allowed(submission):
    sandbox = Sandbox(submission, "probe", Limits(call_timeout_s=20.0))
    try:
        init = Path(TORCH.submodule_search_locations[0]) / "version.py"
        assert SubmissionProxy(sandbox).read(str(init)) == init.stat().st_size
    finally:
        sandbox.close()


GRADER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, SubmissionProxy
sandbox = Sandbox(Path(sys.argv[2]), "probe", Limits(call_timeout_s=600.0))
proxy = SubmissionProxy(sandbox)
proxy.exists("/")
print(sandbox.pid, flush=True)
proxy.spin()
"""


def test_a_worker_dies_with_its_grader_even_by_sigkill(submission):
    grader = subprocess.Popen(
        [sys.executable, "-c", GRADER, str(ROOT), str(submission)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        anchor = int(grader.stdout.readline())
        time.sleep(0.3)  # the worker is spinning in student code, reading nothing
        family = [anchor, *_descendants(anchor)]
        assert len(family) >= 2
        groups = [
            line.split(":", 2)[2] for line in Path(f"/proc/{anchor}/cgroup").read_text().split()
        ]
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    deadline = time.monotonic() + 5
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(family) == []
    # The killed grader could not remove the worker's cgroup; the next grader's sweep does.
    from grader.sandbox import cgroups

    left = [g for g in groups if cgroups.PREFIX in g]
    cgroups.sweep()
    assert not [
        g
        for g in left
        if any(
            Path(r).joinpath(g.lstrip("/")).exists()
            for r in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids")
        )
    ]


def _descendants(root: int) -> list[int]:
    from grader.sandbox.proxy import descendants

    return descendants(root)


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def test_the_worker_cannot_take_the_machines_terminals(worker):
    sandbox, proxy = worker
    assert proxy.exists("/dev/ptmx")
    assert active(sandbox, "scratch"), sandbox.protections
    with pytest.raises(StudentError, match="PermissionError"):
        proxy.open_device("/dev/ptmx")  # each one a pty of the machine's, for as long as it runs


SOCKET_FOLDERS = ("/run", "/var/tmp", "/var/lib")  # where services listen: databases, Docker


@pytest.mark.parametrize("folder", SOCKET_FOLDERS)
def test_the_machines_unix_sockets_are_out_of_reach(worker, folder):
    import socket

    sandbox, proxy = worker
    assert not proxy.exists(folder)  # not part of the worker's view at all
    assert active(sandbox, "view"), sandbox.protections
    if not os.access(folder, os.W_OK):
        assert os.geteuid() != 0
        return
    path = f"{folder}/dl-grader-test-{unique_marker()}.sock"
    with socket.socket(socket.AF_UNIX) as service:
        service.bind(path)
        os.chmod(path, 0o777)  # any user may connect, as a database's socket allows
        service.listen()
        try:
            with pytest.raises(StudentError, match="FileNotFoundError"):
                proxy.connect(path)
        finally:
            os.unlink(path)


@pytest.mark.parametrize("how", ["unshare", "clone"])
def test_the_worker_cannot_create_user_namespaces(worker, how):
    sandbox, proxy = worker
    with pytest.raises(StudentError, match="PermissionError"):
        proxy.new_user_namespace(how)
    assert active(sandbox, "user namespaces"), sandbox.protections


def test_memory_is_capped_for_the_worker_and_all_it_starts(submission):
    # Each process stays under its own limit (RLIMIT_DATA 400 MB); together they do not.
    limits = Limits(call_timeout_s=30.0, memory_mb=400, memory_kind="data", scratch_mb=16)
    sandbox = Sandbox(submission, "probe", limits)
    try:
        held = SubmissionProxy(sandbox).hold_memory(3, 300)  # 900 MB in three processes
        assert active(sandbox, "memory"), sandbox.protections
        assert held <= 1
    finally:
        sandbox.close()


HOG = """
kept = []
for _ in range(30):  # 450 MB in memory files, which no per-process limit counts
    fd = os.memfd_create("hog")
    os.write(fd, b"x" * (15 << 20))
    kept.append(fd)
"""


def test_a_worker_over_its_memory_budget_is_told_so(submission):
    (submission / "probe.py").write_text(PROBE + HOG)
    limits = Limits(call_timeout_s=30.0, memory_mb=300, memory_kind="data", scratch_mb=16)
    sandbox = Sandbox(submission, "probe", limits)
    try:
        with pytest.raises(StudentError, match="more than 316 MB of memory"):
            SubmissionProxy(sandbox).exists("/")
    finally:
        sandbox.close()


@pytest.mark.parametrize(
    "target",
    [ROOT / "assignments", ROOT / "reference", ROOT / "grader" / "data" / "mnist_sample.npz"],
    ids=["assignments", "reference", "mnist-sample"],
)
def test_course_files_are_not_even_visible(worker, target):
    """Not only unreadable: absent from the worker's view (no size, no name, no inotify)."""
    sandbox, proxy = worker
    with pytest.raises(StudentError, match="FileNotFoundError"):
        proxy.size_of(str(target))
    assert active(sandbox, "view"), sandbox.protections


def test_doctor_lists_the_namespace_protections():
    from grader.doctor import probe

    protections = probe().protections
    for name in ("processes", "scratch", "proc", "ipc", "privileges", "memory"):
        state, _, why = protections.get(name, "").partition(": ")
        assert state in ("active", "unavailable", "failed", "not needed"), (name, protections)
        assert why, json.dumps(protections, indent=1)


def test_a_course_installed_where_the_worker_may_read_stays_out_of_reach(submission):
    """A course (or data folder) under a folder the worker reads, such as site-packages or
    /opt, is hidden by path, not only by being elsewhere."""
    import site
    import tempfile

    course = Path(tempfile.mkdtemp(prefix="dl_grader_course_", dir=site.getsitepackages()[0]))
    course.chmod(0o755)  # installed for everyone to read, as packages are
    try:
        secret = course / "reference" / "assignment3.py"
        secret.parent.mkdir()
        secret.write_text("SECRET = 1\n")
        outcomes = []
        for hidden in ((), (course,)):
            sandbox = Sandbox(submission, "probe", Limits(call_timeout_s=20.0), hidden_paths=hidden)
            try:
                outcomes.append(SubmissionProxy(sandbox).read(str(secret)))
            except StudentError as error:
                outcomes.append(error.message)
            finally:
                sandbox.close()
    finally:
        shutil.rmtree(course)
    assert outcomes[0] == len("SECRET = 1\n")  # a readable place: only hiding protects it
    assert "Error" in str(outcomes[1]), outcomes


UNDO = """
import ctypes, json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
from grader.sandbox import namespaces
if ctypes.CDLL(None, use_errno=True).unshare(namespaces.CLONE_NEWNS) != 0:
    print(json.dumps("no mount namespace")); sys.exit()
folder = tempfile.mkdtemp(dir="/tmp")
os.mkdir(folder + "/submission")
namespaces.PIVOT_ROOT.clear()  # pivot_root "unsupported": the last step fails
try:
    namespaces.private_files(folder, ["/usr"], {}, 8)
except OSError as error:
    print(json.dumps([str(error), os.path.isdir(folder + "/submission")]))
finally:
    os.rmdir(folder + "/submission")
    os.rmdir(folder)
"""


def test_a_root_that_cannot_be_finished_is_undone():
    """Whatever step fails, the worker is left with the machine's view (and Landlock), never
    with half a root in which its own folder has vanished."""
    done = subprocess.run([sys.executable, "-c", UNDO, str(ROOT)], capture_output=True, text=True)
    outcome = json.loads(done.stdout)
    if os.geteuid() != 0:
        assert outcome == "no mount namespace"
        return
    error, folder_visible = outcome
    assert "pivot_root" in error
    assert folder_visible


def test_a_sweep_never_removes_the_new_group_of_a_live_grader():
    """Two graders of a batch: the second one's sweep must not take the first one's group
    in the moment before its worker joins it."""
    from grader.sandbox import cgroups

    group, state = cgroups.WorkerGroup.create(64, 16)
    if group is None:
        assert state.startswith("unavailable")
        return
    try:
        cgroups.sweep()
        assert all(folder.is_dir() for folder in group.folders)
    finally:
        group.remove()


CHECKOUT = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, SubmissionProxy
assert Path(sys.modules["grader"].__file__).is_relative_to(sys.argv[1])
sandbox = Sandbox(Path(sys.argv[2]), "probe", Limits(call_timeout_s=20.0))
try:
    print(SubmissionProxy(sandbox).late_import(), sandbox.protections.get("view", ""))
finally:
    sandbox.close()
"""


def test_a_grader_checked_out_under_tmp_still_reaches_its_own_package(tmp_path, submission):
    """A CI job clones into a temporary folder: the worker's own /tmp must not hide the
    grader's package, which it imports late (the torch harness of assignment8)."""
    checkout = tmp_path / "clone"
    shutil.copytree(ROOT / "grader", checkout / "grader", ignore=shutil.ignore_patterns("data"))
    (submission / "probe.py").write_text(
        PROBE + "\n\ndef late_import():\n"
        "    import grader.sandbox.torch_harness as harness\n"
        "    return harness.__name__\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", CHECKOUT, str(checkout), str(submission)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported, _, view = done.stdout.strip().partition(" ")
    assert imported == "grader.sandbox.torch_harness"
    assert view.startswith("active"), view  # in its own root, not fallen back to the machine's


def test_both_ways_of_finding_descendants_find_the_same_processes():
    # The children-file walk is what this kernel uses; the full scan serves kernels without
    # those files, and must find the same tree (grandchildren included).
    from grader.sandbox.proxy import _descendants_by_scan, descendants

    tree = subprocess.Popen(["sh", "-c", "sleep 30 & (sleep 30 & sleep 30) & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(descendants(tree.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # let the shells finish starting what they start
        found = sorted(descendants(tree.pid))
        assert len(found) >= 3  # two children and a grandchild at least
        assert sorted(_descendants_by_scan(tree.pid)) == found
    finally:
        for pid in descendants(tree.pid):
            os.kill(pid, signal.SIGKILL)
        tree.kill()
        tree.wait()


@pytest.mark.parametrize("forked", [False, True], ids=["fresh", "forked"])
def test_every_process_of_a_worker_is_in_its_cgroup(submission, forked):
    """The worker's first process joins its group before it starts any other, so the
    processes of its namespaces (and all they start) are born in it."""
    from grader.sandbox import forkserver
    from grader.sandbox.proxy import descendants, use_fork_server

    if forked:
        assert use_fork_server() and forkserver.current().ready(wait_s=30)
    sandbox = Sandbox(submission, "probe", Limits(call_timeout_s=20.0))
    try:
        SubmissionProxy(sandbox).exists("/")
        if not active(sandbox, "memory"):
            assert sandbox.protections["memory"].startswith("unavailable"), sandbox.protections
            return
        family = [sandbox.pid, *descendants(sandbox.pid)]
        assert len(family) >= (3 if active(sandbox, "processes") else 1)
        groups = {_worker_groups(pid) for pid in family}
        assert len(groups) == 1, groups
        assert len(groups.pop()) >= 1
    finally:
        sandbox.close()
        forkserver.disable()


def _worker_groups(pid: int) -> tuple[str, ...]:
    """The workers' cgroups (by name) that process `pid` is in, one per hierarchy."""
    from grader.sandbox.cgroups import PREFIX

    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return tuple(sorted(line for line in lines if PREFIX in line))


JOIN = """
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
from grader.sandbox.cgroups import join_self
folders = json.loads(sys.argv[2])
if sys.argv[3] == "threads":
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
join_self(folders)
groups = [open(f"/proc/self/task/{task}/cgroup").read() for task in os.listdir("/proc/self/task")]
print(json.dumps(groups))
"""


@pytest.mark.parametrize("threads", ["one", "threads"])
def test_a_process_joining_its_group_takes_all_its_threads(threads):
    """One thread moves by itself (v1's `tasks`, no kernel grace period to wait for); a
    process with more threads must not leave any of them outside."""
    from grader.sandbox import cgroups

    group, state = cgroups.WorkerGroup.create(256, 16)
    if group is None:
        assert state.startswith("unavailable")
        return
    try:
        folders = json.dumps([str(folder) for folder in group.folders])
        done = subprocess.run(
            [sys.executable, "-c", JOIN, str(ROOT), folders, threads],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        groups = json.loads(done.stdout)
        assert len(groups) == (2 if threads == "threads" else 1)
        name = group.folders[0].name
        for listing in groups:
            memberships = [line for line in listing.splitlines() if name in line]
            assert len(memberships) == len({*group.folders}), listing
    finally:
        group.remove()
