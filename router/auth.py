"""Authorization on the event loop: cached decisions inline, misses on a worker thread (never blocking the loop).

A hot credential costs a hash and a dict lookup (`Authorizer.authorize_cached`). A miss runs the authorizer's
blocking DynamoDB / JWKS check in the default executor; concurrent misses for the same credential share one check.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib.auth.authorizer import CREDENTIAL_HEADERS, credential_from_headers

if TYPE_CHECKING:
    from chalicelib.auth.authorizer import Authorizer
    from chalicelib.auth.principal import Principal


class AsyncAuthorizer:
    """Wraps the process-wide (or a given) `Authorizer` for use from coroutines."""

    def __init__(self, authorizer: Authorizer | None = None) -> None:
        self._fixed = authorizer
        self._inflight: dict[bytes, asyncio.Future[Principal]] = {}

    @property
    def authorizer(self) -> Authorizer:
        """The fixed authorizer, else the process-wide one (created on first use)."""
        if self._fixed is not None:
            return self._fixed
        from chalicelib.auth.authorizer import get_authorizer

        return get_authorizer()

    async def authorize(self, headers: Mapping[str, str]) -> Principal:
        """The caller's Principal; raises `AuthError` (401 / 400 / 403 / 503). `headers` may be a multidict: a
        credential header sent twice is refused, never resolved to its first or last value."""
        wanted = [(name, value) for name, value in headers.items() if name.lower() in CREDENTIAL_HEADERS]
        authorizer = self.authorizer
        principal = authorizer.authorize_cached(wanted)
        if principal is not None:
            return principal
        key = hashlib.sha256(credential_from_headers(wanted).encode()).digest()
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, authorizer.authorize_headers, wanted)
        self._inflight[key] = future
        try:
            return await asyncio.shield(future)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
