"""What the router's handlers share: their dependencies, model checks, embedding calls and SSE relaying."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from chalicelib import bounded_json
from chalicelib.config import ModelType
from chalicelib.registry.models import ModelRecord, ModelStatus
from chalicelib.serve import mapping, sse
from chalicelib.serve.errors import SERVER, ServeError, error_body
from router.accounting import Accounting, usage_of
from router.auth import AsyncAuthorizer
from router.backend import Backend, ConnectionFailed
from router.catalog import ModelCatalog
from router.http import Handler, logger, note, open_sse, read_body
from router.limits import BODY_KEY, RouterLimits
from router.settings import RouterSettings

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.contracts.openai import ChatCompletionRequest

T = TypeVar("T")
MODEL_KEY: web.RequestKey[ModelRecord] = web.RequestKey("lisa_model", ModelRecord)  # the record a handler used
RETRY_KEY: web.RequestKey[bool] = web.RequestKey("lisa_retry", bool)


@dataclass(frozen=True)
class AugmentedChat:
    """What an augmenter may return instead of a bare request: the request to send plus fields to add to the answer
    (non-stream: the completion object; stream: the first chunk), e.g. RAG's `lisa_rag_sources`."""

    request: ChatCompletionRequest
    response_fields: dict[str, Any]


ChatAugmenter = Callable[
    ["Principal", dict[str, Any], "ChatCompletionRequest", "ModelRecord"],
    Awaitable["ChatCompletionRequest | AugmentedChat"],
]
"""The RAG seam: called with (caller, raw request body, validated chat request, model) before a chat request is sent
to the model; returns the request to send (e.g. with retrieved context inserted as a system message when the body
names a repository), optionally with response fields (`AugmentedChat`). None: requests are sent as they are."""


def augmented(result: ChatCompletionRequest | AugmentedChat) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """An augmenter's result as (request, fields to add to the answer)."""
    if isinstance(result, AugmentedChat):
        return result.request, result.response_fields
    return result, {}


@dataclass
class Services:
    """The handlers' dependencies (the backend is attached when the application starts)."""

    settings: RouterSettings
    auth: AsyncAuthorizer
    catalog: ModelCatalog
    augment_chat: ChatAugmenter | None = None
    backend: Backend | None = field(default=None)
    accounting: Accounting = field(default_factory=Accounting)
    limits: RouterLimits | None = None

    @property
    def http(self) -> Backend:
        """The backend HTTP client, which the application opens at startup."""
        assert self.backend is not None, "the router's client session starts with the application"
        return self.backend

    async def caller(self, request: web.Request) -> Principal:
        """The authorized caller (AuthError otherwise), noted in the access log."""
        principal = await self.auth.authorize(request.headers)
        usage_of(request).principal = principal
        note(request, user=principal.username)
        return principal

    async def body(self, request: web.Request) -> dict[str, Any]:
        """The request body as a JSON object (400 / 413 otherwise)."""
        data = request[BODY_KEY] = mapping.parse_json_object(await read_body(request))
        return data

    async def model(self, name: str, model_type: ModelType, request: web.Request, param: str = "model") -> ModelRecord:
        """The registered, available model `name` of `model_type`, the caller admitted by its limits; 404 / 400 /
        503 / 429 otherwise."""
        record = await self.catalog.resolve(name, param)
        usage_of(request).model = record.model_name
        note(request, model=record.model_name)
        if record.model_type is not model_type:
            use = "/v1/openai/embeddings" if record.model_type is ModelType.EMBEDDING else "a text generation route"
            raise ServeError(
                400,
                f"model {record.model_name!r} is a {record.model_type.value} model, "
                f"this route needs a {model_type.value} model (use {use})",
                param=param,
                code="wrong_model_type",
            )
        check_available(record, param)
        request[MODEL_KEY] = record
        if self.limits is not None and not request.get(RETRY_KEY):  # a retry was admitted once already
            await self.limits.admit(request, record)
        return record

    async def embed(
        self, record: ModelRecord, texts: Sequence[str], model_kwargs: Mapping[str, Any]
    ) -> tuple[list[list[float]], int]:
        """Embed `texts` with an embedding model: (vectors, prompt tokens as counted by the backend, else 0)."""
        base = record.endpoint_url
        backend_label = backend_name(record)
        path, body = mapping.embed_request(record.provider, texts, model_kwargs, record.default_model_kwargs)
        payload, headers = await self.http.call(f"{base}{path}", body, backend_label, expect=list, idempotent=True)
        vectors = mapping.check_vectors(payload, len(texts))
        return vectors, header_count(headers, "x-compute-tokens", "x-prompt-tokens")


