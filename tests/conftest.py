"""Test harness: a real database (SQLite file or a throwaway PostgreSQL 15 cluster), a real SMTP
server (aiosmtpd), the app, a client that carries CSRF tokens, and factories.

``SCM_TEST_DB=postgresql`` runs the suite on PostgreSQL: a cluster is created with the machine's
``initdb``/``pg_ctl`` in a temp folder and removed afterwards (or ``SCM_TEST_DATABASE_URL`` points
at an existing empty database). Where PostgreSQL or Chromium is missing, the tests that need them
are skipped with a loud reason, except under ``CI=true`` where that is a failure.
"""

import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from stdnum import luhn

DB_KIND = os.environ.get("SCM_TEST_DB", "sqlite")
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "Uji-Coba-Sandi-2026"


def missing(what: str):
    """Skip loudly, or fail under CI where nothing may be skipped."""
    message = f"!!! {what} — this test cannot run here"
    if IN_CI:
        pytest.fail(message + " (CI=true: nothing may be skipped)")
    pytest.skip(message)


def pytest_report_header(config):
    return f"SCM Meterai tests on: {DB_KIND}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- PostgreSQL cluster


def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temp folder, fast and non-durable (fsync off)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="scm-pg-"))
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args):
        cmd = list(args)
        if self.as_root:  # PostgreSQL refuses to run as root: run it as the postgres user
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self):
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run(_pg_bin("initdb"), "-D", str(data), "-U", "scm", "--auth=trust", "-E", "UTF8", "--no-locale")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="scm", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE scm_test")
        return f"postgresql+psycopg://scm@127.0.0.1:{self.port}/scm_test"

    def stop(self):
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """The migrated template database for this run."""
    from flask_migrate import upgrade

    from scm import create_app

    if DB_KIND == "postgresql":
        url = os.environ.get("SCM_TEST_DATABASE_URL")
        cluster = None
        if not url:
            if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
                missing("PostgreSQL (initdb/pg_ctl) is not installed; run `make test` as root or apt-get install postgresql")
            cluster = PostgresCluster()
            url = cluster.start()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'template.sqlite3'}"
        cluster = None
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="test-secret",
                     UPLOAD_FOLDER=str(tmp_path_factory.mktemp("uploads-template")))
    with app.app_context():
        upgrade()
        from scm.extensions import db

        db.engine.dispose()
    yield url
    if cluster:
        cluster.stop()


def _fresh_database(template_url, tmp_path):
    """A clean database for one test: a copy of the SQLite template, or truncated PostgreSQL tables."""
    if template_url.startswith("sqlite"):
        target = tmp_path / "scm.sqlite3"
        shutil.copyfile(template_url.removeprefix("sqlite:///"), target)
        return f"sqlite:///{target}"
    import sqlalchemy as sa

    engine = sa.create_engine(template_url)
    with engine.begin() as conn:
        tables = conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalars().all()
        if tables:
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return template_url


# --------------------------------------------------------------------------- SMTP


