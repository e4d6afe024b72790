"""The demo's companies, people and orders, built through the real services."""

from datetime import date

from flask import current_app
from sqlalchemy import select

from scm.auth.models import Role, User
from scm.auth.services import create_user, set_password
from scm.billing.usage import add_months
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.uploads import Upload
from scm.demo.billing import load_billing_demo
from scm.demo.documents import demo_npwp, minimal_pdf
from scm.demo.life import load_life_demo
from scm.extensions import db
from scm.registration import services as registration
from scm.registration.models import ContactKind, taxpayer_key

DEMO_PASSWORD = "Meterai-Demo-2026"
DISTRIBUTOR_USERS = [
    ("admin@distributor.example.com", "Dewi Administrator", Role.DIST_ADMIN),
    ("spv@distributor.example.com", "Budi Supervisor", Role.DIST_SPV),
    ("fin@distributor.example.com", "Sari Keuangan", Role.DIST_FIN),
]
# (company, address, lat, lon, npwp base (8 digits) + branch, nib, contact email domain)
WAPUS = [
    ("Bendahara Dinas Pendidikan Provinsi Jawa Barat", "Jl. Dr. Radjiman No. 6\nBandung 40171",
     "-6.903400", "107.618700", ("01234567", "000000"), "8120001234567", "disdik-jabar.example.com"),
    ("PT Energi Nusantara (Persero)", "Jl. Medan Merdeka Timur No. 1A\nJakarta Pusat 10110",
     "-6.175400", "106.827200", ("02345678", "091000"), "9120002345678", "energinusantara.example.com"),
    ("PT Migas Samudra Indonesia", "Jl. Jend. Sudirman Kav. 52-53\nJakarta Selatan 12190",
     None, None, ("03456789", "054000"), "9120003456789", "migassamudra.example.com"),
]
CORETAX_KINDS = ("government", "bumn", "kkks")  # of WAPUS, in order
PENDING = [
    ("RSUD Kota Surabaya", "Jl. Mayjen Prof. Dr. Moestopo No. 6\nSurabaya 60286",
     ("04567891", "615000"), "8120004567891", "rsud-surabaya.example.com"),
    ("PT Kereta Logistik Indonesia", "Jl. Perintis Kemerdekaan No. 1\nBandung 40117",
     ("05678912", "444000"), "9120005678912", "keretalogistik.example.com"),
]
RETURNED = ("Bendahara Pengeluaran Kabupaten Sleman", "Jl. Parasamya No. 1, Beran\nSleman 55511",
            ("06789123", "542000"), "8120006789123", "sleman.example.com")


def contract_period(today: date) -> tuple[date, date]:
    """Demo contracts run from January of the first billed month's year to the end of next year."""
    return date(add_months(today.replace(day=1), -6).year, 1, 1), date(today.year + 1, 12, 31)


def registration_input(name, address, npwp, nib, domain, lat=None, lon=None, phone_seed=1):
    contacts = {
        kind: registration.ContactInput(
            name=f"{label} {name.split()[-1]}",
            email=f"{kind.value.lower()}@{domain}",
            phone=f"0812{phone_seed:02d}{index:02d}{7000 + index:04d}",
        )
        for index, (kind, label) in enumerate(
            [(ContactKind.SPV, "Andi"), (ContactKind.FIN, "Rina"), (ContactKind.STAFF, "Joko")], start=1
        )
    }
    start, end = contract_period(today_wib())
    return registration.RegistrationInput(
        name=name, address=address, latitude=lat, longitude=lon, npwp=npwp, nib=nib, contacts=contacts,
        contract_number=f"KTR/{nib[-4:]}/{start.year}", contract_start=start, contract_end=end,
    )


