"""People of a WAPU after approval: its users managed by the distributor admin and its SPV, the
minimum staffing (one active SPV and one active FIN), and supervisors' stand-ins during leave."""

from flask import Blueprint

bp = Blueprint("people", __name__)


def init_app(app):
    from scm.people import views  # noqa: F401  (registers routes)

    app.register_blueprint(bp)