def check_available(record: ModelRecord, param: str = "model") -> None:
    """503 unless requests can be sent to the model: `model_stopped`, or `model_unavailable` with its status."""
    if record.status is ModelStatus.STOPPED:
        raise ServeError(503, f"model {record.model_name!r} stopped", param=param, code="model_stopped")
    if not record.is_available:
        reason = f": {record.status_reason}" if record.status_reason else ""
        raise ServeError(
            503,
            f"model {record.model_name!r} is not available (status {record.status.value}{reason})",
            param=param,
            code="model_unavailable",
        )


def refreshing(handler: Handler, services: Services) -> Handler:
    """`handler`, answering a backend connection failure with the registry as it is now: the catalog's record may
    be up to the registry TTL old, and the model stopped or moved since. The registry is re-read once; a model now
    stopped or unavailable gets that 503; one moved is tried again at its new endpoint if the request never reached
    the old one (`ConnectionFailed.sent` False); otherwise the failure stands."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConnectionFailed as failure:
            record = request.get(MODEL_KEY)
            if record is None or request.get(RETRY_KEY):
                raise
            fresh = await services.catalog.reload(record.model_name)
            if fresh is None:
                raise
            check_available(fresh)
            if failure.sent or fresh.endpoint_url == record.endpoint_url:
                raise
            logger.info("model moved: retrying at its new endpoint", model=record.model_name)
            request[RETRY_KEY] = True
            return await handler(request)

    return handle


def header_count(headers: Mapping[str, str], *names: str) -> int:
    """A token count a backend sends as a header (TGI's `x-prompt-tokens`, TEI's `x-compute-tokens`): the first of
    `names` present, 0 when none is or it is not a number."""
    value = next((headers[name] for name in names if headers.get(name)), "0")
    return int(value) if value.isascii() and value.isdigit() else 0


def backend_name(record: ModelRecord) -> str:
    """How errors name a model's backend."""
    return f"the backend of model {record.model_name!r}"


async def first_error(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    if len(coroutines) == 1:
        return [await coroutines[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [t.result() for t in tasks]


def backend_event(data: str, backend_label: str) -> dict[str, Any]:
    """A backend stream event's JSON; a malformed event or an error event raises ServeError(502)."""
    try:
        payload = bounded_json.loads(data, "the event")
    except ValueError:
        raise ServeError(502, f"{backend_label} sent a malformed stream event") from None
    if not isinstance(payload, dict):
        raise ServeError(502, f"{backend_label} sent a malformed stream event")
    error = payload.get("error")
    if error is not None and "choices" not in payload and "token" not in payload:
        message = error.get("message") if isinstance(error, dict) else error
        raise ServeError(502, f"{backend_label} failed mid-stream: {message}", code="backend_error")
    return payload


async def relay(request: web.Request, events: AsyncIterator[bytes], *, done: bool) -> web.StreamResponse:
    """Send `events` (encoded SSE) as a 200 event stream as they come.

    A ServeError while streaming (the backend failing, going silent or dropping the connection) is sent as an
    `{"error": {...}}` event, then the stream ends cleanly (`data: [DONE]` when `done`). A client that disconnects
    stops the relay, which closes the backend connection, so the backend stops generating.
    """
    response = await open_sse(request)
    usage = usage_of(request)
    try:
        try:
            async for payload in events:
                await response.write(payload)
        except ServeError as error:
            usage.stream_status = error.status
            note(request, error=error.message, stream_status=error.status)
            await response.write(sse.encode(error.body()))
        except ConnectionResetError:
            raise
        except Exception:
            logger.exception("error while streaming", path=request.path)
            usage.stream_status = 500
            note(request, stream_status=500)
            await response.write(sse.encode(error_body("internal error while streaming; it has been logged", SERVER)))
        if done:
            await response.write(sse.DONE)
        await response.write_eof()
    except ConnectionResetError:
        usage.disconnected = True
        note(request, disconnected=True)
    finally:
        await _close(events)
    return response


async def _close(events: AsyncIterator[bytes]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
