"""Usage reports from a file: a CSV or XLSX list of stamps reported after the fact.

Every row is checked before anything changes: a file with any bad row is refused whole, with
every error and its spreadsheet row number (the header is row 1). A valid file is previewed,
held under a random token, then applied in one unit of work through ``ingest_events``, so
importing the same file again changes nothing (each stamp is then a ``duplicate``).

Each row's ``stamped_at`` must lie in its WAPU's stamp time window (``scm.stamping.window``).
Rows older than the look-back are accepted only when the file is read with ``allow_old`` (the
distributor admin, deliberately) and applied with a reason, which the audit entry keeps.
"""

import csv
import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from scm.auth.models import Role
from scm.core.database import utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import WIB, format_number
from scm.core.services import record_audit, register_audit_action
from scm.core.uploads import size_problem
from scm.core.xlsx import TooManyRows, UnsafeWorkbook, xlsx_rows
from scm.extensions import db
from scm.quota.models import QuotaAccount
from scm.registration.models import Contract, Wapu, npwp_forms
from scm.registration.validators import clean_npwp
from scm.stamping.models import Stamp
from scm.stamping.parsing import SERIAL, parse_timestamp
from scm.stamping.services import StampEvent, ingest_events
from scm.stamping.window import BEFORE_CONTRACT, IN_FUTURE, TOO_OLD, StampWindow, lookback_start

HELD_KIND = "usage"  # usage files held between their upload, their check and their apply (on any node)
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
MAX_COLUMNS = 30  # the columns read from an XLSX row (the known ones come first in any real file)
CHUNK = 1000
REQUIRED_COLUMNS = ("serial", "stamped_at", "document_type", "status")
COLUMNS = (*REQUIRED_COLUMNS, "npwp", "wapu_code", "document_number")
STATUSES = ("stamped", "failed")
XLSX_MAGIC = b"PK\x03\x04"
RESULTS = {
    "applied": _l("applied"),
    "duplicate": _l("already recorded"),
    "committed": _l("reservation stamped"),
    "released": _l("reservation refunded"),
    "reservation_released": _l("reservation had expired"),
    "serial_conflict": _l("serial used with other content"),
    "insufficient_quota": _l("not enough quota"),
    IN_FUTURE: _l("stamp time in the future"),
    BEFORE_CONTRACT: _l("stamp time before the first contract"),
    TOO_OLD: _l("stamp time older than the look-back"),
}
REASON_MAX = 500

register_audit_action("usage.import", _l("Usage file imported"), _l(
    "%(rows)s rows: %(applied)s applied, %(duplicate)s already recorded, %(committed)s reservations stamped, "
    "%(released)s refunded; refused: %(insufficient_quota)s for lack of quota, %(serial_conflict)s serial conflicts, "
    "%(reservation_released)s expired reservations"))
register_audit_action("usage.import_old", _l("Usage file imported with stamps older than the look-back"), _l(
    "%(rows)s rows, %(old_rows)s of them from before %(lookback_start)s (older than the look-back), imported "
    "deliberately: %(applied)s applied, %(duplicate)s already recorded"), lookback_start="day")

@dataclass
class RowError:
    """One problem: its spreadsheet row (None: the file as a whole), column and offending value."""

    row: int | None
    column: str
    message: str
    value: str = ""


class UsageFileError(ServiceError):
    """The file was refused and nothing changed; ``errors`` lists every problem found."""

    code = "invalid_usage_file"

    def __init__(self, errors, message=None):
        super().__init__(message or _l("The file was not imported: fix every error listed and upload it again."))
        self.errors = errors


def _refuse(message):
    return UsageFileError([RowError(None, "", message)])


