"""Explicit state machines: one table of (state, action) -> target state and the roles allowed.

``StateMachine.apply`` is the only way a workflow entity changes state: it checks the table,
moves the state with a conditional UPDATE (so two people acting at once cannot both succeed),
writes a who/when/comment event row and an audit row.
"""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from scm.core.errors import TransitionError
from scm.core.services import record_audit, register_audit_action
from scm.extensions import db


@dataclass(frozen=True)
class Transition:
    source: object
    action: str
    target: object
    roles: frozenset
    comment_required: bool = False


class StateMachine:
    def __init__(self, name, transitions, event_model, event_fk, action_labels=None):
        """``action_labels`` names each action's audit entry (``{"approve": _l("PR approved")}``)."""
        self.name = name
        self.table = {(t.source, t.action): t for t in transitions}
        self.event_model = event_model
        self.event_fk = event_fk
        states = type(transitions[0].source)
        for action, label in (action_labels or {}).items():
            register_audit_action(f"{name}.{action}", label, _l("%(from)s → %(to)s"), **{"from": states, "to": states})

    def transition(self, obj, action):
        return self.table.get((obj.state, action))

    def can(self, obj, action, role) -> bool:
        t = self.transition(obj, action)
        return t is not None and role in t.roles

    def actions_for(self, obj, role):
        return [t.action for (state, _), t in self.table.items() if state == obj.state and role in t.roles]

    def apply(self, obj, action, actor, role, comment=None, summary="", on_behalf_of=None):
        """Move ``obj`` along ``action`` as ``actor`` acting in ``role``; returns the event row.

        ``on_behalf_of``: the supervisor a stand-in decides for (recorded on the event, when its
        table has an ``on_behalf_of_id`` column, and in the audit log)."""
        t = self.transition(obj, action)
        if t is None:
            raise TransitionError(
                _l("This action is no longer possible: the item is already %(state)s.",
                   state=obj.state.label if hasattr(obj.state, "label") else obj.state)
            )
        if role not in t.roles:
            raise TransitionError(_l("Your role may not do this."), code="forbidden")
        comment = (comment or "").strip()
        if t.comment_required and not comment:
            raise TransitionError(_l("A reason is required."), field="comment", code="reason_required")
        model = type(obj)
        result = db.session.execute(
            update(model)
            .where(model.id == obj.id, model.state == t.source)
            .values(state=t.target)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # someone else moved it first: say where it is now
            current = db.session.execute(select(model.state).where(model.id == obj.id)).scalar_one()
            set_committed_value(obj, "state", current)
            raise TransitionError(
                _l("This action is no longer possible: the item is already %(state)s.",
                   state=current.label if hasattr(current, "label") else current),
                code="conflict",
            )
        set_committed_value(obj, "state", t.target)
        event = self.event_model(
            **{self.event_fk: obj.id},
            action=action,
            from_state=t.source,
            to_state=t.target,
            actor_id=getattr(actor, "id", None),
            comment=comment or None,
        )
        if on_behalf_of is not None and hasattr(self.event_model, "on_behalf_of_id"):
            event.on_behalf_of_id = on_behalf_of.id
        db.session.add(event)
        details = {"from": t.source.value, "to": t.target.value, **({"note": comment} if comment else {})}
        if on_behalf_of is not None:
            details["on_behalf_of"] = on_behalf_of.email
        record_audit(actor, f"{self.name}.{action}", obj,
                     (summary or f"{t.source} -> {t.target}" + (f": {comment}" if comment else ""))
                     + (f" (on behalf of {on_behalf_of.email})" if on_behalf_of is not None else ""),
                     details=details)
        db.session.flush()
        return event
