"""Coretax e-Faktur: the WAPU's kind, NITKU and kode transaksi; the month's tax invoices as the XML
Coretax imports (pinned element by element, read back with ElementTree); the batches kept and
downloadable again byte for byte; the faktur numbers recorded on the invoice page."""

import hashlib
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role, User
from scm.billing import services
from scm.billing.coretax import clean_faktur_number
from scm.billing.models import CoretaxBatch, FakturNumber, Invoice, LineKind
from scm.billing.usage import add_months, month_key, month_of
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.formatting import today_wib
from scm.core.models import AuditLog
from scm.extensions import db
from scm.registration.models import Wapu, WapuKind, taxpayer_key
from scm.registration.services import set_coretax_details
from scm.registration.validators import clean_nitku
from tests.fixtures.factories import insert_stamps

LAST = add_months(month_of(today_wib()), -1)
KEY = month_key(LAST)
FEE = 500
SELLER_NPWP = "013000666091000"  # 15 digits: its 16-digit form is "0" + these
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
TAX_INVOICE = ["TaxInvoiceDate", "TaxInvoiceOpt", "TrxCode", "AddInfo", "CustomDoc", "RefDesc", "FacilityStamp",
               "SellerIDTKU", "BuyerTin", "BuyerDocument", "BuyerCountry", "BuyerDocumentNumber", "BuyerName",
               "BuyerAdress", "BuyerEmail", "BuyerIDTKU", "ListOfGoodService"]
GOOD_SERVICE = ["Opt", "Code", "Name", "Unit", "Price", "Qty", "TotalDiscount", "TaxBase", "OtherTaxBase", "VATRate",
                "VAT", "STLGRate", "STLG"]
MONTHS_ID = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
             "November", "Desember")


def _user(role):
    return db.session.execute(select(User).where(User.role == role, User.active.is_(True))).scalars().first()


def _settings(admin, fee):
    with unit_of_work():
        services.save_settings(
            admin, distributor_name="PT Distributor", distributor_address="Jl. A", distributor_npwp=SELLER_NPWP,
            bank_name="Bank Mandiri", bank_account_number="123", bank_account_name="PT D", unit_price=10_000,
            service_fee_per_unit=fee, ppn_rate=12, ppn_dpp_other_value=True,
            invoice_number_format="INV/{year}/{month:02d}/{seq:05d}",
            credit_note_number_format="NK/{year}/{month:02d}/{seq:05d}", warning_days="15,25")


def _run_and_issue(fin, wapu_ids):
    with unit_of_work():
        services.run_billing(LAST, fin, source="cli")
    for wapu_id in wapu_ids:
        invoice_id = db.session.execute(select(Invoice.id).where(Invoice.wapu_id == wapu_id,
                                                                 Invoice.period == LAST)).scalar_one()
        with unit_of_work():
            services.issue_invoice(invoice_id, fin)


@pytest.fixture
def month(app, factory, login_as):
    """Last month billed and issued: a government treasurer, a BUMN and a KKKS with the service fee
    (Rp500 per e-Meterai, PPN on a DPP of 11/12), and a fourth WAPU issued before the fee was set."""
    wapus = {name: factory.wapu() for name in ("gov", "bumn", "kkks", "nofee")}
    counts = {"gov": 30, "bumn": 24, "kkks": 13, "nofee": 7}
    start = datetime(LAST.year, LAST.month, 1, 3, tzinfo=timezone.utc)
    admin_client, fin_client = login_as(Role.DIST_ADMIN), login_as(Role.DIST_FIN)
    with app.app_context():
        for name, wapu in wapus.items():
            insert_stamps(wapu["id"], [start + timedelta(minutes=20 * i) for i in range(counts[name])])
        admin, fin = _user(Role.DIST_ADMIN), _user(Role.DIST_FIN)
        _settings(admin, 0)
        _run_and_issue(fin, [wapus["nofee"]["id"]])
        _settings(admin, FEE)
        _run_and_issue(fin, [wapus[name]["id"] for name in ("gov", "bumn", "kkks")])
        for name, kind in (("gov", WapuKind.GOVERNMENT), ("bumn", WapuKind.BUMN), ("kkks", WapuKind.KKKS),
                           ("nofee", WapuKind.OTHER)):
            with unit_of_work():
                wapu = db.session.get(Wapu, wapus[name]["id"])
                set_coretax_details(wapu, admin, kind=kind.value, nitku=taxpayer_key(wapu.npwp) + "000000",
                                    transaction_code=None)
        invoices = {name: db.session.execute(select(Invoice.id).where(Invoice.wapu_id == wapu["id"])).scalar_one()
                    for name, wapu in wapus.items()}
    return {"wapus": wapus, "counts": counts, "invoices": invoices, "admin": admin_client, "fin": fin_client}


