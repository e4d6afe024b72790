"""PR and PO pages: lists, forms, detail with the allowed buttons, decisions."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from scm.auth.decorators import roles_required
from scm.auth.models import WAPU_ROLES, Role
from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.views import field_error, paginate, show_decision_error, within_wib_days
from scm.extensions import db
from scm.procurement import bp, services
from scm.procurement.forms import PO_STATES, PR_STATES, DecisionForm, ListFilterForm, PurchaseRequestForm
from scm.procurement.models import PurchaseOrder, PurchaseRequest, po_decision_role


def _filtered(model, states, stmt):
    form = ListFilterForm.for_states(states, request.args)
    if form.validate():
        if form.state.data:
            stmt = stmt.where(model.state == form.state.data)
        stmt = stmt.where(*within_wib_days(model.created_at, form.date_from.data, form.date_to.data))
    return form, stmt


# ----------------------------------------------------------------------------- purchase requests


@bp.route("/purchase-requests")
@roles_required(*WAPU_ROLES)
def purchase_requests():
    """The WAPU's purchase requests, filtered by state and date."""
    stmt = scope_query(select(PurchaseRequest), PurchaseRequest, current_user).options(
        joinedload(PurchaseRequest.created_by)).order_by(PurchaseRequest.id.desc())
    form, stmt = _filtered(PurchaseRequest, PR_STATES, stmt)
    return render_template("procurement/pr_list.html", page=paginate(stmt), form=form,
                           block_reason=services.ordering_block_reason(current_user.wapu))


def _save_pr(form, pr=None):
    """Create or update from the form; 'submit' in the form data also submits it."""
    submit = "submit" in request.form
    try:
        with unit_of_work():
            if pr is None:
                pr = services.create_purchase_request(current_user.wapu, current_user, quantity=form.quantity.data,
                                                      needed_by=form.needed_by.data, purpose=form.purpose.data,
                                                      submit=submit)
            else:
                pr = db.session.get(PurchaseRequest, pr.id)
                services.update_purchase_request(pr, current_user, quantity=form.quantity.data, needed_by=form.needed_by.data,
                                                 purpose=form.purpose.data, submit=submit)
            pr_id = pr.id
    except ValidationErrors as error:
        for name, message in error.errors.items():
            field_error(form, ServiceError(message, field=name))
        return None
    except ServiceError as error:
        field_error(form, error)
        return None
    flash(_("The purchase request was submitted to your supervisor.") if submit
          else _("The purchase request was saved as a draft."), "success")
    return redirect(url_for("procurement.purchase_request", pr_id=pr_id))


@bp.route("/purchase-requests/new", methods=["GET", "POST"])
@roles_required(Role.WAPU_STAFF)
def new_purchase_request():
    """STAFF raises a purchase request."""
    form = PurchaseRequestForm()
    if form.validate_on_submit():
        done = _save_pr(form)
        if done:
            return done
    return render_template("procurement/pr_form.html", form=form, pr=None,
                           block_reason=services.ordering_block_reason(current_user.wapu),
                           max_quantity=current_app.config["PR_MAX_QUANTITY"])


@bp.route("/purchase-requests/<int:pr_id>/edit", methods=["GET", "POST"])
@roles_required(Role.WAPU_STAFF)
def edit_purchase_request(pr_id):
    """STAFF edits a draft or returned purchase request."""
    pr = get_scoped_or_404(PurchaseRequest, pr_id, current_user)
    if not pr.can("edit", current_user):
        flash(_("This purchase request can no longer be edited."), "warning")
        return redirect(url_for("procurement.purchase_request", pr_id=pr_id))
    form = PurchaseRequestForm(obj=pr if request.method == "GET" else None)
    if form.validate_on_submit():
        done = _save_pr(form, pr)
        if done:
            return done
    return render_template("procurement/pr_form.html", form=form, pr=pr,
                           block_reason=services.ordering_block_reason(pr.wapu),
                           max_quantity=current_app.config["PR_MAX_QUANTITY"])


@bp.route("/purchase-requests/<int:pr_id>")
@roles_required(*WAPU_ROLES)
def purchase_request(pr_id):
    """A purchase request with its timeline and the buttons the user may press."""
    pr = get_scoped_or_404(PurchaseRequest, pr_id, current_user)
    return _pr_page(pr, DecisionForm())


def _pr_page(pr, form, status=200):
    actions = [a for a in ("edit", "submit", "cancel", "approve", "return", "reject", "order")
               if pr.can(a, current_user)]
    deciding = any(a in actions for a in ("approve", "return", "reject"))
    return render_template("procurement/pr_detail.html", pr=pr, form=form, actions=actions,
                           block_reason=services.ordering_block_reason(pr.wapu),
                           on_behalf_of=services.pr_on_behalf_of(pr, current_user) if deciding else None), status


