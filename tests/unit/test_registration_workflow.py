"""The registration state machine: every state × action × role, allowed or refused."""

import pytest

from scm.auth.models import REVIEWER_ROLES, Role
from scm.core.errors import TransitionError
from scm.registration.models import APPLICANT, REGISTRATION_WORKFLOW
from scm.registration.models import RegistrationState as S

ACTIONS = ["approve", "reject", "send_back", "resubmit"]
ACTORS = [*Role, APPLICANT]
EXPECTED = {
    (S.SUBMITTED, "approve"): (S.APPROVED, REVIEWER_ROLES),
    (S.SUBMITTED, "reject"): (S.REJECTED, REVIEWER_ROLES),
    (S.SUBMITTED, "send_back"): (S.RETURNED, REVIEWER_ROLES),
    (S.RETURNED, "resubmit"): (S.SUBMITTED, {APPLICANT}),
    (S.RETURNED, "reject"): (S.REJECTED, REVIEWER_ROLES),
}


class Item:
    def __init__(self, state):
        self.state = state


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("actor", ACTORS)
def test_every_state_action_role(state, action, actor):
    expected = EXPECTED.get((state, action))
    item = Item(state)
    allowed = expected is not None and actor in expected[1]
    assert REGISTRATION_WORKFLOW.can(item, action, actor) is allowed
    assert (action in REGISTRATION_WORKFLOW.actions_for(item, actor)) is allowed
    if expected is None:
        with pytest.raises(TransitionError, match="no longer possible"):
            REGISTRATION_WORKFLOW.apply(item, action, None, actor, comment="x")
    elif not allowed:
        with pytest.raises(TransitionError, match="role may not"):
            REGISTRATION_WORKFLOW.apply(item, action, None, actor, comment="x")
    else:
        assert REGISTRATION_WORKFLOW.transition(item, action).target == expected[0]


def test_final_states_allow_nothing():
    for state in (S.APPROVED, S.REJECTED):
        for actor in ACTORS:
            assert REGISTRATION_WORKFLOW.actions_for(Item(state), actor) == []
