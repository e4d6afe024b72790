"""``flask demo load``: a living demo (idempotent), built through the real services."""

from datetime import date

import click
from flask.cli import AppGroup
from sqlalchemy import select
from stdnum import luhn

from scm.auth.models import Role, User
from scm.auth.services import create_user, set_password
from scm.billing.usage import add_months, month_key
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.uploads import Upload
from scm.extensions import db
from scm.registration import services as registration
from scm.registration.models import ContactKind

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
PENDING = [
    ("RSUD Kota Surabaya", "Jl. Mayjen Prof. Dr. Moestopo No. 6\nSurabaya 60286",
     ("04567891", "615000"), "8120004567891", "rsud-surabaya.example.com"),
    ("PT Kereta Logistik Indonesia", "Jl. Perintis Kemerdekaan No. 1\nBandung 40117",
     ("05678912", "444000"), "9120005678912", "keretalogistik.example.com"),
]
RETURNED = ("Bendahara Pengeluaran Kabupaten Sleman", "Jl. Parasamya No. 1, Beran\nSleman 55511",
            ("06789123", "542000"), "8120006789123", "sleman.example.com")


def demo_npwp(base8: str, branch: str) -> str:
    """A valid 15-digit NPWP: 8 digits, the Luhn check digit over the first nine, KPP + branch."""
    return base8 + luhn.calc_check_digit(base8) + branch


def minimal_pdf(text: str = "Kontrak") -> bytes:
    """A small, valid one-page PDF (enough for a demo contract)."""
    safe = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


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


demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load():
    """Load the demo data once (running it again changes nothing) and print the demo logins."""
    if db.session.execute(select(User).where(User.email == DISTRIBUTOR_USERS[0][0])).scalar():
        click.echo("Demo data is already loaded.")
    else:
        billing = load_demo()
        click.echo("Demo data loaded.")
        stamped = f"{billing['stamps']:,}".replace(",", ".")
        click.echo(f"Billing {month_key(billing['first'])} to {month_key(billing['last'])}: "
                   f"{billing['invoices']} invoices ({billing['partly_paid']} partly paid, "
                   f"{billing['overdue']} overdue); {stamped} e-Meterai stamped.")
    print_logins()


def load_demo():
    """Everything in one transaction: a failure leaves no half-loaded demo behind.

    Returns the summary of the billing history (``scm/demo_billing.py``).
    """
    from scm.demo_billing import load_billing_demo

    with unit_of_work():
        for email, name, role in DISTRIBUTOR_USERS:
            user, _ = create_user(None, email=email, name=name, role=role, password=DEMO_PASSWORD)
            if role == Role.DIST_SPV:
                reviewer = user
        for seed, (name, address, lat, lon, (base, branch), nib, domain) in enumerate(WAPUS, start=1):
            data = registration_input(name, address, demo_npwp(base, branch), nib, domain, lat, lon, seed)
            reg = registration.submit_registration(data, _contract(name))
            for credential in registration.approve_registration(reg, reviewer):
                user = db.session.execute(select(User).where(User.email == credential.email)).scalar_one()
                set_password(user, DEMO_PASSWORD, must_change=False)
        billing = load_billing_demo()  # before today's orders, so the ledger reads in time order
        for seed, (name, address, (base, branch), nib, domain) in enumerate(PENDING, start=10):
            data = registration_input(name, address, demo_npwp(base, branch), nib, domain, phone_seed=seed)
            registration.submit_registration(data, _contract(name))
        _demo_orders(reviewer)
        name, address, (base, branch), nib, domain = RETURNED
        data = registration_input(name, address, demo_npwp(base, branch), nib, domain, phone_seed=20)
        reg = registration.submit_registration(data, _contract(name))
        registration.send_back_registration(
            reg, reviewer, "Nomor kontrak tidak sama dengan dokumen kontrak yang diunggah. Mohon perbaiki."
        )
    return billing


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
            pr = procurement.create_purchase_request(staff, quantity, None, purpose,
                                                     submit=goal not in ("draft", "cancelled"))
            if goal in ("draft", "submitted"):
                continue
            if goal == "cancelled":
                procurement.cancel_purchase_request(pr, staff)
                continue
            if goal in ("returned", "rejected"):
                reason = "Mohon lengkapi tujuan penggunaan." if goal == "returned" else "Belum dianggarkan."
                procurement.decide_purchase_request(pr, spv, "return" if goal == "returned" else "reject", reason)
                continue
            procurement.decide_purchase_request(pr, spv, "approve")
            if goal == "approved":
                continue
            po = procurement.create_purchase_order(pr, staff)
            if goal == "po_approved":
                procurement.decide_purchase_order(po, distributor_spv, "approve")
            elif goal == "po_rejected":
                procurement.decide_purchase_order(po, distributor_spv, "reject", "Kuantitas melebihi kebutuhan.")


def _contract(name):
    return Upload(minimal_pdf(f"Kontrak {name}"), "kontrak.pdf")


def print_logins():
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
    demo_emails = {email for email, _, _ in DISTRIBUTOR_USERS}
    domains = {wapu[-1] for wapu in WAPUS}
    users = db.session.execute(select(User).order_by(User.wapu_id.nulls_first(), User.role)).scalars()
    for user in users:
        if user.email not in demo_emails and user.email.split("@")[1] not in domains:
            continue
        where = user.wapu.code if user.wapu else "distributor"
        click.echo(f"  {user.role.value:<11} {where:<12} {user.email}")
