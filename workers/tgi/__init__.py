"""A CPU worker speaking text-generation-inference's HTTP API (the subset LISA uses, wire-compatible).

`python -m workers.tgi --model-dir DIR --model-id ORG/NAME --port P [--host 127.0.0.1]`

Routes: `GET /info`, `GET /health`, `GET /metrics`, `POST /generate`, `POST /generate_stream`, `POST /` (TGI's
compat route: what HF's `text_generation.Client` calls), `POST /v1/chat/completions` (the Messages API, rendered
with the tokenizer's chat template), `POST /v1/completions`, `GET /v1/models`, `POST /tokenize`.
Limits come from the same environment variables TGI's launcher reads (MAX_CONCURRENT_REQUESTS, MAX_INPUT_TOKENS or
MAX_INPUT_LENGTH, MAX_TOTAL_TOKENS, MAX_BEST_OF, MAX_STOP_SEQUENCES, MAX_TOP_N_TOKENS, MAX_BATCH_SIZE,
MAX_BATCH_TOTAL_TOKENS, MAX_BATCH_PREFILL_TOKENS, MAX_CLIENT_BATCH_SIZE), or from the matching flags.

- `limits`: the server's limits, from flags and TGI's environment variables.
- `validation`: TGI's rules and messages, turning a request into what the engine runs.
- `responses`: the engine's results as TGI's and the OpenAI-compatible routes' response models.
- `sse`: the one server-sent-events loop every streaming route uses.
- `service`: the HTTP handlers; `server`: the application and the command line.
"""
