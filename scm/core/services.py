"""Core services: the audit log and the email outbox."""

import enum
from datetime import date, datetime, timedelta

from flask import current_app, g, has_request_context, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update

from scm.core.database import after_commit, in_batches, unit_of_work, utcnow
from scm.core.formatting import format_day, format_month, format_number, format_rupiah, format_wib
from scm.core.mail import send_message
from scm.core.models import AuditLog, Notification, OutboxEmail, OutboxState
from scm.extensions import db

MAX_MAIL_ATTEMPTS = 10
STALE_CLAIM = timedelta(minutes=10)
ERASED_BODY = "[erased after delivery]"  # a one-time password's mail, once delivered
PRUNED_BODY = "[removed after the retention period]"  # any sent mail, OUTBOX_RETENTION_DAYS later


def record_audit(actor, action, obj=None, summary="", *, details=None, ref=None, object_type=None, object_id=None,
                 actor_label=None):
    """Append one audit row: who did what to which object, from which IP, when (UTC).

    ``actor`` is a user or None (the public, the system). The client IP is the one the web layer
    put in ``g.client_ip`` for this request (none for commands and jobs): every caller wants it,
    and a service never reads the request itself.

    ``details`` is what happened as data (shown through the text registered for ``action`` with
    :func:`register_audit_action`, in the reader's language); ``summary`` is the same in plain
    English for operators. ``ref`` names the object by its business reference (default: the
    object's ``audit_ref``).
    """
    if obj is not None:
        object_type = object_type or obj.__class__.__name__
        object_id = object_id if object_id is not None else obj.id
    row = AuditLog(
        actor_id=getattr(actor, "id", None),
        actor_label=actor_label or getattr(actor, "email", None) or "system",
        action=action,
        object_type=object_type or "",
        object_id=str(object_id) if object_id is not None else "",
        summary=summary,
        details=details,
        object_ref=str(ref if ref is not None else getattr(obj, "audit_ref", "") or "")[:120],
        ip=g.get("client_ip") if has_request_context() else None,
    )
    db.session.add(row)
    return row


def queue_email(to_address, template, *, sensitive=False, locale="id", send_on_commit=True, **context):
    """Write an email to the outbox, in the caller's transaction; it is sent after commit.

    ``template`` names ``templates/email/<template>.txt``; its first line is the subject.
    """
    with force_locale(locale):
        text = render_template(f"email/{template}.txt", **context)
    subject, _, body = text.strip().partition("\n")
    message = OutboxEmail(  # a header never holds a line break: a CR in a company name must not break the mail
        to_address=to_address, subject=" ".join(subject.split())[:255], body=body.strip() + "\n", sensitive=sensitive
    )
    db.session.add(message)
    db.session.flush()
    if send_on_commit and current_app.config["MAIL_SEND_ON_COMMIT"]:
        message_id = message.id
        after_commit(lambda: deliver_outbox(ids=[message_id]))
    return message


def deliver_outbox(ids=None, limit=100):
    """Send due outbox messages; returns (sent, failed). Safe to run from several processes.

    Each message is claimed with a conditional UPDATE before it is sent, so two senders never
    send the same message; a claim older than ten minutes (a crashed sender) is taken over.
    """
    now = utcnow()
    stmt = select(OutboxEmail.id).where(
        or_(
            (OutboxEmail.state == OutboxState.PENDING) & (OutboxEmail.next_attempt_at <= now),
            (OutboxEmail.state == OutboxState.SENDING) & (OutboxEmail.claimed_at < now - STALE_CLAIM),
        )
    )
    if ids is not None:
        stmt = stmt.where(OutboxEmail.id.in_(ids))
    candidates = db.session.execute(stmt.order_by(OutboxEmail.id).limit(limit)).scalars().all()
    db.session.rollback()
    sent = failed = 0
    for message_id in candidates:
        message = _claim(message_id, now)
        if message is None:
            continue
        try:
            send_message(message.to_address, message.subject, message.body)
        except ValueError as error:  # the message itself is malformed: retrying can never help
            failed += 1
            _mark_failed(message, error, permanent=True)
        except Exception as error:  # any transport failure: keep the message, retry later
            failed += 1
            _mark_failed(message, error)
        else:
            sent += 1
            _mark_sent(message)
    return sent, failed


def _claim(message_id, now):
    """Take one message for sending (or None if another sender has it); one short transaction."""
    with unit_of_work():
        row = db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == message_id)
            .where(
                or_(
                    OutboxEmail.state == OutboxState.PENDING,
                    (OutboxEmail.state == OutboxState.SENDING) & (OutboxEmail.claimed_at < now - STALE_CLAIM),
                )
            )
            .values(state=OutboxState.SENDING, claimed_at=now, attempts=OutboxEmail.attempts + 1)
            .returning(OutboxEmail.id, OutboxEmail.to_address, OutboxEmail.subject, OutboxEmail.body,
                       OutboxEmail.sensitive, OutboxEmail.attempts)
        ).one_or_none()
    return row


