"""The JSON API v1 for stamping systems (token authentication), and API token management."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
tokens_bp = Blueprint("api_tokens", __name__)


def init_app(app):
    from scm.api import token_views, views  # noqa: F401  (registers routes)
    from scm.api.cli import token_cli
    from scm.api.limits import init_limits
    from scm.extensions import csrf

    csrf.exempt(bp)  # token-authenticated; session cookies do not authenticate the API
    init_limits(app, bp)
    app.register_blueprint(bp)
    app.register_blueprint(tokens_bp)
    app.cli.add_command(token_cli)
