"""LISA's control plane: the Chalice app. Routes only; each concern mounts its Blueprint."""

from chalicelib.apidocs.routes import apidocs_bp
from chalicelib.attachments.routes import attachments_bp
from chalicelib.auth.routes import auth_bp
from chalicelib.lifecycle.routes import lifecycle_bp
from chalicelib.limits.routes import limits_bp
from chalicelib.prompt_templates.routes import prompt_templates_bp
from chalicelib.rag.routes import rag_bp
from chalicelib.registry.routes import models_bp
from chalicelib.request_context import ConcurrentChalice
from chalicelib.sessions.routes import sessions_bp
from chalicelib.staging.routes import staging_bp
from chalicelib.usage.routes import usage_bp
from chalicelib.webui.routes import webui_bp

app = ConcurrentChalice(app_name="lisa")  # per-request state is per thread (the local front door's pool)
app.register_blueprint(auth_bp)  # /tokens (admin); also registers lisa_authorizer
app.register_blueprint(models_bp, url_prefix="/models")
app.register_blueprint(staging_bp, url_prefix="/models")  # /models/{id}/stage (admin); the staging Lambda tasks
app.register_blueprint(lifecycle_bp)  # the model lifecycle workflow's Lambda tasks
app.register_blueprint(sessions_bp, url_prefix="/sessions")
app.register_blueprint(prompt_templates_bp, url_prefix="/prompt-templates")
app.register_blueprint(attachments_bp, url_prefix="/attachments")  # documents in a chat, uploaded to S3 directly
app.register_blueprint(rag_bp, url_prefix="/repositories")  # also the ingestion queue handler
app.register_blueprint(limits_bp, url_prefix="/limits")  # per-principal rate limit overrides (admin)
app.register_blueprint(usage_bp)  # /usage: per-day usage (the router meters it)
app.register_blueprint(webui_bp)  # /ui/config (public)
app.register_blueprint(apidocs_bp)  # /openapi.json (public): the document of every route above and the data plane
