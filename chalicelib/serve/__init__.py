"""Inference protocols shared by the data-plane router and the Lambdas (no aiohttp here; light imports).

The wire formats themselves are `chalicelib.contracts` (one pydantic module per format).
- `errors`: `ServeError`, the one exception every protocol-level refusal raises, and the OpenAI error shape.
- `mapping`: validation + OpenAI → TGI request mapping (the policy: docs/serving.md), TGI → OpenAI/LISA responses.
- `sse`: server-sent events, encoding and incremental parsing.
- `clients`: small synchronous TGI / TEI / instructor clients (httpx), e.g. for RAG ingestion.
- `routes`: the data plane's public route table.
- `types`: names kept for the workers until they import `chalicelib.contracts.openai`.
"""
