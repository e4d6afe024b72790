"""Ordering quota: PR -> WAPU SPV approval -> PO -> distributor approval -> quota issued."""

from datetime import date

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from scm.auth.models import Role
from scm.auth.services import active_users
from scm.core.database import next_number, utcnow
from scm.core.errors import ServiceError, TransitionError, ValidationErrors
from scm.core.formatting import to_wib, today_wib
from scm.core.services import notify, record_audit, register_audit_action, register_notification
from scm.extensions import db
from scm.people.services import stand_in_mandate, substitutes_for
from scm.procurement.models import (
    PO_WORKFLOW,
    PR_DECISIONS,
    PR_WORKFLOW,
    SPV,
    POState,
    PRState,
    PurchaseOrder,
    PurchaseOrderEvent,
    PurchaseRequest,
    PurchaseRequestEvent,
    po_decision_role,
    pr_allows,
)
from scm.quota.services import issue_quota
from scm.registration.models import InactiveReason

register_audit_action("purchase_request.create", _l("PR created"), _l("%(quantity)s e-Meterai"))
register_audit_action("purchase_request.edit", _l("PR edited"), _l("%(quantity)s e-Meterai"))
register_audit_action("purchase_order.submit", _l("PO submitted"), _l("%(quantity)s × %(unit_price)s, from %(request)s"),
                      unit_price="rupiah")
register_notification("pr_submitted", _l("Purchase request %(number)s for %(quantity)s e-Meterai waits for your approval."))
register_notification("pr_approved", _l("Your purchase request %(number)s was approved: you can now raise the PO."))
register_notification("pr_rejected", _l("Your purchase request %(number)s was rejected: %(comment)s"))
register_notification("pr_returned", _l("Your purchase request %(number)s was returned for revision: %(comment)s"))
register_notification("po_submitted", _l("Purchase order %(number)s from %(wapu)s for %(quantity)s e-Meterai waits for approval."))
register_notification("po_approved", _l("Purchase order %(number)s was approved: %(quantity)s e-Meterai were added to your quota."))
register_notification("po_rejected", _l("Purchase order %(number)s was rejected: %(comment)s"))


def ordering_block_reason(wapu, day=None):
    """Why ``wapu`` may not submit PRs or POs today (None when it may)."""
    day = day or today_wib()
    reason = wapu.inactive_reason(day)
    if reason == InactiveReason.SUSPENDED:
        if wapu.status_reason:
            return _l("Your company is suspended (%(reason)s); contact the distributor.", reason=wapu.status_reason)
        return _l("Your company is suspended; contact the distributor.")
    if reason is not None:
        if any(c.start_date > day and c.last_day >= c.start_date for c in wapu.contracts):
            return _l("Your contract has not started yet; you can order from its start date.")
        return _l("Your contract has expired; contact the distributor to renew it.")
    return None


def _check_can_order(wapu):
    reason = ordering_block_reason(wapu)
    if reason:
        raise ServiceError(reason, code="wapu_not_active")


def _same_wapu(obj, actor, column="wapu_id"):
    if actor.wapu_id != getattr(obj, column):
        raise ServiceError(_l("This belongs to another WAPU."), code="forbidden")


def _clean_pr(quantity, needed_by, purpose):
    errors = {}
    maximum = current_app.config["PR_MAX_QUANTITY"]
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= maximum:
        errors["quantity"] = _l("Enter a whole number from 1 to %(max)s.", max=f"{maximum:,}".replace(",", "."))
    if needed_by is not None and needed_by < today_wib():
        errors["needed_by"] = _l("The date cannot be in the past.")
    purpose = (purpose or "").strip()
    if len(purpose) > 1000:
        errors["purpose"] = _l("At most %(n)d characters.", n=1000)
    if errors:
        raise ValidationErrors(errors)
    return quantity, needed_by, purpose


