"""The Lambda functions of the Chalice app, read from the app itself (routes, authorizers, events, pure Lambdas)."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from chalice.utils import to_cfn_resource_name

API_HANDLER = "api_handler"


@dataclass(frozen=True)
class AppFunctions:
    """Function names as Chalice names them (`api_handler`, `lisa_authorizer`, `ingest_documents`, ...)."""

    api_handler: bool
    authorizers: tuple[str, ...]
    event_handlers: tuple[str, ...]
    pure: tuple[str, ...]
    handlers: dict[str, str] = field(default_factory=dict)  # pure function -> `module.attribute` Lambda calls

    @property
    def all(self) -> tuple[str, ...]:
        """Every Lambda name, the API handler first; one list so packaging and stacks cannot disagree."""
        head = (API_HANDLER,) if self.api_handler else ()
        return head + self.authorizers + self.event_handlers + self.pure


def logical_id(function: str) -> str:
    """The function's logical id in `chalice package` output (`staging_resolve` → `StagingResolve`)."""
    return "APIHandler" if function == API_HANDLER else to_cfn_resource_name(function)


def app_functions(project_dir: Path) -> AppFunctions:
    """Import `<project_dir>/app.py` and list what Chalice will package from it."""
    root = str(project_dir.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    app = importlib.import_module("app").app
    return AppFunctions(
        api_handler=bool(app.routes),
        authorizers=tuple(a.name for a in app.builtin_auth_handlers),
        event_handlers=tuple(e.name for e in app.event_sources),
        pure=tuple(f.name for f in app.pure_lambda_functions),
        handlers={f.name: f.handler_string for f in app.pure_lambda_functions},
    )


def state_machine_stems(directory: Path) -> tuple[str, ...]:
    """The ASL documents present: `stepfunctions/staging.json` → `staging`."""
    return tuple(sorted(p.stem for p in directory.glob("*.json")))


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def asl_placeholders(definition: str) -> list[str]:
    """The `${Name}` DefinitionSubstitutions keys an ASL document uses, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(definition)))


def substitution_function(machine: str, key: str, functions: AppFunctions) -> str:
    """The Chalice function a `${KeyFunctionArn}` placeholder of `stepfunctions/<machine>.json` stands for.

    Convention: `staging.json`'s `${ConvertShardFunctionArn}` is `staging_convert_shard`.
    """
    if not key.endswith("FunctionArn"):
        raise ValueError(f"stepfunctions/{machine}.json: placeholder ${{{key}}} is not a ...FunctionArn")
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", key.removesuffix("FunctionArn"))
    name = "_".join([machine, *(w.lower() for w in words)])
    if name not in functions.all:
        raise ValueError(
            f"stepfunctions/{machine}.json: ${{{key}}} needs a Chalice Lambda function named {name!r}"
            f" (have: {', '.join(functions.all)})"
        )
    return name
