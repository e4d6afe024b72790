"""Billing exports as pure functions: invoice and credit-note PDFs (WeasyPrint) and workbooks (openpyxl).

Views and commands only send the bytes. The printed documents are Indonesian whatever the user's
language. WeasyPrint loads nothing but the app's own static files (``StaticFilesOnly``).
"""

import mimetypes
import threading
from datetime import date
from itertools import chain, islice
from pathlib import Path
from urllib.parse import unquote, urlsplit

from babel.dates import format_date
from flask import current_app, render_template
from flask_babel import force_locale
from num2words import num2words
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse, path2url

from scm.billing.models import LineKind, MinimumPolicy
from scm.core.formatting import WIB, format_day, format_number, format_rupiah
from scm.core.xlsx import text_cell, written
from scm.registration.validators import format_npwp
from scm.stamping.models import document_type_label

STYLESHEET = "css/invoice-pdf.css"
DRAFT_NAME = "DRAF"
POLICY_LABELS = {
    MinimumPolicy.REPORT: "Kekurangan hanya dilaporkan",
    MinimumPolicy.TRUE_UP: "Kekurangan ditagihkan (true-up)",
}

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


def terbilang(amount: int, lang: str = "id") -> str:
    """Whole Rupiah in words: ``Dua belas juta ... rupiah`` (Indonesian, the invoice's legal words), or
    ``Twelve million ... rupiah`` with ``lang="en"`` for an English reader."""
    words = f"{num2words(int(amount), lang=lang)} rupiah"
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
        """The file's bytes; any other URL raises ValueError (WeasyPrint logs it and skips the resource)."""
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
    """A printed billing document's HTML, in Indonesian whatever the user's language."""
    with force_locale("id"):
        return render_template(
            template, doc=doc, invoice=invoice, npwp=format_npwp, day=format_day, month=month_label,
            rupiah=format_rupiah, number=format_number, words=terbilang, describe=line_description,
            policy=lambda value: POLICY_LABELS[MinimumPolicy(value)])


def invoice_html(invoice) -> str:
    """The invoice as printed, in HTML (Indonesian); the stylesheet is applied by the renderer."""
    return _render_html("billing/pdf/invoice.html", invoice, invoice)


def credit_note_html(credit_note) -> str:
    """The credit note as printed, in HTML (Indonesian)."""
    return _render_html("billing/pdf/credit_note.html", credit_note, credit_note.invoice)


def receipt_html(payment) -> str:
    """The receipt (kuitansi) of a payment as printed, in HTML (Indonesian)."""
    return _render_html("billing/pdf/receipt.html", payment, payment.invoice)


def _layout(html: str):
    """Lay out one HTML document with the cached stylesheet and fonts: a WeasyPrint Document."""
    fetcher, stylesheet, font_config = _pdf_setup()
    return HTML(string=html, base_url=fetcher.base_url, url_fetcher=fetcher).render(
        stylesheets=[stylesheet], font_config=font_config)


def html_to_pdf(html: str) -> bytes:
    """Print HTML with the billing stylesheet and fonts (A4); nothing but static files is loaded."""
    return _layout(html).write_pdf()


def render_invoice_pdf(invoice) -> bytes:
    """The printable invoice (A4, Indonesian) as PDF bytes."""
    return html_to_pdf(invoice_html(invoice))


def render_credit_note_pdf(credit_note) -> bytes:
    """The printable credit note (NOTA KREDIT) as PDF bytes."""
    return html_to_pdf(credit_note_html(credit_note))


STATEMENT_KINDS = {"invoice": "Faktur", "credit_note": "Nota kredit", "payment": "Pembayaran",
                   "reversal": "Pembayaran dibatalkan"}
AGING_LABELS = {"not_due": "Belum jatuh tempo", "0_30": "0–30 hari", "31_60": "31–60 hari", "61_90": "61–90 hari",
                "over_90": "> 90 hari"}


def statement_html(statement) -> str:
    """A WAPU's statement of account as printed, in HTML (Indonesian)."""
    with force_locale("id"):
        return render_template(
            "billing/pdf/statement.html", doc=statement, invoice=statement.parties, npwp=format_npwp,
            day=format_day, rupiah=format_rupiah, words=terbilang, kinds=STATEMENT_KINDS, aging=AGING_LABELS)


