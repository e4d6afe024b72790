"""The stamping API, ``/api/v1``: bearer tokens, JSON in and out, problem+json errors."""

import base64
import re
from functools import wraps

from flask import g, jsonify, render_template, request, url_for
from sqlalchemy import select

from scm.api import bp
from scm.api.openapi import openapi_document
from scm.api.problems import ApiProblem, Checker, bearer_token, json_body, problem_response, status_for
from scm.api.services import authenticate_token
from scm.core.database import run_once_more_on_conflict
from scm.core.errors import ServiceError
from scm.extensions import db
from scm.quota.services import account_for
from scm.stamping.models import Stamp, StampState
from scm.stamping.services import (
    StampError,
    StampEvent,
    StampInput,
    commit_stamp,
    ingest_events,
    release_stamp,
    reserve_stamp,
)


@bp.errorhandler(ApiProblem)
def _problem(error):
    return problem_response(error.status, error.code, error.title, error.detail, error.errors, **error.extra)


@bp.errorhandler(ServiceError)
def _refusal(error):
    """A service's refusal (a domain error with a machine code) as problem+json."""
    return problem_response(status_for(error.code), error.code, str(error.message), **getattr(error, "extra", {}))


def _authenticate():
    """Authenticate ``Authorization: Bearer <token>``; session cookies do not count here."""
    token = authenticate_token(bearer_token())
    if token is None:
        raise ApiProblem(401, "invalid_token", "Unauthorized",
                         "Send a valid, unrevoked API token as 'Authorization: Bearer <token>'.")
    g.api_token_id, g.api_wapu_id = token.id, token.wapu_id


def token_required(view):
    """A call that reads: the token is authenticated, then the view runs."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        _authenticate()
        return view(*args, **kwargs)

    return wrapped


def token_and_unit_of_work(view):
    """A call that changes stamps: one unit of work whose first statement authenticates the token
    (no read transaction of its own before it), run once more after a unique-key race
    (``run_once_more_on_conflict``). The view returns its answer inside the transaction; a refusal
    it raises rolls everything back, one it returns is committed with what was done."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        def attempt():
            _authenticate()
            return view(*args, **kwargs)

        return run_once_more_on_conflict(attempt)

    return wrapped


def stamp_json(stamp):
    def ts(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "serial": stamp.serial, "state": stamp.state.value, "document_type": stamp.document_type,
        "document_number": stamp.document_number, "document_date": stamp.document_date,
        "reserved_at": ts(stamp.reserved_at), "expires_at": ts(stamp.expires_at),
        "stamped_at": ts(stamp.stamped_at), "released_at": ts(stamp.released_at),
        "release_reason": stamp.release_reason, "source": stamp.source,
    }


@bp.get("/quota")
@token_required
def quota():
    """The token's WAPU balance."""
    account = account_for(g.api_wapu_id)
    return jsonify({"available": account.available, "reserved": account.reserved,
                    "consumed": account.consumed, "issued": account.issued})


@bp.post("/stamps")
@token_and_unit_of_work
def reserve():
    """Reserve one e-Meterai for a serial (201); an identical retry answers 200 with the same stamp."""
    body = json_body()
    check = Checker()
    data = StampInput(serial=check.serial(body), document_type=check.document_type(body),
                      document_number=check.string(body, "document_number", required=False))
    date = check.timestamp(body, "document_date", required=False)
    data.document_date = date.isoformat() if date else None
    check.raise_if_any()
    stamp, created = reserve_stamp(g.api_wapu_id, g.api_token_id, data=data)
    return jsonify(stamp_json(stamp)), 201 if created else 200


def _serial_or_404(serial):
    """A serial in the URL that could never exist is simply not found."""
    check = Checker()
    if check.serial({"serial": serial}) is None:
        raise ApiProblem(404, "not_found", "No stamp with this serial.")
    return serial


@bp.post("/stamps/<serial>/commit")
@token_and_unit_of_work
def commit(serial):
    """Mark a reservation stamped (quota consumed). Idempotent."""
    _serial_or_404(serial)
    stamp, outcome = commit_stamp(g.api_wapu_id, serial)
    if outcome == "expired":  # released now, and that is kept: the refusal is returned, not raised
        return _refusal(StampError("reservation_released", "The reservation expired and was released; reserve again.",
                                   state=stamp.state.value))
    return jsonify(stamp_json(stamp)), 200


