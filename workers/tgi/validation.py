"""TGI's validation rules and messages: a request body checked against the limits and tokenized, ready for the
engine. Tokenizing happens here, so every method that tokenizes runs off the event loop (`off_loop`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chalicelib.contracts.tgi import (
    TgiChatMessage,
    TgiChatRequest,
    TgiCompletionRequest,
    TgiGenerateRequest,
    TgiOpenAIRequest,
    TgiParameters,
)
from chalicelib.errors import Unprocessable
from workers.common import bounded_part, too_long
from workers.engine_io import GenerationRequest, GenerationResult, SamplingParams
from workers.tgi.limits import Limits

PREFIX = "Input validation error: "
DEFAULT_MAX_NEW_TOKENS = 100  # TGI's default for /generate and /v1/chat/completions; /v1/completions: the budget


def invalid(message: str) -> Unprocessable:
    """A request TGI refuses: 422 `validation`, in TGI's words."""
    return Unprocessable(PREFIX + message, error_type="validation")


@dataclass(frozen=True)
class Prepared:
    """A validated /generate request ready for the engine, plus what its response needs."""

    request: GenerationRequest
    inputs: str
    best_of: int
    details: bool
    return_full_text: bool

    def text(self, result: GenerationResult) -> str:
        """The generated text as the response carries it (after the inputs with `return_full_text`)."""
        return self.inputs + result.generated_text if self.return_full_text else result.generated_text


