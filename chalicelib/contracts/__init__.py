"""Wire formats as typed contracts: one pydantic module per format, written once and used in both directions.

The router, the workers, the Lambdas and the tests all build what they send with `Model(...).model_dump()` and read
what they receive with `Model.model_validate(payload)`, so a format cannot drift between the side that writes it
and the side that reads it.

- `base`: the one base model (unknown fields ignored; `StrictWireModel`: JSON types as sent) and `omitted_when_none`.
- `tgi`: text-generation-inference: /generate, /generate_stream, /info, /tokenize, its Messages API body, errors.
- `tei`: text-embeddings-inference: /embed, /info, its OpenAI-compatible embeddings route, errors.
- `instructor`: the instructor container protocol (POST /predictions/model).
"""
