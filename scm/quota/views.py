"""Quota pages: a WAPU's balance and ledger; every WAPU's balance for the distributor."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, Role, User
from scm.auth.scoping import get_scoped_or_404
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.views import field_error, paginate
from scm.extensions import db
from scm.quota import bp, services
from scm.quota.forms import AdjustForm
from scm.quota.models import QuotaAccount
from scm.registration.models import Wapu

# A WAPU without an account yet counts as zero on every database (NULLs sort differently).
SORTS = {
    "code": Wapu.code, "name": Wapu.name,
    **{name: func.coalesce(getattr(QuotaAccount, name), 0) for name in ("available", "reserved", "consumed", "issued")},
}


@bp.route("/quota")
@login_required
def my_quota():
    """A WAPU user's own balance and ledger."""
    if current_user.is_distributor:
        return redirect(url_for("quota.accounts"))
    return _ledger_page(current_user.wapu)


@bp.route("/quota/wapus/<int:wapu_id>", methods=["GET", "POST"])
@login_required
def wapu_quota(wapu_id):
    """One WAPU's balance and ledger (its own users, or the distributor); the admin may adjust."""
    wapu = get_scoped_or_404(Wapu, wapu_id, current_user)
    form = AdjustForm() if current_user.role == Role.DIST_ADMIN else None
    if request.method == "POST":
        if form is None:
            return render_template("errors/error.html", code=403), 403
        if form.validate_on_submit():
            try:
                with unit_of_work():
                    services.adjust_quota(wapu_id, current_user, delta=form.delta.data, reason=form.reason.data)
            except ServiceError as error:
                field_error(form, error)
            else:
                flash(_("The quota was adjusted."), "success")
                return redirect(url_for("quota.wapu_quota", wapu_id=wapu_id))
    return _ledger_page(wapu, form)


def _ledger_page(wapu, form=None):
    """Balances and the movements (stamps reported together on one row, signed, with the balance after)."""
    page = paginate(services.movements(wapu.id), rows=True)
    actor_ids = {row.actor_id for row in page.items if row.actor_id}
    actors = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(actor_ids))).scalars()} if actor_ids else {}
    return render_template("quota/ledger.html", wapu=wapu, account=services.account_for(wapu.id), page=page,
                           form=form, actors=actors, sign=services.AVAILABLE_SIGN)


@bp.route("/quota/accounts")
@roles_required(*DISTRIBUTOR_ROLES)
def accounts():
    """Every WAPU's balance on one page, sortable."""
    sort = request.args.get("sort", "code")
    column = SORTS.get(sort, Wapu.code)
    descending = request.args.get("dir") == "desc"
    stmt = (select(Wapu, QuotaAccount).outerjoin(QuotaAccount, QuotaAccount.wapu_id == Wapu.id)
            .order_by(column.desc() if descending else column.asc(), Wapu.code))
    return render_template("quota/accounts.html", rows=db.session.execute(stmt).all(), sort=sort,
                           descending=descending)