@dataclass
class UsageFile:
    """A checked file: its events grouped per WAPU, ready to preview and apply."""

    name: str
    sha256: str
    rows: int
    events: dict = field(default_factory=dict)  # wapu_id -> [StampEvent], in file order
    wapus: dict = field(default_factory=dict)  # wapu_id -> (id, code, name, npwp, first_contract_day) row
    now: datetime | None = None  # the moment the stamp times were checked against
    allow_old: bool = False  # rows older than the look-back were accepted (the admin's deliberate import)
    old_rows: int = 0  # how many rows are older than the look-back
    lookback_start: datetime | None = None  # 00:00 WIB of the first day within the look-back

    def preview(self):
        """Per WAPU: stamped and failed events, how many serials are already recorded, quota available."""
        available = dict(db.session.execute(
            select(QuotaAccount.wapu_id, QuotaAccount.available).where(QuotaAccount.wapu_id.in_(self.events))
        ).all())
        rows = []
        for wapu_id, events in self.events.items():
            serials = [e.serial for e in events]
            known = sum(db.session.execute(
                select(func.count()).select_from(Stamp).where(Stamp.serial.in_(serials[i:i + CHUNK]))
            ).scalar() for i in range(0, len(serials), CHUNK))
            statuses = Counter(e.status for e in events)
            months = Counter(_wib_month(e.stamped_at) for e in events if e.status == "stamped")
            rows.append({"wapu": self.wapus[wapu_id], "stamped": statuses["stamped"], "failed": statuses["failed"],
                         "known": known, "available": available.get(wapu_id, 0), "months": sorted(months.items())})
        closed = closed_months({(r["wapu"].id, month) for r in rows for month, _count in r["months"]})
        for r in rows:
            r["months"] = [(month, count, (r["wapu"].id, month) in closed) for month, count in r["months"]]
        return sorted(rows, key=lambda r: r["wapu"].code)


def _wib_month(moment) -> date:
    return moment.astimezone(WIB).date().replace(day=1)


# Which (wapu_id, month) pairs are already invoiced: billing, which sits above stamping, adds its
# lookup here (``scm.billing.init_app``), so that the preview can warn that those stamps will be
# billed as late usage on the next invoice.
closed_month_lookups = []


def closed_months(pairs: set) -> set:
    found = set()
    for lookup in closed_month_lookups:
        found |= lookup(pairs)
    return found


@dataclass
class ImportResult:
    """What ``apply_usage_file`` did: ``ingest_events`` results counted per WAPU and in total."""

    per_wapu: dict  # wapu_id -> Counter(result)
    total: Counter

    def kinds(self):
        """The results that occurred, in a fixed order, with their labels (``applied`` always)."""
        return [(key, label) for key, label in RESULTS.items() if key == "applied" or self.total[key]]


# ------------------------------------------------------------------------------------------ reading


def check_size(data: bytes) -> None:
    """Refuse an empty file or one over MAX_BYTES (before it is held or read)."""
    problem = size_problem(data, MAX_BYTES)
    if problem:
        raise _refuse(problem[1])


def read_usage_file(data: bytes, name: str = "", *, now=None, allow_old=False) -> UsageFile:
    """Parse and check every row of a CSV or XLSX usage report; raises UsageFileError listing every problem.

    Stamp times are checked against each WAPU's window at ``now``; ``allow_old`` accepts rows older
    than the look-back (never rows in the future or before the WAPU's first contract).
    """
    now = now or utcnow()
    check_size(data)
    rows = _xlsx_rows(data) if data.startswith(XLSX_MAGIC) else _csv_rows(data)
    columns = _columns(next(rows, (1, None))[1])
    usage = UsageFile(name=name, sha256=hashlib.sha256(data).hexdigest(), rows=0, now=now, allow_old=allow_old,
                      lookback_start=lookback_start(now, current_app.config["STAMP_LOOKBACK_MONTHS"]))
    checker = _RowChecker(now, allow_old)
    events, seen = defaultdict(list), {}
    for number, cells in rows:
        if number > MAX_ROWS + 1:  # every row counts, empty ones too: a file of empty rows must not run on
            raise _too_many_rows()
        if not any(_text(c) for c in cells):
            continue
        usage.rows += 1
        record = {col: cells[i] if i < len(cells) else None for col, i in columns.items()}
        checked = checker.check(number, record)
        if checked is None:
            continue
        wapu, event = checked
        content = (wapu.id, event.fingerprint())
        first = seen.setdefault(event.serial, (number, content))
        if first[1] != content:
            checker.errors.append(RowError(number, "serial", _l("This serial is also in row %(row)d with other "
                                                                "content.", row=first[0]), event.serial))
        elif first[0] == number:
            events[wapu.id].append(event)
            usage.wapus[wapu.id] = wapu
    if checker.errors:
        raise UsageFileError(checker.errors)
    if not usage.rows:
        raise _refuse(_l("The file has a header row but no data rows."))
    usage.events = dict(events)
    usage.old_rows = checker.old_rows
    return usage


