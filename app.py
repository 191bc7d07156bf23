"""LISA's control plane: the Chalice app. Routes only; each concern mounts its Blueprint."""

from chalice import Chalice

from chalicelib.auth.routes import auth_bp

app = Chalice(app_name="lisa")
app.register_blueprint(auth_bp)  # /tokens (admin); also registers lisa_authorizer