def render_statement_pdf(statement) -> bytes:
    """The statement of account (REKAPITULASI TAGIHAN) as PDF bytes, in the invoice's look."""
    return html_to_pdf(statement_html(statement))


def render_receipt_pdf(payment) -> bytes:
    """The printable receipt (KUITANSI) of a payment as PDF bytes."""
    return html_to_pdf(receipt_html(payment))


def invoice_file_name(invoice) -> str:
    """``0001-INV-2026-11.pdf`` from the number; a draft is ``DRAF-<WAPU code>.pdf``."""
    if invoice.number:
        stem = invoice.number.replace("/", "-").replace("\\", "-")
    else:
        wapu = invoice.wapu
        stem = f"{DRAFT_NAME}-{wapu.code if wapu is not None else invoice.wapu_id or invoice.id}"
    return f"{stem}.pdf"


# ------------------------------------------------------------------------------------ XLSX

RUPIAH = '"Rp"#,##0'
FORMATS = {"text": None, "count": "#,##0", "money": RUPIAH, "date": "dd/mm/yyyy", "datetime": "dd/mm/yyyy hh:mm:ss"}
BOLD, TITLE = Font(bold=True), Font(bold=True, size=13)
WRAP = Alignment(wrap_text=True, vertical="top")
SUMMARY_COLUMNS = (  # (header, width, kind), in the order of SUMMARY_KEYS
    ("Kode WAPU", 12, "text"), ("Nama WAPU", 36, "text"), ("NPWP", 22, "text"), ("Terpakai", 11, "count"),
    ("Minimum", 11, "count"), ("Kekurangan", 12, "count"), ("Jumlah tagihan", 17, "money"),
    ("Nomor faktur", 26, "text"), ("Status", 16, "text"), ("Jatuh tempo", 12, "date"))
SUMMARY_KEYS = ("wapu_code", "wapu_name", "npwp", "used", "minimum", "shortfall", "amount", "invoice_number",
                "status", "due_date")
SHORTFALL_COLUMNS = (("Kode WAPU", 12, "text"), ("Nama WAPU", 36, "text"), ("NPWP", 22, "text"),
                     ("Minimum", 11, "count"), ("Terpakai", 11, "count"), ("Kekurangan", 12, "count"))
SHORTFALL_KEYS = ("wapu_code", "wapu_name", "npwp", "minimum", "used", "shortfall")
STAMP_COLUMNS = (("Kode WAPU", 12, "text"), ("Nomor seri", 26, "text"), ("Waktu pembubuhan (WIB)", 21, "datetime"),
                 ("Jenis dokumen", 22, "text"), ("Nomor dokumen", 26, "text"), ("Sumber", 10, "text"))
EXCEL_MAX_ROWS = 1_048_576


def _styled(sheet, value=None, kind="text", font=None):
    """A write-only cell for ``value`` with the number format of ``kind``; user text never a formula."""
    cell = text_cell(sheet, value)
    if FORMATS[kind]:
        cell.number_format = FORMATS[kind]
    if font is not None:
        cell.font = font
    if isinstance(value, str) and "\n" in value:
        cell.alignment = WRAP
    return cell


def _write_table(sheet, columns, rows, title=None) -> int:
    """Stream a table: optional title row, bold frozen header, auto-filter; returns the data row count.

    Plain values go straight to ``append`` (the bare write-only speed); formatted columns reuse one
    styled cell each, refilled per row (a write-only sheet serialises a row as it is appended); text
    starting with "=" becomes a text cell, never a formula.
    """
    header_row = 2 if title else 1
    for index, (_, width, _) in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = f"A{header_row + 1}"
    if title:
        sheet.append([_styled(sheet, title, font=TITLE)])
    sheet.append([_styled(sheet, header, font=BOLD) for header, _, _ in columns])
    styled = [(index, _styled(sheet, kind=kind)) for index, (_, _, kind) in enumerate(columns) if FORMATS[kind]]
    plain = [index for index, (_, _, kind) in enumerate(columns) if not FORMATS[kind]]
    count = 0
    for values in rows:
        row = list(values)
        for index, cell in styled:
            cell.value = row[index]
            if cell.data_type == "f":
                cell.data_type = "s"
            row[index] = cell
        for index in plain:
            if isinstance(row[index], str) and row[index].startswith("="):
                row[index] = text_cell(sheet, row[index])
        sheet.append(row)
        count += 1
    sheet.auto_filter.ref = f"A{header_row}:{get_column_letter(len(columns))}{header_row + count}"
    return count


