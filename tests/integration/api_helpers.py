"""Shared helpers for the stamping API tests: tokens, quota, balances, problem checks, HTTP clients."""

import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from sqlalchemy import func, select
from werkzeug.serving import make_server

from scm.api.services import create_token
from scm.core.database import unit_of_work
from scm.core.formatting import WIB
from scm.extensions import db
from scm.quota.models import EntryKind, QuotaAccount, QuotaEntry
from scm.quota.services import issue_quota
from scm.stamping.models import Stamp
from tests.fixtures import free_port

PROBLEM = "application/problem+json"
# Yesterday 09:30 WIB: in the stamp time window (not in the future, within the look-back) whatever today is.
STAMPED_AT = f"{datetime.now(WIB).date() - timedelta(days=1)}T09:30:00+07:00"
BALANCE_KEYS = ("available", "reserved", "consumed", "issued")


# --------------------------------------------------------------------------- database set-up and reads


def new_token(app, wapu_id, name="test"):
    with app.app_context(), unit_of_work():
        _, plaintext = create_token(wapu_id, None, name=name)
    return plaintext


def give_quota(app, wapu_id, quantity, key="po-test"):
    with app.app_context(), unit_of_work():
        issue_quota(wapu_id, quantity=quantity, key=key, reference=key)


def balances(app, wapu_id):
    """The account's four balances as the database holds them (zeros when there is no account)."""
    with app.app_context():
        account = db.session.execute(
            select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one_or_none()
        return {k: getattr(account, k) if account else 0 for k in BALANCE_KEYS}


def stamp_states(app, wapu_id=None):
    """``{state: count}`` of the stamps (of one WAPU)."""
    with app.app_context():
        stmt = select(Stamp.state, func.count()).group_by(Stamp.state)
        if wapu_id is not None:
            stmt = stmt.where(Stamp.wapu_id == wapu_id)
        return {state.value: n for state, n in db.session.execute(stmt)}


def stamp_row(app, serial):
    with app.app_context():
        stamp = db.session.execute(select(Stamp).where(Stamp.serial == serial)).scalar_one_or_none()
        if stamp is not None:
            db.session.expunge(stamp)
        return stamp


def entry_counts(app, wapu_id):
    """``{kind: number of ledger entries}`` of a WAPU."""
    with app.app_context():
        rows = db.session.execute(select(QuotaEntry.kind, func.count())
                                  .where(QuotaEntry.wapu_id == wapu_id).group_by(QuotaEntry.kind))
        return {EntryKind(kind).value: n for kind, n in rows}


def assert_ledger_verifies(app):
    """``flask quota verify`` exits 0."""
    result = app.test_cli_runner().invoke(args=["quota", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


# --------------------------------------------------------------------------- request bodies


def reserve_body(serial, document_type="surat_perjanjian", **extra):
    return {"serial": serial, "document_type": document_type, **extra}


def event(serial, status="stamped", stamped_at=STAMPED_AT, document_type="surat_perjanjian", **extra):
    return {"serial": serial, "status": status, "stamped_at": stamped_at, "document_type": document_type, **extra}


# --------------------------------------------------------------------------- Flask test client


def check_problem(response, status, code=None):
    """An error response: the status, problem+json, and the keys status, title, code. Returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == PROBLEM, response.mimetype
    body = response.get_json(force=True)
    assert {"status", "title", "code"} <= body.keys(), body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def check_ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    return response.get_json()


class Api:
    """The API through Flask's test client, with a bearer token."""

    def __init__(self, client, token):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path, **query):
        url = "/api/v1" + path + (f"?{urlencode(query)}" if query else "")
        return self.client.get(url, headers=self.headers)

    def post(self, path, body=None, raw=None, content_type="application/json"):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        return self.client.post("/api/v1" + path, data=data, headers=self.headers, content_type=content_type)

    def reserve(self, serial, **fields):
        return self.post("/stamps", reserve_body(serial, **fields))

    def commit(self, serial):
        return self.post(f"/stamps/{serial}/commit")

    def release(self, serial, reason=None):
        return self.post(f"/stamps/{serial}/release", {"reason": reason} if reason else None)

    def batch(self, events):
        return self.post("/stamps/batch", {"events": events})


# --------------------------------------------------------------------------- live servers and HTTP


@contextmanager
def serve_in_thread(app):
    """Serve ``app`` on 127.0.0.1 with werkzeug's threaded server; yields the base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def wait_for_port(port, timeout=20.0, alive=lambda: True):
    """Poll until something accepts connections on ``port`` (bounded); False on timeout or death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class HttpApi:
    """A client of a live server for one thread (http.client), authenticated with a token. The
    connection is reused while the server keeps it open (werkzeug's closes it after each answer)."""

    def __init__(self, base_url, token, timeout=60):
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = None

    def call(self, method, path, body=None):
        """``(status, json body or None)``; connection errors propagate (the connection is dropped)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        data = None if body is None else json.dumps(body).encode()
        try:
            self.conn.request(method, "/api/v1" + path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, (json.loads(raw) if raw else None)

    def reserve(self, serial):
        return self.call("POST", "/stamps", reserve_body(serial))

    def commit(self, serial):
        return self.call("POST", f"/stamps/{serial}/commit")

    def release(self, serial):
        return self.call("POST", f"/stamps/{serial}/release", {"reason": "stamping failed"})

    def batch(self, events):
        return self.call("POST", "/stamps/batch", {"events": events})

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
