"""`python -m gpu_stack [--config config.yaml]`: list the deployment's stacks in deployment order (no synth)."""

from __future__ import annotations

import argparse

from chalicelib.config import load_config
from gpu_stack.names import STACKS, resource_names


def main(argv: list[str] | None = None) -> None:
    """Print the stack names in deployment order, so scripts deploy exactly what `gpu_stack.app` synthesizes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args(argv)
    prefix = resource_names(load_config(args.config)).prefix
    for suffix, what in STACKS:
        print(f"{prefix}-{suffix:<8} {what}")


if __name__ == "__main__":
    main()
