"""The `lisa` commands' client of the LISA HTTP API, for callers with an API key and no AWS credentials.

`--url` / `LISA_API_URL` is the API's base URL (the stage URL in AWS, `http://127.0.0.1:<port>` for `make run`),
`--api-key` / `LISA_API_KEY` the caller's API token (or an OIDC JWT). A refusal becomes the server's message and
exit code 2 for a request to change (400), 1 otherwise; an unreachable API is a message too, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import typer

from cli.common import fail

ApiUrl = typer.Option(None, "--url", envvar="LISA_API_URL", help="LISA API base URL: talk HTTP, not to AWS.")
ApiKey = typer.Option(None, "--api-key", envvar="LISA_API_KEY", help="Your API token (or JWT) for --url.")


class ApiRefusal(Exception):
    """The API answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ApiClient:
    """One caller's session with the API (one pooled connection, the key sent as a Bearer credential)."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: Mapping[str, str] | None = None
    ) -> Any:
        """The JSON answer of one request; ApiRefusal on an error status, a CLI failure when unreachable."""
        try:
            response = self._http.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as error:
            raise fail(f"LISA API at {self.url}: {error}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success:
            return answer
        message = answer.get("Message") or answer.get("message") if isinstance(answer, dict) else None
        raise ApiRefusal(response.status_code, str(message or response.reason_phrase))


def refusal_exit(refusal: ApiRefusal) -> typer.Exit:
    """The CLI's exit for a refusal: the message, code 2 for a request to change (400), else 1."""
    return fail(refusal.message, code=2 if refusal.status == 400 else 1)