@bp.route("/purchase-requests/<int:pr_id>/<any(submit, cancel, approve, reject, return):action>", methods=["POST"])
@roles_required(Role.WAPU_STAFF, Role.WAPU_SPV)
def purchase_request_action(pr_id, action):
    """Submit or cancel (STAFF); approve, reject or return (SPV, reason for the last two)."""
    pr = get_scoped_or_404(PurchaseRequest, pr_id, current_user)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _pr_page(pr, form, 400)
    try:
        with unit_of_work():
            pr = db.session.get(PurchaseRequest, pr_id)
            if action == "submit":
                services.submit_purchase_request(pr, current_user)
            elif action == "cancel":
                services.cancel_purchase_request(pr, current_user)
            else:
                services.decide_purchase_request(pr, current_user, action=action, comment=form.comment.data or "")
    except ServiceError as error:
        show_decision_error(form, error)
        return _pr_page(db.session.get(PurchaseRequest, pr_id), form, 409)
    flash({"submit": _("Submitted to your supervisor."), "cancel": _("The purchase request was cancelled."),
           "approve": _("The purchase request was approved."), "reject": _("The purchase request was rejected."),
           "return": _("The purchase request was returned for revision.")}[action], "success")
    return redirect(url_for("procurement.purchase_request", pr_id=pr_id))


@bp.route("/purchase-requests/<int:pr_id>/order", methods=["GET", "POST"])
@roles_required(Role.WAPU_STAFF)
def order(pr_id):
    """Turn an approved PR into a PO: a preview with the frozen price, then confirm."""
    pr = get_scoped_or_404(PurchaseRequest, pr_id, current_user)
    form = DecisionForm()
    if not pr.can("order", current_user):
        flash(_("Only an approved purchase request can become a purchase order."), "warning")
        return redirect(url_for("procurement.purchase_request", pr_id=pr_id))
    if form.validate_on_submit():
        try:
            with unit_of_work():
                po = services.create_purchase_order(db.session.get(PurchaseRequest, pr_id), current_user)
                po_id = po.id
        except ServiceError as error:
            flash(str(error.message), "danger")
        else:
            flash(_("The purchase order was sent to the distributor."), "success")
            return redirect(url_for("procurement.purchase_order", po_id=po_id))
    price = services.unit_price_for(pr.wapu)
    return render_template("procurement/po_preview.html", pr=pr, form=form, unit_price=price,
                           total=price * pr.quantity, block_reason=services.ordering_block_reason(pr.wapu))


# ----------------------------------------------------------------------------- purchase orders


@bp.route("/purchase-orders")
@login_required
def purchase_orders():
    """Purchase orders: the WAPU's own, or all of them for the distributor (its review queue)."""
    stmt = scope_query(select(PurchaseOrder), PurchaseOrder, current_user).options(
        joinedload(PurchaseOrder.wapu), joinedload(PurchaseOrder.created_by)).order_by(PurchaseOrder.id.desc())
    form, stmt = _filtered(PurchaseOrder, PO_STATES, stmt)
    return render_template("procurement/po_list.html", page=paginate(stmt), form=form)


@bp.route("/purchase-orders/<int:po_id>")
@login_required
def purchase_order(po_id):
    """A purchase order with its timeline; the distributor SPV decides here."""
    po = get_scoped_or_404(PurchaseOrder, po_id, current_user)
    return _po_page(po, DecisionForm())


def _po_page(po, form, status=200):
    decisions = {a: po_decision_role(po, a, current_user) for a in ("approve", "reject")}
    actions = [a for a, decision in decisions.items() if decision is not None]
    on_behalf_of = next((d[1] for d in decisions.values() if d is not None), None)
    return render_template("procurement/po_detail.html", po=po, form=form, actions=actions,
                           on_behalf_of=on_behalf_of), status


@bp.route("/purchase-orders/<int:po_id>/<any(approve, reject):action>", methods=["POST"])
@roles_required(Role.DIST_SPV, Role.DIST_ADMIN)
def purchase_order_action(po_id, action):
    """Approve (issues the quota, exactly once) or reject (reason required) a PO: a distributor
    SPV, or whoever stands in for one today (the service checks)."""
    po = get_scoped_or_404(PurchaseOrder, po_id, current_user)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _po_page(po, form, 400)
    try:
        with unit_of_work():
            services.decide_purchase_order(db.session.get(PurchaseOrder, po_id), current_user, action=action,
                                           comment=form.comment.data or "")
    except ServiceError as error:
        show_decision_error(form, error)
        return _po_page(db.session.get(PurchaseOrder, po_id), form, 409)
    flash(_("The purchase order was approved and the quota issued.") if action == "approve"
          else _("The purchase order was rejected."), "success")
    return redirect(url_for("procurement.purchase_order", po_id=po_id))

