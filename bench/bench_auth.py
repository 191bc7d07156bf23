"""Authorizer decision latency (cached and uncached) and app.py cold-import time, against same-run baselines.

Targets: a cached decision <= 1 ms (it should be a few microseconds), cold `import app` <= 300 ms.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.timing import row, timed

ROOT = Path(__file__).resolve().parent.parent
CALLS = 20_000
MISS_CALLS = 2_000
DB_CALLS = 300


def _request_headers(**auth: str) -> dict[str, str]:
    return {
        "Host": "lisa.example.com",
        "User-Agent": "OpenAI/Python 1.99.0",
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate",
        "Content-Type": "application/json",
        "Content-Length": "187",
        "X-Stainless-Lang": "python",
        "X-Request-Id": "6f1c2a9e-3b7d-4c55-9a0e-6d1f0b8b9c21",
        "Connection": "keep-alive",
        **auth,
    }


def _decisions() -> None:
    import jwt
    from moto.server import ThreadedMotoServer
    from multidict import CIMultiDict, CIMultiDictProxy

    from chalicelib import aws
    from chalicelib.auth.authorizer import Authorizer
    from chalicelib.auth.jwt_verifier import JwtVerifier
    from chalicelib.auth.tokens import TokenStore
    from runner.bootstrap import bootstrap
    from testkit.oidc_issuer import OidcIssuer
    from workers.launch import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log
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
    bootstrap()
    idp = OidcIssuer(client_id="lisa-bench").start()
    try:
        store = TokenStore()
        token, _ = store.create("bench-user", groups=["users"])
        verifier = JwtVerifier(idp.issuer, idp.client_id, admin_group="admins")
        authorizer = Authorizer(store, verifier, cache_ttl_seconds=60)
        rs_jwt = idp.mint(username="bench-user", groups=["users"], alg="RS256")
        es_jwt = idp.mint(username="bench-user", groups=["users"], alg="ES256")

        # Baselines: the least any cached check must do, and a bare signature check with a known key.
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = {digest: "bench-user"}

        def bare_lookup() -> Any:
            h = hashlib.sha256(token.encode()).hexdigest()
            return hmac.compare_digest(h, digest) and known.get(h)

        rs_key = idp.key(idp.current_kid("RS256")).private_key.public_key()
        es_key = idp.key(idp.current_kid("ES256")).private_key.public_key()
        opts: dict[str, Any] = {"audience": idp.client_id, "issuer": idp.issuer}

        def bare_rs() -> Any:
            return jwt.decode(rs_jwt, rs_key, algorithms=["RS256"], **opts)

        def bare_es() -> Any:
            return jwt.decode(es_jwt, es_key, algorithms=["ES256"], **opts)

        api_headers = _request_headers(**{"Api-Key": token})
        bearer_headers = _request_headers(Authorization=f"Bearer {token}")
        rs_headers = _request_headers(Authorization=f"Bearer {rs_jwt}")
        es_headers = _request_headers(Authorization=f"Bearer {es_jwt}")
        proxy_headers = CIMultiDictProxy(CIMultiDict(api_headers))  # what aiohttp hands the router
        for headers in (api_headers, rs_headers, es_headers):
            authorizer.authorize_headers(headers)  # warm: JWKS fetched, decisions cached

        print(f"decision latency, {CALLS} calls each (request with 10 headers)", flush=True)
        base = timed(bare_lookup, CALLS)
        row("baseline: sha256 + compare_digest + dict lookup", base)
        row(
            "cached API token via Api-Key (dict headers)",
            timed(lambda: authorizer.authorize_headers(api_headers), CALLS),
            base,
        )
        row("cached API token via Bearer", timed(lambda: authorizer.authorize_headers(bearer_headers), CALLS), base)
        row(
            "cached API token via Api-Key (aiohttp CIMultiDictProxy)",
            timed(lambda: authorizer.authorize_headers(proxy_headers), CALLS),
            base,
        )
        row("cached RS256 JWT", timed(lambda: authorizer.authorize_headers(rs_headers), CALLS), base)
        row(
            "authorize_cached (no-I/O path) API token",
            timed(lambda: authorizer.authorize_cached(api_headers), CALLS),
            base,
        )

        print(
            f"\nuncached JWT decision (JWKS cached, decision cache cleared each call), {MISS_CALLS} calls", flush=True
        )

        def miss(headers: dict[str, str]) -> Callable[[], Any]:
            def call() -> Any:
                authorizer.clear_cache()
                return authorizer.authorize_headers(headers)

            return call

        base_rs = timed(bare_rs, MISS_CALLS)
        row("baseline: bare jwt.decode RS256 with the known key", base_rs)
        row("uncached RS256 JWT decision", timed(miss(rs_headers), MISS_CALLS), base_rs)
        base_es = timed(bare_es, MISS_CALLS)
        row("baseline: bare jwt.decode ES256 with the known key", base_es)
        row("uncached ES256 JWT decision", timed(miss(es_headers), MISS_CALLS), base_es)

        print(f"\nuncached API token decision (DynamoDB GetItem on moto server), {DB_CALLS} calls", flush=True)
        table = aws.table(store.table_name)
        base_db = timed(lambda: table.get_item(Key={"tokenHash": digest}, ConsistentRead=True), DB_CALLS)
        row("baseline: bare GetItem through boto3", base_db)
        row("uncached API token decision", timed(miss(api_headers), DB_CALLS), base_db)
        print(f"  JWKS fetches during the whole run: {idp.hits['/jwks']}", flush=True)
    finally:
        idp.stop()
        moto.stop()


def _wall_ms(code: str, runs: int) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _importtime_ms(module: str, runs: int) -> float:
    """Median cumulative -X importtime of `module` (import only, no interpreter start-up)."""
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in reversed(result.stderr.splitlines()):
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                samples.append(int(parts[1]) / 1000)
                break
    return statistics.median(samples)


def _cold_import(runs: int = 5) -> None:
    print(f"\ncold import in a fresh process (median of {runs})", flush=True)
    startup = _wall_ms("pass", runs)
    boto3_wall = _wall_ms("import boto3", runs)
    app_wall = _wall_ms("import app", runs)
    auth_wall = _wall_ms("import chalicelib.auth.routes", runs)
    print(f"  python -c pass                  wall {startup:7.1f} ms", flush=True)
    print(f"  import boto3                    wall {boto3_wall:7.1f} ms  (import alone {boto3_wall - startup:6.1f} ms)")
    print(f"  import app                      wall {app_wall:7.1f} ms  (import alone {app_wall - startup:6.1f} ms)")
    print(f"  import chalicelib.auth.routes   wall {auth_wall:7.1f} ms  (import alone {auth_wall - startup:6.1f} ms)")
    app_it = _importtime_ms("app", runs)
    boto3_it = _importtime_ms("boto3", runs)
    print(f"  -X importtime: app {app_it:.1f} ms, boto3 {boto3_it:.1f} ms; app/boto3 = {app_it / boto3_it:.2f}")
    print(f"  target <= 300 ms: {'met' if app_wall - startup <= 300 else 'MISSED'}", flush=True)


def run() -> None:
    _decisions()
    _cold_import()
