"""`python -m router [--host H] [--port P]`: serve the data-plane router (settings from LISA_* / LISA_ROUTER_*)."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from router.app import create_app
from router.settings import RouterSettings


def main(argv: list[str] | None = None) -> None:
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
    web.run_app(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=None,  # the router logs one structured line per request itself
        handler_cancellation=True,  # a client that goes away cancels its backend call
        print=lambda message: logging.getLogger("router").warning(message),
    )


if __name__ == "__main__":
    main()
