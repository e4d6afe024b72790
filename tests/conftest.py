"""Test harness: a real database (SQLite file or a throwaway PostgreSQL 15 cluster), a real SMTP
server (aiosmtpd), the app, a client that carries CSRF tokens, and factories — in the modules of
``tests/fixtures`` (see there).

``SCM_TEST_DB=postgresql`` runs the suite on PostgreSQL: a cluster is created with the machine's
``initdb``/``pg_ctl`` in a temp folder and removed afterwards (or ``SCM_TEST_DATABASE_URL`` points
at an existing empty database). Where PostgreSQL or Chromium is missing, the tests that need them
are skipped with a loud reason, except under ``CI=true`` where that is a failure.
"""

import os

import pytest

DB_KIND = os.environ.get("SCM_TEST_DB", "sqlite")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.mail",
    "tests.fixtures.redis",
    "tests.fixtures.factories",
    "tests.fixtures.client",
    "tests.fixtures.workers",
    "tests.fixtures.pdf",
]


def missing(what: str):
    """Skip loudly, or fail under CI where nothing may be skipped."""
    message = f"!!! {what} — this test cannot run here"
    if IN_CI:
        pytest.fail(message + " (CI=true: nothing may be skipped)")
    pytest.skip(message)


def pytest_report_header(config):
    return f"SCM Meterai tests on: {DB_KIND}"
