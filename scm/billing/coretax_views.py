"""Coretax e-Faktur pages: the month's export and the batches kept (``DIST_FIN``), and the faktur
number Coretax assigned, recorded on the invoice page. The XML is built by ``scm.billing.coretax``."""

from io import BytesIO

from flask import abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.billing import bp, coretax
from scm.billing.forms import CoretaxExportForm, FakturNumberForm
from scm.billing.models import CoretaxBatch
from scm.billing.usage import add_months, month_key, month_of, parse_month
from scm.billing.views import _invoice_for, _invoice_form_page
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.formatting import format_month, today_wib
from scm.core.uploads import stored_bytes
from scm.core.views import field_error
from scm.extensions import db


@bp.context_processor
def _coretax_on_invoice_page():
    """What the invoice page's tax-invoice box needs (``billing/coretax/_invoice_faktur.html``)."""
    return {"faktur_number_of": coretax.faktur_number_of, "has_tax_invoice": coretax.has_tax_invoice,
            "new_faktur_form": lambda: FakturNumberForm(formdata=None)}


def _page(form, incomplete=(), status=200):
    return render_template("billing/coretax/batches.html", form=form, batches=coretax.batches(),
                           incomplete=incomplete), status


@bp.route("/billing/coretax")
@roles_required(Role.DIST_FIN)
def coretax_batches():
    """The Coretax exports made so far, newest first, and the form to export a month."""
    form = CoretaxExportForm(formdata=None, month=month_key(add_months(month_of(today_wib()), -1)))
    return _page(form)


@bp.route("/billing/coretax/export", methods=["POST"])
@roles_required(Role.DIST_FIN)
def coretax_export():
    """Export a month's tax invoices as one Coretax XML, kept as a batch; or say what is missing."""
    form = CoretaxExportForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        period = parse_month(form.month.data)
        with unit_of_work():
            export = coretax.export_month(period, current_user)
            batch_id, count = export.batch.id, len(export.invoices)
    except coretax.CoretaxIncomplete as error:
        return _page(form, incomplete=error.wapus, status=422)
    except ServiceError as error:
        field_error(form, error)
        return _page(form, status=422)
    flash(_("%(count)s tax invoices of %(month)s were exported (batch %(batch)s).", count=count,
            month=format_month(period), batch=batch_id), "success")
    return redirect(url_for("billing.coretax_batches", _anchor=f"batch-{batch_id}"))


@bp.route("/billing/coretax/batches/<int:batch_id>.xml")
@roles_required(Role.DIST_FIN)
def coretax_batch_file(batch_id):
    """A batch's XML, the very bytes first exported."""
    batch = db.get_or_404(CoretaxBatch, batch_id)
    data = stored_bytes(batch.file)
    if data is None:
        abort(404)
    return send_file(BytesIO(data), mimetype="application/xml", as_attachment=True,
                     download_name=f"coretax-efaktur-{month_key(batch.period)}-{batch.id}.xml")


@bp.route("/billing/invoices/<int:invoice_id>/faktur-number", methods=["POST"])
@roles_required(Role.DIST_FIN)
def faktur_number(invoice_id):
    """Record the faktur number Coretax assigned to the invoice's tax invoice."""
    _invoice_for(invoice_id)
    form = FakturNumberForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                row = coretax.record_faktur_number(invoice_id, current_user, number=form.faktur_number.data)
                number = row.number
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(_("Faktur number %(number)s was recorded.", number=number), "success")
            return redirect(url_for("billing.invoice", invoice_id=invoice_id))
    return _invoice_form_page(invoice_id, form, "faktur_form")


