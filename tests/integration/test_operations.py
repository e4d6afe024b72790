"""What an operator relies on: probes, the proxy, request ids in the logs, metrics, API rate limits."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text, update

from scm import create_app
from scm.api.limits import SweptMemoryStorage
from scm.core.database import unit_of_work
from scm.core.models import AuditLog, OutboxEmail
from scm.core.services import deliver_outbox
from scm.core.tasks import acquire_lease, release_lease, run_job
from scm.extensions import db
from scm.quota.models import QuotaAccount
from tests.conftest import DB_KIND
from tests.fixtures import free_port
from tests.fixtures.client import Client
from tests.fixtures.factories import PASSWORD
from tests.integration.api_helpers import Api, check_ok, check_problem, give_quota, new_token, wait_for_port

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
ROOT = Path(__file__).resolve().parents[2]


def _unreachable_database(tmp_path):
    """A database URL of the suite's kind that nothing answers (a real outage, not a mock)."""
    if DB_KIND == "postgresql":
        return "postgresql+psycopg://scm@127.0.0.1:9/scm?connect_timeout=2"
    return f"sqlite:///{tmp_path}/no-such-folder/scm.sqlite3"


def _app_like(app, **overrides):
    """Another app instance (another node) on the same database, with ``overrides``."""
    settings = {key: app.config[key] for key in ("SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "UPLOAD_FOLDER",
                                                 "MAIL_SERVER", "MAIL_PORT")}
    return create_app("testing", **{**settings, **overrides})


# --------------------------------------------------------------------------- health and readiness


def test_health_and_readiness_answer_on_a_migrated_database(app, client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def test_a_logged_in_cookie_gets_503_not_500_during_a_database_outage(app, client, factory, tmp_path):
    assert client.login(factory.user("DIST_ADMIN")).status_code == 302
    cookie = client.raw.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    down = _app_like(app, SQLALCHEMY_DATABASE_URI=_unreachable_database(tmp_path), PROPAGATE_EXCEPTIONS=False)
    probe = down.test_client()
    probe.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value)
    for path in ("/healthz", "/readyz"):
        answer = probe.get(path)
        assert answer.status_code == 503, (path, answer.status_code)
        assert answer.is_json
    assert probe.get("/healthz").get_json() == {"status": "unavailable"}
    assert probe.get("/readyz").get_json()["checks"] == {"database": "unavailable"}


def test_readiness_names_a_database_behind_the_code(app, client):
    with app.app_context():
        head = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        with unit_of_work():
            db.session.execute(text("UPDATE alembic_version SET version_num = '0003_billing'"))
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.get_json()["checks"] == {
            "database": "ok", "migrations": f"database at 0003_billing, code expects {head}"}
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        with app.app_context(), unit_of_work():
            db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})


# --------------------------------------------------------------------------- behind a proxy


def _login_audit_ip(app, client_app, factory, headers):
    client = Client(client_app.test_client())
    answer = client.post("/login", {"email": factory.user("DIST_ADMIN"), "password": PASSWORD},
                         headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert answer.status_code == 302
    with app.app_context():
        return db.session.execute(select(AuditLog.ip).where(AuditLog.action == "auth.login")
                                  .order_by(AuditLog.id.desc()).limit(1)).scalar_one()


def test_behind_a_trusted_proxy_the_audit_log_records_the_client_not_the_proxy(app, factory):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                 "Referer": "https://localhost/login"}  # over HTTPS the CSRF check also wants the referrer
    behind_proxy = _app_like(app, TRUSTED_PROXIES=1)
    assert _login_audit_ip(app, behind_proxy, factory, forwarded) == "203.0.113.7"
    answer = behind_proxy.test_client().get("/login", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert answer.status_code == 200


def test_without_a_trusted_proxy_forwarded_headers_are_not_believed(app, factory):
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    assert _login_audit_ip(app, app, factory, forwarded) == "10.0.0.2"


# --------------------------------------------------------------------------- request ids and logs


@pytest.fixture
def json_logs(app, capsys):
    """An app instance that logs JSON to stdout, and a reader of the lines logged so far."""
    logging_app = _app_like(app, LOG_FORMAT="json")

    def lines():
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    return logging_app, lines


def test_every_answer_has_a_request_id_and_its_log_lines_carry_it(json_logs):
    logging_app, lines = json_logs
    client = logging_app.test_client()
    first, second = client.get("/login"), client.get("/no-such-page")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)
    access = [line for line in lines() if line["logger"] == "scm.access"]
    assert [(line["request_id"], line["path"], line["status"]) for line in access] == [
        (ids[0], "/login", 200), (ids[1], "/no-such-page", 404)]
    assert all(line["level"] == "INFO" and line["duration_ms"] >= 0 and "time" in line for line in access)


