"""The billing part of ``flask demo load``: six months of stamping, monthly invoices and payments.

History is replayed day by day, up to now, through the real services: quota issued at the start
of each month, each working day's stamps reported in one batch after office hours (the API's batch
ingest), the scheduler's billing run on the 1st, finance issuing on the first working day from the
2nd, payments, a credit note, the daily overdue marking and minimum warnings, each called with its
historical date. So the picture is right relative to the day the demo is loaded: the last six full
months are billed and the older ones paid; last month's invoices are partly paid (W0001, due on the
28th), paid a few days before the 10th (W0002, open until then) and unpaid (W0003, overdue after
the 10th); this month W0003's pace stays below the minimum.

It runs inside the demo's single transaction. Notifications and their mail and billing runs, which
the services stamp with the clock, are dated back to the moment they happened; notifications and
mail of past months count as read and sent. Audit rows, payments' and credit notes' ``created_at``
and invoices' ``issued_at`` (immutable once issued) keep the real time they were written.
"""

import calendar
import functools
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import func, select, update

from scm.auth.models import User
from scm.billing.models import BillingRun, Invoice, InvoiceState
from scm.billing.payments import issue_credit_note, mark_overdue, record_payment
from scm.billing.services import (
    DEFAULT_CREDIT_NOTE_FORMAT,
    DEFAULT_INVOICE_FORMAT,
    issue_drafts,
    run_billing,
    save_contract_terms,
    save_settings,
)
from scm.billing.tasks import send_minimum_warnings
from scm.billing.usage import add_months, month_end, month_key, month_of, projection
from scm.core.database import utcnow
from scm.core.formatting import WIB, today_wib
from scm.core.models import Notification, OutboxEmail, OutboxState
from scm.demo.documents import demo_npwp
from scm.extensions import db
from scm.quota.services import issue_quota
from scm.registration.models import Wapu
from scm.stamping.services import StampEvent, ingest_events

SEED = 151  # PMK 151/PMK.03/2021
MONTHS = 6
BATCH = 1000  # the API's largest batch
SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
MONTH_NAMES = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
               "Oktober", "November", "Desember")
# Fixed-date national holidays (no stamping, no office work); the moving ones are left out.
HOLIDAYS = {(1, 1), (5, 1), (6, 1), (8, 17), (12, 25)}
# Stamping by hour of the working day (WIB): a morning peak, a lunch dip.
HOURS = {8: 6, 9: 12, 10: 14, 11: 13, 12: 5, 13: 10, 14: 13, 15: 12, 16: 8, 17: 3}

SETTINGS = dict(
    distributor_name="PT Distributor Meterai Nusantara",
    distributor_address="Menara Meterai Lt. 12\nJl. M.H. Thamrin No. 28\nJakarta Pusat 10350",
    distributor_npwp=demo_npwp("07654321", "073000"),
    bank_name="Bank Mandiri", bank_account_number="1230007788990",
    bank_account_name="PT Distributor Meterai Nusantara",
    unit_price=10_000, service_fee_per_unit=500, ppn_rate=12, ppn_dpp_other_value=True,
    invoice_number_format=DEFAULT_INVOICE_FORMAT, credit_note_number_format=DEFAULT_CREDIT_NOTE_FORMAT,
    warning_days="15,25",
)


@dataclass(frozen=True)
class Profile:
    volume: tuple[int, int]  # e-Meterai a month, drawn per month
    documents: dict[str, int]  # document type -> weight
    number: str  # document number pattern
    reference: str  # payment reference pattern


PROFILES = {
    "W0001": Profile((1500, 2500), {"surat_keterangan": 5, "surat_perjanjian": 2, "dokumen_lain": 3},
                     "421.3/{n:05d}/Disdik/{year}", "SP2D {r}{n:02d}/SP2D/DISDIK/{year}"),
    "W0002": Profile((1150, 1800), {"surat_perjanjian": 4, "dokumen_transaksi": 4, "surat_berharga": 1,
                                    "bilyet_giro": 1, "cek": 1},
                     "SPK-{n:05d}/EN/{year}", "TRF BRI {day:%Y%m%d} {r}{n:02d}"),
    "W0003": Profile((600, 900), {"dokumen_lelang": 4, "surat_perjanjian": 3, "akta_notaris": 1, "dokumen_lain": 1},
                     "MSI/{n:05d}/PROC/{year}", "MANDIRI MCM {day:%y%m%d}{r}"),
}
# W0001 pays through the government's SP2D cycle (due on the 28th, so last month's invoice is
# still only partly paid, not yet overdue); W0003 is billed its shortfall; W0002 keeps the defaults.
TERMS = {
    "W0001": dict(minimum_policy="report", due_day=28,
                  note="Pembayaran melalui SP2D: jatuh tempo tanggal 28 bulan berikutnya."),
    "W0003": dict(minimum_policy="true_up", due_day=None,
                  note="Kekurangan dari pemakaian minimum bulanan ditagihkan (true-up)."),
}
PARTLY_PAID, LATE_REPORTER, OVERDUE = "W0001", "W0002", "W0003"
LATE_STAMPS = 12
CREDIT_NOTE = ("W0002", 4, 25, "Koreksi 25 e-Meterai gagal dibubuhkan")  # WAPU, months ago, e-Meterai, reason


