"""A control group per worker: one memory and process budget for it and all it starts.

Resource limits (`rlimit`) bind each process alone: a worker allowed 2 GB could fork three
children of 2 GB each. A cgroup holds the worker and every descendant, so `memory_mb` (plus
the `scratch_mb` its private tmpfs may fill, which the kernel charges to the same group) and
`processes` bound the whole submission. The trusted side creates the group below its own
(cgroup v2, or v1's memory and pids hierarchies), the worker's first process is moved into it
before that starts anything (`join_self`), and the trusted side removes it when the worker
is gone. Where the grader may not create groups (not root, no delegation, macOS),
`WorkerGroup.create` says why and grading goes on with the per-process limits.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "dl-grader-"
_swept: set[Path] = set()


def _own_groups() -> dict[str, str]:
    """This process's cgroup path per hierarchy ("" for v2, else the controller names)."""
    groups = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                groups[name] = path
    return groups


def _parents() -> dict[str, Path]:
    """Where this process's groups are, for "memory" and "pids" (the same folder on v2)."""
    groups = _own_groups()
    if (ROOT / "cgroup.controllers").is_file() and "" in groups:
        here = ROOT / groups[""].lstrip("/")
        return {"memory": here, "pids": here}
    return {
        name: ROOT / name / groups[name].lstrip("/")
        for name in ("memory", "pids")
        if name in groups and (ROOT / name).is_dir()
    }


def sweep(parents: dict[str, Path] | None = None) -> None:
    """Remove groups a killed grader left behind: only those whose grader (its pid is in
    the name) is gone, since a live grader's new group is empty until its worker joins, and
    a group still in use refuses rmdir anyway."""
    for parent in set((parents or _parents()).values()):
        for leftover in parent.glob(f"{PREFIX}*"):
            owner = leftover.name[len(PREFIX) :].split("-")[0]
            if owner.isdigit() and _alive(int(owner)):
                continue
            with contextlib.suppress(OSError):
                leftover.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class WorkerGroup:
    """One worker's cgroup folders (one per hierarchy); join via their `cgroup.procs`."""

    folders: list[Path]
    v2: bool

    @classmethod
    def create(cls, memory_mb: int, processes: int) -> tuple[WorkerGroup | None, str]:
        """A new group with these budgets, and what was done (or why it could not be)."""
        parents = _parents()
        if "memory" not in parents:
            return None, "unavailable: no memory cgroup here"
        if not set(parents.values()) <= _swept:  # once per process and parent group
            sweep(parents)
            _swept.update(parents.values())
        v2 = parents["memory"] == parents.get("pids") and (ROOT / "cgroup.controllers").is_file()
        name = f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        folders: list[Path] = []
        try:
            if v2:
                _enable_controllers(parents["memory"])
            for parent in sorted(set(parents.values())):
                folder = parent / name
                if folder not in folders:
                    folder.mkdir()
                    folders.append(folder)
            group = cls(folders, v2)
            group._limit(memory_mb << 20, processes)
        except OSError as error:
            for folder in folders:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            return None, f"unavailable: cannot create a cgroup ({error.strerror or error})"
        what = f"{memory_mb} MB of memory"
        if v2 or len(folders) > 1:
            what += f" and {processes} processes"
        return group, f"active: {what} for the worker and everything it starts"

    def _limit(self, memory: int, processes: int) -> None:
        if self.v2:
            folder = self.folders[0]
            (folder / "memory.max").write_text(str(memory))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
            with contextlib.suppress(OSError):
                (folder / "pids.max").write_text(str(processes))
            return
        for folder in self.folders:
            if (folder / "memory.limit_in_bytes").exists():
                (folder / "memory.limit_in_bytes").write_text(str(memory))
            if (folder / "pids.max").exists():
                (folder / "pids.max").write_text(str(processes))

    @property
    def procs(self) -> list[str]:
        """The files the worker writes its pid into to join the group."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    @property
    def joined_by_worker(self) -> bool:
        """Whether the worker joins the group by itself (`join_self`), at no cost: on cgroup
        v1. On v2 every move waits for the kernel (see `join_self`), so the trusted side
        moves the worker while the worker starts (`join`)."""
        return not self.v2

    def join(self, pid: int) -> None:
        """Move process `pid` into the group (its later children are born in it)."""
        for path in self.procs:
            with open(path, "w") as procs:
                procs.write(str(pid))

    def members(self) -> list[int]:
        """The processes in the group now."""
        pids = []
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                pids += [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        return pids

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the group for exceeding its memory."""
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError, ValueError):
                    for line in (folder / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def remove(self, wait_s: float = 2.0) -> None:
        """Remove the group once its last process is gone (killed ones take a moment)."""
        end = time.monotonic() + wait_s
        for folder in self.folders:
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > end:
                        break  # swept by the next grader
                    time.sleep(0.001)


def join_self(folders: list[str]) -> None:
    """In the worker's first process, before it starts any other: move into the group whose
    `folders` (one per v1 hierarchy) the trusted side created.

    A move through `cgroup.procs` takes a lock whose every taking waits for an RCU grace
    period, 5 to 15 ms, longer than the rest of a forked worker's start. Moving only the
    calling thread through v1's `tasks` (written "0") does not take it, and a process with
    one thread (a fork always is) moves whole that way. With more threads, all of them move
    through `cgroup.procs`. Linux only; the standard library only (it runs in the worker).
    """
    alone = len(os.listdir("/proc/self/task")) == 1
    for folder in folders:
        name, member = ("tasks", "0") if alone else ("cgroup.procs", str(os.getpid()))
        with open(os.path.join(folder, name), "w") as listing:
            listing.write(member)


def _enable_controllers(parent: Path) -> None:
    """Let the groups below `parent` use memory and pids (cgroup v2)."""
    wanted = {"memory", "pids"}
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    if not wanted <= enabled:
        (parent / "cgroup.subtree_control").write_text(
            " ".join(f"+{c}" for c in sorted(wanted - enabled))
        )
