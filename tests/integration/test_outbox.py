"""The email outbox: a mail server that is down never fails the action nor loses the message."""

from datetime import timedelta

from sqlalchemy import select, update

from scm.core.database import unit_of_work, utcnow
from scm.core.models import OutboxEmail, OutboxState
from scm.core.services import deliver_outbox, queue_email
from scm.extensions import db
from tests.fixtures import free_port
from tests.fixtures.factories import registration_form


def test_action_succeeds_and_mail_waits_when_smtp_is_down(app, client, mailbox):
    import io

    from tests.fixtures.factories import pdf_bytes

    app.config["MAIL_PORT"] = free_port()  # nothing listens there
    data = registration_form(401) | {"contract_file": (io.BytesIO(pdf_bytes()), "k.pdf")}
    assert client.post("/register", data, content_type="multipart/form-data").status_code == 302
    with app.app_context():
        waiting = db.session.execute(select(OutboxEmail)).scalars().all()
        assert len(waiting) == 3 and all(m.state == OutboxState.PENDING for m in waiting)
        assert all(m.attempts == 1 and m.last_error for m in waiting)
        # Later, with the server back, the retry delivers every message once.
        app.config["MAIL_PORT"] = _real_port(app, mailbox)
        db.session.execute(update(OutboxEmail).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert deliver_outbox() == (3, 0)
        assert deliver_outbox() == (0, 0)
    assert len(mailbox.messages) == 3


def _real_port(app, mailbox):
    return app.config["_SMTP_PORT"]


def test_concurrent_senders_never_send_the_same_message_twice(app, mailbox):
    import threading

    app.config["MAIL_SEND_ON_COMMIT"] = False
    with app.app_context(), unit_of_work():
        for i in range(20):
            queue_email(f"user{i}@example.com", "registration_rejected",
                        registration=type("R", (), {"reference": "REG-X", "name": "PT X"})(),
                        contact=type("C", (), {"name": "Budi"})(), reason="alasan")
    results = []

    def sender():
        with app.app_context():
            results.append(deliver_outbox())
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(sent for sent, _ in results) == 20 and all(failed == 0 for _, failed in results)
    assert sorted(m["To"] for m in mailbox.messages) == sorted(f"user{i}@example.com" for i in range(20))
    with app.app_context():
        states = db.session.execute(select(OutboxEmail.state)).scalars().all()
        assert states == [OutboxState.SENT] * 20


def test_cli_sends_pending_mail(app, mailbox):
    app.config["MAIL_SEND_ON_COMMIT"] = False
    with app.app_context(), unit_of_work():
        queue_email("a@example.com", "registration_rejected",
                    registration=type("R", (), {"reference": "REG-Y", "name": "PT Y"})(),
                    contact=type("C", (), {"name": "Ani"})(), reason="alasan")
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code == 0 and "sent 1, failed 0" in result.output
    assert mailbox.to("a@example.com")[0]["Subject"].startswith("Pendaftaran REG-Y") or \
        "REG-Y" in mailbox.to("a@example.com")[0]["Subject"]
