"""Real local peers that both the tests and the benchmarks start: an OIDC issuer and CPU model workers; and the
router benchmarks' harness (loadgen: a mock TGI backend and a load generator).

Nothing here imports pytest, so `bench/` can use it without pulling in the test suite; pytest fixtures built on
these live in `tests/support/`.
"""
