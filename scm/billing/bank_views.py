"""Bank statement pages: upload, review the proposed matches, apply them, un-match a line.

Distributor finance (DIST_FIN) uploads, applies and un-matches; the distributor's admin and
supervisor may look. An uploaded statement is held and read in the queue (``billing.bank_import``):
its task's page then leads back to the review, or to every error with its row (nothing changed).
"""

import os

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.billing import bank, bp
from scm.billing.forms import BankUploadForm, ConfirmForm, UnmatchForm
from scm.billing.models import BankLine, BankLineStatus, BankMatch, BankStatement
from scm.core.background import start_task
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.models import BackgroundTask, TaskState
from scm.core.uploads import Upload, hold_upload
from scm.extensions import db
from scm.stamping.usage_import import RowError

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
    """Hold the statement and read it in the queue; its task's page leads to the review (or the errors)."""
    form = _upload_form(posted=True)
    if not form.validate_on_submit():
        return _page(form, status=422)
    data = form.statement.data.stream.read(bank.MAX_BYTES + 1)
    name = os.path.basename(form.statement.data.filename or "")[:200]
    try:
        bank.check_size(data)  # an empty or too large file is refused at once, never held
    except bank.BankFileError as error:
        return _page(form, error=error, status=422)
    token = hold_upload(Upload(data, name, "text/plain"), bank.HELD_KIND)
    with unit_of_work():
        task = start_task("billing.bank_import", current_user, key=token, params={
            "token": token, "bank_format": form.bank_format.data, "account": form.account.data or "", "name": name,
            "locale": str(get_locale())})
    return redirect(url_for("home.task", task_id=task.id))


@bp.route("/billing/bank/imports/<int:task_id>")
@roles_required(Role.DIST_FIN)
def bank_import_errors(task_id):
    """Why a statement was refused: every error with its row; nothing was changed."""
    task = db.session.get(BackgroundTask, task_id)
    if task is None or task.kind != "billing.bank_import" or task.state != TaskState.DONE or "errors" not in task.result:
        abort(404)
    found = task.result
    error = bank.BankFileError([RowError(e["row"], e["column"], e["message"], e["value"]) for e in found["errors"]],
                               message=found["message"])
    return _page(error=error, status=422)


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
