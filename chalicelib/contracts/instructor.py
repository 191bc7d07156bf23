"""The instructor embedding container protocol (TorchServe-style), as LISA v1's instructor containers serve it.

`POST /predictions/model` with an instruction and one or more texts answers a JSON list of vectors, one per text;
`GET /ping` is the health check; errors use TorchServe's body (`code`, `type`, `message`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import RootModel

from chalicelib.contracts.base import StrictWireModel, WireModel


class InstructorRequest(StrictWireModel):
    """POST /predictions/model; the instruction conditions the encoding (empty: none)."""

    instruction: str = ""
    text: str | list[str]


class InstructorResponse(RootModel[list[list[float]]]):
    """The answer of /predictions/model: one vector per text, in order."""


class InstructorHealth(WireModel):
    """GET /ping."""

    status: Literal["Healthy", "Unhealthy"]


class InstructorError(WireModel):
    """TorchServe's error body; `code` repeats the HTTP status."""

    code: int
    type: str
    message: str
