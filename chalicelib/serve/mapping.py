"""Requests in (validated), backend requests out; backend responses in, OpenAI / LISA-native responses out.

Parameter policy (the same for chat completions and completions, streaming or not)
---------------------------------------------------------------------------------
Honoured, mapped onto TGI:
- `max_tokens` (chat: `max_completion_tokens` first) → TGI `max_new_tokens` (chat: the Messages API's
  `max_tokens`). Unset: the model's `defaultModelKwargs.max_new_tokens`, else TGI's own default, which for the
  Messages API (`/v1/chat/completions`) and `/generate` is 100 new tokens (TGI 2.x: `max_tokens.or(Some(100))`).
- `temperature`: 0 → greedy decoding (`do_sample: false`, no temperature); > 0 → sampling at that temperature;
  unset → the model's default, else OpenAI's default (sampling at temperature 1).
- `top_p`: 1 (or unset) → no nucleus filtering (TGI refuses 1.0); otherwise passed on. Ignored when greedy.
- `stop`: a string or a list of up to MAX_STOP_SEQUENCES (TGI's default limit) non-empty strings → TGI `stop`.
- `seed` (>= 0) → TGI `seed`.
- `frequency_penalty` (-2..2) → TGI `frequency_penalty`, which TGI (>= 1.4) applies exactly as OpenAI defines it
  (logit -= penalty * count of the token so far); 0 is dropped.
- `presence_penalty` (-2..2) has no TGI equivalent and stands for TGI's multiplicative `repetition_penalty`
  (CTRL, applied once to every token already present, as a presence penalty is), target
  `r = 2 ** (presence_penalty / 2)`: 0 → 1.0 (off), 2 → 2.0, -2 → 0.5 (encourages repetition).
  `/generate` gets `repetition_penalty: r`. TGI's Messages API has no `repetition_penalty` field (unknown fields are
  ignored); it derives `repetition_penalty = presence_penalty + 2`, so chat sends `presence_penalty: r - 2`, and
  only when r != 1 (a TGI presence_penalty of 0 would mean a repetition penalty of 2).
  An explicit `repetition_penalty` in the model's defaults is used the same way (chat: `presence_penalty = r - 2`)
  and is overridden by a non-zero presence_penalty.
- `logprobs` / `top_logprobs` (chat) and `logprobs: k` (completions) → TGI token logprobs and `top_n_tokens`.
- `echo` (completions): the prompt is prepended to the text (streaming: sent as the first chunk).
- `stream`, `stream_options.include_usage` (a final chunk with `usage` and no choices).
- chat `tools`, `tool_choice`, `response_format`: forwarded to TGI's Messages API, which implements them
  (grammar-constrained); a backend that cannot (e.g. a local CPU worker) refuses, and its refusal reaches the caller
  as a 400 with the backend's message. `parallel_tool_calls` is not a TGI field and is not sent (TGI's Messages
  API returns at most one tool call).
Chat sends only fields of TGI's `ChatRequest` (`TGI_CHAT_FIELDS`). The model defaults that the Messages API cannot
express are dropped for chat (they still apply to completions and `/v1/generate`): `top_k`, `typical_p`,
`truncate`, `watermark` (TGI's chat fixes them to off / none).
Refused with 400 `unsupported_parameter` naming the parameter (they would change the output and cannot be honoured):
  `n` > 1, `best_of` > 1, a non-empty `logit_bias`, a non-empty `suffix`, `echo` with `logprobs`, token-array
  prompts/inputs, `modalities` other than text, `audio`, embeddings `dimensions`.
Accepted and ignored (they do not change the output): `user`, `stream_options` without `stream`, and any field this
API does not know (forward compatibility with newer SDKs).
Range and type errors are 422 naming the field (`param`); a body that is not a JSON object is 400, and so is one
nested deeper than `bounded_json.MAX_DEPTH` or holding a lone UTF-16 surrogate (`param` names where).

finish_reason: TGI `length` → `length`; `eos_token` and `stop_sequence` → `stop`.
LISA-native `modelKwargs` use TGI's own names (see `types.TgiModelKwargs`) and keep TGI's finish reasons.
"""

from __future__ import annotations

import base64
import secrets
import time
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib import bounded_json
from chalicelib.config import format_validation_error
from chalicelib.serve.errors import ServeError, invalid, unsupported
from chalicelib.serve.types import (
    MAX_BATCH_PROMPTS,
    MAX_STOP_SEQUENCES,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    InstructorModelKwargs,
    NativeStreamResponse,
    NativeToken,
    TeiModelKwargs,
    TgiModelKwargs,
)

M = TypeVar("M", bound=BaseModel)

