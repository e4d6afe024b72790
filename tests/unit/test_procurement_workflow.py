"""PR and PO state machines: every state × action × role, allowed or refused with the right message."""

import pytest

from scm.auth.models import Role
from scm.core.errors import TransitionError
from scm.procurement.models import PO_WORKFLOW, PR_WORKFLOW, POState, PRState

S = Role.WAPU_STAFF
V = Role.WAPU_SPV
D = Role.DIST_SPV
PR_EXPECTED = {
    (PRState.DRAFT, "submit"): (PRState.SUBMITTED, {S}),
    (PRState.DRAFT, "cancel"): (PRState.CANCELLED, {S}),
    (PRState.RETURNED, "submit"): (PRState.SUBMITTED, {S}),
    (PRState.RETURNED, "cancel"): (PRState.CANCELLED, {S}),
    (PRState.SUBMITTED, "approve"): (PRState.APPROVED, {V}),
    (PRState.SUBMITTED, "reject"): (PRState.REJECTED, {V}),
    (PRState.SUBMITTED, "return"): (PRState.RETURNED, {V}),
    (PRState.APPROVED, "order"): (PRState.ORDERED, {S}),
}
PO_EXPECTED = {
    (POState.SUBMITTED, "approve"): (POState.APPROVED, {D}),
    (POState.SUBMITTED, "reject"): (POState.REJECTED, {D}),
}


class Item:
    def __init__(self, state):
        self.state = state


def _check(machine, expected, state, action, role):
    item = Item(state)
    rule = expected.get((state, action))
    allowed = rule is not None and role in rule[1]
    assert machine.can(item, action, role) is allowed
    if rule is None:
        with pytest.raises(TransitionError, match="no longer possible"):
            machine.apply(item, action, None, role, comment="alasan")
    elif not allowed:
        with pytest.raises(TransitionError, match="role may not"):
            machine.apply(item, action, None, role, comment="alasan")
    else:
        assert machine.transition(item, action).target == rule[0]


@pytest.mark.parametrize("state", list(PRState))
@pytest.mark.parametrize("action", ["submit", "cancel", "approve", "reject", "return", "order"])
@pytest.mark.parametrize("role", list(Role))
def test_purchase_request_table(state, action, role):
    _check(PR_WORKFLOW, PR_EXPECTED, state, action, role)


@pytest.mark.parametrize("state", list(POState))
@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("role", list(Role))
def test_purchase_order_table(state, action, role):
    _check(PO_WORKFLOW, PO_EXPECTED, state, action, role)


def test_reasons_are_required_to_reject_and_return():
    for machine, state, action in ((PR_WORKFLOW, PRState.SUBMITTED, "reject"),
                                   (PR_WORKFLOW, PRState.SUBMITTED, "return"),
                                   (PO_WORKFLOW, POState.SUBMITTED, "reject")):
        role = V if machine is PR_WORKFLOW else D
        with pytest.raises(TransitionError, match="reason is required"):
            machine.apply(Item(state), action, None, role, comment="  ")
