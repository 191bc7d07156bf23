"""The one base of every wire model: what all of LISA's wire formats have in common."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class WireModel(BaseModel):
    """A JSON object on the wire.

    Unknown fields are ignored, as every server LISA speaks to or imitates does (forward compatibility); fields are
    read by name or alias. Fields named in `omitted_when_none` are left out of the dump when None, as the wire
    leaves them out (serde's `skip_serializing_if`), while other None fields are written as `null`.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.omitted_when_none:
            if data.get(name, 0) is None:
                del data[name]
        return data


class StrictWireModel(WireModel):
    """A wire object whose JSON types are taken exactly as sent: `"1"` is not an integer, `1` is not a string.

    The engines LISA imitates parse with serde, which refuses such coercions, so a worker must refuse them too.
    """

    model_config = ConfigDict(strict=True)
