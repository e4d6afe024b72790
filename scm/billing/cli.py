"""``flask billing ...``: run a month's billing, issue its drafts, export it."""

import zipfile
from pathlib import Path

import click
from flask.cli import AppGroup

from scm.billing import documents, exports, reports, services
from scm.billing.models import DocumentKind
from scm.billing.usage import month_key, parse_month
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.formatting import format_rupiah, today_wib

billing_cli = AppGroup("billing", help="Monthly billing and its exports.")


def _month(_ctx, _param, value):
    try:
        return parse_month(value)
    except ServiceError as error:
        raise click.BadParameter(str(error.message)) from None


MONTH = click.option("--month", required=True, callback=_month, help="The billing month, YYYY-MM (WIB).")


@billing_cli.command("run")
@MONTH
def run(month):
    """Draft the month's invoices (a re-run creates nothing new; drafts are refreshed)."""
    try:
        with click.progressbar(length=1, label=f"Billing {month_key(month)}", show_pos=True) as bar:
            def progress(done, total):
                bar.length = total
                bar.update(done - bar.pos)

            with unit_of_work():
                result = services.run_billing(month, source="cli", progress=progress)
                counts = result.created, result.refreshed, result.unchanged
    except ServiceError as error:
        raise click.ClickException(str(error.message)) from None
    click.echo("{}: {} created, {} refreshed, {} unchanged.".format(month_key(month), *counts))


@billing_cli.command("issue")
@MONTH
def issue(month):
    """Issue every draft invoice of the month (gapless numbers)."""
    try:
        with unit_of_work():
            issued = [(i.number, i.wapu.code, i.total_due) for i in services.issue_drafts(month, None)]
    except ServiceError as error:
        raise click.ClickException(str(error.message)) from None
    for number, code, total in issued:
        click.echo(f"{number}  {code}  {format_rupiah(total)}")
    click.echo(f"{len(issued)} invoice(s) issued.")


@billing_cli.command("export")
@MONTH
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (created if missing).")
def export(month, out):
    """Write the month workbook, every issued invoice as PDF (as stored: rendered once), and a ZIP of
    them into OUT."""
    out.mkdir(parents=True, exist_ok=True)
    key = month_key(month)
    workbook = out / f"tagihan-{key}.xlsx"
    exports.write_month_workbook(workbook, month, reports.month_overview(month, today_wib()), reports.stamp_rows(month))
    click.echo(f"wrote {workbook}")
    invoices = [invoice for invoice in reports.month_invoices(month) if not invoice.is_draft]
    if not invoices:
        click.echo(f"No invoice of {key} has been issued yet: no PDFs written.")
        return
    with click.progressbar(length=1, label="Storing the invoice PDFs", show_pos=True) as bar:
        def progress(done, total):
            bar.length = total
            bar.update(done - bar.pos)

        documents.store_missing_invoice_pdfs(invoices, progress=progress)
    pdfs = documents.stored_pdfs(DocumentKind.INVOICE, [invoice.id for invoice in invoices])
    archive = out / f"faktur-{key}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for invoice in invoices:
            name = exports.invoice_file_name(invoice)
            (out / name).write_bytes(pdfs[invoice.id])
            bundle.writestr(name, pdfs[invoice.id])
    click.echo(f"wrote {len(invoices)} invoice PDF(s) and {archive}")
