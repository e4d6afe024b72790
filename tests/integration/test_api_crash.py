"""Crash safety: the API server process is killed with SIGKILL while a client streams batches,
reserve+commit and reserve+release pairs; after each restart the client retries everything it sent. Right after each
crash the books balance and every batch is all or nothing; at the end every serial counts exactly
once."""

import http.client
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fixtures import free_port
from tests.integration.api_helpers import (
    HttpApi,
    assert_ledger_verifies,
    balances,
    entry_counts,
    event,
    give_quota,
    new_token,
    stamp_states,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
RUNNER = """
import sys
from werkzeug.serving import run_simple
from scm import create_app

url, port, uploads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="test-secret", UPLOAD_FOLDER=uploads)
run_simple("127.0.0.1", port, app, threaded=True)
"""
BATCHES, BATCH_SIZE, PAIRS_PER_BATCH = 20, 100, 5
STAMPED = BATCHES * (BATCH_SIZE + PAIRS_PER_BATCH)
RELEASED = BATCHES  # one reserve+release pair per batch: a stamping that failed
QUOTA = STAMPED + 400
GROUP = 1 + 2 * PAIRS_PER_BATCH + 2  # calls per batch and its pairs
# Answered calls before each kill, so that a batch is in flight when the server dies; they grow,
# as after each restart the client starts again from the first call.
KILL_AFTER = (2 * GROUP, 8 * GROUP, 15 * GROUP)  # of 20 * 13 = 260


class ServerProcess:
    """The app as a separate process on a fixed port, which can be killed and started again."""

    def __init__(self, app, tmp_path):
        self.url = app.config["SQLALCHEMY_DATABASE_URI"]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp_path
        self.log = tmp_path / "server.log"
        self.proc = None

    def start(self):
        env = {**os.environ, "SCM_INSTANCE_PATH": str(self.tmp / "instance")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUNNER, self.url, str(self.port), str(self.tmp / "uploads")],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not wait_for_port(self.port, timeout=30, alive=lambda: self.proc.poll() is None):
            raise AssertionError(f"the server did not start:\n{self.log_tail()}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines=40):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _plan():
    """Every call the client makes, in order: a batch, some reserve+commit pairs, a reserve+release
    pair, and again."""
    plan = []
    for b in range(BATCHES):
        plan.append(("batch", [event(f"CB{b:02d}-{i:03d}") for i in range(BATCH_SIZE)]))
        for p in range(PAIRS_PER_BATCH):
            plan += [("reserve", f"CS{b:02d}-{p}"), ("commit", f"CS{b:02d}-{p}")]
        plan += [("reserve", f"CR{b:02d}"), ("release", f"CR{b:02d}")]
    return plan


def _send(client, op, arg):
    return getattr(client, op)(arg)


def _stream_until_the_server_dies(base, token, plan, kill_after, progress):
    """Send the plan from the start until a call fails; returns how many calls got an answer."""
    client, done = HttpApi(base, token, timeout=30), 0
    try:
        for op, arg in plan:
            status, _ = _send(client, op, arg)
            assert status in (200, 201), (op, status)
            done += 1
            if done == kill_after:
                progress.set()
    except (OSError, http.client.HTTPException):
        pass  # the server was killed mid-stream
    finally:
        client.close()
        progress.set()
    return done


def _check_retry(op, status, body):
    if op == "batch":
        assert status == 200, (op, status, body)
        assert {r["result"] for r in body["results"]} <= {"applied", "duplicate"}, body["counts"]
    elif op == "reserve":
        assert status in (200, 201) and body["state"] in ("reserved", "stamped", "released"), (op, status, body)
    else:
        assert (status, body["state"]) == (200, "stamped" if op == "commit" else "released"), (op, status, body)


def _crash_mid_stream(server, token, plan, kill_after):
    progress, answered = threading.Event(), []
    client = threading.Thread(target=lambda: answered.append(
        _stream_until_the_server_dies(server.base, token, plan, kill_after, progress)))
    client.start()
    assert progress.wait(timeout=120), "the client made no progress"
    server.kill()
    client.join(timeout=60)
    assert not client.is_alive() and answered, "the client thread failed (its traceback is above)"
    assert kill_after <= answered[0] < len(plan), answered  # killed mid-stream, not before or after


def _check_books_right_after_a_crash(app, wapu_id):
    assert_ledger_verifies(app)
    states = stamp_states(app, wapu_id)
    assert set(states) <= {"reserved", "stamped", "released"}, states
    account = balances(app, wapu_id)
    assert account["reserved"] == states.get("reserved", 0)
    assert account["consumed"] == states.get("stamped", 0)
    consumed = entry_counts(app, wapu_id).get("consume", 0)
    assert consumed % BATCH_SIZE == 0, consumed  # a batch is applied whole or not at all


@pytest.mark.timeout(240)
def test_a_killed_server_loses_and_duplicates_nothing(app, factory, tmp_path):
    wapu = factory.wapu(901)
    token = new_token(app, wapu["id"])
    give_quota(app, wapu["id"], QUOTA)
    plan = _plan()
    server = ServerProcess(app, tmp_path)
    try:
        for kill_after in KILL_AFTER:
            server.start()
            _crash_mid_stream(server, token, plan, kill_after)
            _check_books_right_after_a_crash(app, wapu["id"])
        server.start()
        retry = HttpApi(server.base, token)
        try:
            for op, arg in plan:  # everything, in order, as a client that cannot know what arrived
                _check_retry(op, *_send(retry, op, arg))
        finally:
            retry.close()
    except BaseException:
        print(server.log_tail())
        raise
    finally:
        server.kill()

    assert stamp_states(app, wapu["id"]) == {"stamped": STAMPED, "released": RELEASED}
    assert balances(app, wapu["id"]) == {"available": QUOTA - STAMPED, "reserved": 0, "consumed": STAMPED,
                                         "issued": QUOTA}
    pairs = BATCHES * PAIRS_PER_BATCH
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "consume": BATCHES * BATCH_SIZE,
                                             "reserve": pairs + RELEASED, "commit": pairs, "release": RELEASED}
    assert_ledger_verifies(app)
