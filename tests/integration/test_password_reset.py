"""Forgotten password: a single-use, time-limited link by email; the same answer for unknown and
known emails; throttled; using it ends the user's other sessions; audited."""

import re
from datetime import timedelta

from sqlalchemy import select, update

from scm.auth.models import PasswordResetToken, User
from scm.core.database import unit_of_work, utcnow
from scm.core.models import AuditLog
from scm.extensions import db

NEW_PASSWORD = "Sandi-Baru-Lupa-2026"
LINK = re.compile(r"http://testserver(/password/reset/[A-Za-z0-9_-]+)")


def _ask(client, email):
    response = client.post("/password/forgot", {"email": email})
    response.close()  # the link is mailed once the answer has gone (as a server does after sending it)
    return response


def _link(mailbox, email):
    messages = mailbox.to(email)
    assert messages, f"no mail to {email}"
    return LINK.search(mailbox.body(messages[-1])).group(1)


def _normalised(response, email):
    text = response.get_data(as_text=True).replace(email, "EMAIL")
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", text)


def test_the_login_page_links_to_the_forgotten_password_page(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/password/forgot"' in page
    assert client.get("/password/forgot").status_code == 200


def test_known_and_unknown_emails_get_the_same_answer(app, factory, client, mailbox):
    known = factory.user("WAPU_STAFF")
    unknown = "nobody.here@test.example.com"
    inactive = factory.user("WAPU_FIN")
    with app.app_context(), unit_of_work():
        db.session.execute(select(User).where(User.email == inactive)).scalar_one().active = False
    answers = [_ask(client, email) for email in (known, unknown, inactive)]
    assert {a.status_code for a in answers} == {200}
    assert _normalised(answers[0], known) == _normalised(answers[1], unknown) == _normalised(answers[2], inactive)
    assert mailbox.to(known) and not mailbox.to(unknown) and not mailbox.to(inactive)
    with app.app_context():
        stored = db.session.execute(select(PasswordResetToken)).scalar_one()
        token = _link(mailbox, known).rsplit("/", 1)[1]
        assert token not in stored.token_hash and len(stored.token_hash) == 64  # only its hash is kept
        assert db.session.execute(select(AuditLog).where(AuditLog.action == "auth.password_reset_requested")).scalar_one()


def test_the_link_sets_a_new_password_once_and_ends_every_other_session(app, factory, make_client, mailbox):
    email = factory.user("WAPU_STAFF")
    elsewhere = make_client()
    assert elsewhere.login(email).status_code == 302
    assert elsewhere.get("/purchase-requests").status_code == 200

    anonymous = make_client()
    _ask(anonymous, email)
    link = _link(mailbox, email)
    page = anonymous.get(link)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    weak = anonymous.post(link, {"new_password": "123", "confirm_password": "123"})
    assert 'data-field-error="new_password"' in weak.get_data(as_text=True)
    response = anonymous.post(link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")

    assert elsewhere.get("/purchase-requests").status_code == 302, "the other session ended"
    assert make_client().login(email).status_code == 200, "the old password no longer works"
    fresh = make_client()
    response = fresh.login(email, NEW_PASSWORD)
    assert response.status_code == 302 and not response.headers["Location"].endswith("/password")

    # Single use: the link is spent.
    assert anonymous.get(link).status_code == 404
    anonymous.token(refresh=True)  # the session was renewed after the reset
    again = anonymous.post(link, {"new_password": "Lain-Lagi-Sandi-2026", "confirm_password": "Lain-Lagi-Sandi-2026"})
    assert again.status_code == 404
    assert fresh.get("/purchase-requests").status_code == 200
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "auth.password_reset")).scalar_one()
        assert entry.actor_label == email


def test_the_link_is_mailed_after_the_answer_so_that_both_answers_take_as_long(app, factory, client, mailbox):
    email = factory.user("WAPU_STAFF")
    response = client.post("/password/forgot", {"email": email})
    assert response.status_code == 200 and not mailbox.to(email)
    response.close()
    assert mailbox.to(email)


def test_a_new_password_spends_every_other_link_of_the_user(app, factory, client, mailbox):
    email = factory.user("WAPU_FIN")
    _ask(client, email)
    first = _link(mailbox, email)
    _ask(client, email)
    second = _link(mailbox, email)
    assert first != second
    assert client.post(second, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}).status_code == 302
    assert client.get(first).status_code == 404


def test_links_expire(app, factory, client, mailbox):
    email = factory.user("WAPU_SPV")
    _ask(client, email)
    link = _link(mailbox, email)
    assert "60" in mailbox.body(mailbox.to(email)[-1]), "the mail says how long it works"
    with app.app_context(), unit_of_work():
        db.session.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = client.get(link)
    assert page.status_code == 404 and 'data-testid="reset-link-invalid"' in page.get_data(as_text=True)
    assert client.post(link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}).status_code == 404
    assert client.get("/password/reset/not-a-token").status_code == 404


def test_issuing_links_is_throttled_per_email(app, factory, client, mailbox):
    app.config["PASSWORD_RESET_MAX_LINKS"] = 2
    email = factory.user("DIST_FIN")
    answers = [_normalised(_ask(client, email), email) for _ in range(4)]
    assert len(set(answers)) == 1, "throttled or not, the page answers the same"
    assert len(mailbox.to(email)) == 2
    with app.app_context():
        throttled = db.session.execute(
            select(AuditLog).where(AuditLog.action == "auth.password_reset_throttled")).scalars().all()
        assert len(throttled) == 2
        # The window passes: links are issued again.
        from scm.auth.models import LoginThrottle

        with unit_of_work():
            db.session.execute(update(LoginThrottle).values(window_started_at=utcnow() - timedelta(hours=2)))
    _ask(client, email)
    assert len(mailbox.to(email)) == 3


def test_issuing_links_is_throttled_per_client_address(app, factory, client, mailbox):
    app.config["PASSWORD_RESET_MAX_LINKS"] = 1  # ten links per client address
    emails = [factory.user("WAPU_STAFF") for _ in range(11)]
    for email in emails:
        _ask(client, email)
    assert sum(1 for email in emails if mailbox.to(email)) == 10