def _export(client, month_text=KEY):
    return client.post("/billing/coretax/export", data={"month": month_text})


def _latest_batch(app):
    with app.app_context():
        batch = db.session.execute(select(CoretaxBatch).order_by(CoretaxBatch.id.desc())).scalars().first()
        return {"id": batch.id, "sha256": batch.sha256, "size": batch.size,
                "items": [(item.invoice_id, item.transaction_code) for item in batch.items]}


def _download(client, batch_id):
    answer = client.get(f"/billing/coretax/batches/{batch_id}.xml")
    assert answer.status_code == 200 and answer.mimetype == "application/xml"
    return answer.data


def _text(element):
    return element.text or ""


def test_the_xml_pins_every_element_and_holds_only_the_service_fee(app, month):
    answer = _export(month["fin"])
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    batch = _latest_batch(app)
    data = _download(month["fin"], batch["id"])
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<TaxInvoiceBulk ")
    root = ET.fromstring(data)
    assert root.tag == "TaxInvoiceBulk"
    assert root.attrib == {f"{XSI}noNamespaceSchemaLocation": "TaxInvoice.xsd"}
    assert [child.tag for child in root] == ["TIN", "ListOfTaxInvoice"]
    assert root.find("TIN").text == "0" + SELLER_NPWP
    tax_invoices = root.find("ListOfTaxInvoice")
    assert {child.tag for child in tax_invoices} == {"TaxInvoice"}
    with app.app_context():
        expected = {}
        for name in ("gov", "bumn", "kkks"):
            invoice = db.session.get(Invoice, month["invoices"][name])
            wapu = invoice.wapu
            fin_email = next(u.email for u in wapu.users if u.role == Role.WAPU_FIN)
            fee = next(line for line in invoice.lines if line.kind == LineKind.SERVICE_FEE)
            count = month["counts"][name]
            # DPP 11/12 of the fee and PPN 12% of it, as computed on the invoice.
            assert (fee.quantity, fee.amount) == (count, count * FEE)
            assert (invoice.ppn_rate, invoice.ppn_base) == (12, count * FEE * 11 // 12)
            assert invoice.ppn_amount == invoice.ppn_base * 12 // 100
            expected[invoice.number] = {
                "TaxInvoiceDate": invoice.issue_date.isoformat(), "TaxInvoiceOpt": "Normal",
                "TrxCode": {"gov": "02", "bumn": "03", "kkks": "03"}[name], "AddInfo": "", "CustomDoc": "",
                "RefDesc": invoice.number, "FacilityStamp": "", "SellerIDTKU": "0" + SELLER_NPWP + "000000",
                "BuyerTin": taxpayer_key(wapu.npwp), "BuyerDocument": "TIN", "BuyerCountry": "IDN",
                "BuyerDocumentNumber": "", "BuyerName": wapu.name, "BuyerAdress": " ".join(wapu.address.split()),
                "BuyerEmail": fin_email, "BuyerIDTKU": taxpayer_key(wapu.npwp) + "000000", "ListOfGoodService": "",
                "goods": [{
                    "Opt": "B", "Code": "000000", "Name": f"Biaya layanan e-Meterai {MONTHS_ID[LAST.month - 1]} "
                                                          f"{LAST.year}",
                    "Unit": "UM.0018", "Price": "500.0", "Qty": f"{count}.0", "TotalDiscount": "0.0",
                    "TaxBase": f"{count * FEE}.0", "OtherTaxBase": f"{invoice.ppn_base}.0", "VATRate": "12",
                    "VAT": f"{invoice.ppn_amount}.0", "STLGRate": "0.0", "STLG": "0.0"}],
                "usage": [line.amount for line in invoice.lines if line.kind != LineKind.SERVICE_FEE],
            }
        nofee = db.session.get(Invoice, month["invoices"]["nofee"])
        assert nofee.ppn_amount == 0 and LineKind.SERVICE_FEE not in [line.kind for line in nofee.lines]
    # In number order, one per invoice with the fee; the invoice without a service fee is not in it.
    assert [element.find("RefDesc").text for element in tax_invoices] == sorted(expected)
    for element in tax_invoices:
        want = expected[element.find("RefDesc").text]
        assert [child.tag for child in element] == TAX_INVOICE
        assert {child.tag: _text(child).strip() for child in element} == {key: want[key] for key in TAX_INVOICE}
        goods = element.find("ListOfGoodService")
        assert [good.tag for good in goods] == ["GoodService"]
        got = [{child.tag: _text(child) for child in good} for good in goods]
        assert [[child.tag for child in good] for good in goods] == [GOOD_SERVICE]
        assert got == want["goods"]
        # The e-Meterai face value (stamp duty) is never a VAT base: no usage amount or unit price in it.
        values = {_text(node) for node in element.iter()}
        assert "10000.0" not in values and not {f"{amount}.0" for amount in want["usage"]} & values
    assert sorted(batch["items"]) == sorted(
        (month["invoices"][name], code) for name, code in (("gov", "02"), ("bumn", "03"), ("kkks", "03")))
    assert batch["sha256"] == hashlib.sha256(data).hexdigest() and batch["size"] == len(data)


def test_a_per_wapu_code_overrides_its_kind(app, month):
    kkks = month["wapus"]["kkks"]["id"]
    with app.app_context():
        nitku = db.session.get(Wapu, kkks).nitku
    answer = month["admin"].post(f"/wapus/{kkks}/coretax", data={"kind": "kkks", "nitku": nitku,
                                                                 "coretax_transaction_code": "02"})
    assert answer.status_code == 302
    page = month["admin"].get(f"/wapus/{kkks}").get_data(as_text=True)
    assert 'data-testid="wapu-trx-code">02' in page and nitku in page
    assert _export(month["fin"]).status_code == 302
    root = ET.fromstring(_download(month["fin"], _latest_batch(app)["id"]))
    codes = {e.find("BuyerIDTKU").text: e.find("TrxCode").text for e in root.iter("TaxInvoice")}
    assert codes[nitku] == "02"
    assert sorted(codes.values()) == ["02", "02", "03"]  # the government treasurer 02, the BUMN 03


def test_a_wapu_without_nitku_is_refused_by_name_and_nothing_is_exported(app, month):
    bumn = month["wapus"]["bumn"]["id"]
    with app.app_context():
        with unit_of_work():
            set_coretax_details(db.session.get(Wapu, bumn), _user(Role.DIST_ADMIN), kind="bumn", nitku="",
                                transaction_code=None)
        name = db.session.get(Wapu, bumn).name
    answer = _export(month["fin"])
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert 'data-testid="coretax-incomplete"' in page and name in page and f"/wapus/{bumn}" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CoretaxBatch)) == 0