def _xlsx_rows(data):
    """(row number, cells) of the workbook's first sheet, read safely (``scm.core.xlsx.xlsx_rows``)."""
    try:
        yield from xlsx_rows(data, max_rows=MAX_ROWS + 1, max_columns=MAX_COLUMNS)
    except TooManyRows:
        raise _too_many_rows() from None
    except UnsafeWorkbook:
        raise _refuse(_l("The file is not a readable XLSX workbook, or it is too large once unpacked.")) from None


def _too_many_rows():
    return _refuse(_l("The file has more than %(n)s data rows; split it.", n=format_number(MAX_ROWS)))


def _csv_rows(data):
    """(row number, cells) of a UTF-8 CSV file separated by commas or semicolons."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(_l("The file is neither an XLSX workbook nor a CSV file in UTF-8.")) from None
    if "\x00" in text:
        raise _refuse(_l("The file is neither an XLSX workbook nor a CSV file in UTF-8."))
    header = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if header.count(";") > header.count(",")
                        else ",")
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, cells
    except csv.Error as error:
        raise UsageFileError([RowError(number + 1, "", _l("Not valid CSV: %(error)s", error=str(error)))]) from None


def _columns(header):
    """Column name -> index, from the header row (names case-insensitive); refuses a bad header."""
    if header is None or not any(_text(c) for c in header):
        raise _refuse(_l("The file is empty."))
    columns, errors = {}, []
    for index, cell in enumerate(header):
        name = _text(cell).lower().replace(" ", "_")
        if name in columns:
            errors.append(RowError(1, name, _l("This column appears twice.")))
        elif name in COLUMNS:
            columns[name] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        errors.append(RowError(1, ", ".join(missing), _l(
            "Missing column(s). The first row must name the columns: %(columns)s, and npwp or wapu_code.",
            columns=", ".join(REQUIRED_COLUMNS))))
    if "npwp" not in columns and "wapu_code" not in columns:
        errors.append(RowError(1, "npwp / wapu_code", _l("A column npwp or wapu_code must name each row's WAPU.")))
    if errors:
        raise UsageFileError(errors)
    return columns


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class _RowChecker:
    """Checks rows against the WAPUs (loaded once, with the start of their first contract), their
    stamp time windows and the document types; collects every error."""

    def __init__(self, now, allow_old):
        first_day = (select(func.min(Contract.start_date)).where(Contract.wapu_id == Wapu.id)
                     .correlate(Wapu).scalar_subquery())  # in the same statement: the WAPUs are read once
        wapus = db.session.execute(
            select(Wapu.id, Wapu.code, Wapu.name, Wapu.npwp, first_day.label("first_contract_day"))).all()
        self.by_code = {w.code.upper(): w for w in wapus}
        # a 15-digit NPWP is also written as 16 digits with a leading zero
        self.by_npwp = {form: w for w in wapus for form in npwp_forms(w.npwp)}
        self.npwps = {}
        self.types = current_app.config["DOCUMENT_TYPES"]
        self.errors = []
        self.now, self.allow_old, self.windows, self.old_rows = now, allow_old, {}, 0

    def window(self, wapu):
        if wapu.id not in self.windows:
            self.windows[wapu.id] = StampWindow.build(wapu.first_contract_day, now=self.now, allow_old=self.allow_old)
        return self.windows[wapu.id]

    def check(self, number, record):
        """``(wapu, StampEvent)`` for a valid row, else None with its errors recorded."""
        errors = len(self.errors)

        def bad(column, message, value):
            self.errors.append(RowError(number, column, message, _text(value)[:80]))

        serial = _text(record["serial"])
        if not SERIAL.fullmatch(serial):
            bad("serial", _l("1-64 characters of A-Z, a-z, 0-9, '-' and '_'."), serial)
        wapu = self._wapu(record, bad)
        raw_moment = record["stamped_at"]
        moment = _moment(raw_moment)
        if moment is None:
            bad("stamped_at", _l("A date-time with an offset, e.g. 2026-11-23T09:30:00+07:00."), raw_moment)
        elif wapu is not None:
            refusal = self.window(wapu).refusal(moment)
            if refusal is not None:
                bad("stamped_at", refusal.message, raw_moment)
        document_type = _text(record["document_type"]).lower()
        if document_type not in self.types:
            bad("document_type", _l("Unknown document type; one of: %(types)s.", types=", ".join(self.types)),
                document_type)
        status = _text(record["status"]).lower()
        if status not in STATUSES:
            bad("status", _l("One of: stamped, failed."), status)
        number_text = _text(record.get("document_number")) or None
        if number_text and len(number_text) > 100:
            bad("document_number", _l("At most %(n)d characters.", n=100), number_text)
        if len(self.errors) > errors:
            return None
        self.old_rows += self.window(wapu).is_old(moment)
        return wapu, StampEvent(serial, status, moment, document_type, number_text)

    def _wapu(self, record, bad):
        npwp, code = _text(record.get("npwp")), _text(record.get("wapu_code")).upper()
        by_npwp = by_code = None
        if npwp:
            if npwp not in self.npwps:
                try:
                    digits = clean_npwp(npwp)
                except ServiceError as error:
                    self.npwps[npwp] = (None, error.message)
                else:
                    found = self.by_npwp.get(digits)
                    self.npwps[npwp] = (found, None if found else _l("No WAPU has this NPWP."))
            by_npwp, message = self.npwps[npwp]
            if message:
                bad("npwp", message, npwp)
        if code:
            by_code = self.by_code.get(code)
            if by_code is None:
                bad("wapu_code", _l("No WAPU has this code."), code)
        if not npwp and not code:
            bad("npwp / wapu_code", _l("Give the WAPU's NPWP or its code."), "")
        if by_npwp and by_code and by_npwp.id != by_code.id:
            bad("npwp / wapu_code", _l("The NPWP and the WAPU code name different WAPUs."), f"{npwp} / {code}")
        return by_npwp or by_code


def _moment(value):
    """An aware datetime: an ISO 8601 text with an offset, or an Excel date-time (naive: WIB)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=WIB)
    return parse_timestamp(_text(value))


