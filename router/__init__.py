"""LISA's data plane: an async router serving the OpenAI-compatible and LISA-native inference APIs.

It authorizes every request (cached), resolves the model in the registry (cached) and forwards to the model's
TGI / TEI / instructor backend over pooled connections, streaming as tokens arrive. `router.app.create_app()` builds
the aiohttp application; `python -m router --port P` serves it.
"""
