"""Rate limits and token budgets: admins' per-principal overrides (API and store), which limits apply to a caller,
and the shared window counters the router leases its quota from (router/limits.py enforces them)."""