@bp.post("/stamps/<serial>/release")
@token_and_unit_of_work
def release(serial):
    """Give a reservation back (the stamp failed). Idempotent."""
    _serial_or_404(serial)
    body = json_body()
    check = Checker()
    reason = check.string(body, "reason", required=False, max_len=200) or "released by client"
    check.raise_if_any()
    stamp, _ = release_stamp(g.api_wapu_id, serial, reason=reason)
    return jsonify(stamp_json(stamp)), 200


@bp.post("/stamps/batch")
@token_required  # a thousand events are checked before the write transaction begins
def batch():
    """Report stamps after the fact: ``stamped`` consumes one e-Meterai, ``failed`` nothing."""
    from flask import current_app

    body = json_body()
    events = body.get("events")
    limit = current_app.config["API_MAX_BATCH"]
    if not isinstance(events, list) or not events:
        raise ApiProblem(422, "validation_error", "Invalid request", errors={"events": ["A non-empty list."]})
    if len(events) > limit:
        raise ApiProblem(422, "batch_too_large", "Too many events", f"At most {limit} events per batch.",
                         errors={"events": [f"At most {limit} events."]})
    parsed = []
    check = Checker()
    for index, raw in enumerate(events):
        check.prefix = f"events[{index}]."
        if not isinstance(raw, dict):
            check.add("", "Must be an object.")
            continue
        serial = check.serial(raw)
        status = raw.get("status")
        if status not in ("stamped", "failed"):
            check.add("status", "One of: stamped, failed.")
        stamped_at = check.timestamp(raw, "stamped_at")
        document_type = check.document_type(raw)
        number = check.string(raw, "document_number", required=False)
        date = check.timestamp(raw, "document_date", required=False)
        parsed.append(StampEvent(serial, status, stamped_at, document_type, number, date.isoformat() if date else None))
    check.raise_if_any()
    results = run_once_more_on_conflict(lambda: ingest_events(g.api_wapu_id, g.api_token_id, events=parsed))
    counts = {}
    for result in results:
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    return jsonify({"results": results, "counts": counts}), 200


@bp.get("/stamps")
@token_required
def history():
    """The WAPU's stamps, newest first, keyset-paginated with an opaque ``cursor``."""
    check = Checker()
    state = request.args.get("state")
    if state and state not in {s.value for s in StampState}:
        check.add("state", "One of: reserved, stamped, failed, released.")
    start = check.timestamp(request.args, "from", required=False)
    end = check.timestamp(request.args, "to", required=False)
    try:
        limit = int(request.args.get("limit", 100))
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        check.add("limit", "A whole number from 1 to 1000.")
        limit = 100
    cursor = _decode_cursor(check, request.args.get("cursor"))
    check.raise_if_any()
    stmt = select(Stamp).where(Stamp.wapu_id == g.api_wapu_id)
    if state:
        stmt = stmt.where(Stamp.state == state)
    if start:
        stmt = stmt.where(Stamp.occurred_at >= start)
    if end:
        stmt = stmt.where(Stamp.occurred_at < end)
    if cursor:
        stmt = stmt.where(Stamp.id < cursor)
    rows = db.session.execute(stmt.order_by(Stamp.id.desc()).limit(limit + 1)).scalars().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].id) if more else None
    return jsonify({"items": [stamp_json(s) for s in rows], "next_cursor": next_cursor})


CURSOR = re.compile(r"s[1-9][0-9]{0,18}")  # "s" and a stamp id, as _encode_cursor writes it


def _encode_cursor(stamp_id):
    return base64.urlsafe_b64encode(f"s{stamp_id}".encode()).decode().rstrip("=")


def _decode_cursor(check, value):
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
        if not CURSOR.fullmatch(text):
            raise ValueError
        stamp_id = int(text[1:])
        if not 0 < stamp_id < 2**63:  # the id column's range (BIGINT; SQLite's 64-bit rowid)
            raise ValueError
        return stamp_id
    except (ValueError, UnicodeDecodeError):
        check.add("cursor", "Not a cursor from a previous page.")
        return None


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document())


@bp.get("/docs")
def docs():
    """Human-readable API documentation (no external assets)."""
    return render_template("api/docs.html", spec=openapi_document(), spec_url=url_for("api.openapi"))


