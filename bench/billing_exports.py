"""Billing export benchmark: the month workbook and the invoice PDFs against their raw limits, same run.

    .venv/bin/python bench/billing_exports.py [--quick] [--rows 1000000] [--invoices 400]

(a) workbook time: ``write_month_workbook`` (what the month's workbook task and ``flask billing
    export`` call: written to a file) over ``--rows`` lazily generated stamp rows against a bare
    openpyxl write-only loop appending the same values (WIB-naive datetimes, no header, no formats,
    one sheet) through a file the same way. Target: app <= 1.3 x bare.
(b) workbook memory: peak RSS of ``write_month_workbook`` at ``--rows`` and at a tenth of it.
    Target: ratio <= 1.2. Every workbook measurement of (a) and (b) runs in a fresh subprocess
    (rows generated there, never a list).
(c) PDF: amortised time per invoice of ``render_invoice_pdf`` (what the issue task renders once and
    stores: template, cached stylesheet and fonts, one document per invoice)
    over ``--invoices`` transient invoices, against a naive ``HTML(string=...).write_pdf()`` of the
    same invoice with the stylesheet linked (parsed and its fonts loaded every time), interleaved
    over 4 rounds. Target: app <= 0.35 x naive. Every PDF is checked (size, pages, and pdftotext
    for the number, total and terbilang on a sample). When the target is missed a cProfile follows.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stamps import interleaved, print_profile  # noqa: E402

TARGET_TIME = 1.3  # (a) app / bare
TARGET_MEMORY = 1.2  # (b) peak at rows / peak at rows/10
TARGET_PDF = 0.35  # (c) app / naive, per invoice
PDF_ROUNDS = 4
NAIVE_SHARE = 4  # the naive side renders every 4th invoice (it is the slow one)
MAX_PDF_BYTES = 150_000
PERIOD = date(2026, 11, 1)
LINK = '<link rel="stylesheet" href="css/invoice-pdf.css"></head>'


# ---------------------------------------------------------------------------------- workbook


def stamp_rows(n):
    """``n`` stamps of November 2026, generated one at a time (the app streams them from the DB)."""
    start = datetime(2026, 10, 31, 17, tzinfo=timezone.utc)  # 1 November 00:00 WIB
    for i in range(n):
        yield (f"W{i % 400:04d}", f"{10_000_000_000_000_000_000 + i:022d}", start + timedelta(seconds=2 * i),
               "surat_perjanjian", f"INV/2026/11/{i:07d}", "api" if i % 10 else "import")


def summary_rows():
    return [dict(wapu_code=f"W{i:04d}", wapu_name=f"PT Pemungut Contoh {i} Tbk", npwp=f"{i:09d}123456",
                 used=2500, minimum=1000, shortfall=0, amount=25_000_000, invoice_number=f"{i:04d}/INV/XI/2026",
                 status="terbit", due_date=date(2026, 12, 15)) for i in range(400)]


def bare_workbook(n) -> bytes:
    """The raw limit: openpyxl write-only, the same values appended as plain tuples."""
    from openpyxl import Workbook

    from scm.core.formatting import WIB

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Rincian")
    for code, serial, stamped_at, kind, number, source in stamp_rows(n):
        sheet.append((code, serial, stamped_at.astimezone(WIB).replace(tzinfo=None), kind, number, source))
    with tempfile.TemporaryFile() as file:
        workbook.save(file)
        file.seek(0)
        return file.read()


def probe(kind, n):
    """One measurement in this (fresh) process: time, peak RSS and output size, as a JSON line."""
    from scm.billing.exports import write_month_workbook

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "bare":
        size = len(bare_workbook(n))
    else:
        with tempfile.NamedTemporaryFile(suffix=".xlsx") as file:
            write_month_workbook(file.name, PERIOD, summary_rows(), stamp_rows(n))
            size = os.path.getsize(file.name)
    print(json.dumps({"kind": kind, "rows": n, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                      "size": size, "rss_before_kb": before,
                      "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def run_probe(kind, n):
    out = subprocess.run([sys.executable, __file__, "--probe", kind, str(n)], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def verdict(ratio, target):
    return "met" if ratio <= target else "NOT MET"


def bench_workbook(rows):
    """(a) and (b): every measurement in its own subprocess."""
    print(f"\n== (a) workbook time: {rows:,} stamp rows, each side in a fresh process ==")
    bare, app = run_probe("bare", rows), run_probe("file", rows)
    ratio = app["cpu"] / bare["cpu"]
    for name, r in (("bare openpyxl loop", bare), ("write_month_workbook", app)):
        print(f"  {name:<22} cpu {r['cpu']:7.1f} s  wall {r['wall']:7.1f} s  {r['size'] / 1e6:6.1f} MB  "
              f"{rows / r['cpu']:>9,.0f} rows/s (cpu)")
    print(f"  ratio app/bare = {ratio:.3f} cpu ({app['wall'] / bare['wall']:.3f} wall)   "
          f"target <= {TARGET_TIME}: {verdict(ratio, TARGET_TIME)}")
    results = [("(a) workbook time, app/bare", ratio, TARGET_TIME)]

    small = max(rows // 10, 1)
    print(f"\n== (b) workbook peak memory (RSS of a fresh process): {rows:,} vs {small:,} rows ==")
    for kind, label in (("file", "write_month_workbook -> file"),):
        big = app
        little = run_probe(kind, small)
        ratio = big["peak_kb"] / little["peak_kb"]
        print(f"  {label}: peak {little['peak_kb'] / 1024:6.1f} MB at {small:,} rows, "
              f"{big['peak_kb'] / 1024:6.1f} MB at {rows:,} (after imports {big['rss_before_kb'] / 1024:.1f} MB; "
              f"output {big['size'] / 1e6:.1f} MB)")
        print(f"      ratio = {ratio:.3f}   target <= {TARGET_MEMORY}: {verdict(ratio, TARGET_MEMORY)}")
        results.append((f"(b) workbook memory, {kind}", ratio, TARGET_MEMORY))
    return results


# --------------------------------------------------------------------------------------- PDF


def make_invoices(n):
    """``n`` issued invoices of November 2026, built in memory (no database): 3 to 5 lines each."""
    from scm.billing.models import Invoice, InvoiceLine, InvoiceState, LineKind, MinimumPolicy

    invoices = []
    for i in range(n):
        used = 1000 + 37 * i
        invoice = Invoice(
            period=PERIOD, state=InvoiceState.ISSUED, number=f"{i + 1:04d}/INV-SCM/XI/2026",
            issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15), seller_name="PT Distribusi Meterai Nusantara",
            seller_address="Jl. Jend. Sudirman Kav. 52-53\nJakarta Selatan 12190", seller_npwp="012345678901000",
            bank_name="Bank Mandiri", bank_account_number="123-00-0987654-3",
            bank_account_name="PT Distribusi Meterai Nusantara", buyer_name=f"PT Pemungut Contoh {i + 1} Tbk",
            buyer_address=f"Jl. M.H. Thamrin No. {i + 1}\nJakarta Pusat 10310", buyer_npwp=f"{i:09d}123456",
            contract_number=f"KTR/2026/{i + 1:03d}", used=used, minimum=1000, shortfall=0,
            minimum_policy=MinimumPolicy.TRUE_UP, unit_price=10_000, ppn_rate=12, ppn_base=0, ppn_amount=0)
        lines = [(LineKind.USAGE, PERIOD, used, 10_000)]
        if i % 3 == 0:
            lines.append((LineKind.LATE_USAGE, date(2026, 10, 1), 5 + i % 40, 10_000))
        if i % 2 == 0:
            lines.append((LineKind.SERVICE_FEE, PERIOD, used, 250))
            invoice.ppn_base = used * 250 * 11 // 12
            invoice.ppn_amount = invoice.ppn_base * 12 // 100
        for position, (kind, month, quantity, price) in enumerate(lines, start=1):
            invoice.lines.append(InvoiceLine(position=position, kind=kind, usage_month=month, quantity=quantity,
                                             unit_price=price, amount=quantity * price))
        invoice.subtotal = invoice.total_due = sum(line.amount for line in invoice.lines)
        invoices.append(invoice)
    return invoices


def naive_pdfs(invoices, folder):
    """The naive way: one ``HTML(string=...).write_pdf()`` per invoice, stylesheet and fonts loaded each time."""
    from weasyprint import HTML

    from scm.billing.exports import StaticFilesOnly, invoice_html

    out = []
    for invoice in invoices:
        fetcher = StaticFilesOnly(folder)
        html = invoice_html(invoice).replace("</head>", LINK, 1)
        out.append(HTML(string=html, base_url=fetcher.base_url, url_fetcher=fetcher).write_pdf())
    return out


def check_pdfs(invoices, pdfs, sample):
    """Every PDF small and one page; on a sample, pdftotext shows the number, total and terbilang."""
    from scm.billing.exports import terbilang
    from scm.core.formatting import format_rupiah

    problems = [f"{inv.number}: {len(pdf):,} bytes" for inv, pdf in zip(invoices, pdfs, strict=True)
                if not pdf.startswith(b"%PDF") or len(pdf) >= MAX_PDF_BYTES]
    have_poppler = bool(shutil.which("pdftotext") and shutil.which("pdfinfo"))
    with tempfile.TemporaryDirectory() as tmp:
        for invoice, pdf in list(zip(invoices, pdfs, strict=True))[::sample] if have_poppler else []:
            path = Path(tmp) / "invoice.pdf"
            path.write_bytes(pdf)
            text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True).stdout
            info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True).stdout
            text = " ".join(text.split())
            for wanted in (invoice.number, format_rupiah(invoice.total_due), terbilang(invoice.total_due)):
                if wanted not in text:
                    problems.append(f"{invoice.number}: {wanted!r} not in the text")
            if re.search(r"^Pages:\s+(\d+)", info, re.M).group(1) != "1":
                problems.append(f"{invoice.number}: not one page")
    sizes = sorted(len(pdf) for pdf in pdfs)
    print(f"  checked {len(pdfs)} PDFs: {sizes[0] / 1000:.1f}-{sizes[-1] / 1000:.1f} kB each"
          + ("" if have_poppler else " (pdftotext/pdfinfo not installed: text not checked)")
          + (f"; PROBLEMS: {problems[:5]}" if problems else "; all correct"))
    return not problems


def bench_pdf(count):
    """(c) render_invoice_pdf vs naive write_pdf per invoice, interleaved in rounds."""
    from flask import current_app

    from scm import create_app
    from scm.billing.exports import render_invoice_pdf

    def render_invoice_pdfs(invoices):
        return [render_invoice_pdf(invoice) for invoice in invoices]

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.sqlite3", SECRET_KEY="bench",
                         UPLOAD_FOLDER=tmp, MAIL_SEND_ON_COMMIT=False)
        with app.app_context():
            folder = current_app.static_folder
            invoices = make_invoices(count)
            rounds = min(PDF_ROUNDS, count)
            chunks = [invoices[r::rounds] for r in range(rounds)]
            naive_chunks = [chunk[::NAIVE_SHARE] for chunk in chunks]
            print(f"\n== (c) invoice PDFs: {count} invoices through render_invoice_pdfs, "
                  f"{sum(map(len, naive_chunks))} naive, {rounds} interleaved rounds ==")
            render_invoice_pdfs(invoices[:1]), naive_pdfs(invoices[:1], folder)  # warm up both
            outputs = {}
            totals = interleaved({
                "app": lambda r: outputs.setdefault(r, render_invoice_pdfs(chunks[r])),
                "naive": lambda r: naive_pdfs(naive_chunks[r], folder),
            }, rounds)
            app_each = totals["app"] / count
            naive_each = totals["naive"] / sum(map(len, naive_chunks))
            ordered = [(inv, pdf) for r in range(rounds) for inv, pdf in zip(chunks[r], outputs[r], strict=True)]
            check_pdfs([inv for inv, _ in ordered], [pdf for _, pdf in ordered], sample=max(count // 20, 1))
            ratio = app_each / naive_each
            print(f"  render_invoice_pdfs   {app_each * 1000:7.1f} ms per invoice  ({totals['app']:.1f} s for {count})")
            print(f"  naive write_pdf       {naive_each * 1000:7.1f} ms per invoice")
            print(f"  ratio app/naive = {ratio:.3f}   target <= {TARGET_PDF}: {verdict(ratio, TARGET_PDF)}")
            if ratio > TARGET_PDF:
                print_profile("render_invoice_pdfs, 20 invoices", lambda: render_invoice_pdfs(invoices[:20]))
    return [("(c) PDF per invoice, app/naive", ratio, TARGET_PDF)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows and 40 invoices")
    parser.add_argument("--rows", type=int, help="stamp rows of the workbook (default 1,000,000)")
    parser.add_argument("--invoices", type=int, help="invoices to print (default 400)")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe[0], int(args.probe[1]))
        return 0
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    count = args.invoices or (40 if args.quick else 400)
    started = time.perf_counter()
    print(f"SCM Meterai billing export benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {rows:,} rows, {count} invoices")
    results = bench_workbook(rows) + bench_pdf(count)
    print("\n== Summary ==")
    for name, ratio, target in results:
        print(f"  {name:<34} ratio {ratio:.3f}  target <= {target:.2f}  {verdict(ratio, target)}")
    print(f"  total time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