# ------------------------------------------------------------------------------------------ applying


def check_old_usage_reason(actor, reason) -> str:
    """The reason for importing stamps older than the look-back, stripped; refuses another actor than the
    distributor admin (or the operator's command line, None) and an empty or too long reason."""
    if actor is not None and actor.role != Role.DIST_ADMIN:
        raise ServiceError(_l("Only the distributor administrator may import stamps older than the look-back."),
                           code="forbidden")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_l("Give the reason for importing stamps older than the look-back."),
                           code="reason_required")
    if len(reason) > REASON_MAX:
        raise ServiceError(_l("At most %(n)d characters.", n=REASON_MAX), code="reason_too_long")
    return reason


def apply_usage_file(usage: UsageFile, actor, *, reason=None, progress=None) -> ImportResult:
    """Apply a checked file in the caller's unit of work: ``ingest_events`` per WAPU, one audit row.

    ``actor`` is the distributor admin, or None for the operator's command line. A file read with
    ``allow_old`` needs a ``reason``: its audit entry (``usage.import_old``) keeps it.
    The stamp times are checked again against the window of the moment the file was read.
    ``progress(rows done)`` is called after each chunk.
    """
    if actor is not None and actor.role != Role.DIST_ADMIN:
        raise ServiceError(_l("Only the distributor administrator may import usage files."), code="forbidden")
    if usage.allow_old:
        reason = check_old_usage_reason(actor, reason)
    per_wapu, done = {}, 0
    for wapu_id, events in usage.events.items():
        counts = Counter()
        for start in range(0, len(events), CHUNK):
            chunk = events[start:start + CHUNK]
            counts.update(r["result"] for r in ingest_events(wapu_id, None, events=chunk,
                                                             source="file", now=usage.now, allow_old=usage.allow_old))
            done += len(chunk)
            if progress:
                progress(done)
        per_wapu[wapu_id] = counts
    total = sum(per_wapu.values(), Counter())
    summary = ", ".join(f"{key} {value}" for key, value in sorted(total.items()))
    details = {"rows": usage.rows, **{key: total[key] for key in RESULTS}}
    action = "usage.import"
    if usage.allow_old:
        action = "usage.import_old"
        details.update(old_rows=usage.old_rows, lookback_start=usage.lookback_start.date().isoformat(), note=reason)
        summary += f"; {usage.old_rows} rows older than the look-back (before {usage.lookback_start:%Y-%m-%d}), " \
                   f"imported deliberately: {reason}"
    record_audit(actor, action, summary=f"{usage.name or 'file'}: {usage.rows} rows; {summary}",
                 object_type="UsageFile", object_id=usage.sha256[:40], ref=usage.name or usage.sha256[:12],
                 actor_label=None if actor else "flask usage import", details=details)
    return ImportResult(per_wapu, total)
