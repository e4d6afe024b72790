"""Company details and the 16-digit NPWP (issue #11): the WAPU's SPV requests a change, the
distributor approves or rejects it; issued invoices keep the identity they were issued with (read
back from the PDF); the 15- and 16-digit forms of one NPWP are the same taxpayer."""

import io
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from scm.auth.models import Role
from scm.auth.services import find_active_user
from scm.billing.models import Invoice
from scm.billing.services import issue_invoice, run_billing
from scm.billing.usage import add_months, month_of
from scm.core.database import unit_of_work
from scm.core.errors import ValidationErrors
from scm.core.formatting import today_wib
from scm.core.models import Notification
from scm.extensions import db
from scm.registration.models import CompanyChange, Wapu
from scm.registration.services import clean_registration
from scm.registration.validators import format_npwp
from tests.conftest import missing
from tests.fixtures.factories import insert_stamps, pdf_bytes, registration_form, registration_input, valid_npwp

LAST = add_months(month_of(today_wib()), -1)
BEFORE_LAST = add_months(LAST, -1)


@pytest.fixture
def pdf_text(tmp_path):
    if not shutil.which("pdftotext"):
        missing("pdftotext (poppler-utils) is not installed; apt-get install poppler-utils")

    def read(pdf: bytes) -> str:
        path = tmp_path / "invoice.pdf"
        path.write_bytes(pdf)
        return " ".join(subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                                       check=True).stdout.split())

    return read


def bill(app, wapu_id, month, count, finance):
    start = datetime(month.year, month.month, 3, 2, tzinfo=timezone.utc)
    with app.app_context():
        insert_stamps(wapu_id, [start + timedelta(minutes=11 * i) for i in range(count)])
    with app.app_context(), unit_of_work():
        run_billing(month, source="cli")
    with app.app_context(), unit_of_work():
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu_id,
                                                           Invoice.period == month)).scalar_one()
        return issue_invoice(invoice.id, find_active_user(finance)).id