class Mailbox:
    """Messages received by the test SMTP server."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def clear(self):
        with self.lock:
            self.messages.clear()

    def to(self, address):
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def body(self, message):
        return message.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture(scope="session")
def smtp_server():
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server):
    _, box = smtp_server
    box.clear()
    return box


# --------------------------------------------------------------------------- app and client


@pytest.fixture
def app(database_url, tmp_path, smtp_server):
    from scm import create_app
    from scm.extensions import db

    controller, box = smtp_server
    box.clear()
    url = _fresh_database(database_url, tmp_path)
    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="test-secret",
        UPLOAD_FOLDER=str(tmp_path / "uploads"),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=controller.port,
        _SMTP_PORT=controller.port,
        PUBLIC_BASE_URL="http://testserver",
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Client:
    """A test client that fetches a CSRF token like a browser would and posts with it."""

    TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')

    def __init__(self, flask_client):
        self.raw = flask_client
        self._token = None

    def get(self, *args, **kwargs):
        return self.raw.get(*args, **kwargs)

    def token(self, refresh=False):
        if self._token is None or refresh:
            page = self.raw.get("/", follow_redirects=True).get_data(as_text=True)
            self._token = self.TOKEN.search(page).group(1)
        return self._token

    def post(self, url, data=None, csrf=True, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token())
        return self.raw.post(url, data=data, **kwargs)

    def login(self, email, password=PASSWORD):
        self._token = None
        response = self.post("/login", {"email": email, "password": password})
        self._token = None  # the session was renewed at login
        return response


@pytest.fixture
def client(app):
    return Client(app.test_client())


@pytest.fixture
def make_client(app):
    return lambda: Client(app.test_client())


# --------------------------------------------------------------------------- factories

_sequence = itertools.count(1)


def valid_npwp(seed: int, digits=15) -> str:
    base = f"{70000000 + seed:08d}"
    npwp = base + luhn.calc_check_digit(base) + "000000"
    return npwp if digits == 15 else "0" + npwp


def pdf_bytes(text="Kontrak"):
    from scm.demo import minimal_pdf

    return minimal_pdf(text)


def registration_form(seed=None, **overrides):
    """Form data for the public registration page (all fields valid, unique per call)."""
    seed = seed or next(_sequence)
    data = {
        "name": f"PT Uji Coba {seed}",
        "address": f"Jl. Pengujian No. {seed}\nJakarta",
        "latitude": "-6.2", "longitude": "106.8",
        "npwp": valid_npwp(seed), "nib": f"{9120000000000 + seed}",
        "contract_number": f"KTR/{seed}/2026",
        "contract_start": "2026-01-01", "contract_end": "2027-12-31",
    }
    for i, kind in enumerate(("spv", "fin", "staff"), start=1):
        data[f"{kind}_name"] = f"{kind.upper()} Orang {seed}"
        data[f"{kind}_email"] = f"{kind}.{seed}@wapu{seed}.example.com"
        data[f"{kind}_phone"] = f"0812{seed % 100:02d}{i:02d}{5000 + seed % 1000:04d}"
    data.update(overrides)
    return data


def registration_input(seed=None, **overrides):
    from scm.registration.models import ContactKind
    from scm.registration.services import ContactInput, RegistrationInput

    form = registration_form(seed, **overrides)
    contacts = {kind: ContactInput(form[f"{kind.value.lower()}_name"], form[f"{kind.value.lower()}_email"],
                                   form[f"{kind.value.lower()}_phone"]) for kind in ContactKind}
    return RegistrationInput(
        name=form["name"], address=form["address"], latitude=form["latitude"], longitude=form["longitude"],
        npwp=form["npwp"], nib=form["nib"], contacts=contacts, contract_number=form["contract_number"],
        contract_start=date.fromisoformat(form["contract_start"]),
        contract_end=date.fromisoformat(form["contract_end"]),
    )


class Factory:
    """Creates users and WAPUs through the real services, each in its own unit of work."""

    def __init__(self, app):
        self.app = app

    def user(self, role, wapu_id=None, email=None, password=PASSWORD, must_change=False):
        from scm.auth.models import Role
        from scm.auth.services import create_user
        from scm.core.database import unit_of_work
        from scm.extensions import db
        from scm.registration.models import Wapu

        role = Role(role)
        if role.is_wapu and wapu_id is None:
            wapu_id = self.wapu()["id"]
        email = email or f"{role.value.lower()}.{next(_sequence)}@test.example.com"
        with self.app.app_context(), unit_of_work():
            wapu = db.session.get(Wapu, wapu_id) if wapu_id else None
            user, _ = create_user(None, email=email, name=f"Pengguna {role.value}", role=role, wapu=wapu,
                                  password=password)
            user.must_change_password = must_change
        return email

    def registration(self, seed=None, **overrides):
        from scm.core.database import unit_of_work
        from scm.core.uploads import Upload
        from scm.registration.services import submit_registration

        with self.app.app_context(), unit_of_work():
            reg = submit_registration(registration_input(seed, **overrides), Upload(pdf_bytes(), "kontrak.pdf"))
            return {"id": reg.id, "reference": reg.reference, "npwp": reg.npwp}

    def wapu(self, seed=None):
        """An approved WAPU; returns its id, code and the issued (email, role, password) triples."""
        from scm.auth.models import Role
        from scm.core.database import unit_of_work
        from scm.extensions import db
        from scm.registration.models import Registration
        from scm.registration.services import approve_registration

        reg = self.registration(seed)
        reviewer = self.user(Role.DIST_SPV)
        with self.app.app_context(), unit_of_work():
            from scm.auth.services import find_active_user

            issued = approve_registration(db.session.get(Registration, reg["id"]), find_active_user(reviewer))
            wapu = db.session.get(Registration, reg["id"]).wapu
            return {"id": wapu.id, "code": wapu.code, "registration_id": reg["id"],
                    "users": {c.role.value: (c.email, c.password) for c in issued}}


@pytest.fixture
def factory(app):
    return Factory(app)


@pytest.fixture
def login_as(app, factory):
    """``login_as(role, wapu_id=None)`` -> a logged-in Client for a new user with that role."""

    def _login(role, wapu_id=None):
        email = factory.user(role, wapu_id=wapu_id)
        client = Client(app.test_client())
        response = client.login(email)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        client.email = email
        return client

    return _login


@pytest.fixture
def db_ctx(app):
    """An app context for tests that call services and read the database directly."""
    with app.app_context():
        yield


def insert_stamps(wapu_id: int, moments, *, prefix=None, document_type="surat_perjanjian", source="batch",
                  created_at=None):
    """Stamped e-Meterai of ``wapu_id`` at the given aware datetimes, written straight to the table.

    Billing reads stamps only; the quota ledger is not involved. Call inside an app context.
    Returns the serials.
    """
    from sqlalchemy import insert

    from scm.core.database import unit_of_work, utcnow
    from scm.extensions import db
    from scm.quota.models import Stamp, StampState

    prefix = prefix or f"T{next(_sequence):06d}"
    rows = [dict(serial=f"{prefix}-{i:07d}", wapu_id=wapu_id, state=StampState.STAMPED, document_type=document_type,
                 document_number=f"DOC-{i}", fingerprint="f" * 64, source=source, stamped_at=moment,
                 occurred_at=moment, created_at=created_at or utcnow()) for i, moment in enumerate(moments)]
    if rows:
        with unit_of_work():
            db.session.execute(insert(Stamp), rows)
    return [row["serial"] for row in rows]