def test_a_month_without_tax_invoices_or_a_bad_month_is_refused(app, month):
    for text, status in ((month_key(add_months(LAST, -3)), 422), ("2026-13", 422), ("", 422)):
        answer = _export(month["fin"], text)
        assert answer.status_code == status, text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CoretaxBatch)) == 0


def test_batches_are_kept_and_downloadable_again_byte_for_byte(app, month):
    assert _export(month["fin"]).status_code == 302
    first = _latest_batch(app)
    assert _export(month["fin"]).status_code == 302
    second = _latest_batch(app)
    assert second["id"] != first["id"]
    for batch in (first, second):
        data = _download(month["fin"], batch["id"])
        assert hashlib.sha256(data).hexdigest() == batch["sha256"] and len(data) == batch["size"]
        assert _download(month["fin"], batch["id"]) == data
    page = month["fin"].get("/billing/coretax").get_data(as_text=True)
    assert page.count('data-testid="coretax-batch"') == 2 and first["sha256"][:16] in page
    with app.app_context():
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "coretax.exported")).scalars().all()
        assert len(audit) == 2 and audit[0].details["sha256"] == first["sha256"]


def test_only_distributor_finance_exports_and_downloads(app, month, login_as):
    assert _export(month["fin"]).status_code == 302
    batch_id = _latest_batch(app)["id"]
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=month["wapus"]["gov"]["id"])
    for client in (month["admin"], wapu_fin, login_as(Role.DIST_SPV)):
        assert client.get("/billing/coretax").status_code == 403
        assert client.get(f"/billing/coretax/batches/{batch_id}.xml").status_code == 403
        assert _export(client).status_code == 403
    assert month["fin"].post("/billing/coretax/export", data={"month": KEY}, csrf=False).status_code in (400, 422)


