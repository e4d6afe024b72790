"""The small helpers every view uses; the language switch and the health and readiness probes."""

import functools
import re
from datetime import datetime, time, timedelta
from urllib.parse import unquote, urlsplit

from flask import current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_login import current_user
from flask_sqlalchemy.pagination import Pagination, SelectPagination
from sqlalchemy import select
from sqlalchemy import text as sql_text

from scm.core import bp
from scm.core.background import queue_ready, start_task
from scm.core.database import count_rows, unit_of_work
from scm.core.formatting import WIB
from scm.core.forms import Form, LanguageForm
from scm.extensions import db


def field_error(form, error):
    """Show a ServiceError beside its field, or at the top of the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


def show_decision_error(form, error):
    """A refused decision: a missing reason beside the comment box, anything else as a flash."""
    if error.field == "comment":
        form.comment.errors = [error.message]
    else:
        flash(str(error.message), "danger")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(target) -> str | None:
    r"""A path on this site to go to after login or a language switch, or None.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so
    ``/\t/evil.example`` or ``/\evil.example`` would leave the site: any control character or
    backslash, raw or percent-encoded, is refused, and so is anything that is not a plain local
    path once decoded (a scheme, a host, ``//``)."""
    if not isinstance(target, str) or not target or len(target) > 2000:
        return None
    decoded = unquote(target)
    for text in (target, decoded):
        if _CONTROL.search(text) or "\\" in text or not text.startswith("/") or text.startswith("//"):
            return None
    parts = urlsplit(decoded)
    if parts.scheme or parts.netloc:
        return None
    return target


def no_store(body):
    """A response that browsers and proxies must not keep (one-time passwords)."""
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


class RowPagination(SelectPagination):
    """A page of a select of several columns: its items are rows, not the first column's objects."""

    def _query_items(self):
        select = self._query_args["select"].limit(self.per_page).offset(self._query_offset)
        return list(self._query_args["session"].execute(select))


class ListPagination(Pagination):
    """A page of a list already computed (a report of every WAPU, shown a page at a time): no query."""

    def _query_items(self):
        return self._query_args["items"][self._query_offset:self._query_offset + self.per_page]

    def _query_count(self):
        return len(self._query_args["items"])


def paginate(stmt, per_page=None, rows=False):
    """One page of ``stmt`` from ``?page=``: two queries (count, rows), whatever the page size.
    ``rows`` pages a select of several columns (items are rows); a list is paged as it is."""
    per_page = per_page or current_app.config["PAGE_SIZE"]
    if isinstance(stmt, list):
        return ListPagination(items=stmt, per_page=per_page, max_per_page=100, error_out=False)
    if rows:
        return RowPagination(select=stmt, session=db.session(), per_page=per_page, max_per_page=100, error_out=False)
    return db.paginate(stmt, per_page=per_page, max_per_page=100, error_out=False)


def export_in_background(stmt, kind, *, inline, params):
    """An export of the rows of ``stmt``: up to ``EXPORT_INLINE_ROWS`` sent at once (``inline()``);
    more, and the page asks to prepare it in the queue (a POST with the CSRF token), then shows the
    task's page. ``params`` (JSON) let task ``kind`` build the same rows for the same reader; the
    filters in the query string are passed as ``args``."""
    limit = current_app.config["EXPORT_INLINE_ROWS"]
    if count_rows(stmt, limit) <= limit:
        return inline()
    form = Form()
    if request.method == "POST" and form.validate_on_submit():
        args = request.args.to_dict()
        params = {**params, "args": args, "locale": str(get_locale())}
        with unit_of_work():
            task = start_task(kind, current_user, key=f"{request.path}?{sorted(args.items())}"[:200], params=params)
        return redirect(url_for("home.task", task_id=task.id))
    return render_template("export_confirm.html", form=form, limit=limit)


def within_wib_days(column, day_from, day_to) -> list:
    """WHERE clauses keeping ``column`` (a UTC timestamp) within WIB calendar days [day_from, day_to]."""
    start, end = wib_day_bounds(day_from, day_to)
    return [clause for clause in (column >= start if start else None, column < end if end else None)
            if clause is not None]


def wib_day_bounds(day_from, day_to):
    """UTC datetimes bounding WIB calendar days [day_from, day_to] (either may be None)."""
    start = datetime.combine(day_from, time.min, WIB) if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), time.min, WIB) if day_to else None
    return start, end


@bp.route("/language", methods=["POST"])
def set_language():
    """Switch the interface language (Bahasa Indonesia / English)."""
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in current_app.config["LANGUAGES"]:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data) or "/")


@bp.route("/healthz")
def healthz():
    """Liveness, and a database ping, for load balancers: 200 ``ok`` or 503 ``unavailable`` (JSON)."""
    if not _database_answers():
        return {"status": "unavailable"}, 503
    return {"status": "ok"}


@bp.route("/readyz")
def readyz():
    """Readiness: the database answers and is migrated to this code's head; 503 with the reason if not."""
    checks = {"database": "ok" if _database_answers() else "unavailable"}
    if checks["database"] == "ok":
        try:
            current = set(db.session.execute(sql_text("SELECT version_num FROM alembic_version")).scalars())
        except Exception:  # no alembic_version table: never migrated
            db.session.rollback()
            current = set()
        head = _migration_heads(current_app.extensions["migrate"].directory)
        checks["migrations"] = "ok" if current == head else (
            f"database at {', '.join(sorted(current)) or 'nothing'}, code expects {', '.join(sorted(head))}")
    if current_app.config["QUEUE_URL"] != "immediate":
        checks["queue"] = queue_ready()
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


def _database_answers() -> bool:
    try:
        db.session.execute(select(1))
        return True
    except Exception:  # any failure to answer is "unavailable"; the probe itself never fails
        db.session.rollback()
        return False


@functools.cache
def _migration_heads(directory) -> frozenset:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(directory).get_heads())