OPENAI_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}
DEFAULT_INSTRUCTION = InstructorModelKwargs.model_fields["instruction"].default

# TGI-named model defaults (`defaultModelKwargs`) → the OpenAI chat parameter they stand for.
_DEFAULT_TO_CHAT = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop_sequences": "stop",
    "frequency_penalty": "frequency_penalty",
}
# The fields of TGI's Messages API request (`ChatRequest` in TGI's router/src/lib.rs); TGI ignores any other.
TGI_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "n",
        "presence_penalty",
        "stop",
        "stream",
        "seed",
        "temperature",
        "top_p",
        "tools",
        "tool_prompt",
        "tool_choice",
        "response_format",
        "guideline",
        "stream_options",
    }
)
_GENERATE_DEFAULTS = (
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "frequency_penalty",
    "seed",
    "truncate",
    "do_sample",
    "watermark",
)


# ---------------------------------------------------------------------------------------------------------------
# edge validation
# ---------------------------------------------------------------------------------------------------------------
def parse_json_object(raw: bytes | str | None) -> dict[str, Any]:
    """A request body as a JSON object (bounded: chalicelib.bounded_json), or a 400 saying what is wrong, naming the
    field where it can."""
    if not raw:
        raise invalid("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = bounded_json.loads(raw)
    except bounded_json.InvalidJson as error:
        raise invalid(error.message, error.field, code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", code="invalid_json")
    return data


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """`data` validated as `model`, or a 422 naming every bad field (`param` is the first)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, prefix) from None


def validation_error(error: ValidationError, prefix: str = "") -> ServeError:
    """A 422 for a pydantic error: `field.path: reason; ...`, `param` = the first field."""
    message = format_validation_error(error).replace("\n", "; ")
    first = error.errors()[0]["loc"] if error.errors() else ()
    param = ".".join(str(part) for part in first if not _is_union_tag(part)) or None
    if prefix:
        message = "; ".join(f"{prefix}.{part}" if not part.startswith("(") else part for part in message.split("; "))
        param = f"{prefix}.{param}" if param else prefix
    return ServeError(422, message, param=param, code="invalid_value")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _is_union_tag(part: str | int) -> bool:
    """pydantic names the union member in an error's location (`content.str`); a `param` leaves it out."""
    return isinstance(part, str) and (part in _TYPE_TAGS or any(c in part for c in "[(-"))


def stop_list(stop: str | list[str] | None, param: str = "stop") -> list[str]:
    """`stop` as TGI's list: at most MAX_STOP_SEQUENCES non-empty strings."""
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid(f"'{param}' takes at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}", param)
    if any(not s for s in stops):
        raise invalid(f"'{param}' sequences must not be empty", param)
    return stops


def presence_to_repetition_penalty(presence_penalty: float) -> float:
    """OpenAI presence_penalty (-2..2) → TGI repetition_penalty: `2 ** (p / 2)` (0 → 1.0, i.e. off)."""
    return float(2.0 ** (presence_penalty / 2.0))


def _refuse_common(req: ChatCompletionRequest | CompletionRequest) -> None:
    if req.n is not None and req.n > 1:
        raise unsupported("n", "LISA returns one choice per request; send n requests (with different seeds)")
    if req.logit_bias:
        raise unsupported("logit_bias", "TGI backends cannot bias token logits")


def _sampling(req: ChatCompletionRequest | CompletionRequest) -> tuple[bool | None, float | None, float | None]:
    """(do_sample, temperature, top_p) by the policy above; do_sample None means "the model's default"."""
    top_p = None if req.top_p is None or req.top_p >= 1.0 else req.top_p
    if req.temperature is None:
        return None, None, top_p
    if req.temperature == 0.0:
        return False, None, None
    return True, req.temperature, top_p


# ---------------------------------------------------------------------------------------------------------------
# OpenAI chat → TGI Messages API (/v1/chat/completions: the model's own chat template renders the messages)
# ---------------------------------------------------------------------------------------------------------------
def chat_request(req: ChatCompletionRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body to POST to TGI's /v1/chat/completions for `req` (after the policy checks)."""
    _refuse_common(req)
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise unsupported("modalities", "LISA's chat models produce text only")
    messages = [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in req.messages]
    body: dict[str, Any] = {"model": "tgi", "messages": messages}
    for key, chat_key in _DEFAULT_TO_CHAT.items():
        if defaults and defaults.get(key) is not None:
            body[chat_key] = defaults[key]
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if defaults and defaults.get("do_sample") is False and "temperature" not in body:
        body["temperature"] = 0.0
    do_sample, temperature, top_p = _sampling(req)
    if do_sample is not None:
        body["temperature"] = temperature if do_sample else 0.0  # TGI's Messages API: 0 → greedy
    if top_p is not None:
        body["top_p"] = top_p
    if body.get("temperature") == 0.0:
        body.pop("top_p", None)
    if "stop" in body:
        body["stop"] = stop_list(body["stop"], "defaultModelKwargs.stop_sequences")
    if req.stop is not None:
        body["stop"] = stop_list(req.stop)
    if req.seed is not None:
        body["seed"] = req.seed
    if req.frequency_penalty:
        body["frequency_penalty"] = req.frequency_penalty
    repetition = defaults.get("repetition_penalty") if defaults else None
    if req.presence_penalty:
        repetition = presence_to_repetition_penalty(req.presence_penalty)
    if repetition is not None and repetition != 1.0:
        body["presence_penalty"] = repetition - 2.0  # TGI's chat: repetition_penalty = presence_penalty + 2
    if req.logprobs:
        body["logprobs"] = True
        if req.top_logprobs:
            body["top_logprobs"] = req.top_logprobs
    for key in ("tools", "tool_choice", "response_format"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    body["stream"] = req.stream
    if req.stream:
        body["stream_options"] = {"include_usage": True}  # usage is always collected; sent if asked
    return body


def chat_completion(tgi: dict[str, Any], completion_id: str, model: str) -> dict[str, Any]:
    """A TGI chat completion → LISA's (the id and model are LISA's; finish reasons normalised)."""
    tgi["id"] = completion_id
    tgi["model"] = model
    tgi["object"] = "chat.completion"
    if not isinstance(tgi.get("created"), int):
        tgi["created"] = int(time.time())
    for choice in tgi.get("choices") or ():
        reason = choice.get("finish_reason")
        choice["finish_reason"] = OPENAI_FINISH.get(reason, reason)
        choice.setdefault("logprobs", None)
    if not isinstance(tgi.get("usage"), dict):
        tgi["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return tgi


def chat_chunk(tgi: dict[str, Any], completion_id: str, model: str, created: int) -> dict[str, Any]:
    """A TGI chat completion chunk → LISA's (in place)."""
    tgi["id"] = completion_id
    tgi["model"] = model
    tgi["created"] = created
    tgi["object"] = "chat.completion.chunk"
    for choice in tgi.get("choices") or ():
        reason = choice.get("finish_reason")
        if reason is not None:
            choice["finish_reason"] = OPENAI_FINISH.get(reason, reason)
    return tgi


# ---------------------------------------------------------------------------------------------------------------
# OpenAI completions → TGI /generate and /generate_stream (one request per prompt)
# ---------------------------------------------------------------------------------------------------------------
def completion_prompts(req: CompletionRequest) -> list[str]:
    """The prompts of a completions request (1..MAX_BATCH_PROMPTS strings)."""
    prompt = req.prompt
    if isinstance(prompt, str):
        return [prompt]
    if any(not isinstance(p, str) for p in prompt):
        raise unsupported("prompt", "token-id prompts cannot be sent to TGI; send text")
    prompts: list[str] = list(prompt)  # type: ignore[arg-type]
    if not 0 < len(prompts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'prompt' must hold 1 to {MAX_BATCH_PROMPTS} prompts, got {len(prompts)}", "prompt")
    return prompts


def generate_parameters(req: CompletionRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TGI `parameters` for a completions request (after the policy checks)."""
    _refuse_common(req)
    if req.best_of is not None and req.best_of > 1:
        raise unsupported("best_of", "LISA generates one sequence per prompt")
    if req.suffix:
        raise unsupported("suffix", "TGI models do not insert text between a prompt and a suffix")
    if req.echo and req.logprobs is not None:
        raise unsupported("logprobs", "prompt-token logprobs (echo with logprobs) are not available")
    params: dict[str, Any] = {}
    if defaults:
        params.update((k, defaults[k]) for k in _GENERATE_DEFAULTS if defaults.get(k) is not None)
        if defaults.get("stop_sequences"):
            params["stop"] = stop_list(defaults["stop_sequences"], "defaultModelKwargs.stop_sequences")
        if params.get("temperature") == 0:
            del params["temperature"]
            params["do_sample"] = False
    if req.max_tokens is not None:
        params["max_new_tokens"] = req.max_tokens
    do_sample, temperature, top_p = _sampling(req)
    if do_sample is None:
        params.setdefault("do_sample", "temperature" not in params or params["temperature"] > 0)
    else:
        params["do_sample"] = do_sample
        params.pop("temperature", None)
        if temperature is not None:
            params["temperature"] = temperature
    if top_p is not None:
        params["top_p"] = top_p
    if not params["do_sample"]:
        for key in ("temperature", "top_p", "top_k", "typical_p"):
            params.pop(key, None)
    if req.stop is not None:
        params["stop"] = stop_list(req.stop)
    if req.seed is not None:
        params["seed"] = req.seed
    if req.frequency_penalty:
        params["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty:
        params["repetition_penalty"] = presence_to_repetition_penalty(req.presence_penalty)
    params["details"] = True
    if req.logprobs:
        params["top_n_tokens"] = req.logprobs
    return params


def finish_reason(tgi_reason: str | None) -> str | None:
    """TGI's finish reason → OpenAI's."""
    return None if tgi_reason is None else OPENAI_FINISH.get(tgi_reason, "stop")


def completion_logprobs(
    tokens: Sequence[Mapping[str, Any]], top_tokens: Sequence[Sequence[Mapping[str, Any]]] | None, offset: int
) -> dict[str, Any]:
    """OpenAI completions `logprobs` for generated TGI tokens; `offset` is the text offset of the first."""
    texts, logprobs, offsets, tops = [], [], [], []
    for i, token in enumerate(tokens):
        text = token.get("text", "")
        texts.append(text)
        logprobs.append(token.get("logprob"))
        offsets.append(offset)
        offset += len(text)
        if top_tokens is not None:
            step = top_tokens[i] if i < len(top_tokens) else ()
            tops.append({t.get("text", ""): t.get("logprob") for t in step})
    return {
        "tokens": texts,
        "token_logprobs": logprobs,
        "top_logprobs": tops if top_tokens is not None else None,
        "text_offset": offsets,
    }


def completion_choice(
    index: int, prompt: str, tgi: Mapping[str, Any], echo: bool, logprobs: int | None
) -> dict[str, Any]:
    """One completions choice from a TGI /generate response (`details: true`)."""
    text = tgi.get("generated_text") or ""
    details = tgi.get("details") or {}
    prefix = prompt if echo else ""
    choice: dict[str, Any] = {
        "index": index,
        "text": prefix + text,
        "logprobs": None,
        "finish_reason": finish_reason(details.get("finish_reason")) or "stop",
    }
    if logprobs is not None:
        tops = details.get("top_tokens") if logprobs else None
        choice["logprobs"] = completion_logprobs(details.get("tokens") or [], tops, len(prefix))
    return choice


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI `usage`."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def new_id(prefix: str) -> str:
    """`prefix-<24 hex>`: chatcmpl-…, cmpl-…"""
    return f"{prefix}-{secrets.token_hex(12)}"


# ---------------------------------------------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------------------------------------------
def embedding_inputs(req: EmbeddingRequest) -> list[str]:
    """The texts of an embeddings request (1..MAX_BATCH_PROMPTS non-empty strings)."""
    if req.dimensions is not None:
        raise unsupported("dimensions", "embeddings have the model's own dimension")
    value = req.input
    texts = [value] if isinstance(value, str) else value
    if any(not isinstance(t, str) for t in texts):
        raise unsupported("input", "token-id inputs cannot be sent to the embedding backend; send text")
    if not 0 < len(texts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'input' must hold 1 to {MAX_BATCH_PROMPTS} texts, got {len(texts)}", "input")
    for i, text in enumerate(texts):
        if not text:
            raise invalid("'input' texts must not be empty", f"input.{i}" if len(texts) > 1 else "input")
    return texts  # type: ignore[return-value]


def embeddings_response(
    vectors: Sequence[Sequence[float]], model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI embeddings response (`encoding_format: base64` packs little-endian float32, as OpenAI does)."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": float32_base64(vector) if encoding_format == "base64" else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": usage(prompt_tokens, 0)}


def float32_base64(vector: Sequence[float]) -> str:
    """Base64 of a vector as little-endian float32 (what the OpenAI SDK decodes)."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover (every supported platform has 4-byte C floats)
        raise RuntimeError("float32 packing needs 4-byte C floats")
    import sys

    if sys.byteorder != "little":  # pragma: no cover
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def check_vectors(payload: Any, expected: int) -> list[list[float]]:
    """A backend's embeddings answer, checked: `expected` lists of numbers (else a 502)."""
    if (
        not isinstance(payload, list)
        or len(payload) != expected
        or not all(isinstance(v, list) and v and isinstance(v[0], int | float) for v in payload)
    ):
        raise ServeError(502, "the embedding backend answered something other than one vector per input")
    return payload


# ---------------------------------------------------------------------------------------------------------------
# LISA-native v1
# ---------------------------------------------------------------------------------------------------------------
def _known(defaults: Mapping[str, Any] | None, model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in (defaults or {}).items() if k in model.model_fields}


def native_tgi_parameters(model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TGI `parameters` for native `modelKwargs` (TGI names), over the model's defaults; 422 naming the kwarg."""
    kwargs = validate(TgiModelKwargs, {**_known(defaults, TgiModelKwargs), **model_kwargs}, "modelKwargs")
    params = kwargs.model_dump(exclude_none=True)
    params["stop"] = params.pop("stop_sequences")
    if params.get("temperature") == 0:
        del params["temperature"]
        params["do_sample"] = False
    if not params["watermark"]:
        del params["watermark"]
    params["details"] = True
    return params


def tei_kwargs(model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> TeiModelKwargs:
    """Validated TEI `modelKwargs` over the model's defaults."""
    return validate(TeiModelKwargs, {**_known(defaults, TeiModelKwargs), **model_kwargs}, "modelKwargs")


def instructor_kwargs(
    model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> InstructorModelKwargs:
    """Validated instructor `modelKwargs` over the model's defaults."""
    return validate(InstructorModelKwargs, {**_known(defaults, InstructorModelKwargs), **model_kwargs}, "modelKwargs")


TEI_EMBED_PATH = "/embed"
INSTRUCTOR_EMBED_PATH = "/predictions/model"


def embed_request(
    provider: str,
    texts: Sequence[str],
    model_kwargs: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(path, body) that embed `texts` on an embedding backend: TEI `/embed` or instructor `/predictions/model`.

    The one request builder for both transports (the router's aiohttp backend, the Lambdas' httpx clients)."""
    if provider == "ecs.embedding.instructor":
        instructor = instructor_kwargs(model_kwargs or {}, defaults)
        return INSTRUCTOR_EMBED_PATH, {"instruction": instructor.instruction, "text": list(texts)}
    if provider == "ecs.embedding.tei":
        tei = tei_kwargs(model_kwargs or {}, defaults)
        return TEI_EMBED_PATH, {"inputs": list(texts), "normalize": tei.normalize, "truncate": tei.truncate}
    raise ServeError(400, f"provider {provider!r} is not an embedding provider", param="provider")


_KWARGS_MODELS: dict[str, type[BaseModel]] = {
    "ecs.textgen.tgi": TgiModelKwargs,
    "ecs.embedding.tei": TeiModelKwargs,
    "ecs.embedding.instructor": InstructorModelKwargs,
}


def default_model_kwargs(provider: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete `modelKwargs` a model runs with when a request sends none (for describeModel)."""
    model = _KWARGS_MODELS.get(provider, TgiModelKwargs)
    try:
        return model.model_validate(_known(defaults, model)).model_dump()
    except ValidationError:
        return model().model_dump()


def native_generate_response(tgi: Mapping[str, Any]) -> dict[str, Any]:
    """TGI /generate (`details: true`) → LISA /v1/generate."""
    details = tgi.get("details") or {}
    return {
        "generatedText": tgi.get("generated_text") or "",
        "generatedTokens": details.get("generated_tokens", 0),
        "finishReason": details.get("finish_reason", "length"),
    }


def native_stream_event(tgi: Mapping[str, Any]) -> dict[str, Any]:
    """One TGI stream event → one LISA /v1/generateStream event, exactly as the first LISA sent it.

    `{"token": {"text", "special"}}` per generated token; the last token's own event also carries
    `generatedTokens` and `finishReason`. (lisapy yields that final event with an empty token, so its users do not
    see the last token's text; other clients get every token. Wire compatibility with the first LISA wins.)
    """
    token = tgi.get("token") or {}
    details = tgi.get("details") or {}
    event = NativeStreamResponse(
        token=NativeToken(text=token.get("text", ""), special=bool(token.get("special"))),
        generated_tokens=details.get("generated_tokens", 0) if details else None,
        finish_reason=details.get("finish_reason", "length") if details else None,
    )
    return event.model_dump(by_alias=True, exclude_none=True)


def native_text(text: str | list[str], param: str = "text") -> str:
    """The one prompt of a native generate request."""
    if not isinstance(text, str):
        raise invalid("'text' must be one string for text generation", param)
    if not text:
        raise invalid("'text' must not be empty", param)
    return text


def native_texts(text: str | list[str]) -> list[str]:
    """The texts of a native embeddings request."""
    texts = [text] if isinstance(text, str) else text
    if not 0 < len(texts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'text' must hold 1 to {MAX_BATCH_PROMPTS} texts, got {len(texts)}", "text")
    if any(not t for t in texts):
        raise invalid("'text' entries must not be empty", "text")
    return texts