def create_purchase_request(wapu, actor, *, quantity: int, needed_by: date | None = None, purpose: str = "",
                            submit=False):
    """STAFF of ``wapu`` creates a PR, saved as a draft or submitted to the SPV at once."""
    if actor.role != Role.WAPU_STAFF:
        raise ServiceError(_l("Only WAPU staff raise purchase requests."), code="forbidden")
    _same_wapu(wapu, actor, "id")
    quantity, needed_by, purpose = _clean_pr(quantity, needed_by, purpose)
    year = to_wib(utcnow()).year
    pr = PurchaseRequest(
        wapu_id=wapu.id, number=f"PR/{wapu.code}/{year}/{next_number(f'pr-{wapu.code}-{year}'):05d}",
        quantity=quantity, needed_by=needed_by, purpose=purpose, state=PRState.DRAFT, created_by_id=actor.id,
    )
    db.session.add(pr)
    db.session.flush()
    db.session.add(PurchaseRequestEvent(purchase_request_id=pr.id, action="create", from_state=None,
                                        to_state=PRState.DRAFT, actor_id=actor.id))
    record_audit(actor, "purchase_request.create", pr, f"{pr.number}: {quantity}", details={"quantity": quantity})
    if submit:
        submit_purchase_request(pr, actor)
    return pr


def update_purchase_request(pr, actor, *, quantity: int, needed_by: date | None, purpose: str, submit=False):
    """STAFF edits a draft or returned PR (and may submit it again)."""
    _same_wapu(pr, actor)
    if not pr_allows(pr, "edit", actor):
        raise ServiceError(_l("This purchase request can no longer be edited."), code="transition_not_allowed")
    pr.quantity, pr.needed_by, pr.purpose = _clean_pr(quantity, needed_by, purpose)
    record_audit(actor, "purchase_request.edit", pr, f"{pr.number}: {pr.quantity}", details={"quantity": pr.quantity})
    db.session.flush()
    if submit:
        submit_purchase_request(pr, actor)
    return pr


def submit_purchase_request(pr, actor):
    """Send a PR to the WAPU's SPVs for approval."""
    _same_wapu(pr, actor)
    _check_can_order(pr.wapu)
    PR_WORKFLOW.apply(pr, "submit", actor, actor.role)
    spvs = active_users({Role.WAPU_SPV}, wapu_id=pr.wapu_id)
    notify([*spvs, *substitutes_for(spvs)], "pr_submitted", f"/purchase-requests/{pr.id}",
           number=pr.number, quantity=pr.quantity)


def cancel_purchase_request(pr, actor):
    _same_wapu(pr, actor)
    PR_WORKFLOW.apply(pr, "cancel", actor, actor.role)


def pr_on_behalf_of(pr, actor):
    """The supervisor ``actor`` would decide ``pr`` for today, standing in (None: in their own right)."""
    return stand_in_mandate(actor, SPV, wapu_id=pr.wapu_id, exclude_ids={pr.created_by_id})


def decide_purchase_request(pr, actor, *, action: str, comment: str = ""):
    """The WAPU's SPV approves, rejects or returns a PR; never one they created."""
    if action not in PR_DECISIONS:
        raise ServiceError(_l("Unknown decision."))
    _same_wapu(pr, actor)
    if actor.id == pr.created_by_id:
        raise ServiceError(_l("You cannot decide on a purchase request you created."), code="forbidden")
    # A supervisor standing in for another today decides on that supervisor's behalf.
    principal = pr_on_behalf_of(pr, actor)
    PR_WORKFLOW.apply(pr, action, actor, actor.role, comment=comment, on_behalf_of=principal)
    kind = {"approve": "pr_approved", "reject": "pr_rejected", "return": "pr_returned"}[action]
    notify([pr.created_by], kind, f"/purchase-requests/{pr.id}", number=pr.number, comment=comment.strip())


def unit_price_for(wapu) -> int:
    """Price of one e-Meterai for ``wapu`` today: its contract's, else the distributor default."""
    contract = wapu.current_contract
    if contract is not None and contract.unit_price is not None:
        return contract.unit_price
    return current_app.config["DEFAULT_UNIT_PRICE"]


