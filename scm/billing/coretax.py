"""Coretax e-Faktur: a month's tax invoices as the XML that DJP's Coretax imports, the batches
exported, and the faktur numbers Coretax assigned.

Only a service fee is a VAT base (DOMAIN.md §4, §6): an invoice is in the export when it is issued
and has a service-fee line carrying PPN, and that line is its only ``GoodService``; the e-Meterai
face value (stamp duty) never appears. DPP (11/12 of the fee) and PPN are the invoice's own, as
computed when it was drafted. The buyer being a VAT collector, each tax invoice carries the WAPU's
kode transaksi: 02 for a government treasurer, 03 for other collectors (BUMN, KKKS), or the WAPU's
own setting.

The XML follows what Odoo's ``l10n_id_efaktur_coretax`` writes (``data/efaktur_templates.xml``):
``TaxInvoiceBulk`` → ``TIN`` + ``ListOfTaxInvoice`` → ``TaxInvoice`` (in the order of
:data:`TAX_INVOICE_FIELDS`) → ``ListOfGoodService`` → ``GoodService`` (:data:`GOOD_SERVICE_FIELDS`);
amounts are written as Odoo writes its rounded IDR floats (``91666.0``), the VAT rate as ``12``.
"""

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from scm.auth.models import Role
from scm.billing.models import (
    CoretaxBatch,
    CoretaxBatchInvoice,
    FakturNumber,
    Invoice,
    InvoiceLine,
    InvoiceState,
    LineKind,
)
from scm.billing.services import finance_contacts
from scm.billing.usage import month_key
from scm.core.database import utcnow
from scm.core.errors import ServiceError
from scm.core.services import record_audit, register_audit_action
from scm.core.uploads import Upload, store_upload
from scm.extensions import db
from scm.registration.models import Wapu, taxpayer_key

register_audit_action("coretax.exported", _l("Coretax e-Faktur exported"),
                      _l("%(month)s: %(invoices)s tax invoices, SHA-256 %(sha256)s"), month="month")
register_audit_action("invoice.faktur_number", _l("Faktur number recorded"), _l("%(number)s (before: %(before)s)"))

XSI = "http://www.w3.org/2001/XMLSchema-instance"
TAX_INVOICE_FIELDS = ("TaxInvoiceDate", "TaxInvoiceOpt", "TrxCode", "AddInfo", "CustomDoc", "RefDesc",
                      "FacilityStamp", "SellerIDTKU", "BuyerTin", "BuyerDocument", "BuyerCountry",
                      "BuyerDocumentNumber", "BuyerName", "BuyerAdress", "BuyerEmail", "BuyerIDTKU")
GOOD_SERVICE_FIELDS = ("Opt", "Code", "Name", "Unit", "Price", "Qty", "TotalDiscount", "TaxBase", "OtherTaxBase",
                       "VATRate", "VAT", "STLGRate", "STLG")
SERVICE = "B"  # Opt: A goods, B services
SERVICE_CODE = "000000"  # DJP's general code for a service
UNIT = "UM.0018"  # DJP's unit code "Unit": one e-Meterai handled
HEAD_OFFICE = "000000"  # the seller's place of business (its NITKU suffix)
MONTHS_ID = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
             "November", "Desember")


class CoretaxIncomplete(ServiceError):
    """Some WAPUs lack what a tax invoice needs (NITKU, kind or kode transaksi): nothing is exported."""

    def __init__(self, wapus):
        super().__init__(_l("Complete the Coretax details (kind and NITKU) of these WAPUs first: %(names)s.",
                            names=", ".join(w.name for w in wapus)), code="coretax_incomplete")
        self.wapus = wapus


@dataclass
class Export:
    batch: CoretaxBatch
    data: bytes
    invoices: list


def _amount(value: int) -> str:
    """A whole-Rupiah amount as Odoo writes its rounded IDR floats: ``91666.0``."""
    return repr(float(value))


def month_invoices(period) -> list[Invoice]:
    """The month's issued invoices with a service-fee line carrying PPN, in number order."""
    has_fee = exists().where(InvoiceLine.invoice_id == Invoice.id, InvoiceLine.kind == LineKind.SERVICE_FEE)
    stmt = (select(Invoice).where(Invoice.period == period, Invoice.state != InvoiceState.DRAFT,
                                  Invoice.ppn_amount > 0, has_fee)
            .options(selectinload(Invoice.lines), selectinload(Invoice.wapu).selectinload(Wapu.users))
            .order_by(Invoice.number))
    return list(db.session.execute(stmt).scalars())


