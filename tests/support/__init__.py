"""Real local peers for tests (an OIDC issuer, model workers, servers), started on loopback."""
