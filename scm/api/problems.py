"""JSON problems (RFC 9457, application/problem+json) and request parsing for the API."""

import json

from flask import current_app, g, has_request_context, jsonify, request

from scm.stamping.parsing import SERIAL, parse_timestamp

# The one place where a service's refusal code becomes an HTTP status. Services know codes only.
STATUS_BY_CODE = {
    "not_found": 404,
    "forbidden": 403,
    "wapu_not_active": 403,
    "serial_conflict": 409,
    "insufficient_quota": 409,
    "reservation_released": 409,
    "already_stamped": 409,
    "stamp_failed": 409,
}


def status_for(code: str) -> int:
    """The HTTP status of a refusal code; any other refusal is a 422 (the request cannot be done)."""
    return STATUS_BY_CODE.get(code, 422)


class ApiProblem(Exception):
    def __init__(self, status, code, title, detail=None, errors=None, **extra):
        super().__init__(title)
        self.status, self.code, self.title, self.detail, self.errors, self.extra = (
            status, code, title, detail, errors, extra)


def problem_response(status, code, title, detail=None, errors=None, **extra):
    body = {"type": "about:blank", "status": status, "title": title, "code": code}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    if has_request_context():
        g.api_code = code  # counted by machine code in the metrics
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="scm-meterai"'
    return response


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>`` (None without one); not yet checked."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def json_body():
    """The request's JSON object; 413 when too large, 400 when not JSON, 422 when not an object.
    Read once per request: a call run once more (``run_once_more_on_conflict``) gets the same object."""
    if "api_body" not in g:
        g.api_body = _read_json_body()
    return g.api_body


def _read_json_body():
    limit = current_app.config["API_MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "payload_too_large", "Request body too large", f"At most {limit} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiProblem(413, "payload_too_large", "Request body too large", f"At most {limit} bytes.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiProblem(400, "malformed_json", "Malformed JSON", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiProblem(422, "validation_error", "Invalid request", errors={"": ["Expected a JSON object."]})
    return body


class Checker:
    """Collects per-field errors, so that a 422 names every bad field at once."""

    def __init__(self, prefix=""):
        self.errors = {}
        self.prefix = prefix

    def add(self, field, message):
        self.errors.setdefault(self.prefix + field, []).append(message)

    def string(self, body, field, required=True, max_len=100):
        value = body.get(field)
        if value is None:
            if required:
                self.add(field, "This field is required.")
            return None
        if not isinstance(value, str):
            self.add(field, "Must be a string.")
            return None
        if required and not value.strip():
            self.add(field, "Must not be empty.")
            return None
        if len(value) > max_len:
            self.add(field, f"At most {max_len} characters.")
            return None
        if "\x00" in value or not _is_utf8(value):
            self.add(field, "Must be text without NUL characters or unpaired surrogates.")
            return None
        return value

    def serial(self, body, field="serial"):
        value = self.string(body, field, max_len=64)
        if value is not None and not SERIAL.fullmatch(value):
            self.add(field, "1-64 characters of A-Z, a-z, 0-9, '-' and '_'.")
            return None
        return value

    def document_type(self, body, field="document_type"):
        value = self.string(body, field, max_len=40)
        types = current_app.config["DOCUMENT_TYPES"]
        if value is not None and value not in types:
            self.add(field, f"Unknown document type; one of: {', '.join(types)}.")
            return None
        return value

    def timestamp(self, body, field, required=True):
        value = self.string(body, field, required=required, max_len=40)
        if value is None:
            return None
        moment = parse_timestamp(value)
        if moment is None:
            self.add(field, "An ISO 8601 date-time with an offset, e.g. 2026-11-23T09:30:00+07:00.")
        return moment

    def raise_if_any(self):
        if self.errors:
            raise ApiProblem(422, "validation_error", "Invalid request", "Some fields are invalid.", self.errors)


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
