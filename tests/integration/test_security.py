"""Security by default: CSRF, throttling, tenancy, role checks, cookies, secret key, sessions."""

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.core.models import AppendOnlyError, AuditLog
from scm.extensions import db
from tests.fixtures.client import Client
from tests.fixtures.factories import PASSWORD


@pytest.mark.parametrize("url", ["/login", "/register", "/language", "/registrations/1/approve", "/logout"])
def test_post_without_csrf_token_is_refused(app, login_as, url):
    client = login_as("DIST_SPV") if "registrations" in url or url == "/logout" else Client(app.test_client())
    response = client.post(url, {"email": "x@example.com", "password": "x", "lang": "en"}, csrf=False)
    assert response.status_code == 400
    assert "sesi" in response.get_data(as_text=True).lower() or "session" in response.get_data(as_text=True)


def test_post_with_a_forged_csrf_token_is_refused(app, factory):
    email = factory.user("DIST_ADMIN")
    response = Client(app.test_client()).post("/login", {"email": email, "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 400


def _fail(client, email, times):
    for _ in range(times):
        response = client.post("/login", {"email": email, "password": "wrong-password-123"})
    return response.get_data(as_text=True)


def _error_text(page):
    return re.search(r'data-field-error="password">([^<]+)<', page).group(1)


def test_throttling_locks_after_repeated_failures(app, factory, client):
    email = factory.user("DIST_FIN")
    first = _error_text(_fail(client, email, 1))
    locked = _error_text(_fail(client, email, 4))
    assert first != locked  # the fifth failure locks
    # While locked, even the right password is refused.
    response = client.post("/login", {"email": email, "password": PASSWORD})
    assert response.status_code == 200
    assert _error_text(response.get_data(as_text=True)).split(".")[0] == locked.split(".")[0]
    with app.app_context():
        actions = db.session.execute(select(AuditLog.action)).scalars().all()
        assert actions.count("auth.login_failed") == 5 and "auth.lockout" in actions and "auth.login_locked" in actions


def test_messages_do_not_reveal_whether_the_email_exists(app, factory, client):
    email = factory.user("DIST_FIN")
    assert _error_text(_fail(client, email, 1)) == _error_text(_fail(client, "nobody@example.com", 1))
    assert _error_text(_fail(client, email, 4)) == _error_text(_fail(client, "nobody@example.com", 4))


def test_lock_expires_and_success_clears_the_count(app, factory, client):
    from scm.auth.models import LoginThrottle

    email = factory.user("DIST_FIN")
    _fail(client, email, 5)
    with app.app_context():
        throttle = db.session.get(LoginThrottle, email)
        throttle.locked_until = datetime(2000, 1, 1, tzinfo=timezone.utc)
        db.session.commit()
    assert client.post("/login", {"email": email, "password": PASSWORD}).status_code == 302
    with app.app_context():
        assert db.session.get(LoginThrottle, email) is None


def test_wapu_user_gets_404_on_another_wapus_data(app, factory, login_as):
    wapu_a = factory.wapu(301)
    wapu_b = factory.wapu(302)
    with app.app_context():
        from scm.registration.models import Contract

        contract_a = db.session.execute(select(Contract.id).where(Contract.wapu_id == wapu_a["id"])).scalar_one()
        contract_b = db.session.execute(select(Contract.id).where(Contract.wapu_id == wapu_b["id"])).scalar_one()
    client_b = login_as("WAPU_SPV", wapu_id=wapu_b["id"])
    for url in (f"/registrations/{wapu_a['registration_id']}", f"/registrations/{wapu_a['registration_id']}/contract",
                f"/contracts/{contract_a}/file", f"/wapus/{wapu_a['id']}"):
        assert client_b.get(url).status_code == 404, url
    # A missing id looks the same as another WAPU's.
    assert client_b.get("/registrations/999999").status_code == 404
    # Its own data is there.
    for url in (f"/registrations/{wapu_b['registration_id']}", f"/registrations/{wapu_b['registration_id']}/contract",
                f"/contracts/{contract_b}/file", f"/wapus/{wapu_b['id']}"):
        assert client_b.get(url).status_code == 200, url
    assert "PT Uji Coba 301" not in client_b.get("/").get_data(as_text=True)


def test_pending_registration_is_hidden_from_every_wapu_user(app, factory, login_as):
    pending = factory.registration(303)
    client = login_as("WAPU_STAFF")
    assert client.get(f"/registrations/{pending['id']}").status_code == 404
    assert client.get(f"/registrations/{pending['id']}/contract").status_code == 404


def test_contract_is_not_served_to_anonymous_users(app, factory, client):
    reg = factory.registration(304)
    response = client.get(f"/registrations/{reg['id']}/contract")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def _role_routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, "required_roles", None)
        if roles is None:
            continue
        values = {arg: 1 for arg in rule.arguments if arg.endswith("_id")}
        if "month" in rule.arguments:
            values["month"] = "2026-10"
        for name, converter in rule._converters.items():
            if hasattr(converter, "items"):  # <any(a, b):name>: try the first choice
                values[name] = sorted(converter.items)[0]
        for method in rule.methods & {"GET", "POST"}:
            yield rule.endpoint, rule.build(values, append_unknown=False)[1], method, roles


def test_every_page_that_needs_a_role_refuses_the_others(app, factory, login_as):
    wapu = factory.wapu(305)
    clients = {role: login_as(role, wapu_id=wapu["id"] if role.is_wapu else None) for role in Role}
    routes = list(_role_routes(app))
    assert len(routes) >= 6  # the queue, decisions, users, user actions, audit log, WAPU list
    for endpoint, url, method, allowed in routes:
        for role, client in clients.items():
            response = client.get(url) if method == "GET" else client.post(url, {"comment": "x"})
            if role in allowed:
                assert response.status_code != 403, (endpoint, role)
            else:
                assert response.status_code == 403, (endpoint, role, response.status_code)


def test_anonymous_users_are_sent_to_login(app, client):
    for url in ("/review/registrations", "/admin/users", "/admin/audit", "/wapus", "/password"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_session_cookie_flags_and_idle_timeout(app, factory, client):
    email = factory.user("DIST_SPV")
    response = client.login(email)
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("scm_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    left = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert 25 * 60 < left.total_seconds() <= 30 * 60 + 5  # a 30-minute idle timeout


def test_production_refuses_a_default_or_missing_secret_key(database_url):
    from scm import create_app

    for key in (None, "dev-only-not-secret", "short"):
        with pytest.raises(RuntimeError, match="SECRET_KEY"):
            create_app("production", SECRET_KEY=key, SQLALCHEMY_DATABASE_URI=database_url)
    app = create_app("production", SECRET_KEY="x" * 64, SQLALCHEMY_DATABASE_URI=database_url)
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_passwords_are_hashed_with_scrypt(app, factory):
    """Production and development hash with scrypt; only the test suite uses a cheap method."""
    from config import CONFIGS

    assert CONFIGS["production"].PASSWORD_HASH_METHOD == CONFIGS["development"].PASSWORD_HASH_METHOD == "scrypt"
    app.config["PASSWORD_HASH_METHOD"] = CONFIGS["production"].PASSWORD_HASH_METHOD
    email = factory.user("DIST_ADMIN")
    with app.app_context():
        from scm.auth.services import find_active_user

        user = find_active_user(email)
        assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    assert Client(app.test_client()).login(email).status_code == 302  # and the scrypt hash checks out


def test_deactivated_user_is_logged_out_at_once(app, factory, login_as):
    admin = login_as("DIST_ADMIN")
    victim = login_as("DIST_FIN")
    assert victim.get("/").status_code == 200
    with app.app_context():
        from scm.auth.services import find_active_user

        victim_id = find_active_user(victim.email).id
    assert admin.post(f"/admin/users/{victim_id}/deactivate").status_code == 302
    assert victim.get("/wapus").status_code == 302  # back to the login page
    assert Client(app.test_client()).login(victim.email).status_code == 200  # cannot log in again


def test_admin_reset_gives_a_one_time_password_that_must_be_changed(app, factory, login_as):
    admin = login_as("DIST_ADMIN")
    other = login_as("DIST_SPV")
    with app.app_context():
        from scm.auth.services import find_active_user

        other_id = find_active_user(other.email).id
    page = admin.post(f"/admin/users/{other_id}/reset").get_data(as_text=True)
    password = re.search(r'data-credential="[^"]+">([^<]+)<', page).group(1)
    assert other.get("/wapus").status_code == 302  # the old session ended
    fresh = Client(app.test_client())
    assert fresh.login(other.email, password).headers["Location"].endswith("/password")


def test_admin_creates_distributor_user_with_one_time_password(app, login_as):
    admin = login_as("DIST_ADMIN")
    response = admin.post("/admin/users/new", {"name": "Rudi Baru", "email": "Rudi.Baru@Distributor.example.com",
                                               "role": "DIST_FIN"})
    password = re.search(r'data-credential="rudi.baru@distributor.example.com">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert Client(app.test_client()).login("rudi.baru@distributor.example.com", password).status_code == 302
    # Only distributor roles can be created here.
    bad = admin.post("/admin/users/new", {"name": "X", "email": "x@distributor.example.com", "role": "WAPU_STAFF"})
    assert bad.status_code == 200 and 'data-field-error="role"' in bad.get_data(as_text=True)
    duplicate = admin.post("/admin/users/new", {"name": "Y", "email": "rudi.baru@distributor.example.com", "role": "DIST_SPV"})
    assert 'data-field-error="email"' in duplicate.get_data(as_text=True)


def test_change_password_enforces_the_rules(app, login_as):
    client = login_as("DIST_SPV")
    for new, field in (("short", "new_password"), ("password123", "new_password"),
                       (client.email, "new_password")):
        page = client.post("/password", {"current_password": PASSWORD, "new_password": new,
                                         "confirm_password": new}).get_data(as_text=True)
        assert f'data-field-error="{field}"' in page, new
    page = client.post("/password", {"current_password": "wrong-one-123", "new_password": "Kopi-Tubruk-Pagi-77",
                                     "confirm_password": "Kopi-Tubruk-Pagi-77"}).get_data(as_text=True)
    assert 'data-field-error="current_password"' in page
    with app.app_context():
        actions = db.session.execute(select(AuditLog.action)).scalars().all()
        assert "auth.password_changed" not in actions


def test_audit_log_is_append_only(app, factory):
    factory.user("DIST_ADMIN")
    with app.app_context():
        row = db.session.execute(select(AuditLog)).scalars().first()
        row.summary = "tampered"
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        for statement in ("UPDATE audit_log SET summary = 'tampered'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert "tampered" not in db.session.execute(select(AuditLog.summary)).scalars().all()


def test_audit_log_page_filters(app, factory, login_as):
    factory.registration(306)
    admin = login_as("DIST_ADMIN")
    page = admin.get("/admin/audit?action=registration.submit").get_data(as_text=True)
    assert "registration.submit" in page and "user.create" not in page
    assert "auth.login" in admin.get("/admin/audit?actor=" + admin.email).get_data(as_text=True)
    assert admin.get("/admin/audit?date_from=not-a-date").status_code == 200


def test_distributor_roles_are_all_distributor(app):
    assert {r.value for r in DISTRIBUTOR_ROLES} == {"DIST_SPV", "DIST_FIN", "DIST_ADMIN"}