def test_a_request_id_is_taken_from_a_trusted_proxy_only(app):
    sent = {"X-Request-ID": "edge-4f1c9a"}
    assert _app_like(app, TRUSTED_PROXIES=1).test_client().get("/healthz", headers=sent).headers[
        "X-Request-ID"] == "edge-4f1c9a"
    assert app.test_client().get("/healthz", headers=sent).headers["X-Request-ID"] != "edge-4f1c9a"
    forged = {"X-Request-ID": "<script>" + "x" * 200}  # not passed on verbatim, even from a proxy
    assert _app_like(app, TRUSTED_PROXIES=1).test_client().get("/healthz", headers=forged).headers[
        "X-Request-ID"] != forged["X-Request-ID"]


def test_a_job_run_logs_with_its_run_id(json_logs):
    logging_app, lines = json_logs
    with logging_app.app_context():
        run_job("send-outbox")
        run_id = db.session.execute(text("SELECT max(id) FROM job_runs")).scalar_one()
    job_lines = [line for line in lines() if line["logger"] == "scm.scheduler"]
    assert job_lines and job_lines[-1]["request_id"] == f"job:send-outbox:{run_id}"


# --------------------------------------------------------------------------- metrics


def scrape(client, **kwargs):
    answer = client.get("/metrics", environ_base=LOCAL, **kwargs)
    assert answer.status_code == 200, answer.status_code
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_closed_to_the_public(app):
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 404
    assert client.get("/metrics", environ_base=LOCAL).status_code == 200
    with_token = _app_like(app, METRICS_ALLOW="", METRICS_TOKEN="scrape-secret-123").test_client()
    assert with_token.get("/metrics", environ_base=LOCAL).status_code == 404
    assert with_token.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert with_token.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"},
                          environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200
    production = create_app("production", SECRET_KEY="x" * 40,
                            SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"])
    assert production.test_client().get("/metrics", environ_base=LOCAL).status_code == 404


def test_scraped_values_equal_what_happened(app, factory):
    wapu = factory.wapu(731)
    api = Api(app.test_client(), new_token(app, wapu["id"]))
    metrics = app.test_client()
    before = scrape(metrics)
    assert ("scm_quota_books_balanced", ()) not in before  # never checked: no value, not a false alarm
    give_quota(app, wapu["id"], 3)
    check_ok(api.reserve("MET-1"), 201)
    check_ok(api.commit("MET-1"))
    check_ok(api.reserve("MET-2"), 201)
    check_ok(api.release("MET-2"))
    check_ok(api.reserve("MET-3"), 201)  # left open
    check_ok(api.reserve("MET-4"), 201)  # left open
    check_problem(api.reserve("MET-5"), 409, "insufficient_quota")
    check_problem(api.commit("NO-SUCH"), 404, "not_found")
    with app.app_context(), unit_of_work():  # a mail that can never be sent, and one the SMTP server is down for
        db.session.add(OutboxEmail(to_address="a@example.com\r\nBcc: x@evil.example", subject="x", body="b"))
        db.session.add(OutboxEmail(to_address="b@example.com", subject="y", body="b"))
    smtp_down = _app_like(app, MAIL_PORT=free_port())
    with smtp_down.app_context():
        assert deliver_outbox() == (0, 2)  # one failed for good, one kept for a retry
    with app.app_context():
        run_job("expire-reservations")
        assert acquire_lease("draft-billing", "node-a:4242:test")
    assert app.test_cli_runner().invoke(args=["quota", "verify"]).exit_code == 0
    after = scrape(metrics)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("scm_api_responses_total", code="ok") == 6
    assert grew("scm_api_responses_total", code="insufficient_quota") == 1
    assert grew("scm_api_responses_total", code="not_found") == 1
    assert grew("scm_http_requests_total", method="POST", endpoint="api.reserve", status="201") == 4
    assert grew("scm_http_request_duration_seconds_count", method="POST", endpoint="api.reserve") == 5
    assert value(after, "scm_open_reservations") == 2
    assert value(after, "scm_oldest_reservation_age_seconds") >= 0
    assert value(after, "scm_outbox_emails", state="failed") == 1
    assert value(after, "scm_outbox_emails", state="pending") == 1
    assert value(after, "scm_job_last_outcome", job="expire-reservations", outcome="success") == 1
    assert value(after, "scm_job_last_outcome", job="expire-reservations", outcome="failed") == 0
    assert value(after, "scm_job_lease_held", job="draft-billing", holder="node-a:4242:test") == 1
    assert value(after, "scm_quota_books_balanced") == 1
    assert value(after, "scm_database_up") == 1

    with app.app_context():
        release_lease("draft-billing", "node-a:4242:test")
        with unit_of_work():  # the books stop balancing: the next check says so
            db.session.execute(update(QuotaAccount).where(QuotaAccount.wapu_id == wapu["id"])
                               .values(available=QuotaAccount.available + 1))
    assert app.test_cli_runner().invoke(args=["quota", "verify"]).exit_code == 1
    later = scrape(metrics)
    assert value(later, "scm_quota_books_balanced") == 0
    assert ("scm_job_lease_held", (("holder", "node-a:4242:test"), ("job", "draft-billing"))) not in later
    with app.app_context(), unit_of_work():  # put the books back for the fixtures' own checks
        db.session.execute(update(QuotaAccount).where(QuotaAccount.wapu_id == wapu["id"])
                           .values(available=QuotaAccount.available - 1))


def test_metrics_still_answer_when_the_database_is_down(app, tmp_path):
    down = _app_like(app, SQLALCHEMY_DATABASE_URI=_unreachable_database(tmp_path))
    samples = scrape(down.test_client())
    assert value(samples, "scm_database_up") == 0


# --------------------------------------------------------------------------- API rate limits


def _rate_limited(token_app, token):
    return Api(token_app.test_client(), token)


def test_a_token_over_its_rate_gets_429_problem_json_with_retry_after(app, factory):
    wapu, neighbour = factory.wapu(741), factory.wapu(742)
    limited = _app_like(app, API_RATE_LIMIT="3 per minute")
    api, other = _rate_limited(limited, new_token(app, wapu["id"])), _rate_limited(limited, new_token(app, neighbour["id"]))
    for _ in range(3):
        answer = api.get("/quota")
        check_ok(answer)
        assert answer.headers["X-RateLimit-Limit"] == "3"
    refused = api.get("/quota")
    body = check_problem(refused, 429, "rate_limited")
    assert "3 per 1 minute" in body["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    check_ok(other.get("/quota"))  # the limit is per token: another WAPU's system is not slowed


def test_the_rate_limit_holds_across_two_nodes_sharing_redis(app, factory, redis_url):
    wapu = factory.wapu(743)
    token = new_token(app, wapu["id"])
    node_a = _app_like(app, API_RATE_LIMIT="4 per minute", RATELIMIT_STORAGE_URI=redis_url)
    node_b = _app_like(app, API_RATE_LIMIT="4 per minute", RATELIMIT_STORAGE_URI=redis_url)
    a, b = _rate_limited(node_a, token), _rate_limited(node_b, token)
    for api in (a, b, a, b):
        check_ok(api.get("/quota"))
    check_problem(b.get("/quota"), 429, "rate_limited")
    check_problem(a.get("/quota"), 429, "rate_limited")


def test_without_shared_storage_each_node_counts_alone(app, factory):
    """The control of the test above: in memory, two nodes let through twice the rate."""
    wapu = factory.wapu(744)
    token = new_token(app, wapu["id"])
    nodes = [_rate_limited(_app_like(app, API_RATE_LIMIT="2 per minute"), token) for _ in range(2)]
    for api in nodes:
        check_ok(api.get("/quota"))
        check_ok(api.get("/quota"))
    for api in nodes:
        check_problem(api.get("/quota"), 429, "rate_limited")


def test_in_memory_counting_starts_no_thread_per_request(app, factory):
    """limits' own memory storage started a timer thread on almost every request; ours sweeps in the request."""
    token = new_token(app, factory.wapu(745)["id"])
    limited = _app_like(app, API_RATE_LIMIT="100 per minute")
    (limiter,) = limited.extensions["limiter"]
    assert isinstance(limiter.storage, SweptMemoryStorage)
    api = _rate_limited(limited, token)
    check_ok(api.get("/quota"))
    before = set(threading.enumerate())
    for _ in range(20):
        check_ok(api.get("/quota"))
    assert [t for t in threading.enumerate() if t not in before and isinstance(t, threading.Timer)] == []


def test_the_memory_storage_forgets_windows_nobody_reads_again():
    storage = SweptMemoryStorage("scm-memory://")
    storage.timer.join()  # limits' first sweep, started by its constructor, is over
    storage.incr("token:old", expiry=0.001)
    time.sleep(0.01)
    storage.incr("token:recent", expiry=60)
    assert "token:old" in storage.storage  # not yet: a sweep runs at most once a minute
    storage.swept_at -= storage.SWEEP_SECONDS
    storage.incr("token:recent", expiry=60)
    assert "token:old" not in storage.storage and storage.get("token:recent") == 2


def test_the_openapi_document_describes_the_rate_limit(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    reserve = document["paths"]["/stamps"]["post"]["responses"]
    assert "429" in reserve and "Retry-After" in reserve["429"]["headers"]


def test_under_gunicorn_a_scrape_adds_up_every_worker(app, tmp_path):
    """Multiprocess mode: whichever worker answers the scrape, it counts every worker's requests, the
    requests of workers that have ended too (each worker here is replaced after 4 requests)."""
    port = free_port()
    env = {**os.environ, "SCM_ENV": "testing", "SCM_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "SECRET_KEY": "test-secret", "SCM_INSTANCE_PATH": str(tmp_path / "instance"),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--max-requests", "4", "--graceful-timeout", "3",
                                   "--bind", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port(port, timeout=30, alive=lambda: server.poll() is None), log.read_text()
        for _ in range(12):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200
            connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        assert answer.status == 200
        samples = {}
        for family in text_string_to_metric_families(answer.read().decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        assert value(samples, "scm_http_requests_total", method="GET", endpoint="core.healthz", status="200") == 12
        assert len(list((tmp_path / "metrics").glob("counter_*.db"))) >= 3  # by at least three workers
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_an_api_answer_sets_no_session_cookie(app, factory):
    wapu = factory.wapu(745)
    answer = Api(app.test_client(), new_token(app, wapu["id"])).get("/quota")
    check_ok(answer)
    assert "Set-Cookie" not in answer.headers  # the API has no session: nothing to sign and send back


def test_pages_name_an_icon_that_exists(app):
    """No browser asks for /favicon.ico and gets a 404 in its console."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    icon = page.split('<link rel="icon" type="image/svg+xml" href="')[1].split('"')[0]
    answer = client.get(icon)
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml" and b"<svg" in answer.data
