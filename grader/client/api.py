"""A small client of the service's /api/v1, used by `grade login`, `submit` and `history`.

Every failure becomes `BadInput` with one line: the server's own message when it answered
(`{"error": ...}`), else what went wrong reaching it.
"""

from __future__ import annotations

from typing import Any

import httpx

from grader.client.config import load_config
from grader.errors import BadInput
from grader.safetext import one_line

API = "/api/v1"
TIMEOUT_S = 60.0


class Client:
    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.server + API,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )

    @classmethod
    def from_config(cls) -> Client:
        config = load_config()
        if not config.get("server") or not config.get("token"):
            raise BadInput("not signed in: run grade login --server URL first.")
        return cls(str(config["server"]), str(config["token"]))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise BadInput(f"cannot reach {self.server}: {one_line(error, 300)}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = f"the server answered {response.status_code}"
            raise BadInput(one_line(message, 1000))
        try:
            return response.json()
        except ValueError:
            raise BadInput(f"{self.server} did not answer as a grading server.") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v})

    def submit(self, assignment: str, files: dict[str, bytes]) -> dict[str, Any]:
        upload = [("files", (name, data, "text/x-python")) for name, data in files.items()]
        return self.request("POST", f"/assignments/{assignment}/submissions", files=upload)