# ----------------------------------------------------------------------------- the WAPU's details


def test_nitku_and_code_are_validated_and_only_the_distributor_admin_edits_them(app, factory, login_as):
    wapu = factory.wapu()
    with app.app_context():
        npwp16 = taxpayer_key(db.session.get(Wapu, wapu["id"]).npwp)
    admin = login_as(Role.DIST_ADMIN)
    url = f"/wapus/{wapu['id']}/coretax"
    assert admin.get(url).status_code == 200
    for data in ({"kind": "bumn", "nitku": npwp16 + "00000"},  # 21 digits
                 {"kind": "bumn", "nitku": "1" * 22},  # not its NPWP
                 {"kind": "bumn", "nitku": npwp16 + "00000A"},
                 {"kind": "bumn", "nitku": "", "coretax_transaction_code": "05"},
                 {"kind": "minister", "nitku": ""}):
        answer = admin.post(url, data={"coretax_transaction_code": "", **data})
        assert answer.status_code == 422, data
        assert "is-invalid" in answer.get_data(as_text=True) or "invalid-feedback" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Wapu, wapu["id"]).nitku is None
    # Spaces and dots as people type them are fine.
    spaced = " ".join(npwp16[i:i + 4] for i in range(0, 16, 4)) + " 000.001"
    assert admin.post(url, data={"kind": "government", "nitku": spaced, "coretax_transaction_code": ""}).status_code == 302
    with app.app_context():
        saved = db.session.get(Wapu, wapu["id"])
        assert (saved.kind, saved.nitku, saved.transaction_code) == (WapuKind.GOVERNMENT, npwp16 + "000001", "02")
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "wapu.coretax_details")).scalar_one()
        assert audit.details["nitku"] == npwp16 + "000001"
    page = admin.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert npwp16 + "000001" in page and 'data-testid="coretax-link"' in page
    for role in (Role.WAPU_SPV, Role.WAPU_FIN):
        own = login_as(role, wapu_id=wapu["id"])
        assert own.get(url).status_code == 403
        assert own.post(url, data={"kind": "other", "nitku": ""}).status_code == 403
        assert 'data-testid="coretax-link"' not in own.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert login_as(Role.DIST_FIN).post(url, data={"kind": "other", "nitku": ""}).status_code == 403
    with app.app_context():
        assert db.session.get(Wapu, wapu["id"]).kind == WapuKind.GOVERNMENT


