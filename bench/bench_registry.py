"""Registry lookup latency on the data plane's hot path, against same-run baselines.

Cached `CachedRegistry.resolve` (plain name, `name (provider)`, unnormalised form) against a bare dict lookup;
a reload (TTL 0: every lookup scans the table) against a bare GetItem of one model, on a moto server.
Target: a cached lookup costs microseconds (a small multiple of a dict lookup) and does no I/O.
"""

from __future__ import annotations

import logging
import os

from bench.timing import row, timed

CALLS = 50_000
DB_CALLS = 200
MODELS = 20


def run() -> None:
    from moto.server import ThreadedMotoServer

    from chalicelib import aws
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.registry.resolver import CachedRegistry
    from chalicelib.registry.store import ModelStore
    from runner.bootstrap import bootstrap
    from workers.launch import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("lisa-registry").setLevel(logging.WARNING)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    os.environ.update(
        {
            "LISA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    aws.reset()
    try:
        bootstrap()
        store = ModelStore()
        for i in range(MODELS):
            container = "tgi" if i % 2 else "tei"
            store.create(
                CreateModelRequest.model_validate(
                    {
                        "modelName": f"model-{i:02d}",
                        "hfModelId": f"org/model-{i:02d}",
                        "inferenceContainer": container,
                        "endpointUrl": f"http://127.0.0.1:{9000 + i}",
                        "defaultModelKwargs": {"max_new_tokens": 256, "temperature": 0.2},
                        "containerConfig": {"image": "ghcr.io/huggingface/text-generation-inference:3.3.4"},
                    }
                )
            )
        registry = CachedRegistry(store, ttl_seconds=300)
        target = registry.resolve("model-13")
        display, messy = target.display_name, f"  model-13  ( {target.provider} ) "
        plain_dict = {r.model_name: r for r in registry.list_models()}

        print(f"cached lookups, {MODELS} models registered, {CALLS} calls each", flush=True)
        base = timed(lambda: plain_dict.get("model-13"), CALLS)
        row("baseline: dict.get(name)", base)
        row("resolve(name)", timed(lambda: registry.resolve("model-13"), CALLS), base)
        row(f"resolve('{display}')", timed(lambda: registry.resolve(display), CALLS), base)
        row("resolve(unnormalised '  name  ( provider ) ')", timed(lambda: registry.resolve(messy), CALLS), base)
        row("list_models()", timed(registry.list_models, CALLS), base)

        print(f"\nuncached (DynamoDB on moto server), {DB_CALLS} calls each", flush=True)
        table = aws.table("lisa-models")
        base_db = timed(lambda: table.get_item(Key={"modelId": "model-13"}, ConsistentRead=True), DB_CALLS)
        row("baseline: bare GetItem through boto3", base_db)
        row("ModelStore.get (GetItem + record validation)", timed(lambda: store.get("model-13"), DB_CALLS), base_db)
        uncached = CachedRegistry(store, ttl_seconds=0)
        row(
            f"resolve with TTL 0 (Scan of {MODELS} models)",
            timed(lambda: uncached.resolve("model-13"), DB_CALLS),
            base_db,
        )
    finally:
        moto.stop()
        aws.reset()
