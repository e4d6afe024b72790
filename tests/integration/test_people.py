"""A WAPU's users after approval: who manages whom (a state × action × role table), the minimum
staffing, one-time passwords after a reset, contact details checked as at registration."""

import pytest
from sqlalchemy import select

from scm.auth.models import User
from scm.auth.services import set_user_active
from scm.core.database import unit_of_work
from scm.core.models import AuditLog
from scm.extensions import db

ACTORS = ("DIST_ADMIN", "WAPU_SPV", "OTHER_WAPU_SPV", "WAPU_FIN", "WAPU_STAFF", "DIST_SPV")
TARGETS = ("WAPU_STAFF", "WAPU_FIN", "WAPU_SPV")
STATES = ("active", "deactivated")
ACTIONS = ("deactivate", "activate", "reset", "edit")


def _user(app, email):
    with app.app_context():
        return db.session.execute(select(User).where(User.email == email)).scalar_one()


def _expected(actor, target, state, action):
    """What the table says: 'done', 'refused' (allowed to manage, wrong state), 403 or 404."""
    if actor == "OTHER_WAPU_SPV":
        return 404
    if actor in ("WAPU_FIN", "WAPU_STAFF", "DIST_SPV"):
        return 403
    if actor == "WAPU_SPV" and target == "WAPU_SPV":
        return 403
    valid = {"deactivate": state == "active", "activate": state == "deactivated", "reset": state == "active",
             "edit": True}[action]
    return "done" if valid else "refused"


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("target_role", TARGETS)
@pytest.mark.parametrize("actor_role", ACTORS)
def test_who_may_do_what_to_whom(app, factory, login_as, mailbox, actor_role, target_role, state, action):
    wapu = factory.wapu()  # its SPV, FIN and STAFF from the registration stay active: staffing holds
    if actor_role == "OTHER_WAPU_SPV":
        actor = login_as("WAPU_SPV", wapu_id=factory.wapu()["id"])
    else:
        actor = login_as(actor_role, wapu_id=wapu["id"] if actor_role.startswith("WAPU_") else None)
    target_email = factory.user(target_role, wapu_id=wapu["id"])
    target = _user(app, target_email)
    if state == "deactivated":
        with app.app_context(), unit_of_work():
            set_user_active(db.session.get(User, target.id), None, active=False)
    before = _user(app, target_email)
    expected = _expected(actor_role, target_role, state, action)

    if action == "edit":
        response = actor.post(f"/wapu-users/{target.id}/edit",
                              {"name": "Nama Baru", "email": target_email, "phone": "0812 9876 5432"})
    else:
        response = actor.post(f"/wapu-users/{target.id}/{action}")
    after = _user(app, target_email)

    if expected in (403, 404):
        assert response.status_code == expected
        assert (after.active, after.password_hash, after.name, after.phone) == \
               (before.active, before.password_hash, before.name, before.phone)
        return
    if expected == "refused":
        assert response.status_code == 302
        assert (after.active, after.password_hash) == (before.active, before.password_hash)
        page = actor.get(response.headers["Location"]).get_data(as_text=True)
        assert "alert-danger" in page
        return
    if action == "deactivate":
        assert response.status_code == 302 and not after.active
        assert after.session_token != before.session_token  # their sessions end
    elif action == "activate":
        assert response.status_code == 302 and after.active
    elif action == "reset":
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        assert after.password_hash != before.password_hash and after.must_change_password
        assert after.session_token != before.session_token
        assert mailbox.to(target_email), "the one-time password is emailed too"
    else:
        assert response.status_code == 302 and (after.name, after.phone) == ("Nama Baru", "+6281298765432")
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.object_type == "User",
                                                          AuditLog.object_id == str(target.id))
                                   .order_by(AuditLog.id.desc())).scalars().first()
        assert entry.actor_label == actor.email