def test_clean_nitku_and_the_default_codes(app):
    with app.app_context():
        assert clean_nitku("", "013000666091000") is None
        assert clean_nitku("0013000666091000000000", "013000666091000") == "0013000666091000000000"
        assert clean_nitku("0013.0006.6609.1000-000000", "0013000666091000") == "0013000666091000000000"
        for bad in ("001300066609100000000", "00130006660910000000001", "1013000666091000000000", "x" * 22):
            with pytest.raises(ServiceError):
                clean_nitku(bad, "013000666091000")
    assert WapuKind.GOVERNMENT.default_transaction_code == "02"
    assert {k.default_transaction_code for k in (WapuKind.BUMN, WapuKind.KKKS, WapuKind.OTHER)} == {"03"}


# ----------------------------------------------------------------------------- faktur numbers


def test_faktur_numbers_are_validated(app):
    with app.app_context():
        assert clean_faktur_number("04002500000000123") == "04002500000000123"
        assert clean_faktur_number(" 0300 2500 0000 0012 3 ") == "03002500000000123"
        assert clean_faktur_number("010.000-24.00000001") == "010.000-24.00000001"
        for bad in ("", "123", "0400250000000012", "040025000000001234", "99002500000000123",
                    "010.000-24.0000001", "01000024-00000001", "0400250000000012A"):
            with pytest.raises(ServiceError) as refused:
                clean_faktur_number(bad)
            assert refused.value.field == "faktur_number"


def test_finance_records_the_faktur_number_and_the_invoice_page_shows_it(app, month, login_as):
    gov, bumn = month["invoices"]["gov"], month["invoices"]["bumn"]
    fin = month["fin"]
    page = fin.get(f"/billing/invoices/{gov}").get_data(as_text=True)
    assert 'data-testid="faktur-form"' in page
    for bad in ("123", "04-0025-0000", "99002500000000123"):
        answer = fin.post(f"/billing/invoices/{gov}/faktur-number", data={"faktur_number": bad})
        assert answer.status_code == 422
        assert "invalid-feedback" in answer.get_data(as_text=True)
    answer = fin.post(f"/billing/invoices/{gov}/faktur-number", data={"faktur_number": "02002600000000017"})
    assert answer.status_code == 302
    answer = fin.post(f"/billing/invoices/{bumn}/faktur-number", data={"faktur_number": "02002600000000017"})
    assert answer.status_code == 422  # already the government treasurer's
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=month["wapus"]["gov"]["id"])
    for client in (fin, wapu_fin):
        shown = client.get(f"/billing/invoices/{gov}").get_data(as_text=True)
        assert 'data-testid="faktur-number">02002600000000017<' in shown
    assert 'data-testid="faktur-form"' not in wapu_fin.get(f"/billing/invoices/{gov}").get_data(as_text=True)
    for client in (wapu_fin, month["admin"], login_as(Role.DIST_SPV)):
        assert client.post(f"/billing/invoices/{gov}/faktur-number",
                           data={"faktur_number": "02002600000000018"}).status_code == 403
    # Corrected once: kept, audited both times; the invoice itself is unchanged.
    assert fin.post(f"/billing/invoices/{gov}/faktur-number",
                    data={"faktur_number": "020.000-26.00000018"}).status_code == 302
    nofee = month["invoices"]["nofee"]
    assert 'data-testid="faktur"' not in fin.get(f"/billing/invoices/{nofee}").get_data(as_text=True)
    assert fin.post(f"/billing/invoices/{nofee}/faktur-number",
                    data={"faktur_number": "02002600000000019"}).status_code == 422
    with app.app_context():
        rows = db.session.execute(select(FakturNumber)).scalars().all()
        assert [(row.invoice_id, row.number) for row in rows] == [(gov, "020.000-26.00000018")]
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "invoice.faktur_number")
                                   .order_by(AuditLog.id)).scalars().all()
        assert [a.details["number"] for a in audit] == ["02002600000000017", "020.000-26.00000018"]
