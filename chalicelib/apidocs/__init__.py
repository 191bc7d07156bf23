"""LISA's OpenAPI 3.1 document, generated from the pydantic models that validate requests and shape responses.

- `operations`: how a route declares its operation (body, query, response models, errors, links) where it is
  registered, and the wrapper that makes the route answer exactly the declared models (so the document cannot drift).
- `document`: the document, from the Chalice app's route table and the data plane's (`chalicelib.serve.routes`).
- `routes`: `GET /openapi.json` (public).
"""
