"""Logs to stdout, one line per event: JSON in production, readable text in development.

Every line carries the request id (``X-Request-ID``: taken from a trusted proxy, otherwise made
here, and sent back in the response) or, outside requests, the id of the job run or command that
wrote it (:func:`log_context`). One line per request records method, path, status and duration.
"""

import contextlib
import contextvars
import logging
import re
import sys
import time
import uuid

import click
from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")  # what we pass on from a proxy, verbatim
_run_id = contextvars.ContextVar("scm_run_id", default=None)
_HANDLER_NAME = "scm-stdout"

access_log = logging.getLogger("scm.access")


@contextlib.contextmanager
def log_context(run_id):
    """Tag every log line written inside the block with ``run_id`` (a job run, a command)."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def current_request_id():
    """The id of the request being answered, or of the job run being done (None outside both)."""
    if has_request_context() and "request_id" in g:
        return g.request_id
    return _run_id.get()


class _ContextFilter(logging.Filter):
    def filter(self, record):
        record.request_id = current_request_id() or "-"
        return True


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a line is logged (a server or a test may swap it);
    inside a command (``flask api-token create``…) to stderr, as stdout is the command's answer."""

    @property
    def stream(self):
        return sys.stderr if click.get_current_context(silent=True) is not None else sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(app):
    """One stdout handler on the root logger, in the configured format (idempotent across apps)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = _StdoutHandler()
    handler.set_name(_HANDLER_NAME)
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    logging.getLogger("scm").setLevel(app.config["LOG_LEVEL"])  # ours, whatever else changes the root's
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # scm.scheduler logs each run, with its id
    _install_request_hooks(app)


def _install_request_hooks(app):
    trust_proxy = app.config["TRUSTED_PROXIES"] > 0

    @app.before_request
    def assign_request_id():
        g.request_started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER, "") if trust_proxy else ""
        g.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def log_request(response):
        if "request_id" not in g:  # an answer made before this app's first hook ran (a failing earlier hook)
            g.request_id = uuid.uuid4().hex
            g.request_started = time.perf_counter()
        response.headers[REQUEST_ID_HEADER] = g.request_id
        duration_ms = round((time.perf_counter() - g.request_started) * 1000, 1)
        access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status_code, duration_ms,
                        extra={"method": request.method, "path": request.path, "status": response.status_code,
                               "duration_ms": duration_ms, "client_ip": request.remote_addr})
        return response
