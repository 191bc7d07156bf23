"""`python -m tests.support.limits_router PORT CLOCK`: the real router in its own process, with its clock fixed at
CLOCK (UNIX seconds), so tests that run several router processes on the same tables know which window counts.
Everything else (moto endpoint, limits, auth) comes from the environment, as for `python -m router`."""

from __future__ import annotations

import logging
import sys

from router.app import create_app
from router.server import run
from router.settings import RouterSettings


def main(port: int, clock: float) -> None:
    """Serve until terminated."""
    logging.basicConfig(level=logging.WARNING)
    app = create_app(RouterSettings(access_log=False, rag_in_chat=False, metering=False), clock=lambda: clock)
    run(app, "127.0.0.1", port, lambda url: logging.getLogger("router").warning("serving on %s", url))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
