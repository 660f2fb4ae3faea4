"""Run the service: check the sandbox, bind the socket, migrate, grade, serve; SIGTERM or
Ctrl-C drains.

The socket is bound before uvicorn starts so that `--port 0` works and the line printed on
startup names the port really listened on. With a cluster (`--cluster`), the process joins
the Ray cluster first (`grader.cluster.connect`: without Ray, one line with the install
command) and stays connected while it serves; its grades run as Ray tasks on the nodes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import socket
import sys
from pathlib import Path

from grader.course import Course
from grader.errors import BadInput
from grader.server.app import create_app
from grader.server.db import database_url
from grader.server.policy import load_policy
from grader.server.protections import check_sandbox
from grader.server.service import Settings

# Requests still open this long after SIGTERM are cut; the grades in progress always finish.
GRACEFUL_HTTP_S = 30


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BadInput(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    course: Course,
    data: Path,
    db: str | None,
    host: str,
    port: int,
    jobs: int,
    device: str,
    cluster: str | None = None,
    allow_weak_sandbox: bool = False,
) -> None:
    """Serve until SIGTERM or Ctrl-C, then let the grades in progress finish. `cluster`: the
    Ray address the grades run on (None: `jobs` grading processes on this machine). Without
    a cluster, refuses to start when the sandbox here lacks a protection a service needs,
    unless `allow_weak_sandbox` (`grader.server.protections`)."""
    if jobs < 1:
        raise BadInput("--jobs must be at least 1.")
    for assignment in course.assignments.values():
        load_policy(assignment)  # a broken policy stops the start, not a student's upload
    weak = "" if cluster else check_sandbox(course, allow_weak_sandbox)
    with contextlib.ExitStack() as stack:
        executor, where = None, ""
        if cluster:
            from grader.cluster import connect
            from grader.cluster.driver import RayExecutor

            on_sigterm = signal.getsignal(signal.SIGTERM)
            joined = stack.enter_context(connect(cluster))
            # Ray's own handler exits with status 15; drained, the service ends as it does
            # without a cluster (uvicorn raises SIGTERM again once the grades are done).
            signal.signal(signal.SIGTERM, on_sigterm)
            executor = functools.partial(RayExecutor, joined.ray, joined.address)
            where = f"Grading on the Ray cluster at {joined.address}"
        try:
            data.mkdir(parents=True, exist_ok=True, mode=0o700)  # submissions and tokens
        except OSError as error:
            raise BadInput(f"cannot create {data}: {error.strerror or error}") from error
        settings = Settings(
            course=course,
            data=data.resolve(),
            db_url=database_url(db, data.resolve()),
            jobs=jobs,
            device=device,
            executor=executor,
        )
        _run(settings, host, port, where, weak)


def _run(settings: Settings, host: str, port: int, where: str, weak: str) -> None:
    import uvicorn

    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if weak:
        logging.getLogger("grader.server").warning("%s", weak)
    config = uvicorn.Config(
        create_app(settings),
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_HTTP_S,
        access_log=False,
    )
    server = uvicorn.Server(config)
    print(f"Serving on http://{shown_host}:{sock.getsockname()[1]}", flush=True)
    if where:
        print(where, flush=True)
    sys.stdout.flush()
    server.run(sockets=[sock])
