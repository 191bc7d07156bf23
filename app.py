"""LISA's control plane: the Chalice app. Routes only; each concern mounts its Blueprint."""

from chalice import Chalice

app = Chalice(app_name="lisa")