@pytest.mark.parametrize("role", ["WAPU_SPV", "WAPU_FIN"])
def test_the_last_active_spv_or_fin_cannot_be_deactivated(app, factory, login_as, role):
    wapu = factory.wapu()
    admin = login_as("DIST_ADMIN")
    first_email = wapu["users"][role][0]
    first = _user(app, first_email)

    response = admin.post(f"/wapu-users/{first.id}/deactivate")
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "sedikitnya satu" in page or "at least one" in page
    assert _user(app, first_email).active

    second_email = factory.user(role, wapu_id=wapu["id"])
    assert admin.post(f"/wapu-users/{first.id}/deactivate").status_code == 302
    assert not _user(app, first_email).active
    second = _user(app, second_email)
    admin.post(f"/wapu-users/{second.id}/deactivate")
    assert _user(app, second_email).active, "now the second is the last one"
    # Reactivating the first lets the second go.
    admin.post(f"/wapu-users/{first.id}/activate")
    admin.post(f"/wapu-users/{second.id}/deactivate")
    assert not _user(app, second_email).active and _user(app, first_email).active


def test_staff_may_all_go(app, factory, login_as):
    wapu = factory.wapu()
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    staff = _user(app, wapu["users"]["WAPU_STAFF"][0])
    assert spv.post(f"/wapu-users/{staff.id}/deactivate").status_code == 302
    assert not _user(app, staff.email).active


def test_a_wapu_spv_manages_only_its_own_staff_and_finance(app, factory, login_as):
    wapu, other = factory.wapu(), factory.wapu()
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    assert spv.get(f"/wapus/{wapu['id']}/users").status_code == 200
    assert spv.get(f"/wapus/{other['id']}/users").status_code == 404
    assert spv.get(f"/wapus/{other['id']}/users/new").status_code == 404
    other_staff = _user(app, other["users"]["WAPU_STAFF"][0])
    assert spv.get(f"/wapu-users/{other_staff.id}/edit").status_code == 404
    own_spv = _user(app, wapu["users"]["WAPU_SPV"][0])
    assert spv.get(f"/wapu-users/{own_spv.id}/edit").status_code == 403
    # An SPV is never offered nor given: not even by forging the form.
    page = spv.get(f"/wapus/{wapu['id']}/users/new").get_data(as_text=True)
    assert 'value="WAPU_SPV"' not in page and 'value="WAPU_STAFF"' in page
    response = spv.post(f"/wapus/{wapu['id']}/users/new", {"name": "Atasan Baru", "email": "atasan@baru.example.com",
                                                           "phone": "081298765432", "role": "WAPU_SPV"})
    assert response.status_code == 200
    with app.app_context():
        assert db.session.execute(select(User).where(User.email == "atasan@baru.example.com")).first() is None
    # Distributor users are not WAPU users: 404.
    admin_email = factory.user("DIST_ADMIN")
    assert spv.post(f"/wapu-users/{_user(app, admin_email).id}/reset").status_code == 404


