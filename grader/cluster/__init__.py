"""Grade a batch on a Ray cluster: `grade batch ASSIGNMENT DIR -o OUT --cluster ADDRESS`.

`connect` joins the cluster at ADDRESS ("auto": the cluster this machine is part of;
"ray://HOST:PORT": a remote head's client port; "HOST:PORT": its GCS address) and returns
the executor (`grader.cluster.driver.RayExecutor`) that `grader.batch` runs the grades
with; the nodes (`grader.cluster.node`) need `pip install 'dl-grader[ray]'` and nothing
else. Ray is an optional extra: without it `connect` raises BadInput with the command that
installs it. A process already connected to Ray (`ray.init`) keeps its connection.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from grader.errors import BadInput
from grader.safetext import one_line

if TYPE_CHECKING:
    from grader.cluster.driver import RayExecutor

INSTALL = "pip install 'dl-grader[ray]'"
AUTH_HINT = "RAY_AUTH_MODE=token and, away from the head, RAY_AUTH_TOKEN from `ray get-auth-token`"
ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9._\-\[\]:]+:\d{1,5}")


def check_address(address: str) -> None:
    """Refuse an address that is none of the forms `connect` takes, before Ray is imported."""
    if not ADDRESS.fullmatch(address):
        raise BadInput(
            f"--cluster {one_line(address)!r} is not a Ray address "
            "(use auto, ray://HOST:PORT or HOST:PORT)."
        )


@contextlib.contextmanager
def connect(address: str) -> Iterator[RayExecutor]:
    """The executor for the Ray cluster at `address`, connected for the `with` block."""
    check_address(address)
    try:
        import ray
    except ImportError:
        raise BadInput(f"--cluster needs Ray, which is not installed: {INSTALL}") from None
    from grader.cluster.driver import RayExecutor

    owned = not ray.is_initialized()
    if owned:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as error:
            raise BadInput(
                f"cannot connect to the Ray cluster at {address}: {one_line(str(error), 300)} "
                f"(a cluster with token authentication also needs {AUTH_HINT})."
            ) from None
    if address == "auto":
        address = ray.get_runtime_context().gcs_address
    try:
        yield RayExecutor(ray, address)
    finally:
        if owned:
            ray.shutdown()
