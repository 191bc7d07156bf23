"""The first LISA's `lisapy` SDK (it is not on PyPI), reduced to the calls tests make, reading the bytes as it does.

The request building and response parsing are copied from `Lisa` in lisa-sdk/lisapy/main.py (LISA v1.2.0): the
URL, query strings and bodies it sends, and its `generate_stream` loop with its quirks kept (`"b\\n"`, `"/n"`, the
final event yielded with an empty token). Tests hold the router to what that SDK does, not to a tolerant client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class FoundationModel:
    """lisapy.types.FoundationModel."""

    provider: str
    model_type: str
    model_name: str
    model_kwargs: dict[str, Any]
    streaming: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoundationModel:
        return cls(d["provider"], d["modelType"], d["modelName"], d["modelKwargs"], d.get("streaming", False))


@dataclass(frozen=True)
class StreamingResponse:
    """lisapy.types.StreamingResponse."""

    token: str
    finish_reason: str | None = None
    generated_tokens: int | None = None


class Lisa:
    """lisapy.Lisa over `url` (the base; `/v1` is appended as lisapy does)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = f"{url.rstrip('/')}/v1"
        self._session = requests.Session()
        self._session.headers = headers  # type: ignore[assignment]  # as lisapy does

    def _ok(self, response: requests.Response) -> Any:
        assert response.status_code == 200, response.text  # lisapy raises parse_error(...) here
        return response.json()

    def describe_model(self, provider: str, model_name: str) -> FoundationModel:
        response = self._session.get(f"{self.url}/describeModel?provider={provider}&modelName={model_name}")
        return FoundationModel.from_dict(self._ok(response))

    def _listed(self, model_type: str) -> list[FoundationModel]:
        json_models = self._ok(self._session.get(f"{self.url}/listModels?modelTypes={model_type}"))
        return [
            self.describe_model(provider=provider, model_name=model_name)
            for _, providers in json_models.items()
            for provider, model_names in providers.items()
            for model_name in model_names
        ]

    def list_textgen_models(self) -> list[FoundationModel]:
        return self._listed("textgen")

    def list_embedding_models(self) -> list[FoundationModel]:
        return self._listed("embedding")

    @staticmethod
    def _request(model: FoundationModel, text: Any) -> dict[str, Any]:
        return {
            "provider": model.provider,
            "modelName": model.model_name,
            "text": text,
            "modelKwargs": model.model_kwargs,
        }

    def generate_stream(self, prompt: str, model: FoundationModel) -> Iterator[StreamingResponse]:
        response = self._session.post(f"{self.url}/generateStream", json=self._request(model, prompt))
        assert response.status_code == 200, response.text
        for resp_line in response.iter_lines():
            if resp_line == "b\n":
                continue
            payload = resp_line.decode("utf-8")
            if payload.startswith("data:"):
                json_payload = json.loads(payload.removeprefix("data:").rstrip("/n"))
                if "finishReason" in json_payload:
                    yield StreamingResponse(
                        token="",
                        finish_reason=json_payload["finishReason"],
                        generated_tokens=json_payload["generatedTokens"],
                    )
                else:
                    yield StreamingResponse(token=json_payload["token"]["text"])

    def embed(self, texts: str | list[str], model: FoundationModel) -> list[list[float]]:
        output = self._ok(self._session.post(f"{self.url}/embeddings", json=self._request(model, texts)))
        return output["embeddings"]  # type: ignore[no-any-return]