def load_billing_demo(today: date | None = None) -> dict:
    """Replay six months of stamping and billing up to today; returns a summary for the loader."""
    today = today or today_wib()
    this_month = month_of(today)
    first = add_months(this_month, -MONTHS)
    users = {u.email: u for u in db.session.execute(select(User).where(User.wapu_id.is_(None))).scalars()}
    admin, spv, fin = (users[f"{name}@distributor.example.com"] for name in ("admin", "spv", "fin"))
    wapus = {w.code: w for w in db.session.execute(select(Wapu).where(Wapu.code.in_(PROFILES))).scalars()}

    for wapu in wapus.values():  # customers since their contracts started, not since the demo was loaded
        wapu.created_at = min(datetime.combine(wapu.contracts[0].start_date, time(9), WIB).astimezone(timezone.utc),
                              wapu.created_at)
    save_settings(admin, **SETTINGS)
    config = current_app.config
    for code, terms in TERMS.items():
        contract = wapus[code].contracts[0]
        save_contract_terms(contract, admin, effective_from=contract.start_date,
                            monthly_minimum=config["MONTHLY_MINIMUM"], minimum_policy=terms["minimum_policy"],
                            first_month="exempt", due_day=terms["due_day"] or config["PAYMENT_DUE_DAY"],
                            note=terms["note"])

    rng = random.Random(SEED)
    clock = _Clock(utcnow(), this_month)
    stamps = _plan_stamps(rng, first, today, clock.now, config["MONTHLY_MINIMUM"])
    agenda = defaultdict(list)  # day -> [(time, action)]
    for (code, month), count in sorted(stamps.totals.items()):  # a little more than the month uses
        agenda[month].append((time(7, 30), functools.partial(
            _issue_quota, wapus[code], month, math.ceil((count * 1.1 + 20) / 500) * 500, spv,
            clock.at(month, time(7, 30)))))
    for (day, code), events in stamps.batches.items():  # reported after office hours (today: now)
        agenda[day].append((time(18, 30), functools.partial(_report, wapus[code], events, clock.at(day, time(18, 30)))))
    late_day = add_months(this_month, -1) + timedelta(days=5)  # after two months ago was issued
    agenda[late_day].append((time(10, 0), functools.partial(
        _report, wapus[LATE_REPORTER], stamps.late, clock.at(late_day, time(10, 0)))))

    state = _History(rng, today, this_month, fin, wapus, agenda)
    day = first
    while day <= today:
        agenda[day] += [(time(0, 15), functools.partial(mark_overdue, day)),
                        (time(8, 0), functools.partial(send_minimum_warnings, day))]
        if day.day == 1 and day > first:
            agenda[day].append((time(1, 0), functools.partial(
                run_billing, add_months(day, -1), source="scheduler", today=day)))
        if day > first and day == min(working_day(day.replace(day=2)), today):  # finance issues
            agenda[day].append((time(9, 0), functools.partial(state.issue, add_months(month_of(day), -1), day)))
        pending = agenda.pop(day, [])
        while pending:  # what an action plans for the same day (a payment on issue day) runs too
            pending.sort(key=lambda item: item[0])
            at, action = pending.pop(0)
            action()
            if getattr(action, "func", None) is not _report:  # reports notify nobody
                clock.settle(day, at)
            pending += agenda.pop(day, [])
        day += timedelta(days=1)

    invoices = db.session.execute(select(Invoice).where(Invoice.period >= first)).scalars().all()
    return {
        "first": first, "last": add_months(this_month, -1), "invoices": len(invoices),
        "partly_paid": sum(i.state == InvoiceState.PARTIALLY_PAID for i in invoices),
        "overdue": sum(i.state == InvoiceState.OVERDUE for i in invoices),
        "stamps": sum(stamps.totals.values()) + len(stamps.late),
    }


# --- stamps ---------------------------------------------------------------------------------------

@dataclass
class _Stamps:
    batches: dict  # (day, code) -> [StampEvent] reported that evening (today: now)
    totals: dict  # (code, month) -> stamped e-Meterai (for the quota issued that month)
    late: list  # LATE_REPORTER's stamps of two months ago, reported last month


