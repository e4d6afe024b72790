"""Distributor review: approve (WAPU, contract, users, one-time passwords), reject, send back, resubmit."""

import io
import re

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role, User
from scm.core.models import AuditLog
from scm.extensions import db
from scm.registration.models import Contract, Registration, RegistrationState, Wapu
from tests.fixtures.factories import pdf_bytes, registration_form


def test_queue_and_detail_show_everything_submitted(app, factory, login_as):
    reg = factory.registration(201)
    spv = login_as("DIST_SPV")
    queue = spv.get("/review/registrations").get_data(as_text=True)
    assert reg["reference"] in queue
    detail = spv.get(f"/registrations/{reg['id']}").get_data(as_text=True)
    form = registration_form(201)
    for value in (form["name"], form["spv_email"], form["fin_email"], form["staff_email"], form["contract_number"]):
        assert value in detail
    assert "+62 812" in detail  # phones shown formatted
    response = spv.get(f"/registrations/{reg['id']}/contract")
    assert response.status_code == 200 and response.data.startswith(b"%PDF-")
    assert response.headers["Content-Type"] == "application/pdf"


def test_approve_creates_wapu_contract_and_three_users_with_one_time_passwords(app, factory, login_as, mailbox):
    reg = factory.registration(202)
    spv = login_as("DIST_SPV")
    response = spv.post(f"/registrations/{reg['id']}/approve", {"comment": ""})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    passwords = dict(re.findall(r'data-credential="([^"]+)">([^<]+)<', page))
    form = registration_form(202)
    assert set(passwords) == {form["spv_email"], form["fin_email"], form["staff_email"]}

    with app.app_context():
        reg_row = db.session.get(Registration, reg["id"])
        assert reg_row.state == RegistrationState.APPROVED
        wapu = reg_row.wapu
        assert wapu.npwp == reg["npwp"] and re.fullmatch(r"W\d{4}", wapu.code)
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == wapu.id)).scalar_one()
        assert contract.number == form["contract_number"] and contract.file_id == reg_row.contract_file_id
        roles = {u.email: u.role for u in wapu.users}
        assert roles == {form["spv_email"]: Role.WAPU_SPV, form["fin_email"]: Role.WAPU_FIN,
                         form["staff_email"]: Role.WAPU_STAFF}
        assert all(u.must_change_password for u in wapu.users)
        actions = db.session.execute(select(AuditLog.action)).scalars().all()
        assert "registration.approve" in actions and "wapu.create" in actions
        assert actions.count("user.create") >= 3

    # Each PIC got their own password by email; the outbox forgets it once sent.
    for email, password in passwords.items():
        assert password in mailbox.body(mailbox.to(email)[-1])
    with app.app_context():
        from scm.core.models import OutboxEmail

        bodies = db.session.execute(select(OutboxEmail.body).where(OutboxEmail.sensitive.is_(True))).scalars().all()
        assert bodies and not any(p in b for b in bodies for p in passwords.values())

    # The STAFF logs in with the issued password and is forced to change it.
    from tests.fixtures.client import Client

    staff = Client(app.test_client())
    response = staff.login(form["staff_email"], passwords[form["staff_email"]])
    assert response.headers["Location"].endswith("/password")
    assert staff.get("/").headers["Location"].endswith("/password")
    response = staff.post("/password", {"current_password": passwords[form["staff_email"]],
                                        "new_password": "Sandi-Baru-Staf-2026", "confirm_password": "Sandi-Baru-Staf-2026"})
    assert response.status_code == 302
    assert form["name"] in staff.get("/").get_data(as_text=True)


def test_double_approval_approves_once(app, factory, login_as):
    reg = factory.registration(203)
    spv = login_as("DIST_SPV")
    assert spv.post(f"/registrations/{reg['id']}/approve").status_code == 200
    second = spv.post(f"/registrations/{reg['id']}/approve")
    assert second.status_code == 409
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Wapu)).scalar() == 1
        assert db.session.execute(select(func.count()).select_from(User).where(User.wapu_id.is_not(None))).scalar() == 3


