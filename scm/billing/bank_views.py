"""Bank statement pages: upload, review the proposed matches, apply them, un-match a line.

Distributor finance (DIST_FIN) uploads, applies and un-matches; the distributor's admin and
supervisor may look. The check of a statement runs in the request (a statement is small: at most
``bank.MAX_LINES`` lines); a bad file shows every error with its row and changes nothing.
"""

import os

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.billing import bank, bp
from scm.billing.forms import BankUploadForm, ConfirmForm, UnmatchForm
from scm.billing.models import BankLine, BankLineStatus, BankMatch, BankStatement
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.extensions import db

RECENT = 50


def _upload_form(posted=False):
    form = BankUploadForm() if posted else BankUploadForm(formdata=None)
    form.bank_format.choices = list(bank.FORMATS.items())
    return form


def _page(form=None, error=None, status=200):
    lines = bank.open_lines()
    proposals = bank.propose(lines, bank.open_invoices())
    decided = db.session.execute(
        select(BankLine).where(BankLine.status != BankLineStatus.OPEN)
        .options(selectinload(BankLine.matches).selectinload(BankMatch.payment),
                 selectinload(BankLine.matches).selectinload(BankMatch.invoice))
        .order_by(BankLine.decided_at.desc(), BankLine.id.desc()).limit(RECENT)).scalars().all()
    statements = db.session.execute(
        select(BankStatement).order_by(BankStatement.id.desc()).limit(20)).scalars().all()
    debits = db.session.scalar(select(func.count()).select_from(BankLine).where(
        BankLine.status == BankLineStatus.OPEN, BankLine.credit.is_(False)))
    return render_template("billing/bank/index.html", form=form or _upload_form(), error=error,
                           proposals=proposals, decided=decided, statements=statements, debits=debits,
                           confirm=ConfirmForm(), unmatch=UnmatchForm(formdata=None), formats=bank.FORMATS,
                           banks=bank.BANKS, allocation_text=bank.allocation_text,
                           can_act=current_user.role == Role.DIST_FIN), status


@bp.route("/billing/bank")
@roles_required(*DISTRIBUTOR_ROLES)
def bank_statements():
    """Upload a statement; the credit lines to review with their proposed matches; lines decided."""
    return _page()


@bp.route("/billing/bank/upload", methods=["POST"])
@roles_required(Role.DIST_FIN)
def bank_upload():
    """Read and check the statement; store its lines not already known; back to the review."""
    form = _upload_form(posted=True)
    if not form.validate_on_submit():
        return _page(form, status=422)
    data = form.statement.data.stream.read(bank.MAX_BYTES + 1)
    name = os.path.basename(form.statement.data.filename or "")[:200]
    try:
        parsed = bank.read_statement(data, form.bank_format.data, account=form.account.data or "", name=name)
    except bank.BankFileError as error:
        return _page(form, error=error, status=422)
    with unit_of_work():
        statement = bank.store_statement(parsed, current_user)
        read, new = statement.lines_read, statement.lines_new
    flash(_("%(read)s lines read, %(new)s new; %(known)s were already known from an earlier upload.",
            read=read, new=new, known=read - new), "success")
    return redirect(url_for("billing.bank_statements"))


@bp.route("/billing/bank/apply", methods=["POST"])
@roles_required(Role.DIST_FIN)
def bank_apply():
    """Apply the decisions ticked on the review (accept with the invoices given, or ignore) at once."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    decisions = []
    try:
        for raw in request.form.getlist("line"):
            if not raw.isdigit():
                abort(400)
            action = request.form.get(f"action-{raw}", "")
            if action == "accept":
                decisions.append(bank.Decision(int(raw), "accept",
                                               bank.parse_allocations(request.form.get(f"alloc-{raw}", ""))))
            elif action == "ignore":
                decisions.append(bank.Decision(int(raw), "ignore"))
        if not decisions:
            flash(_("Nothing was chosen: tick Accept or Ignore on the lines to apply."), "warning")
            return redirect(url_for("billing.bank_statements"))
        with unit_of_work():
            counts = bank.apply_decisions(decisions, current_user)
    except ServiceError as error:
        flash(_("Nothing was applied: %(problem)s", problem=error.message), "danger")
        return redirect(url_for("billing.bank_statements"))
    flash(_("%(matched)s lines matched (%(payments)s payments recorded), %(ignored)s ignored.",
            matched=counts.get("matched", 0), payments=counts.get("payments", 0),
            ignored=counts.get("ignored", 0)), "success")
    return redirect(url_for("billing.bank_statements"))


@bp.route("/billing/bank/lines/<int:line_id>/unmatch", methods=["POST"])
@roles_required(Role.DIST_FIN)
def bank_unmatch(line_id):
    """Un-match a line: its payments are reversed with the reason given; the line is open again."""
    db.get_or_404(BankLine, line_id)
    form = UnmatchForm()
    if not form.validate_on_submit():
        flash(_("Give the reason for the reversal (at most 500 characters)."), "danger")
        return redirect(url_for("billing.bank_statements"))
    try:
        with unit_of_work():
            reversed_count = bank.unmatch_line(line_id, current_user, reason=form.reason.data)
    except ServiceError as error:
        flash(error.message, "danger")
    else:
        flash(_("The line is open again; %(n)s payment(s) reversed.", n=reversed_count), "success")
    return redirect(url_for("billing.bank_statements"))