def _stamp_values(row):
    """A stamp tuple as written: the UTC stamping time becomes a naive WIB datetime, the type its name."""
    wapu_code, serial, stamped_at, document_type, document_number, source = row
    return (wapu_code, serial, stamped_at.astimezone(WIB).replace(tzinfo=None), document_type_label(document_type),
            document_number, source)


def _stamp_sheets(workbook, stamp_rows, max_rows):
    """Rincian, Rincian 2, ...: every stamp in order, a new sheet (header repeated) when one is full."""
    rows = iter(stamp_rows)
    number, end = 1, object()
    while True:
        first = next(rows, end)
        if first is end and number > 1:
            return
        sheet = workbook.create_sheet("Rincian" if number == 1 else f"Rincian {number}")
        chunk = chain(() if first is end else (first,), islice(rows, max_rows - 2))
        _write_table(sheet, STAMP_COLUMNS, map(_stamp_values, chunk))
        number += 1


def _summary_values(row):
    """A summary dict as the Ringkasan row it becomes (NPWP formatted)."""
    values = [row[key] for key in SUMMARY_KEYS]
    values[2] = format_npwp(values[2])
    return values


def _saved(workbook) -> bytes:
    """The workbook's bytes, saved through a temporary file (one copy in memory, not two)."""
    return written(workbook.save)


def _month_workbook(period, summary_rows, stamp_rows, max_rows_per_sheet):
    """The month's write-only workbook, its rows already streamed to temporary files."""
    if not 2 <= max_rows_per_sheet <= EXCEL_MAX_ROWS:
        raise ValueError(f"max_rows_per_sheet must be between 2 and {EXCEL_MAX_ROWS}")
    workbook = Workbook(write_only=True)
    workbook.properties.title = f"Pemakaian e-Meterai {month_label(period)}"
    _write_table(workbook.create_sheet("Ringkasan"), SUMMARY_COLUMNS, map(_summary_values, summary_rows),
                 title=f"Ringkasan pemakaian dan tagihan e-Meterai — {month_label(period)}")
    _stamp_sheets(workbook, stamp_rows, max_rows_per_sheet)
    return workbook


def write_month_workbook(target, period: date, summary_rows, stamp_rows, max_rows_per_sheet=EXCEL_MAX_ROWS):
    """The month's workbook — Ringkasan (one row per WAPU) and Rincian sheets of every stamp — written
    to ``target`` (a path or binary file): memory stays flat at any size."""
    _month_workbook(period, summary_rows, stamp_rows, max_rows_per_sheet).save(target)


def build_shortfall_xlsx(period: date, rows) -> bytes:
    """The month-end report of WAPUs below their minimum."""
    workbook = Workbook(write_only=True)
    values = ([row[key] if key != "npwp" else format_npwp(row[key]) for key in SHORTFALL_KEYS] for row in rows)
    _write_table(workbook.create_sheet("Kekurangan"), SHORTFALL_COLUMNS, values,
                 title=f"Kekurangan pemakaian minimum — {month_label(period)}")
    return _saved(workbook)


STATEMENT_COLUMNS = (("Tanggal", 12, "date"), ("Jenis", 14, "text"), ("Nomor", 26, "text"),
                     ("Atas faktur", 26, "text"), ("Tagihan", 16, "money"), ("Pengurang", 16, "money"),
                     ("Saldo", 16, "money"))


