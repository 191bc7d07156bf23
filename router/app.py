"""The router's aiohttp application.

    app = create_app()                       # process-wide authorizer and registry, settings from the env
    web.run_app(app, port=8080, handler_cancellation=True)

Routes (explicit, so a host may add a catch-all after them): `GET /health` (no auth) and the data plane's public
routes, the OpenAI-compatible `/v1/openai/...` and the LISA-native `/v1/...`, from the table the OpenAPI document
describes (`chalicelib.serve.routes.DATA_PLANE`). A host should serve it with `handler_cancellation=True`
so a client that disconnects during a non-streaming call also cancels the backend call (streams stop either way).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from chalicelib.serve.routes import DATA_PLANE
from router.accounting import ACCOUNTING_KEY, Accounting, UsageListener
from router.auth import AsyncAuthorizer
from router.backend import Backend, new_session
from router.catalog import ModelCatalog
from router.http import Handler, guarded, json_response
from router.limits import RouterLimits
from router.metering import Meter
from router.native_api import NativeApi
from router.openai_api import OpenAIApi
from router.services import ChatAugmenter, Services, refreshing
from router.settings import RouterSettings

if TYPE_CHECKING:
    from chalicelib.auth.authorizer import Authorizer
    from chalicelib.registry.resolver import CachedRegistry

SERVICES_KEY: web.AppKey[Services] = web.AppKey("lisa_router_services", Services)


async def health(_: web.Request) -> web.Response:
    """Liveness for load balancers: the router itself is up (backends have their own health checks)."""
    return json_response({"status": "ok"})


def create_app(
    settings: RouterSettings | None = None,
    *,
    authorizer: Authorizer | None = None,
    registry: CachedRegistry | None = None,
    augment_chat: ChatAugmenter | None = None,
    usage_listeners: Iterable[UsageListener] = (),
    clock: Callable[[], float] | None = None,
    meter: Meter | None = None,
) -> web.Application:
    """The router application; `authorizer` / `registry` default to the process-wide ones (per current settings).

    `usage_listeners` see every finished request (router/accounting.py); `clock` (UNIX seconds) dates them and
    times the rate limits' windows (router/limits.py, on unless `settings.limits` is off). Metering
    (router/metering.py) is `meter`, else one into the configured tables unless `settings.metering` is off."""
    settings = settings or RouterSettings()
    accounting = Accounting(clock) if clock is not None else Accounting()
    for listener in usage_listeners:
        accounting.add(listener)
    limits = RouterLimits.from_settings(settings.limits_completion_estimate, clock) if settings.limits else None
    if limits is not None:
        accounting.add(limits.settle)
    if meter is None and settings.metering:
        meter = Meter.from_settings(settings, clock)
    services = Services(
        settings=settings,
        auth=AsyncAuthorizer(authorizer),
        catalog=ModelCatalog(registry),
        augment_chat=augment_chat,
        accounting=accounting,
        limits=limits,
    )
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SERVICES_KEY] = services
    app[ACCOUNTING_KEY] = accounting
    if limits is not None:
        app.on_response_prepare.append(limits.add_headers)

    async def client_session(_: web.Application) -> AsyncIterator[None]:
        session = new_session(settings)
        services.backend = Backend(session, settings)
        yield
        services.backend = None
        await session.close()

    app.cleanup_ctx.append(client_session)
    if meter is not None:
        meter.install(app)

    openai, native = OpenAIApi(services), NativeApi(services)
    log = settings.access_log
    handlers: dict[str, Handler] = {
        "listOpenAIModels": openai.models,
        "createChatCompletion": openai.chat_completions,
        "createCompletion": openai.completions,
        "createEmbeddings": openai.embeddings,
        "listModels": native.list_models,
        "describeModel": native.describe_model,
        "describeModels": native.describe_models,
        "generate": native.generate,
        "generateStream": native.generate_stream,
        "embeddings": native.embeddings,
    }
    app.router.add_get("/health", health)
    for route in DATA_PLANE:  # the documented table (chalicelib.serve.routes): every operation, nothing else
        operation = route.operation.operation_id
        handler = guarded(
            refreshing(handlers.pop(operation), services), log, operation=operation, accounting=accounting
        )
        app.router.add_route(route.method, route.path, handler)
    if handlers:
        raise RuntimeError(f"handlers without a route: {', '.join(handlers)}")
    return app
