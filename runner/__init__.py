"""The local runner: LISA on one laptop with no AWS account and no Docker (local-only, never deployed)."""
