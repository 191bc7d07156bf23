"""Inference protocols shared by the data-plane router and the Lambdas (no aiohttp here; light imports).

- `types`: pydantic models mirroring the wire formats (OpenAI, TGI, TEI, instructor, LISA-native v1).
- `errors`: `ServeError`, the one exception every protocol-level refusal raises, and the OpenAI error shape.
- `mapping`: validation + OpenAI → TGI request mapping (the parameter policy), TGI → OpenAI/LISA responses.
- `sse`: server-sent events, encoding and incremental parsing.
- `clients`: small synchronous TGI / TEI / instructor clients (httpx), e.g. for RAG ingestion.
"""