def test_npwp_change_to_16_digits_keeps_old_invoices_as_issued(app, factory, login_as, pdf_text):
    wapu = factory.wapu()
    finance = factory.user(Role.DIST_FIN)
    with app.app_context():
        old_npwp = db.session.get(Wapu, wapu["id"]).npwp
    assert len(old_npwp) == 15
    new_npwp = "0" + old_npwp
    old_invoice = bill(app, wapu["id"], BEFORE_LAST, 25, finance)

    spv, fin = login_as(Role.WAPU_SPV, wapu["id"]), login_as(Role.WAPU_FIN, wapu["id"])
    assert "Ajukan perubahan nama, alamat atau NPWP" in spv.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    answer = spv.post(f"/wapus/{wapu['id']}/company-change", {
        "name": "PT Uji Coba Baru", "address": "Jl. Baru No. 1\nBandung", "npwp": format_npwp(new_npwp),
        "note": "Pemutakhiran NPWP 16 digit (PMK 112/2022)"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[-1500:]
    with app.app_context():
        change = db.session.execute(select(CompanyChange)).scalar_one()
        change_id = change.id
        assert change.npwp == new_npwp and change.old_npwp == old_npwp
        assert db.session.get(Wapu, wapu["id"]).npwp == old_npwp  # nothing changes before the review
    # a second request waits for the first
    assert "Ajukan perubahan" not in spv.get(f"/wapus/{wapu['id']}").get_data(as_text=True)

    reviewer = login_as(Role.DIST_SPV)
    assert "Perubahan data perusahaan yang menunggu pemeriksaan" in reviewer.get("/review/registrations").get_data(as_text=True)
    page = reviewer.get(f"/company-changes/{change_id}").get_data(as_text=True)
    assert format_npwp(old_npwp) in page and format_npwp(new_npwp) in page
    assert spv.post(f"/company-changes/{change_id}/approve", {"comment": ""}).status_code == 403
    assert reviewer.post(f"/company-changes/{change_id}/approve", {"comment": ""}).status_code == 302
    with app.app_context():
        current = db.session.get(Wapu, wapu["id"])
        assert (current.npwp, current.name) == (new_npwp, "PT Uji Coba Baru")
        told = set(db.session.execute(select(Notification.user_id)
                                      .where(Notification.kind == "company_change_approved")).scalars())
        assert told == {u.id for u in current.users if u.role.value in ("WAPU_SPV", "WAPU_FIN")}

    old_text = pdf_text(fin.get(f"/billing/invoices/{old_invoice}.pdf").data)
    assert format_npwp(old_npwp) in old_text and "PT Uji Coba Baru" not in old_text
    assert format_npwp(new_npwp) not in old_text
    new_invoice = bill(app, wapu["id"], LAST, 30, finance)
    new_text = pdf_text(fin.get(f"/billing/invoices/{new_invoice}.pdf").data)
    assert format_npwp(new_npwp) in new_text and "PT Uji Coba Baru" in new_text
    assert format_npwp(old_npwp) not in new_text


def test_a_rejected_change_needs_a_reason_and_changes_nothing(app, factory, login_as):
    wapu = factory.wapu()
    spv = login_as(Role.WAPU_SPV, wapu["id"])
    assert spv.post(f"/wapus/{wapu['id']}/company-change", {
        "name": "PT Nama Lain", "address": "Jl. Lain", "npwp": valid_npwp(9001)}).status_code == 302
    with app.app_context():
        change_id = db.session.execute(select(CompanyChange.id)).scalar_one()
    reviewer = login_as(Role.DIST_ADMIN)
    answer = reviewer.post(f"/company-changes/{change_id}/reject", {"comment": ""})
    assert answer.status_code == 409 and "Berikan alasan" in answer.get_data(as_text=True)
    assert reviewer.post(f"/company-changes/{change_id}/reject", {"comment": "Akta belum dilampirkan"}).status_code == 302
    with app.app_context():
        assert db.session.get(Wapu, wapu["id"]).name != "PT Nama Lain"
        assert db.session.get(CompanyChange, change_id).decision_reason == "Akta belum dilampirkan"
    assert reviewer.post(f"/company-changes/{change_id}/approve", {"comment": ""}).status_code == 409
    other = factory.wapu()
    assert login_as(Role.WAPU_SPV, other["id"]).get(f"/company-changes/{change_id}").status_code == 404
    assert login_as(Role.WAPU_STAFF, wapu["id"]).get(f"/wapus/{wapu['id']}/company-change").status_code == 403


@pytest.mark.parametrize("digits", [15, 16])
def test_either_form_of_an_npwp_in_use_refuses_a_duplicate_registration(app, factory, client, digits):
    wapu = factory.wapu(4100 + digits)
    with app.app_context():
        used = db.session.get(Wapu, wapu["id"]).npwp
    other_form = used if digits == 15 else "0" + used
    with app.app_context(), pytest.raises(ValidationErrors) as refused:
        clean_registration(registration_input(npwp=other_form))
    assert "npwp" in refused.value.errors
    form = registration_form(npwp=format_npwp(other_form))
    form["contract_file"] = (io.BytesIO(pdf_bytes()), "kontrak.pdf")
    answer = client.post("/register", data=form, content_type="multipart/form-data")
    assert answer.status_code == 200 and "NPWP ini sudah terdaftar" in answer.get_data(as_text=True)


def test_a_pending_registration_holds_both_forms_and_a_change_cannot_take_another_wapus_npwp(app, factory, login_as):
    pending = factory.registration(4200)  # 15 digits, waiting for review
    with app.app_context(), pytest.raises(ValidationErrors):
        clean_registration(registration_input(npwp="0" + pending["npwp"]))
    first, second = factory.wapu(), factory.wapu()
    with app.app_context():
        taken = db.session.get(Wapu, first["id"]).npwp
    spv = login_as(Role.WAPU_SPV, second["id"])
    for npwp in (taken, "0" + taken, "0" + pending["npwp"]):
        answer = spv.post(f"/wapus/{second['id']}/company-change", {"name": "PT X", "address": "Jl. X", "npwp": npwp})
        assert answer.status_code == 422 and "sudah terdaftar" in answer.get_data(as_text=True)


def test_the_database_itself_refuses_one_taxpayer_twice_under_its_two_spellings(app, factory):
    """What the services check, the unique indexes hold too: two requests at the same instant can both
    pass the services' check, and only the database can refuse the second."""
    from sqlalchemy.exc import IntegrityError

    from scm.registration.models import Registration, RegistrationState

    pending = factory.registration(4300)  # 15 digits, waiting for review
    wapu, other = factory.wapu(4301), factory.wapu(4302)
    with app.app_context():
        template = db.session.get(Registration, pending["id"])
        copy = {c.key: getattr(template, c.key) for c in Registration.__table__.columns
                if c.key not in ("id", "reference", "taxpayer", "npwp", "correction_token_hash", "wapu_id")}
        with pytest.raises(IntegrityError), unit_of_work():  # the other spelling, while the first is open
            db.session.add(Registration(**copy, npwp="0" + pending["npwp"], reference="REG-T-1"))
        taken = db.session.get(Wapu, wapu["id"]).npwp
        with pytest.raises(IntegrityError), unit_of_work():
            db.session.get(Wapu, other["id"]).npwp = "0" + taken
        with unit_of_work():  # a rejected registration frees its taxpayer again
            db.session.get(Registration, pending["id"]).state = RegistrationState.REJECTED
        with unit_of_work():
            db.session.add(Registration(**copy, npwp="0" + pending["npwp"], reference="REG-T-2"))
        assert db.session.get(Wapu, other["id"]).taxpayer != "0" + taken