def _plan_stamps(rng, first, today, now, minimum) -> _Stamps:
    """Every stamp of every working day from ``first`` to now: seeded, so the same on every load."""
    types = current_app.config["DOCUMENT_TYPES"]
    serials, numbers = set(), defaultdict(int)
    batches, totals = {}, defaultdict(int)

    def event(code, day, status="stamped"):
        profile = PROFILES[code]
        weights = {t: w for t, w in profile.documents.items() if t in types} or dict.fromkeys(types, 1)
        moment = datetime.combine(day, time(rng.choices(list(HOURS), list(HOURS.values()))[0],
                                            rng.randrange(60), rng.randrange(60)), WIB)
        serial = "".join(rng.choices(SERIAL_ALPHABET, k=22))
        while serial in serials:
            serial = "".join(rng.choices(SERIAL_ALPHABET, k=22))
        serials.add(serial)
        signed = day - timedelta(days=rng.choice((0, 0, 0, 1, 1, 2, 3)))
        return StampEvent(serial, status, moment.astimezone(timezone.utc),
                          rng.choices(list(weights), list(weights.values()))[0], None, signed.isoformat())

    for code, profile in PROFILES.items():  # documents numbered since January
        numbers[code, first.year] = (first.month - 1) * sum(profile.volume) // 2
    two_ago = add_months(month_of(today), -2)
    late, month = [], first
    while month <= month_of(today):
        workdays = [d for d in _days(month, month_end(month)) if is_working_day(d)]
        late_days = [rng.choice(workdays[-3:]) for _ in range(LATE_STAMPS)] if month == two_ago else []
        for code, profile in PROFILES.items():
            counts = _split(rng.randint(*profile.volume), [rng.uniform(0.6, 1.4) for _ in workdays])
            for day, count in zip(workdays, counts, strict=True):
                events = [event(code, day) for _ in range(count)]
                if rng.random() < 0.3:  # now and then a stamp fails (it uses no quota)
                    events.append(event(code, day, "failed"))
                reported_late = [event(code, day) for d in late_days if d == day and code == LATE_REPORTER]
                events = sorted(events + reported_late, key=lambda e: e.stamped_at)
                for e in events:  # each WAPU numbers its documents in the order it stamps them
                    numbers[code, day.year] += 1
                    e.document_number = profile.number.format(n=numbers[code, day.year], year=day.year)
                late += reported_late
                later = {e.serial for e in reported_late}
                events = [e for e in events if e.serial not in later and e.stamped_at < now - timedelta(minutes=1)]
                if events and day <= today:
                    batches[day, code] = events
        month = add_months(month, 1)
    _keep_below_minimum(batches, today, minimum)
    for (day, code), events in batches.items():
        totals[code, month_of(day)] += sum(e.status == "stamped" for e in events)
    return _Stamps(batches, dict(totals), late)


def _keep_below_minimum(batches, today, minimum):
    """This month, OVERDUE's WAPU stays on a pace below the minimum: drop its latest stamps if not."""
    if minimum <= 0:
        return
    days = calendar.monthrange(today.year, today.month)[1]
    allowed = math.ceil(minimum * today.day / days) - 1  # the most with projection(used) < minimum
    mine = sorted(day for day, code in batches if code == OVERDUE and month_of(day) == month_of(today))
    used = sum(sum(e.status == "stamped" for e in batches[day, OVERDUE]) for day in mine)
    while used > allowed and mine:
        events = batches[mine[-1], OVERDUE]
        dropped = events.pop()
        used -= dropped.status == "stamped"
        if not events:
            del batches[mine.pop(), OVERDUE]
    if projection(used, today) >= minimum:
        raise RuntimeError("demo: W0003 should run below the minimum this month")


def _split(total, weights) -> list[int]:
    """``total`` in whole parts proportional to ``weights`` (largest remainders get the rest)."""
    if not weights:
        return []
    shares = [total * w / sum(weights) for w in weights]
    parts = [int(s) for s in shares]
    for index in sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])[: total - sum(parts)]:
        parts[index] += 1
    return parts


def is_working_day(day: date) -> bool:
    """Monday to Friday, except the fixed-date national holidays."""
    return day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS


def working_day(day: date, step: int = 1) -> date:
    """``day`` if it is a working day, else the next one (``step`` -1: the one before)."""
    while not is_working_day(day):
        day += timedelta(days=step)
    return day


def _days(start, end):
    while start <= end:
        yield start
        start += timedelta(days=1)


def _issue_quota(wapu, month, quantity, actor, moment):
    """The month's quota, as a PO approved on its first day would have issued it (dated then)."""
    reference = f"Kuota {MONTH_NAMES[month.month - 1]} {month.year} (riwayat pemesanan)"
    issue_quota(wapu.id, actor, quantity=quantity, key=f"demo-{wapu.code}-{month_key(month)}", reference=reference,
                now=moment)


