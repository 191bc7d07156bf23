"""Unit tests of pure logic: no server, no PostgreSQL, no model; `pytest tests/unit` runs in seconds."""