def load_demo():
    """Everything in one transaction: a failure leaves no half-loaded demo behind.

    Returns the summary of the billing history (``scm/demo/billing.py``) with the reference and
    the private correction link of the registration sent back for correction (only known now:
    the database keeps a hash of its token).
    """
    with unit_of_work():
        for email, name, role in DISTRIBUTOR_USERS:
            user, _ = create_user(None, None, email=email, name=name, role=role, password=DEMO_PASSWORD)
            if role == Role.DIST_SPV:
                reviewer = user
            if role == Role.DIST_ADMIN:
                distributor_admin = user
        for seed, (name, address, lat, lon, (base, branch), nib, domain) in enumerate(WAPUS, start=1):
            data = registration_input(name, address, demo_npwp(base, branch), nib, domain, lat, lon, seed)
            reg = registration.submit_registration(None, data=data, upload=_contract(name))
            for credential in registration.approve_registration(reg, reviewer):
                user = db.session.execute(select(User).where(User.email == credential.email)).scalar_one()
                set_password(user, DEMO_PASSWORD, must_change=False)
            # Coretax: a government treasurer (kode 02), a BUMN and a KKKS (03), each at its head office.
            registration.set_coretax_details(reg.wapu, distributor_admin, kind=CORETAX_KINDS[seed - 1],
                                             nitku=taxpayer_key(reg.wapu.npwp) + "000000", transaction_code=None)
        billing = load_billing_demo()  # before today's orders, so the ledger reads in time order
        for seed, (name, address, (base, branch), nib, domain) in enumerate(PENDING, start=10):
            data = registration_input(name, address, demo_npwp(base, branch), nib, domain, phone_seed=seed)
            registration.submit_registration(None, data=data, upload=_contract(name))
        _demo_orders(reviewer)
        admin = db.session.execute(select(User).where(User.email == DISTRIBUTOR_USERS[0][0])).scalar_one()
        life = load_life_demo(registration_input, reviewer, admin, DEMO_PASSWORD)
        name, address, (base, branch), nib, domain = RETURNED
        data = registration_input(name, address, demo_npwp(base, branch), nib, domain, phone_seed=20)
        reg = registration.submit_registration(None, data=data, upload=_contract(name))
        token = registration.send_back_registration(
            reg, reviewer, reason="Nomor kontrak tidak sama dengan dokumen kontrak yang diunggah. Mohon perbaiki."
        )
        returned_reference = reg.reference
    # The link the applicant is mailed (scm/registration/services.py:send_back_registration).
    link = f"{current_app.config['PUBLIC_BASE_URL']}/register/correct/{token}"
    return billing | life | {"returned_reference": returned_reference, "correction_link": link}


# Per WAPU: (quantity, how far the order goes, purpose). Covers every PR and PO state.
DEMO_ORDERS = {
    "W0001": [(5000, "po_approved", "Kebutuhan ijazah semester ganjil"), (2000, "po_submitted", "Kontrak pengadaan"),
              (1500, "submitted", "Surat keputusan"), (800, "draft", "")],
    "W0002": [(3000, "po_approved", "Dokumen pengadaan Q4"), (1000, "returned", "Perjanjian kerja sama"),
              (500, "rejected", "Uji coba"), (1200, "approved", "Kontrak vendor")],
    "W0003": [(2500, "po_rejected", "Kontrak sewa"), (700, "cancelled", ""), (4000, "po_approved", "Dokumen lelang")],
}


def _demo_orders(distributor_spv):
    from scm.procurement import services as procurement
    from scm.registration.models import Wapu

    for code, orders in DEMO_ORDERS.items():
        wapu = db.session.execute(select(Wapu).where(Wapu.code == code)).scalar_one()
        staff = next(u for u in wapu.users if u.role == Role.WAPU_STAFF)
        spv = next(u for u in wapu.users if u.role == Role.WAPU_SPV)
        for quantity, goal, purpose in orders:
            pr = procurement.create_purchase_request(wapu, staff, quantity=quantity, purpose=purpose,
                                                     submit=goal not in ("draft", "cancelled"))
            if goal in ("draft", "submitted"):
                continue
            if goal == "cancelled":
                procurement.cancel_purchase_request(pr, staff)
                continue
            if goal in ("returned", "rejected"):
                reason = "Mohon lengkapi tujuan penggunaan." if goal == "returned" else "Belum dianggarkan."
                procurement.decide_purchase_request(pr, spv, action="return" if goal == "returned" else "reject",
                                                    comment=reason)
                continue
            procurement.decide_purchase_request(pr, spv, action="approve")
            if goal == "approved":
                continue
            po = procurement.create_purchase_order(pr, staff)
            if goal == "po_approved":
                procurement.decide_purchase_order(po, distributor_spv, action="approve")
            elif goal == "po_rejected":
                procurement.decide_purchase_order(po, distributor_spv, action="reject",
                                                  comment="Kuantitas melebihi kebutuhan.")


def _contract(name):
    return Upload(minimal_pdf(f"Kontrak {name}"), "kontrak.pdf")
