"""Billing exports as pure functions: invoice and credit-note PDFs (WeasyPrint) and workbooks (openpyxl).

Views and commands only send the bytes. The printed documents are Indonesian whatever the user's
language. WeasyPrint loads nothing but the app's own static files (``StaticFilesOnly``).
"""

import io
import logging
import mimetypes
import threading
import zipfile
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlsplit

from babel.dates import format_date
from flask import current_app, render_template
from flask_babel import force_locale
from num2words import num2words
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse, path2url

from scm.billing.models import LineKind, MinimumPolicy
from scm.core.formatting import WIB, format_day, format_number, format_rupiah
from scm.quota.exports import FORMULA_STARTS, text_cell
from scm.registration.validators import format_npwp

STYLESHEET = "css/invoice-pdf.css"
DRAFT_NAME = "DRAF"
POLICY_LABELS = {
    MinimumPolicy.REPORT: "Kekurangan hanya dilaporkan",
    MinimumPolicy.TRUE_UP: "Kekurangan ditagihkan (true-up)",
}
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # an INFO line per step and page

# ----------------------------------------------------------------------------------- words


def month_label(day: date) -> str:
    """A billing month in Indonesian: ``November 2026``."""
    return format_date(day, "MMMM yyyy", locale="id")


def line_description(line) -> str:
    """What an invoice line bills, from its kind and usage month."""
    month = month_label(line.usage_month)
    return {
        LineKind.USAGE: f"Pemakaian e-Meterai {month}",
        LineKind.LATE_USAGE: f"Pemakaian terlambat dilaporkan — {month}",
        LineKind.TRUE_UP: f"Kekurangan pemakaian minimum (true-up) {month}",
        LineKind.SERVICE_FEE: "Biaya layanan",
    }[LineKind(line.kind)]


def terbilang(amount: int) -> str:
    """Whole Rupiah in Indonesian words: ``Dua belas juta ... rupiah``."""
    words = f"{num2words(int(amount), lang='id')} rupiah"
    return words[:1].upper() + words[1:]


# ------------------------------------------------------------------------------------- PDF


class StaticFilesOnly(URLFetcher):
    """A WeasyPrint URL fetcher that serves files under one folder and refuses every other URL."""

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder).resolve()
        self.base_url = path2url(str(self.folder)).rstrip("/") + "/"

    def path_for(self, url: str) -> Path:
        """The file a ``file:`` URL names, if it lies inside the folder; otherwise ValueError."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ValueError(f"refused (only the app's static files may be loaded): {url[:200]}")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            raise ValueError(f"refused (not a file in the static folder): {url[:200]}")
        return path

    def fetch(self, url, headers=None):
        path = self.path_for(url)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path2url(str(path)), path.read_bytes(), {"Content-Type": content_type})


_setup = threading.local()  # font configuration and parsed stylesheet, per thread and static folder


def _pdf_setup():
    """(fetcher, stylesheet, font configuration) for the current app, parsed once per thread."""
    folder = str(Path(current_app.static_folder).resolve())
    cached = getattr(_setup, "value", None)
    if cached is None or cached[0] != folder:
        fetcher, font_config = StaticFilesOnly(folder), FontConfiguration()
        stylesheet = CSS(url=fetcher.base_url + STYLESHEET, url_fetcher=fetcher, font_config=font_config)
        _setup.value = cached = (folder, fetcher, stylesheet, font_config)
    return cached[1:]


def _render_html(template: str, doc, invoice) -> str:
    """The Indonesian HTML of one billing document."""
    with force_locale("id"):
        return render_template(
            template, doc=doc, invoice=invoice, npwp=format_npwp, day=format_day, month=month_label,
            rupiah=format_rupiah, number=format_number, words=terbilang, describe=line_description,
            policy=lambda value: POLICY_LABELS[MinimumPolicy(value)])


def _layout(html: str):
    """Lay out one HTML document with the cached stylesheet and fonts: a WeasyPrint Document."""
    fetcher, stylesheet, font_config = _pdf_setup()
    return HTML(string=html, base_url=fetcher.base_url, url_fetcher=fetcher).render(
        stylesheets=[stylesheet], font_config=font_config)


def _invoice_document(invoice):
    return _layout(_render_html("billing/pdf/invoice.html", invoice, invoice))


def render_invoice_pdf(invoice) -> bytes:
    """The printable invoice (A4, Indonesian) as PDF bytes."""
    return _invoice_document(invoice).write_pdf()


def render_invoice_pdfs(invoices) -> list[bytes]:
    """One PDF per invoice, in order (the month's ZIP and the CLI export use this)."""
    return [render_invoice_pdf(invoice) for invoice in invoices]


def render_credit_note_pdf(credit_note) -> bytes:
    """The printable credit note (NOTA KREDIT) as PDF bytes."""
    return _layout(_render_html("billing/pdf/credit_note.html", credit_note, credit_note.invoice)).write_pdf()


def render_invoices_pdf(invoices) -> bytes:
    """One PDF of many invoices, each starting on a new page with its own page numbers."""
    documents = [_invoice_document(invoice) for invoice in invoices]
    if not documents:
        raise ValueError("no invoices to print")
    return documents[0].copy([page for document in documents for page in document.pages]).write_pdf()


def invoice_file_name(invoice) -> str:
    """``0001-INV-2026-11.pdf`` from the number; a draft is ``DRAF-<WAPU code>.pdf``."""
    if invoice.number:
        stem = invoice.number.replace("/", "-").replace("\\", "-")
    else:
        wapu = invoice.wapu
        stem = f"{DRAFT_NAME}-{wapu.code if wapu is not None else invoice.wapu_id or invoice.id}"
    return f"{stem}.pdf"


def invoices_zip(invoices) -> bytes:
    """A ZIP of one PDF per invoice."""
    invoices = list(invoices)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for invoice, pdf in zip(invoices, render_invoice_pdfs(invoices), strict=True):
            archive.writestr(invoice_file_name(invoice), pdf)
    return buffer.getvalue()