def create_purchase_order(pr, actor):
    """STAFF turns an approved PR into a PO (price frozen now) and sends it to the distributor."""
    _same_wapu(pr, actor)
    if actor.role != Role.WAPU_STAFF:
        raise ServiceError(_l("Only WAPU staff raise purchase orders."), code="forbidden")
    _check_can_order(pr.wapu)
    PR_WORKFLOW.apply(pr, "order", actor, actor.role)
    wapu = pr.wapu
    price = unit_price_for(wapu)
    year = to_wib(utcnow()).year
    po = PurchaseOrder(
        wapu_id=wapu.id, purchase_request_id=pr.id,
        number=f"PO/{wapu.code}/{year}/{next_number(f'po-{wapu.code}-{year}'):05d}",
        quantity=pr.quantity, unit_price=price, total=pr.quantity * price, state=POState.SUBMITTED,
        created_by_id=actor.id,
    )
    db.session.add(po)
    db.session.flush()
    db.session.add(PurchaseOrderEvent(purchase_order_id=po.id, action="submit", from_state=None,
                                      to_state=POState.SUBMITTED, actor_id=actor.id))
    record_audit(actor, "purchase_order.submit", po, f"{po.number}: {po.quantity} x {price} from {pr.number}",
                 details={"quantity": po.quantity, "unit_price": price, "request": pr.number})
    distributor_spvs = active_users({Role.DIST_SPV})
    notify([*distributor_spvs, *substitutes_for(distributor_spvs)], "po_submitted", f"/purchase-orders/{po.id}",
           number=po.number, wapu=wapu.name, quantity=po.quantity)
    return po


def decide_purchase_order(po, actor, *, action: str, comment: str = ""):
    """DIST_SPV approves (quota is issued in the same transaction, exactly once) or rejects a PO."""
    if action not in ("approve", "reject"):
        raise ServiceError(_l("Unknown decision."))
    decision = po_decision_role(po, action, actor)
    if decision is None and actor.is_distributor and actor.id != po.created_by_id:
        # Not a supervisor, and standing in for none today: the workflow says why it is refused.
        decision = (actor.role, None)
    if decision is None:
        raise TransitionError(_l("Your role may not do this."), code="forbidden")
    role, principal = decision
    PO_WORKFLOW.apply(po, action, actor, role, comment=comment, on_behalf_of=principal)
    po.decided_at = utcnow()
    if action == "approve":
        issue_quota(po.wapu_id, actor, quantity=po.quantity, key=f"po-{po.id}", reference=po.number)
    recipients = [u for u in po.wapu.users if u.role in (Role.WAPU_STAFF, Role.WAPU_SPV, Role.WAPU_FIN)]
    notify(recipients, "po_approved" if action == "approve" else "po_rejected", f"/purchase-orders/{po.id}",
           number=po.number, quantity=po.quantity, comment=(comment or "").strip())
    db.session.flush()


def dashboard_panel(user, today) -> dict:
    """The ordering part of a dashboard: what waits for this user, recent orders, why ordering is blocked."""
    if user.is_distributor:
        waiting_pos = db.session.execute(
            select(PurchaseOrder).where(PurchaseOrder.state == POState.SUBMITTED)
            .options(joinedload(PurchaseOrder.wapu)).order_by(PurchaseOrder.id).limit(10)
        ).scalars().all()
        waiting_count = db.session.execute(
            select(func.count()).select_from(PurchaseOrder).where(PurchaseOrder.state == POState.SUBMITTED)
        ).scalar()
        return {"waiting_pos": waiting_pos, "waiting_po_count": waiting_count}

    if user.role == Role.WAPU_SPV:
        waiting = select(PurchaseRequest).where(PurchaseRequest.wapu_id == user.wapu_id,
                                                PurchaseRequest.state == PRState.SUBMITTED,
                                                PurchaseRequest.created_by_id != user.id)
    elif user.role == Role.WAPU_STAFF:
        waiting = select(PurchaseRequest).where(PurchaseRequest.wapu_id == user.wapu_id,
                                                PurchaseRequest.state.in_([PRState.APPROVED, PRState.RETURNED]))
    else:
        waiting = None
    waiting_prs = db.session.execute(
        waiting.options(joinedload(PurchaseRequest.created_by)).order_by(PurchaseRequest.id).limit(10)
    ).scalars().all() if waiting is not None else []
    recent_prs = db.session.execute(
        select(PurchaseRequest).where(PurchaseRequest.wapu_id == user.wapu_id)
        .order_by(PurchaseRequest.id.desc()).limit(5)
    ).scalars().all()
    recent_pos = db.session.execute(
        select(PurchaseOrder).where(PurchaseOrder.wapu_id == user.wapu_id).order_by(PurchaseOrder.id.desc()).limit(5)
    ).scalars().all()
    return {"wapu": user.wapu, "waiting_prs": waiting_prs, "recent_prs": recent_prs, "recent_pos": recent_pos,
            "block_reason": ordering_block_reason(user.wapu, today)}