def _incomplete(invoice: Invoice) -> bool:
    wapu = invoice.wapu
    buyer_tin = taxpayer_key(invoice.buyer_npwp)
    return not wapu.nitku or not wapu.transaction_code or wapu.nitku[:16] != buyer_tin


def _good_services(invoice: Invoice) -> list[dict]:
    """The invoice's service-fee lines (one, as priced), with the invoice's own DPP and PPN."""
    fees = [line for line in invoice.lines if line.kind == LineKind.SERVICE_FEE]
    total = sum(line.amount for line in fees)
    rows, base_left, vat_left = [], invoice.ppn_base, invoice.ppn_amount
    for index, line in enumerate(fees):
        last = index == len(fees) - 1
        base = base_left if last else invoice.ppn_base * line.amount // total
        vat = vat_left if last else invoice.ppn_amount * line.amount // total
        base_left, vat_left = base_left - base, vat_left - vat
        month = line.usage_month
        rows.append({
            "Opt": SERVICE, "Code": SERVICE_CODE,
            "Name": f"Biaya layanan e-Meterai {MONTHS_ID[month.month - 1]} {month.year}",
            "Unit": UNIT, "Price": _amount(line.unit_price), "Qty": repr(float(line.quantity)),
            "TotalDiscount": _amount(0), "TaxBase": _amount(line.amount), "OtherTaxBase": _amount(base),
            "VATRate": str(invoice.ppn_rate), "VAT": _amount(vat), "STLGRate": _amount(0), "STLG": _amount(0),
        })
    return rows


def _buyer_email(wapu: Wapu) -> str:
    fin = [user for user in finance_contacts(wapu) if user.role == Role.WAPU_FIN and user.active]
    return fin[0].email if fin else ""


def tax_invoice(invoice: Invoice) -> dict:
    """The values of one ``TaxInvoice`` element, by name."""
    wapu = invoice.wapu
    return {
        "TaxInvoiceDate": invoice.issue_date.isoformat(), "TaxInvoiceOpt": "Normal",
        "TrxCode": wapu.transaction_code, "AddInfo": "", "CustomDoc": "", "RefDesc": invoice.number,
        "FacilityStamp": "", "SellerIDTKU": taxpayer_key(invoice.seller_npwp) + HEAD_OFFICE,
        "BuyerTin": taxpayer_key(invoice.buyer_npwp), "BuyerDocument": "TIN", "BuyerCountry": "IDN",
        "BuyerDocumentNumber": "", "BuyerName": invoice.buyer_name,
        "BuyerAdress": " ".join(invoice.buyer_address.split()), "BuyerEmail": _buyer_email(wapu),
        "BuyerIDTKU": wapu.nitku, "lines": _good_services(invoice),
    }


def build_xml(seller_tin: str, invoices: list[dict]) -> bytes:
    """The Coretax import file for ``invoices`` (the dicts of :func:`tax_invoice`)."""
    ET.register_namespace("xsi", XSI)
    root = ET.Element("TaxInvoiceBulk", {f"{{{XSI}}}noNamespaceSchemaLocation": "TaxInvoice.xsd"})
    ET.SubElement(root, "TIN").text = seller_tin
    listing = ET.SubElement(root, "ListOfTaxInvoice")
    for values in invoices:
        element = ET.SubElement(listing, "TaxInvoice")
        for name in TAX_INVOICE_FIELDS:
            ET.SubElement(element, name).text = values[name]
        goods = ET.SubElement(element, "ListOfGoodService")
        for line in values["lines"]:
            good = ET.SubElement(goods, "GoodService")
            for name in GOOD_SERVICE_FIELDS:
                ET.SubElement(good, name).text = line[name]
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def export_month(period, actor) -> Export:
    """``DIST_FIN`` exports the month's tax invoices as one Coretax XML, kept as a batch.

    Refused, exporting nothing, when no invoice qualifies or when a WAPU lacks its NITKU or kind
    (:class:`CoretaxIncomplete` names them)."""
    if actor is None or actor.role != Role.DIST_FIN:
        raise ServiceError(_l("You may not do this."), code="forbidden")
    invoices = month_invoices(period)
    if not invoices:
        raise ServiceError(_l("No issued invoice of this month has a service fee carrying PPN: there is no tax "
                              "invoice to export."), field="month", code="nothing_to_export")
    missing = {invoice.wapu_id: invoice.wapu for invoice in invoices if _incomplete(invoice)}
    if missing:
        raise CoretaxIncomplete(sorted(missing.values(), key=lambda w: w.name))
    sellers = {taxpayer_key(invoice.seller_npwp) for invoice in invoices}
    if len(sellers) != 1:
        raise ServiceError(_l("The invoices of this month were issued under different seller NPWPs; export "
                              "cannot put them in one file."), field="month", code="several_sellers")
    data = build_xml(sellers.pop(), [tax_invoice(invoice) for invoice in invoices])
    sha256 = hashlib.sha256(data).hexdigest()
    stored = store_upload(Upload(data=data, original_name=f"coretax-efaktur-{month_key(period)}.xml",
                                 content_type="application/xml"))
    batch = CoretaxBatch(period=period, created_by_id=actor.id, file_id=stored.id, sha256=sha256, size=len(data))
    db.session.add(batch)
    for invoice in invoices:
        batch.items.append(CoretaxBatchInvoice(invoice_id=invoice.id, transaction_code=invoice.wapu.transaction_code))
    db.session.flush()
    record_audit(actor, "coretax.exported", batch, f"{month_key(period)}: {len(invoices)} tax invoices, {sha256}",
                 details={"month": month_key(period), "invoices": len(invoices), "sha256": sha256})
    return Export(batch, data, invoices)