def _mark_sent(message):
    values = {"state": OutboxState.SENT, "sent_at": utcnow(), "last_error": None}
    if message.sensitive:
        values["body"] = ERASED_BODY
    with unit_of_work():
        db.session.execute(update(OutboxEmail).where(OutboxEmail.id == message.id).values(**values))


def prune_outbox(before, *, batch=1000) -> int:
    """Remove the body of every mail sent before ``before``; returns how many were removed.

    The row stays (recipient, subject, state, attempts, times): it is the record that the mail went
    out. Pending, sending and failed mail keeps its body, however old, so it can still be sent.
    """
    return in_batches(update(OutboxEmail).values(body=PRUNED_BODY), OutboxEmail.id,
                      OutboxEmail.state == OutboxState.SENT, OutboxEmail.sent_at < before,
                      OutboxEmail.body.not_in((ERASED_BODY, PRUNED_BODY)), batch=batch)


def _mark_failed(message, error, permanent=False):
    gave_up = permanent or message.attempts >= MAX_MAIL_ATTEMPTS
    with unit_of_work():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == message.id)
            .values(
                state=OutboxState.FAILED if gave_up else OutboxState.PENDING,
                next_attempt_at=utcnow() + timedelta(minutes=min(2**message.attempts, 240)),
                last_error=f"{type(error).__name__}: {error}"[:1000],
            )
        )
    current_app.logger.warning("mail to %s not sent (%s); %s", message.to_address, error,
                               "gave up: see `flask mail status`" if gave_up else "will retry")


_NOTIFICATION_TEXTS = {}


def register_notification(kind: str, text) -> None:
    """Declare a notification kind and its (lazy, translatable) text with %(name)s placeholders."""
    _NOTIFICATION_TEXTS[kind] = text


def notification_text(kind: str, params: dict) -> str:
    template = _NOTIFICATION_TEXTS.get(kind)
    if template is None:
        return kind
    shown = {k: format_number(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in params.items()}
    try:
        return str(template) % shown
    except (KeyError, TypeError, ValueError):
        return str(template)


def notify(users, kind: str, link: str = "", **params):
    """Tell each of ``users`` about an event: in the app (the bell) and by email (the outbox)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    seen = set()
    for user in users:
        if user.id in seen or not user.active:
            continue
        seen.add(user.id)
        db.session.add(Notification(user_id=user.id, kind=kind, params=params, link=link))
        with force_locale("id"):
            text = notification_text(kind, params)
        queue_email(user.email, "notification", text=text, link=f"{base}{link}" if link else "", user=user)


# --------------------------------------------------------------------------- audit log texts

_AUDIT_ACTIONS = {}


def register_audit_action(action: str, label, text=None, **formats) -> None:
    """Declare how audit entries of ``action`` read: a (lazy) ``label``, and a ``text`` with
    %(name)s placeholders filled from the entry's details. ``formats`` names how a detail is
    shown: ``"rupiah"``, ``"number"``, ``"signed"``, ``"month"`` ('YYYY-MM'), ``"day"`` (ISO date),
    ``"moment"`` (ISO date-time, shown in WIB)
    or a LabelledEnum class (its member's label); other ints are numbers, other values text.
    A ``note`` detail (a reason typed by a person) follows the text as it was written."""
    _AUDIT_ACTIONS[action] = (label, text, formats)


def audit_actions() -> dict:
    """Every declared action and its label, for the log's filter."""
    return {action: label for action, (label, _, _) in sorted(_AUDIT_ACTIONS.items())}


def audit_action_label(action: str) -> str:
    spec = _AUDIT_ACTIONS.get(action)
    return str(spec[0]) if spec else action


def _format_detail(value, how):
    if value is None:
        return ""
    try:
        if how == "rupiah":
            return format_rupiah(int(value))
        if how == "signed":
            return ("+" if int(value) > 0 else "") + format_number(int(value)).replace("-", "−")
        if how == "month":
            return format_month(date.fromisoformat(f"{value}-01"))
        if how == "day":
            return format_day(date.fromisoformat(value))
        if how == "moment":
            return format_wib(datetime.fromisoformat(value))
        if isinstance(how, type) and issubclass(how, enum.Enum):
            return str(how(value).label)
    except (ValueError, TypeError):
        return str(value)
    if how == "number" or (isinstance(value, int) and not isinstance(value, bool)):
        return format_number(value)
    return str(value)


def audit_text(entry) -> str:
    """What an audit entry says, in the reader's language; its English summary when it has no details."""
    spec = _AUDIT_ACTIONS.get(entry.action)
    if spec is None or entry.details is None:
        return entry.summary
    _, text, formats = spec
    if text is None:  # the action's label says it all
        return entry.details.get("note", "")
    values = {key: _format_detail(value, formats.get(key)) for key, value in entry.details.items()}
    try:
        shown = str(text) % values
    except (KeyError, TypeError, ValueError):
        return entry.summary
    on_behalf_of = entry.details.get("on_behalf_of")
    if on_behalf_of:
        shown = str(_l("%(text)s (on behalf of %(name)s)")) % {"text": shown, "name": on_behalf_of}
    note = entry.details.get("note")
    return f"{shown}: {note}" if note else shown
