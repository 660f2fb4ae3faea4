"""A cluster node's side of a batch: grade one submission the driver sent, as a local batch would.

`grade_on_node` runs as a Ray task in a Ray worker process on any node; the node needs the
grader package and nothing else. The assignment's course files (and MNIST, when the driver
has it and the assignment trains on it) arrive through Ray's object store once per node and
are kept in the node's folder under their digest; each submission arrives with its task as a
`Bundle` and is unpacked into a scratch folder under the same caps as local grading. The
grade runs in the same pool of grading processes as a local batch (`grader.pool`: the fork
server, the reference cache, the journal, the watchdog and its timeout and crashed replies),
kept warm across the tasks this Ray worker runs and restarted when the batch or the GPU Ray
assigned changes. The sandbox isolates student code on the node exactly as it does locally.

The reply goes back as JSON text: plain data, which the driver checks before it believes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import __version__
from grader.cluster.transfer import Bundle, unpack
from grader.data import ENV_VARIABLE as DATA_VARIABLE
from grader.errors import BadInput, GraderError
from grader.pool import Job, Pool, Student, WorkerConfig
from grader.runner import grade
from grader.sandbox.limits import Limits
from grader.scratch import ScratchFolder
from grader.submission import MAX_EXTRACTED_BYTES, MAX_FILES

COURSE_MAX_BYTES = 1 << 30
COURSE_MAX_FILES = 100_000


@dataclass(frozen=True)
class Shipment:
    """Content a node keeps under its digest; `refs` holds its one object reference, inside
    a list so that Ray fetches it only for a node that does not have it yet."""

    digest: str
    refs: list[Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class NodeBatch:
    """What every task of one batch shares. `cache_key` names the batch's reference cache
    on each node (see `grader.cluster.driver.cache_key`)."""

    grader_version: str
    assignment: str
    seed: int
    device: str
    public_only: bool
    limits: Limits
    formats: tuple[str, ...]
    cache_enabled: bool
    cache_key: str
    threads: int
    timeout_s: float
    course: Shipment
    data: Shipment | None
    grade_function: Any = grade


@dataclass(frozen=True)
class NodeStudent:
    """One submission: the names the driver's rows use and its files."""

    name: str
    shown: str
    stem: str
    files: Bundle


_pool: tuple[tuple, Pool] | None = None


def node_folder() -> Path:
    """This node's folder for the grader (course files, data, reference caches, logs): in
    the folder of the node's Ray session (a restarted cluster starts empty), private to the
    user that runs Ray."""
    import ray

    session = Path(ray.get_runtime_context().get_temp_dir()) / "session_latest"
    return private_folder(session.resolve() / "dl-grader")


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner (this user) can enter; GraderError if something
    else is there (a link, someone else's folder)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    status = os.lstat(path)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid():
        raise GraderError(f"{path} is not a folder of this user's; remove it.")
    os.chmod(path, 0o700)
    return path


def materialize(folder: Path, kind: str, shipment: Shipment, fetch: Any) -> Path:
    """The folder holding the shipment's files on this node, unpacked the first time (`fetch`
    turns an object reference into the `Bundle`)."""
    target = folder / f"{kind}-{shipment.digest[:32]}"
    if target.is_dir():
        return target
    bundle: Bundle = fetch(shipment.refs[0])
    if bundle.digest != shipment.digest:
        raise GraderError(f"the {kind} files arrived damaged (their digest differs).")
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=folder))
    staging.rmdir()
    unpack(bundle, staging, max_files=COURSE_MAX_FILES, max_bytes=COURSE_MAX_BYTES)
    try:
        staging.rename(target)
    except OSError:  # another task on this node unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def _warm_pool(batch: NodeBatch, folder: Path, course_root: Path) -> Pool:
    """The pool of one grading process for `batch`, reused while nothing it depends on
    (the batch, the data folder, the GPU Ray assigned) changes."""
    global _pool
    config = WorkerConfig(
        course_root=course_root,
        assignment=batch.assignment,
        seed=batch.seed,
        device=batch.device,
        public_only=batch.public_only,
        limits=batch.limits,
        formats=batch.formats,
        cache_dir=folder / "reference-cache" / batch.cache_key,
        cache_enabled=batch.cache_enabled,
        threads=batch.threads,
        parent_pid=os.getpid(),
        grade_function=batch.grade_function,
        journal_dir=folder / "journal",
    )
    key = (config, batch.timeout_s, os.environ.get(DATA_VARIABLE))
    key += (os.environ.get("CUDA_VISIBLE_DEVICES"),)
    if _pool is not None and _pool[0] == key:
        return _pool[1]
    if _pool is not None:
        _pool[1].close()
    _pool = (key, Pool(1, config, batch.timeout_s, folder / "logs" / str(os.getpid())))
    return _pool[1]


def node_name() -> str:
    """This node as rows name it: its address and the start of Ray's node id."""
    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"


def grade_on_node(batch: NodeBatch, student: NodeStudent) -> str:
    """Grade one submission on this node; the reply (as in `grader.pool`) as JSON text."""
    global _pool
    import ray

    if batch.grader_version != __version__:
        raise BadInput(
            f"node {node_name()} runs dl-grader {__version__} and the batch's driver "
            f"{batch.grader_version}; install the same version on every node."
        )
    folder = node_folder()
    course_root = materialize(folder, "course", batch.course, ray.get)
    data = materialize(folder, "data", batch.data, ray.get) if batch.data else None
    os.environ[DATA_VARIABLE] = str(data or private_folder(folder / "no-data"))
    pool = _warm_pool(batch, folder, course_root)
    replies: list[dict[str, Any]] = []
    with ScratchFolder("node") as scratch:
        submission = scratch / "submission"
        unpack(student.files, submission, max_files=MAX_FILES, max_bytes=MAX_EXTRACTED_BYTES)
        job = Job(Student(student.name, submission, "", student.shown, student.stem), {})
        try:
            pool.run([job], lambda _, reply: replies.append(reply))
        except BaseException:
            _pool = None  # the pool stopped its processes
            raise
    return json.dumps({**replies[0], "node": node_name()})