def _report(wapu, events, now):
    """A batch report of stamps made (the API's batch ingest), at most ``BATCH`` events at a time."""
    for start in range(0, len(events), BATCH):
        results = ingest_events(wapu.id, None, events=events[start:start + BATCH], source="batch", now=now)
        refused = [r for r in results if r["result"] != "applied"]
        if refused:
            raise RuntimeError(f"demo stamps of {wapu.code} refused: {refused[:3]}")


# --- invoices -------------------------------------------------------------------------------------

class _History:
    """Issuing each month's drafts and planning what happens to each invoice afterwards."""

    def __init__(self, rng, today, this_month, fin, wapus, agenda):
        self.rng, self.today, self.this_month, self.fin, self.agenda = rng, today, this_month, fin, agenda
        self.codes = {w.id: code for code, w in wapus.items()}
        self.references = defaultdict(int)

    def issue(self, period, day):
        """Issue the month's drafts on ``day`` and put their payments (and the credit note) on the agenda."""
        last = period == add_months(self.this_month, -1)
        for invoice in issue_drafts(period, self.fin, today=day):
            code, earliest = self.codes[invoice.wapu_id], day
            if code == CREDIT_NOTE[0] and period == add_months(self.this_month, -CREDIT_NOTE[1]):
                earliest = working_day(day + timedelta(days=1))
                self._plan(earliest, time(11, 0), functools.partial(
                    issue_credit_note, invoice.id, self.fin, amount=CREDIT_NOTE[2] * invoice.unit_price,
                    reason=CREDIT_NOTE[3], today=earliest))
                earliest += timedelta(days=1)
            if not last:  # paid in full a few days before it was due
                self._pay(invoice, code, invoice.due_date - timedelta(days=self.rng.randint(2, 5)), earliest)
            elif code == PARTLY_PAID:
                self._pay(invoice, code, min(day + timedelta(days=4), self.today), earliest, share=40)
            elif code != OVERDUE:  # the third pays three days before it is due, if that day has come
                self._pay(invoice, code, invoice.due_date - timedelta(days=3), earliest)

    def _pay(self, invoice, code, paid_on, earliest, share=100):
        """Plan a payment on ``paid_on`` (moved back to a working day, not before ``earliest``)."""
        if working_day(paid_on, -1) >= earliest:
            paid_on = working_day(paid_on, -1)
        if paid_on > self.today:
            return
        self.references[code] += 1
        reference = PROFILES[code].reference.format(n=self.references[code], r=self.rng.randrange(1000, 10_000),
                                                    day=paid_on, year=paid_on.year)
        self._plan(paid_on, time(10, self.rng.randrange(60)), functools.partial(
            _record_payment, invoice.id, self.fin, paid_on, share, reference))

    def _plan(self, day, at, action):
        self.agenda[day].append((at, action))


def _record_payment(invoice_id, actor, paid_on, share, reference):
    invoice = db.session.get(Invoice, invoice_id)
    amount = invoice.balance if share == 100 else invoice.total_due * share // 100
    record_payment(invoice_id, actor, paid_on=paid_on, amount=amount, reference=reference, today=paid_on)


# --- the clock ------------------------------------------------------------------------------------

class _Clock:
    """Dates what the services wrote with the clock (notifications and their mail, billing runs)
    to the moment they happened; notifications and mail before this month were read and sent."""

    def __init__(self, now, this_month):
        self.now = now
        self.history_before = datetime.combine(this_month, time(), WIB).astimezone(timezone.utc)
        self.seen = self._last()

    @staticmethod
    def _last():
        return db.session.execute(select(*(select(func.coalesce(func.max(model.id), 0)).scalar_subquery()
                                           for model in (Notification, OutboxEmail, BillingRun)))).one()

    def at(self, day, at):
        """The UTC moment of ``at`` WIB on ``day``, or now if that is still to come."""
        return min(datetime.combine(day, at, WIB).astimezone(timezone.utc), self.now)

    def settle(self, day, at):
        """Date what was written since the last call at ``at`` WIB on ``day``."""
        moment = self.at(day, at)
        past = moment < self.history_before
        later = min(moment + timedelta(hours=2), self.now)
        last = self._last()
        for model, seen, now, values in zip((Notification, OutboxEmail, BillingRun), self.seen, last, (
            {"created_at": moment, **({"read_at": later} if past else {})},
            {"created_at": moment, "next_attempt_at": moment,
             **({"state": OutboxState.SENT, "sent_at": moment, "attempts": 1} if past else {})},
            {"started_at": moment, "finished_at": moment},
        ), strict=True):
            if now > seen:
                db.session.execute(update(model).where(model.id > seen).values(**values)
                                   .execution_options(synchronize_session=False))
        self.seen = last
