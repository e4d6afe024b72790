"""Issued documents rendered once: the PDF of an issued invoice, a credit note or a payment's receipt
is rendered the first time (at issue, or in the queue) and stored with its SHA-256 (``billing_documents``, append-only).
Downloads, the month's ZIP and its combined PDF serve those bytes; the audit log shows each one
produced. Drafts are never stored (they change)."""

import hashlib
import io
import logging
import zipfile

from flask_babel import lazy_gettext as _l
from pypdf import PdfReader, PdfWriter
from sqlalchemy import select

from scm.billing import exports
from scm.billing.models import BillingDocument, CreditNote, DocumentKind, Invoice, Payment
from scm.core.database import insert_or_ignore, unit_of_work
from scm.core.models import FileBlob
from scm.core.services import record_audit, register_audit_action
from scm.core.uploads import Upload, store_upload
from scm.extensions import db

log = logging.getLogger("scm.billing")

for _action, _label in (("invoice.pdf_stored", _l("Invoice PDF stored")),
                        ("credit_note.pdf_stored", _l("Credit note PDF stored")),
                        ("receipt.pdf_stored", _l("Receipt PDF stored"))):
    register_audit_action(_action, _label, _l("%(size)s bytes, SHA-256 %(sha256)s"))


KINDS = {Invoice: (DocumentKind.INVOICE, exports.render_invoice_pdf),
         CreditNote: (DocumentKind.CREDIT_NOTE, exports.render_credit_note_pdf),
         Payment: (DocumentKind.RECEIPT, exports.render_receipt_pdf)}


def _kind(document) -> DocumentKind:
    return KINDS[type(document)][0]


def _render(document) -> bytes:
    return KINDS[type(document)][1](document)


def file_name(document) -> str:
    if isinstance(document, Invoice):
        return exports.invoice_file_name(document)
    return f"{document.number.replace('/', '-')}.pdf"  # a credit note's or a receipt's number


def stored_pdfs(kind: DocumentKind, ids) -> dict[int, bytes]:
    """The stored PDF bytes of the documents ``ids`` of ``kind`` that have one."""
    rows = db.session.execute(
        select(BillingDocument.object_id, FileBlob.content).join(FileBlob, FileBlob.sha256 == BillingDocument.sha256)
        .where(BillingDocument.kind == kind, BillingDocument.object_id.in_(list(ids)))
    ).all()
    return {object_id: bytes(content) for object_id, content in rows}


def store_pdf(document, pdf: bytes | None = None) -> bytes:
    """Keep the PDF of an issued ``document`` in the current unit of work (rendered now unless given),
    and audit it; if another process stored it first, its bytes win and are returned."""
    if isinstance(document, Invoice) and document.is_draft:
        raise ValueError("a draft invoice is never stored: it still changes")
    kind = _kind(document)
    found = stored_pdfs(kind, [document.id]).get(document.id)
    if found is not None:
        return found
    pdf = pdf if pdf is not None else _render(document)
    stored = store_upload(Upload(pdf, file_name(document), "application/pdf"))
    sha256 = hashlib.sha256(pdf).hexdigest()
    inserted = db.session.execute(insert_or_ignore(  # RETURNING: a row only when this call inserted it
        BillingDocument.__table__, {"kind": kind.value, "object_id": document.id, "file_id": stored.id,
                                    "sha256": sha256, "size": len(pdf)}, keys=("kind", "object_id"))
        .returning(BillingDocument.__table__.c.id)).first()
    if inserted is None:
        return stored_pdfs(kind, [document.id])[document.id]
    record_audit(None, f"{kind.value}.pdf_stored", document, f"{document.number}: PDF stored, {len(pdf)} bytes, "
                 f"SHA-256 {sha256}", actor_label="system", details={"sha256": sha256, "size": len(pdf)})
    return pdf


def document_pdf(document) -> bytes:
    """The PDF of ``document``: a draft's is rendered each time; an issued one's is stored once."""
    if isinstance(document, Invoice) and document.is_draft:
        return _render(document)
    found = stored_pdfs(_kind(document), [document.id]).get(document.id)
    if found is not None:
        return found
    pdf = _render(document)  # outside the write: rendering takes a quarter of a second
    with unit_of_work():
        document = db.session.get(type(document), document.id)
        return store_pdf(document, pdf)


def store_after_issue(document) -> None:
    """Right after ``document`` was issued (committed): render and store its PDF. A failure here is
    logged and leaves the issue as it is; the PDF is then stored the first time it is needed."""
    try:
        document_pdf(document)
    except Exception:
        log.exception("the PDF of %s could not be stored now; it will be on first use", document.number)


def store_missing_invoice_pdfs(invoices, progress=None) -> int:
    """Render and store the PDF of each issued invoice that has none yet; returns how many.
    Each is rendered outside any transaction, then stored in a short one of its own."""
    invoices = list(invoices)
    have = set(db.session.execute(select(BillingDocument.object_id).where(
        BillingDocument.kind == DocumentKind.INVOICE,
        BillingDocument.object_id.in_([i.id for i in invoices]))).scalars())
    missing = [invoice for invoice in invoices if invoice.id not in have]
    db.session.rollback()  # end the read: no transaction stays open while rendering
    for done, invoice in enumerate(missing, start=1):
        pdf = _render(invoice)
        with unit_of_work():
            store_pdf(db.session.get(Invoice, invoice.id), pdf)
        if progress:
            progress(done, len(missing))
    return len(missing)


def month_zip(invoices) -> bytes:
    """A ZIP of the stored PDF of each issued invoice (stored first where missing)."""
    invoices = list(invoices)
    pdfs = stored_pdfs(DocumentKind.INVOICE, [i.id for i in invoices])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for invoice in invoices:
            archive.writestr(exports.invoice_file_name(invoice), pdfs[invoice.id])
    return buffer.getvalue()


def month_pdf(invoices) -> bytes:
    """One PDF of the stored PDFs of the invoices, in order, each starting on its own page."""
    invoices = list(invoices)
    pdfs = stored_pdfs(DocumentKind.INVOICE, [i.id for i in invoices])
    writer = PdfWriter()
    for invoice in invoices:
        writer.append(PdfReader(io.BytesIO(pdfs[invoice.id])))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