def build_statement_xlsx(statement) -> bytes:
    """The statement of account as a workbook: its lines between the opening and closing balances,
    and the aging of what is open at the end of the range."""
    workbook = Workbook(write_only=True)
    rows = [(statement.start, "Saldo awal", "", "", None, None, statement.opening)]
    rows += [(line.day, STATEMENT_KINDS[line.kind], line.number, line.invoice_number, line.debit or None,
              line.credit or None, line.balance) for line in statement.lines]
    rows.append((statement.end, "Saldo akhir", "", "", statement.total_debit, statement.total_credit,
                 statement.closing))
    title = (f"Rekapitulasi tagihan {statement.wapu.code} · {statement.wapu.name} · "
             f"{format_day(statement.start)} s.d. {format_day(statement.end)}")
    _write_table(workbook.create_sheet("Rekapitulasi"), STATEMENT_COLUMNS, rows, title=title)
    _write_table(workbook.create_sheet("Umur piutang"), (("Umur", 22, "text"), ("Jumlah", 18, "money")),
                 [(AGING_LABELS[key], amount) for key, amount in statement.aging.items()],
                 title=f"Umur piutang per {format_day(statement.end)}")
    return _saved(workbook)


def _invoice_header_rows(invoice):
    """(label, value, kind) rows of the header block of the invoice sheet."""
    return (
        ("Nomor faktur", invoice.number or "DRAF — belum diterbitkan", "text"),
        ("Tanggal terbit", invoice.issue_date, "date"),
        ("Periode tagihan", month_label(invoice.period), "text"),
        ("Jatuh tempo", invoice.due_date, "date"),
        ("Nomor kontrak", invoice.contract_number, "text"),
        (None, None, "text"),
        ("Penjual", invoice.seller_name, "text"),
        ("Alamat penjual", invoice.seller_address, "text"),
        ("NPWP penjual", format_npwp(invoice.seller_npwp), "text"),
        ("Pembeli (WAPU)", invoice.buyer_name, "text"),
        ("Alamat pembeli", invoice.buyer_address, "text"),
        ("NPWP pembeli", format_npwp(invoice.buyer_npwp), "text"),
    )


def _invoice_footer_rows(invoice):
    """(label, value, kind) rows under the lines: totals, terbilang, minimum use, payment."""
    rows = [("Subtotal", invoice.subtotal, "money")]
    if invoice.ppn_base or invoice.ppn_amount:
        rows.append((f"PPN {invoice.ppn_rate}% atas biaya layanan (DPP {format_rupiah(invoice.ppn_base)}) — "
                     "dipungut sendiri oleh WAPU, tidak termasuk total", invoice.ppn_amount, "money"))
    return rows + [
        ("Total tagihan", invoice.total_due, "money"),
        ("Terbilang", terbilang(invoice.total_due), "text"),
        (None, None, "text"),
        ("Terpakai", invoice.used, "count"),
        ("Minimum bulanan", invoice.minimum, "count"),
        ("Kekurangan", invoice.shortfall, "count"),
        ("Ketentuan kontrak", POLICY_LABELS[MinimumPolicy(invoice.minimum_policy)], "text"),
        (None, None, "text"),
        ("Bank", invoice.bank_name, "text"),
        ("Nomor rekening", invoice.bank_account_number, "text"),
        ("Atas nama", invoice.bank_account_name, "text"),
        ("Berita transfer", "Cantumkan nomor faktur pada berita transfer", "text"),
    ]


def build_invoice_xlsx(invoice) -> bytes:
    """One sheet for the WAPU's finance staff: header block, lines, totals, terbilang, payment."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Faktur")
    for letter, width in zip("ABCDE", (24, 52, 12, 16, 18), strict=True):
        sheet.column_dimensions[letter].width = width
    with force_locale("id"):
        sheet.append([_styled(sheet, "FAKTUR TAGIHAN / INVOICE", font=TITLE)])
        for label, value, kind in _invoice_header_rows(invoice):
            sheet.append([_styled(sheet, label, font=BOLD), _styled(sheet, value, kind)])
        sheet.append([])
        sheet.append([_styled(sheet, header, font=BOLD)
                      for header in ("No.", "Uraian", "Kuantitas", "Harga satuan", "Jumlah")])
        for index, line in enumerate(invoice.lines, start=1):
            sheet.append([_styled(sheet, index), _styled(sheet, line_description(line)),
                          _styled(sheet, line.quantity, "count"), _styled(sheet, line.unit_price, "money"),
                          _styled(sheet, line.amount, "money")])
        sheet.append([])
        for label, value, kind in _invoice_footer_rows(invoice):
            bold = BOLD if label == "Total tagihan" else None
            sheet.append([_styled(sheet, label, font=BOLD), _styled(sheet, value, kind, font=bold)])
    return _saved(workbook)
