"""`python -m router [--host H] [--port P]`: serve the data-plane router (settings from LISA_* / LISA_ROUTER_*)."""

from __future__ import annotations

import argparse
import gc
import logging

from aiohttp import web

from router.app import create_app
from router.http import json_http_errors
from router.rag import RagAugmenter
from router.server import run
from router.settings import RouterSettings


class _NotPowertools(logging.Filter):
    """Keep records of Powertools loggers (which write their own JSON lines) off the root handler: without this,
    loggers created before `basicConfig` (the router's, at import) print every line a second time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(logging.getLogger(record.name.split(".", 1)[0]), "powertools_handler", None) is None


async def _freeze_heap(_: web.Application) -> None:
    """Move everything imported and built at startup out of the garbage collector's view: the collector then only
    walks per-request objects, so its pauses stay short (they otherwise show in the latency tail)."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    """Run the router until interrupted (`python -m router`)."""
    settings = RouterSettings()
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    try:  # a faster event loop when available (the container image installs it)
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.root.handlers:
        handler.addFilter(_NotPowertools())
    app = create_app(settings, augment_chat=RagAugmenter() if settings.rag_in_chat else None)
    app.on_startup.append(_freeze_heap)
    app.middlewares.append(json_http_errors)  # unknown paths / wrong methods answer the JSON error object too
    # No aiohttp access log (the router logs one structured line per request itself); a client that goes away
    # cancels its backend call; LISA's HTTP-level answers (router/server.py).
    run(app, args.host, args.port, lambda url: logging.getLogger("router").warning("serving on %s", url))


if __name__ == "__main__":
    main()
