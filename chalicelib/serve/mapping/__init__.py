"""Requests in (validated), backend requests out; backend responses in, OpenAI / LISA-native responses out.

The serving policy these modules implement (which parameter maps onto what, what is refused) is docs/serving.md.
"""

from chalicelib.serve.mapping.chat import TGI_CHAT_FIELDS, chat_chunk, chat_completion, chat_request
from chalicelib.serve.mapping.completions import (
    completion_choice,
    completion_logprobs,
    completion_prompts,
    generate_parameters,
    generate_request,
    generate_response,
    stream_response,
)
from chalicelib.serve.mapping.embeddings import (
    DEFAULT_INSTRUCTION,
    INSTRUCTOR_EMBED_PATH,
    TEI_EMBED_PATH,
    check_vectors,
    embed_request,
    embedding_inputs,
    embeddings_response,
    float32_base64,
)
from chalicelib.serve.mapping.model_kwargs import (
    default_model_kwargs,
    instructor_kwargs,
    native_tgi_parameters,
    tei_kwargs,
)
from chalicelib.serve.mapping.native import native_generate_response, native_stream_event, native_text, native_texts
from chalicelib.serve.mapping.sampling import (
    OPENAI_FINISH,
    finish_reason,
    new_id,
    presence_to_repetition_penalty,
    stop_list,
    usage,
)
from chalicelib.serve.mapping.validation import parse_json_object, validate, validation_error

__all__ = [
    "DEFAULT_INSTRUCTION",
    "INSTRUCTOR_EMBED_PATH",
    "OPENAI_FINISH",
    "TEI_EMBED_PATH",
    "TGI_CHAT_FIELDS",
    "chat_chunk",
    "chat_completion",
    "chat_request",
    "check_vectors",
    "completion_choice",
    "completion_logprobs",
    "completion_prompts",
    "default_model_kwargs",
    "embed_request",
    "embedding_inputs",
    "embeddings_response",
    "finish_reason",
    "float32_base64",
    "generate_parameters",
    "generate_request",
    "generate_response",
    "instructor_kwargs",
    "native_generate_response",
    "native_stream_event",
    "native_text",
    "native_texts",
    "native_tgi_parameters",
    "new_id",
    "parse_json_object",
    "presence_to_repetition_penalty",
    "stop_list",
    "stream_response",
    "tei_kwargs",
    "usage",
    "validate",
    "validation_error",
]
