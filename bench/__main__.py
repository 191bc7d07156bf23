"""`make bench`: run every benchmark module (or those named: `python -m bench auth router`).

Benchmarks in OPT_IN run only when named: `make bench BENCH=soak` (ten minutes of a whole stack) and
`make bench BENCH=engines` (vLLM against our worker: 10-15 minutes on a quiet 2-core machine)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from testkit.processes import stop_on_signals

OPT_IN = {"engines", "soak"}


def main(names: list[str]) -> None:
    here = Path(__file__).parent
    available = sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )
    chosen = names or [name for name in available if name not in OPT_IN]
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(available)}")
    stop_on_signals()  # a terminated `make bench` stops the engines and servers it started
    for name in chosen:
        print(f"\n=== bench {name} ===", flush=True)
        importlib.import_module(f"bench.bench_{name}").run()


if __name__ == "__main__":
    main(sys.argv[1:])
