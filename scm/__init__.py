"""SCM Meterai: the Supply Chain Meterai platform of an e-Meterai distributor."""

import os

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix

from config import BASE_DIR, CONFIGS, DEFAULT_SECRET_KEY, INSTANCE_DIR
from scm.extensions import babel, bootstrap, csrf, db, login_manager, migrate


def create_app(config_name=None, **overrides):
    """Build the Flask application for ``config_name`` (default: ``$SCM_ENV`` or development)."""
    config_name = config_name or os.environ.get("SCM_ENV", "development")
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.from_object(CONFIGS[config_name])
    app.config.update(overrides)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):  # a file needs no liveness ping
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            k: v for k, v in app.config["SQLALCHEMY_ENGINE_OPTIONS"].items() if k != "pool_pre_ping"}
    _check_production_settings(app)
    os.makedirs(app.instance_path, exist_ok=True)
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:  # the client's address, scheme and host as the trusted proxies saw them (audit log IPs)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)

    from scm.core.i18n import select_locale, select_timezone
    from scm.core.logs import configure_logging
    from scm.core.metrics import init_metrics

    configure_logging(app)  # first: the request id exists before any other hook runs
    init_metrics(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    bootstrap.init_app(app)

    from scm.core.database import configure_engine_events

    with app.app_context():
        configure_engine_events(db.engine)

    from scm import api, auth, billing, core, home, people, procurement, quota, registration, stamping

    for feature in (core, auth, registration, people, quota, stamping, procurement, api, billing, home):
        feature.init_app(app)

    from scm.demo.cli import demo_cli

    app.cli.add_command(demo_cli)
    _register_error_pages(app)
    return app


def _check_production_settings(app):
    """Refuse to start in production with a missing or default secret key."""
    if app.config["ENV_NAME"] != "production":
        return
    key = app.config.get("SECRET_KEY")
    if not key or key == DEFAULT_SECRET_KEY or len(key) < 32:
        raise RuntimeError(
            "SECRET_KEY must be set to a random value of at least 32 characters in production "
            "(for example: python -c 'import secrets; print(secrets.token_hex(32))')."
        )


_API_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 429: "too_many_requests", 500: "internal_error"}


def _register_error_pages(app):
    def page(code):
        def handler(error):
            if request.path.startswith("/api/"):  # the API always answers problem+json
                from scm.api.problems import problem_response

                return problem_response(code, _API_CODES.get(code, "error"), getattr(error, "name", "Error"))
            return render_template("errors/error.html", code=code, error=error), code

        return handler

    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, page(code))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/error.html", code=400, error=error, csrf=True), 400