def test_the_admin_adds_a_user_who_must_change_the_one_time_password(app, factory, login_as, make_client, mailbox):
    wapu = factory.wapu()
    admin = login_as("DIST_ADMIN")
    page = admin.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert f"/wapus/{wapu['id']}/users" in page, "the WAPU page links to its users"
    response = admin.post(f"/wapus/{wapu['id']}/users/new", {
        "name": "  Staf   Baru ", "email": "Staf.Baru@Example.com", "phone": "0812-1111-2222", "role": "WAPU_STAFF"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    import re

    password = re.search(r'data-credential="staf.baru@example.com">([^<]+)<', response.get_data(as_text=True)).group(1)
    user = _user(app, "staf.baru@example.com")
    assert (user.name, user.phone, user.role.value, user.wapu_id, user.must_change_password) == \
           ("Staf Baru", "+6281211112222", "WAPU_STAFF", wapu["id"], True)
    assert password in mailbox.body(mailbox.to("staf.baru@example.com")[0])

    new = make_client()
    response = new.login("staf.baru@example.com", password)
    assert response.status_code == 302 and response.headers["Location"].endswith("/password")
    assert new.get("/").headers["Location"].endswith("/password"), "nothing else until it is changed"


def test_a_reset_forces_a_change_at_next_login(app, factory, login_as, make_client, mailbox):
    wapu = factory.wapu()
    staff_email = factory.user("WAPU_STAFF", wapu_id=wapu["id"])
    staff = make_client()
    assert staff.login(staff_email).status_code == 302
    assert staff.get("/purchase-requests").status_code == 200
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    response = spv.post(f"/wapu-users/{_user(app, staff_email).id}/reset")
    import re

    password = re.search(rf'data-credential="{re.escape(staff_email)}">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert staff.get("/purchase-requests").status_code == 302, "the old session ended"
    again = make_client()
    assert again.login(staff_email).status_code == 200, "the old password no longer works"
    response = again.login(staff_email, password)
    assert response.headers["Location"].endswith("/password")
    assert password in mailbox.body(mailbox.to(staff_email)[-1])


def test_contact_details_are_checked_as_at_registration(app, factory, login_as):
    wapu = factory.wapu()
    admin = login_as("DIST_ADMIN")
    fin = _user(app, wapu["users"]["WAPU_FIN"][0])
    spv_email = wapu["users"]["WAPU_SPV"][0]
    url = f"/wapu-users/{fin.id}/edit"
    page = admin.post(url, {"name": "Keuangan", "email": "bukan-email", "phone": "021 555 1234"}).get_data(as_text=True)
    assert 'data-field-error="email"' in page and 'data-field-error="phone"' in page  # a landline is no mobile
    page = admin.post(url, {"name": " ", "email": fin.email, "phone": "081233334444"}).get_data(as_text=True)
    assert 'data-field-error="name"' in page
    page = admin.post(url, {"name": "Keuangan", "email": spv_email, "phone": "081233334444"}).get_data(as_text=True)
    assert 'data-field-error="email"' in page
    assert admin.post(url, {"name": "Keuangan Baru", "email": "Keu@Baru.example.com",
                            "phone": "+62 812 3333 4444"}).status_code == 302
    after = _user(app, "keu@baru.example.com")
    assert (after.name, after.phone) == ("Keuangan Baru", "+6281233334444")
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "user.contact_changed")).scalar_one()
        assert fin.email in entry.details["changes"] and "keu@baru.example.com" in entry.details["changes"]
    log = admin.get("/admin/audit").get_data(as_text=True)
    assert "keu@baru.example.com" in log


def test_two_admins_deactivating_the_last_two_spvs_at_once_leave_one(app, factory):
    import threading

    from scm.core.errors import ServiceError
    from scm.people.services import set_wapu_user_active

    wapu = factory.wapu()
    spvs = [wapu["users"]["WAPU_SPV"][0], factory.user("WAPU_SPV", wapu_id=wapu["id"])]
    admins = [factory.user("DIST_ADMIN"), factory.user("DIST_ADMIN")]
    barrier = threading.Barrier(2)
    outcomes = []

    def deactivate(admin_email, spv_email):
        with app.app_context():
            barrier.wait()
            try:
                with unit_of_work():
                    actor = db.session.execute(select(User).where(User.email == admin_email)).scalar_one()
                    target = db.session.execute(select(User).where(User.email == spv_email)).scalar_one()
                    set_wapu_user_active(target, actor, active=False)
                outcomes.append("ok")
            except ServiceError as error:
                outcomes.append(error.code)
            finally:
                db.session.remove()

    workers = [threading.Thread(target=deactivate, args=pair) for pair in zip(admins, spvs, strict=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(outcomes) == ["minimum_staffing", "ok"], outcomes
    assert sum(_user(app, email).active for email in spvs) == 1
