"""The demo's WAPU lives after approval: a contract about to end, a suspended WAPU, a renewal
waiting to start, a change of company details (the 16-digit NPWP) waiting for review, a second
SPV standing in for the first during a leave, and a former employee's account switched off."""

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from scm.auth.models import Role, User
from scm.auth.services import set_password
from scm.core.formatting import today_wib
from scm.core.uploads import Upload
from scm.demo.documents import demo_npwp, minimal_pdf
from scm.extensions import db
from scm.registration import services as registration
from scm.registration.models import ContractKind, Wapu

# (company, address, npwp base + branch, nib, domain): approved after the billing history.
ENDING = ("PT Pelabuhan Timur Indonesia", "Jl. Perak Timur No. 610\nSurabaya 60164",
          ("07891234", "631000"), "9120007891234", "pelabuhantimur.example.com")
SUSPENDED = ("Bendahara Dinas Kesehatan Kota Medan", "Jl. Rotan No. 1, Petisah Tengah\nMedan 20112",
             ("08912345", "124000"), "8120008912345", "dinkes-medan.example.com")
LIFE_WAPUS = [ENDING, SUSPENDED]


def load_life_demo(registration_input, reviewer, admin, password):
    """Two more WAPUs and what happens to contracts and company details over time (one transaction)."""
    today = today_wib()
    ending = _approve(registration_input, ENDING, reviewer, password, seed=30,
                      start=today - timedelta(days=340), end=today + timedelta(days=25))
    suspended = _approve(registration_input, SUSPENDED, reviewer, password, seed=31)
    registration.suspend_wapu(suspended, admin, reason="NIB sedang diverifikasi ulang oleh OSS; layanan "
                                                       "dihentikan sementara sampai verifikasi selesai.")
    registration.send_contract_expiry_warnings(today)  # the 60- and 30-day warnings of W0004

    first = db.session.execute(select(Wapu).where(Wapu.code == "W0001")).scalar_one()
    last_day = first.last_day_under_contract
    registration.add_contract(
        first, admin, number=f"KTR/{first.code}/PERPANJANGAN/{last_day.year + 1}",
        start_date=last_day + timedelta(days=1), end_date=last_day.replace(year=last_day.year + 2),
        upload=Upload(minimal_pdf("Perpanjangan kontrak"), "perpanjangan.pdf"), kind=ContractKind.RENEWAL,
        unit_price=9_500, today=today)

    second = db.session.execute(select(Wapu).where(Wapu.code == "W0002")).scalar_one()
    spv = db.session.execute(select(User).where(User.wapu_id == second.id, User.role == Role.WAPU_SPV)).scalar()
    if len(second.npwp) == 15:  # the move to the 16-digit NPWP (PMK 112/2022), waiting for review
        registration.request_company_change(second, spv, name=second.name, address=second.address,
                                            npwp="0" + second.npwp,
                                            note="Pemutakhiran ke NPWP 16 digit sesuai PMK 112/2022.")
    _people(first, admin, password, today)
    return {"ending": ending.code, "suspended": suspended.code}


def _people(wapu, admin, password, today):
    """W0001: a second SPV, who stands in for the first this week and has approved a PR on their
    behalf; a STAFF member who left; the distributor's SPV on leave with the admin standing in."""
    from scm.people import services as people
    from scm.procurement import services as procurement

    def user(role, *, wapu_id=None):
        return db.session.execute(select(User).where(User.role == role, User.wapu_id == wapu_id)
                                  .order_by(User.id)).scalars().first()

    spv, staff = user(Role.WAPU_SPV, wapu_id=wapu.id), user(Role.WAPU_STAFF, wapu_id=wapu.id)
    second, _ = people.add_wapu_user(wapu, admin, name="Sinta Wakil Kepala Bagian", email="spv2@disdik-jabar.example.com",
                                     phone="081201047004", role=Role.WAPU_SPV)
    set_password(second, password, must_change=False)
    former, _ = people.add_wapu_user(wapu, admin, name="Agus (sudah pindah tugas)",
                                     email="staff.lama@disdik-jabar.example.com", phone="081201057005",
                                     role=Role.WAPU_STAFF)
    people.set_wapu_user_active(former, admin, active=False)
    week = today + timedelta(days=6)
    people.set_stand_in(spv, spv, substitute=second, start_date=today, end_date=week)
    distributor_spv = user(Role.DIST_SPV)
    people.set_stand_in(distributor_spv, distributor_spv, substitute=admin, start_date=today, end_date=week)
    pr = procurement.create_purchase_request(wapu, staff, quantity=1500, purpose="Sertifikat pelatihan guru",
                                             submit=True)
    procurement.decide_purchase_request(pr, second, action="approve", comment="Disetujui atas nama Kepala Bagian.")


def _approve(registration_input, company, reviewer, password, *, seed, start=None, end=None):
    name, address, (base, branch), nib, domain = company
    data = registration_input(name, address, demo_npwp(base, branch), nib, domain, phone_seed=seed)
    if start is not None:
        data = replace(data, contract_start=start, contract_end=end)
    reg = registration.submit_registration(None, data=data, upload=Upload(minimal_pdf(name), "kontrak.pdf"))
    for credential in registration.approve_registration(reg, reviewer):
        user = db.session.execute(select(User).where(User.email == credential.email)).scalar_one()
        set_password(user, password, must_change=False)
    return db.session.get(Wapu, reg.wapu_id)