class RequestValidator:
    """Checks requests against one model's tokenizer and the server's limits."""

    def __init__(self, tokenizer: Any, limits: Limits) -> None:
        self.tokenizer = tokenizer
        self.limits = limits

    def sampling(self, params: SamplingParams) -> SamplingParams:
        """`params` checked against TGI's ranges; a top_p or typical_p of 1.0 means none (as in TGI)."""
        if params.temperature is not None and params.temperature <= 0:
            raise invalid("`temperature` must be strictly positive")
        if params.repetition_penalty is not None and params.repetition_penalty <= 0:
            raise invalid("`repetition_penalty` must be strictly positive")
        for name, value in (
            ("frequency_penalty", params.frequency_penalty),
            ("presence_penalty", params.presence_penalty),
        ):
            if value is not None and not -2.0 <= value <= 2.0:
                raise invalid(f"`{name}` must be >= -2.0 and <= 2.0")
        if params.top_k is not None and params.top_k <= 0:
            raise invalid("`top_k` must be strictly positive")
        if params.top_p is not None and not 0.0 < params.top_p <= 1.0:
            raise invalid("`top_p` must be > 0.0 and < 1.0")
        if params.typical_p is not None and not 0.0 < params.typical_p <= 1.0:
            raise invalid("`typical_p` must be > 0.0 and < 1.0")
        if params.seed is not None and params.seed < 0:
            raise invalid("`seed` must be positive")
        if not 0 <= params.top_n_tokens <= self.limits.max_top_n_tokens:
            raise invalid(
                f"`top_n_tokens` must be >= 0 and <= {self.limits.max_top_n_tokens}. Given: {params.top_n_tokens}"
            )
        return replace(
            params,
            top_p=None if params.top_p == 1.0 else params.top_p,
            typical_p=None if params.typical_p == 1.0 else params.typical_p,
        )

    def encode(self, text: str, *, add_special_tokens: bool = True, truncate: int | None = None) -> list[int]:
        """Token ids of `text` within the input limit (TGI's rules and messages); a huge text is refused, or
        truncated, after tokenizing only the part that decides (`bounded_part`). Call it off the loop (`off_loop`)."""
        if not text:
            raise invalid("`inputs` cannot be empty")
        limit = self.limits.max_input_tokens
        if truncate is not None:
            if not 0 < truncate <= limit:
                raise invalid(f"`truncate` must be strictly positive and less than {limit}. Given: {truncate}")
            tail = bounded_part(text, truncate, self._count, keep="tail")
            return self._ids(tail, add_special_tokens)[-truncate:]
        part = bounded_part(text, limit, self._count)
        if part is not text:
            raise invalid(too_long(limit, None))
        ids = self._ids(text, add_special_tokens)
        if len(ids) > limit:
            raise invalid(too_long(limit, len(ids)))
        return ids

    def _ids(self, text: str, add_special_tokens: bool) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def _count(self, text: str) -> int:
        return len(self._ids(text, False))

    def generation_request(
        self,
        ids: list[int],
        params: SamplingParams,
        max_new_tokens: int | None,
        stop: list[str],
        prefill_details: bool = False,
    ) -> GenerationRequest:
        """What the engine runs; the output budget defaults to what the total token limit leaves."""
        if max_new_tokens is None:
            max_new_tokens = self.limits.max_total_tokens - len(ids)
        if max_new_tokens <= 0:
            raise invalid("`max_new_tokens` must be strictly positive")
        if len(ids) + max_new_tokens > self.limits.max_total_tokens:
            raise invalid(
                f"`inputs` tokens + `max_new_tokens` must be <= {self.limits.max_total_tokens}. "
                f"Given: {len(ids)} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
            )
        if len(stop) > self.limits.max_stop_sequences:
            raise invalid(f"`stop` supports up to {self.limits.max_stop_sequences} stop sequences. Given: {len(stop)}")
        if any(not sequence for sequence in stop):
            raise invalid("`stop` sequences cannot be empty")
        return GenerationRequest(
            input_ids=tuple(ids),
            params=params,
            max_new_tokens=max_new_tokens,
            stop_sequences=tuple(stop),
            prefill_details=prefill_details,
        )

    def prepare_generate(self, body: TgiGenerateRequest, *, stream: bool) -> Prepared:
        """A /generate body validated and tokenized (off the loop); `stream` forbids `best_of`, as in TGI."""
        parameters = body.parameters or TgiParameters()
        if parameters.watermark:
            raise invalid("`watermark` is not supported by this worker")
        if parameters.grammar is not None:
            raise invalid("`grammar` is not supported by this worker")
        best_of = parameters.best_of if parameters.best_of is not None else 1
        if not 0 < best_of <= self.limits.max_best_of:
            raise invalid(f"`best_of` must be > 0 and <= {self.limits.max_best_of}. Given: {best_of}")
        params = self.sampling(
            SamplingParams(
                do_sample=parameters.do_sample,
                temperature=parameters.temperature,
                top_k=parameters.top_k,
                top_p=parameters.top_p,
                typical_p=parameters.typical_p,
                repetition_penalty=parameters.repetition_penalty,
                frequency_penalty=parameters.frequency_penalty,
                seed=parameters.seed,
                top_n_tokens=parameters.top_n_tokens or 0,
            )
        )
        if best_of > 1:
            if stream:
                raise invalid("`best_of` != 1 is not allowed for this endpoint")
            if parameters.seed is not None:
                raise invalid("`seed` must not be set when `best_of` > 1")
            if not params.sampling:
                raise invalid("you must use sampling when `best_of` is > 1")
        ids = self.encode(body.inputs, truncate=parameters.truncate)
        max_new_tokens = parameters.max_new_tokens if parameters.max_new_tokens is not None else DEFAULT_MAX_NEW_TOKENS
        request = self.generation_request(
            ids, params, max_new_tokens, parameters.stop, parameters.decoder_input_details
        )
        return Prepared(request, body.inputs, best_of, parameters.details, bool(parameters.return_full_text))

    def render_chat(self, messages: list[TgiChatMessage]) -> str:
        """The conversation as the model's chat template writes it (only text content parts)."""
        rendered: list[dict[str, str]] = []
        for index, message in enumerate(messages):
            if isinstance(message.content, list):
                texts = []
                for part in message.content:
                    if part.type != "text" or part.text is None:
                        raise invalid(f"`messages.{index}.content`: only text parts are supported, got {part.type!r}")
                    texts.append(part.text)
                content = "".join(texts)
            else:
                content = message.content or ""
            rendered.append({"role": message.role, "content": content})
        try:
            text = str(self.tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True))
        except Exception as error:  # jinja raises for conversations the template refuses (roles, order...)
            raise Unprocessable(f"Template error: {error}", error_type="template_error") from None
        return text

    def prepare_openai(
        self,
        body: TgiOpenAIRequest,
        prompt: str,
        *,
        add_special_tokens: bool,
        max_tokens: int | None,
        presence_penalty: float | None,
        repetition_penalty: float | None,
        top_logprobs: int | None = None,
    ) -> GenerationRequest:
        """One prompt of an OpenAI-style request (chat or completions) as TGI maps it: temperature 0 means greedy.
        The fields both APIs share are read from `body`; the ones each maps its own way are given."""
        if body.n not in (None, 1):
            raise invalid("`n` > 1 is not supported by this worker")
        temperature = body.temperature
        do_sample = temperature is None or temperature != 0.0  # OpenAI semantics as TGI applies them: 0 → greedy
        params = self.sampling(
            SamplingParams(
                do_sample=do_sample,
                temperature=None if temperature == 0.0 else temperature,
                top_p=body.top_p,
                repetition_penalty=repetition_penalty,
                frequency_penalty=body.frequency_penalty,
                presence_penalty=presence_penalty,
                seed=body.seed,
                top_n_tokens=top_logprobs or 0,
            )
        )
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        ids = self.encode(prompt, add_special_tokens=add_special_tokens)
        return self.generation_request(ids, params, max_tokens, stops)

    def prepare_chat(self, body: TgiChatRequest) -> GenerationRequest:
        """The chat rendered with the model's template and tokenized (off the loop: the template sees every text)."""
        if body.tools or (body.tool_choice not in (None, "none", "auto")):
            raise invalid("`tools` are not supported by this worker")
        if body.response_format is not None and body.response_format != {"type": "text"}:
            raise invalid("`response_format` is not supported by this worker")
        if body.logit_bias:
            raise invalid("`logit_bias` is not supported by this worker")
        return self.prepare_openai(
            body,
            self.render_chat(body.messages),
            add_special_tokens=False,  # the template already wrote every special token
            # TGI's Messages API: unset max_tokens → 100; repetition_penalty = presence_penalty + 2 (multiplicative,
            # no additive presence penalty)
            max_tokens=DEFAULT_MAX_NEW_TOKENS if body.max_tokens is None else body.max_tokens,
            presence_penalty=None,
            repetition_penalty=None if body.presence_penalty is None else body.presence_penalty + 2.0,
            top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        )

    def prompts(self, body: TgiCompletionRequest) -> list[str]:
        """The prompts of a completions request, within the client batch limit."""
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not 0 < len(prompts) <= self.limits.max_client_batch_size:
            raise invalid(
                f"`prompt` must hold between 1 and {self.limits.max_client_batch_size} prompts. Given: {len(prompts)}"
            )
        return prompts

    def prepare_completions(self, body: TgiCompletionRequest, prompts: list[str]) -> list[GenerationRequest]:
        """Each prompt validated and tokenized (off the loop)."""
        return [
            self.prepare_openai(
                body,
                prompt,
                add_special_tokens=True,
                max_tokens=body.max_tokens,
                presence_penalty=body.presence_penalty,
                repetition_penalty=body.repetition_penalty,
            )
            for prompt in prompts
        ]
