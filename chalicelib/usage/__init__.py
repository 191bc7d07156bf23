"""Usage metering: per-day aggregates per principal and model (written by the router), and `GET /usage`."""