def batches(limit=100) -> list[CoretaxBatch]:
    stmt = (select(CoretaxBatch).options(selectinload(CoretaxBatch.items).selectinload(CoretaxBatchInvoice.invoice),
                                         selectinload(CoretaxBatch.created_by))
            .order_by(CoretaxBatch.id.desc()).limit(limit))
    return list(db.session.execute(stmt).scalars())


# ----------------------------------------------------------------------------- faktur numbers

_CORETAX = re.compile(r"\d{17}")  # Coretax: 17 digits
_LEGACY = re.compile(r"\d{3}\.\d{3}-\d{2}\.\d{8}")  # e-Faktur before Coretax: 010.000-24.00000001


def clean_faktur_number(value: str, field="faktur_number") -> str:
    """A faktur pajak number: 17 digits as Coretax writes it (spaces ignored), or the formatted
    16-digit one of the e-Faktur before Coretax (``010.000-24.00000001``: kode transaksi, status,
    branch, year, serial). Its first two digits are a kode transaksi (01–10)."""
    text = "".join((value or "").split())
    if not text:
        raise ServiceError(_l("This field is required."), field=field)
    if not (_CORETAX.fullmatch(text) or _LEGACY.fullmatch(text)) or not 1 <= int(text[:2]) <= 10:
        raise ServiceError(_l("A faktur number is 17 digits as Coretax gives it (e.g. 04002500000000123), or "
                              "010.000-24.00000001 from the e-Faktur before Coretax."), field=field)
    return text


def faktur_number_of(invoice_id: int) -> FakturNumber | None:
    return db.session.execute(select(FakturNumber).where(FakturNumber.invoice_id == invoice_id)).scalar()


def has_tax_invoice(invoice: Invoice) -> bool:
    """Whether the invoice gets a tax invoice: issued, with a service fee carrying PPN."""
    return (not invoice.is_draft and invoice.ppn_amount > 0
            and any(line.kind == LineKind.SERVICE_FEE for line in invoice.lines))


def record_faktur_number(invoice_id: int, actor, *, number: str) -> FakturNumber:
    """``DIST_FIN`` records (or corrects) the faktur number Coretax assigned to an invoice; audited."""
    if actor is None or actor.role != Role.DIST_FIN:
        raise ServiceError(_l("You may not do this."), code="forbidden")
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or not has_tax_invoice(invoice):
        raise ServiceError(_l("Only an issued invoice with a service fee carrying PPN has a tax invoice."),
                           field="faktur_number")
    number = clean_faktur_number(number)
    taken = db.session.execute(select(FakturNumber).where(FakturNumber.number == number,
                                                          FakturNumber.invoice_id != invoice_id)).scalar()
    if taken is not None:
        raise ServiceError(_l("This faktur number is already recorded for invoice %(number)s.",
                              number=taken.invoice.number), field="faktur_number")
    row = faktur_number_of(invoice_id)
    before = row.number if row else None
    if row is None:
        row = FakturNumber(invoice_id=invoice_id, number=number, recorded_by_id=actor.id)
        db.session.add(row)
    else:
        row.number, row.recorded_by_id, row.updated_at = number, actor.id, utcnow()
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:  # recorded at the same moment by someone else
        raise ServiceError(_l("This faktur number is already recorded for another invoice."),
                           field="faktur_number") from None
    if before != number:
        record_audit(actor, "invoice.faktur_number", invoice, f"{invoice.number}: faktur {number} (was {before})",
                     details={"number": number, "before": before or "–"})
    return row