@pytest.mark.parametrize("action", ["reject", "send_back"])
def test_reject_and_send_back_require_a_reason(app, factory, login_as, action):
    reg = factory.registration(204)
    spv = login_as("DIST_SPV")
    response = spv.post(f"/registrations/{reg['id']}/{action}", {"comment": "   "})
    assert response.status_code == 409
    with app.app_context():
        assert db.session.get(Registration, reg["id"]).state == RegistrationState.SUBMITTED


def test_reject_mails_the_reason(app, factory, login_as, mailbox):
    reg = factory.registration(205)
    spv = login_as("DIST_ADMIN")
    response = spv.post(f"/registrations/{reg['id']}/reject", {"comment": "Kontrak tidak ditandatangani."})
    assert response.status_code == 302
    with app.app_context():
        reg_row = db.session.get(Registration, reg["id"])
        assert reg_row.state == RegistrationState.REJECTED
        assert reg_row.events[-1].comment == "Kontrak tidak ditandatangani."
    message = mailbox.to(registration_form(205)["spv_email"])[-1]
    assert "Kontrak tidak ditandatangani." in mailbox.body(message)


def test_send_back_then_resubmit_through_the_private_link(app, factory, login_as, mailbox, client):
    reg = factory.registration(206)
    spv = login_as("DIST_SPV")
    response = spv.post(f"/registrations/{reg['id']}/send_back", {"comment": "NIB salah ketik."})
    assert response.status_code == 302
    body = mailbox.body(mailbox.to(registration_form(206)["spv_email"])[-1])
    assert "NIB salah ketik." in body
    link = re.search(r"http://testserver(/register/correct/\S+)", body).group(1)

    page = client.get(link).get_data(as_text=True)
    assert "NIB salah ketik." in page and registration_form(206)["name"] in page
    fixed = registration_form(206, nib="9120000009999", name="PT Uji Coba 206 (perbaikan)")
    response = client.post(link, fixed, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        reg_row = db.session.get(Registration, reg["id"])
        assert reg_row.state == RegistrationState.SUBMITTED
        assert reg_row.nib == "9120000009999" and reg_row.name.endswith("(perbaikan)")
        assert [e.action for e in reg_row.events] == ["submit", "send_back", "resubmit"]
    # The link works once only.
    assert client.get(link).status_code == 404


def test_resubmit_can_replace_the_contract(app, factory, login_as, mailbox, client):
    reg = factory.registration(207)
    login_as("DIST_SPV").post(f"/registrations/{reg['id']}/send_back", {"comment": "Unggah kontrak terbaru."})
    link = re.search(r"(/register/correct/\S+)", mailbox.body(mailbox.to(registration_form(207)["spv_email"])[-1])).group(1)
    new_pdf = pdf_bytes("Kontrak revisi")
    data = registration_form(207) | {"contract_file": (io.BytesIO(new_pdf), "revisi.pdf")}
    assert client.post(link, data, content_type="multipart/form-data").status_code == 302
    with app.app_context():
        import hashlib

        assert db.session.get(Registration, reg["id"]).contract_file.sha256 == hashlib.sha256(new_pdf).hexdigest()


def test_unknown_correction_link_is_404(client):
    assert client.get("/register/correct/not-a-real-token").status_code == 404


def test_approval_refuses_when_an_email_got_an_account_meanwhile(app, factory, login_as):
    reg = factory.registration(208)
    factory.user("DIST_FIN", email=registration_form(208)["fin_email"])
    spv = login_as("DIST_SPV")
    response = spv.post(f"/registrations/{reg['id']}/approve")
    assert response.status_code == 409
    with app.app_context():
        assert db.session.get(Registration, reg["id"]).state == RegistrationState.SUBMITTED
        assert db.session.execute(select(func.count()).select_from(Wapu)).scalar() == 0
