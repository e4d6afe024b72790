"""Bank statements → payments: read a statement, keep each line once, propose matches, apply, un-match.

Formats: the CSV exports of Indonesian business banking (BCA, Mandiri, BNI, BRI; each a small
column mapping in ``BANKS``), a generic CSV, and MT940 (read by the ``mt940`` package). Every row is
checked first: a file with any bad row is refused whole, with each error and its row number, and
nothing changes.

Each line gets a stable identity, ``line_key``: a hash of the format, the account, the day, the
direction and amount, the reference (or else the description) and its position among identical lines
of that day. ``bank_lines.line_key`` is unique and lines are inserted with ``INSERT .. ON CONFLICT DO
NOTHING``, so the same statement uploaded twice, or two statements overlapping in dates, bring each
line once, and a line's payments are recorded at most once (its status moves from ``open`` once, by
a conditional UPDATE).

Matching proposes, a person decides: an exact amount with the invoice number or the WAPU code in the
description is *matched*; a WAPU's several open invoices paid by one transfer (its code in the
description) are a *split*, oldest first, never above a balance; anything else is left for a person.
Applying records the payments through :func:`scm.billing.payments.record_payment`, as the manual form
does, in the caller's one unit of work. Un-matching reverses them (``reverse_payment``).
"""

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

import mt940
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from scm.billing.models import (
    OPEN_STATES,
    BankLine,
    BankLineStatus,
    BankMatch,
    BankStatement,
    Invoice,
)
from scm.billing.payments import check_reversal_reason, record_payment, reverse_payment
from scm.core.database import insert_or_ignore, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import format_rupiah, today_wib
from scm.core.services import record_audit, register_audit_action
from scm.core.uploads import size_problem
from scm.extensions import db
from scm.stamping.usage_import import RowError

MAX_BYTES = 5 * 1024 * 1024
MAX_LINES = 20_000
HEADER_SEARCH = 30  # rows of a bank's preamble (account, period) searched for the header row

register_audit_action("bank.statement_uploaded", _l("Bank statement uploaded"),
                      _l("%(format)s account %(account)s: %(lines)s lines read, %(new)s new"))
register_audit_action("bank.line_matched", _l("Bank line matched"),
                      _l("%(amount)s of %(day)s (%(reference)s) recorded as %(payments)s payment(s)"),
                      amount="rupiah", day="day")
register_audit_action("bank.line_ignored", _l("Bank line ignored"), _l("%(amount)s of %(day)s (%(reference)s)"),
                      amount="rupiah", day="day")
register_audit_action("bank.line_unmatched", _l("Bank line un-matched"),
                      _l("%(amount)s of %(day)s (%(reference)s): %(payments)s payment(s) reversed"),
                      amount="rupiah", day="day")


@dataclass(frozen=True)
class BankFormat:
    """Which header names (case-insensitive) mean what in one bank's CSV export."""

    label: str
    date: tuple
    description: tuple
    date_formats: tuple
    reference: tuple = ()
    debit: tuple = ()  # separate debit and credit columns ...
    credit: tuple = ()
    amount: tuple = ()  # ... or one amount column with a debit/credit flag (or a sign)
    flag: tuple = ()
    credit_flags: tuple = ("CR", "C", "K", "KREDIT", "CREDIT")
    balance: tuple = ()
    account: tuple = ()


BANKS = {
    # KlikBCA Bisnis: "Tanggal Transaksi, Keterangan, Cabang, Jumlah, (CR/DB), Saldo", amounts 1,500,000.00
    "bca": BankFormat("BCA (KlikBCA Bisnis)", date=("tanggal transaksi", "tanggal"), description=("keterangan",),
                      amount=("jumlah",), flag=("mutasi", "db/cr", "cr/db"), balance=("saldo",),
                      reference=("no. referensi",), date_formats=("%d/%m/%Y", "%d/%m/%y")),
    # Mandiri Cash Management: "Account No, Date, Val. Date, Transaction Code, Description, Reference No., Debit, Credit"
    "mandiri": BankFormat("Mandiri (MCM)", date=("date", "posting date", "tanggal"),
                          description=("description", "remark", "keterangan"), reference=("reference no.", "reference no"),
                          debit=("debit",), credit=("credit",), balance=("balance", "saldo"), account=("account no",),
                          date_formats=("%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y")),
    # BNIDirect: "Post Date, Value Date, Branch, Journal No., Description, Amount, Db/Cr, Balance"
    "bni": BankFormat("BNI (BNIDirect)", date=("post date", "tanggal transaksi"), description=("description", "uraian"),
                      reference=("journal no.", "journal no"), amount=("amount", "nominal"), flag=("db/cr", "d/k"),
                      balance=("balance", "saldo"), date_formats=("%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d")),
    # BRI CMS (Qlola): "Tanggal Transaksi; Uraian Transaksi; Teller; Debet; Kredit; Saldo", amounts 1.500.000,00
    "bri": BankFormat("BRI (Qlola)", date=("tanggal transaksi", "tanggal", "tgl_tran"),
                      description=("uraian transaksi", "keterangan", "desk_tran"), reference=("no. referensi", "teller"),
                      debit=("debet", "mutasi_debet"), credit=("kredit", "mutasi_kredit"), balance=("saldo",),
                      date_formats=("%d/%m/%y", "%d/%m/%Y", "%Y-%m-%d")),
    # The generic mapping: date, description, reference, and debit + credit, or a signed amount (or amount + dc).
    "generic": BankFormat(str(_l("Generic CSV")), date=("date", "tanggal"), description=("description", "keterangan"),
                          reference=("reference", "referensi"), debit=("debit", "debet"), credit=("credit", "kredit"),
                          amount=("amount", "jumlah"), flag=("dc", "d/c", "d/k"), balance=("balance", "saldo"),
                          date_formats=("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")),
}
MT940 = "mt940"
FORMATS = {**{key: f.label for key, f in BANKS.items()}, MT940: "MT940 (SWIFT)"}
FOOTER = re.compile(r"^\s*(saldo awal|saldo akhir|opening balance|closing balance|ending balance|total|mutasi (debet|kredit)"
                    r"|starting balance)", re.I)
PREAMBLE_ACCOUNT = re.compile(r"(?:no\.?\s*rek(?:ening)?|account\s*(?:no|number)\.?)\D{0,10}([0-9][0-9 .-]{4,30}[0-9])", re.I)


class BankFileError(ServiceError):
    """The statement was refused and nothing changed; ``errors`` lists every problem found."""

    code = "invalid_bank_file"

    def __init__(self, errors, message=None):
        super().__init__(message or _l("The statement was not read: fix every error listed and upload it again."))
        self.errors = errors


def _refuse(message, row=None):
    return BankFileError([RowError(row, "", message)])


@dataclass
class ParsedLine:
    row: int
    booked_on: date
    credit: bool
    amount: int
    description: str
    reference: str
    balance: int | None = None
    key: str = ""


@dataclass
class ParsedStatement:
    bank: str
    account: str
    name: str
    sha256: str
    lines: list = field(default_factory=list)

    @property
    def first_day(self):
        return min((line.booked_on for line in self.lines), default=None)

    @property
    def last_day(self):
        return max((line.booked_on for line in self.lines), default=None)


# ------------------------------------------------------------------------------------------ values


AMOUNT = re.compile(r"(\d{1,3}(?:[.,]\d{3})+|\d+)(?:([.,])(\d{1,2}))?")


def parse_amount(text) -> int | None:
    """Whole Rupiah from a bank's amount text: ``1.234.567,00`` (Indonesian), ``1,234,567.00``,
    ``1234567``, with "Rp", spaces, a sign or a trailing CR/DB; None if it is not an amount or has sen."""
    text = re.sub(r"(?i)^rp\.?|\s|(cr|db)$", "", str(text or "").strip())
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    text = text.strip("-()+")
    match = AMOUNT.fullmatch(text)
    if not match:
        return None
    whole, decimal, sen = match.groups()
    separators = set(re.sub(r"\d", "", whole))
    if len(separators) > 1 or (decimal and decimal in separators) or (sen and sen.strip("0")):
        return None
    value = int(re.sub(r"\D", "", whole))
    return -value if negative else value


def normalise(text) -> str:
    """Upper case, only letters and digits: ``inv / 2026/10 - 0001`` → ``INV2026100001``."""
    return re.sub(r"[^0-9A-Z]", "", str(text or "").upper())


def _clean_account(text) -> str:
    text = str(text or "").strip()
    if "/" in text:  # MT940 :25: BIC/account
        text = text.rsplit("/", 1)[1]
    return re.sub(r"[^0-9A-Za-z]", "", text)[:40]


def _key(bank, account, line: ParsedLine, position: int) -> str:
    text = normalise(line.reference) or normalise(line.description)
    parts = (bank, account, line.booked_on.isoformat(), "C" if line.credit else "D", str(line.amount), text,
             str(position))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _keyed(statement: ParsedStatement) -> ParsedStatement:
    seen = Counter()
    for line in statement.lines:
        identity = (line.booked_on, line.credit, line.amount, normalise(line.reference) or normalise(line.description))
        line.key = _key(statement.bank, statement.account, line, seen[identity])
        seen[identity] += 1
    return statement


# ------------------------------------------------------------------------------------------ reading


HELD_KIND = "bank"  # statements held between their upload and their reading in the queue


def check_size(data: bytes) -> None:
    """Refuse an empty statement or one over MAX_BYTES (before it is held or read)."""
    problem = size_problem(data, MAX_BYTES)
    if problem:
        raise _refuse(problem[1])


def read_statement(data: bytes, bank: str, *, account: str = "", name: str = "") -> ParsedStatement:
    """Parse and check a whole statement; raises BankFileError listing every problem (nothing stored)."""
    if bank not in FORMATS:
        raise _refuse(_l("Choose the format of the statement."))
    check_size(data)
    text = _text(data)
    statement = ParsedStatement(bank=bank, account=_clean_account(account), name=name,
                                sha256=hashlib.sha256(data).hexdigest())
    if bank == MT940:
        _read_mt940(text, statement)
    else:
        _read_csv(text, BANKS[bank], statement)
    if not statement.account:
        raise _refuse(_l("The file does not name the account: give the account number."))
    if not statement.lines:
        raise _refuse(_l("The statement has no transaction lines."))
    if len(statement.lines) > MAX_LINES:
        raise _refuse(_l("The statement has more than %(n)s lines; split it.", n=MAX_LINES))
    return _keyed(statement)


def _text(data: bytes) -> str:
    if b"\x00" in data or data[:4] in (b"PK\x03\x04", b"%PDF"):
        raise _refuse(_l("The file is not a CSV or MT940 text file."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older exports of business banking (Windows)


def _header_index(cells, names) -> int | None:
    wanted = [n.lower() for n in names]
    for index, cell in enumerate(cells):
        if re.sub(r"\s+", " ", cell.strip().lower()) in wanted:
            return index
    return None


def _read_csv(text: str, fmt: BankFormat, statement: ParsedStatement) -> None:
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    sample = "\n".join(text.splitlines()[:HEADER_SEARCH])
    if sample.count(";") > sample.count(","):
        delimiter = ";"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
        raise _refuse(_l("Not valid CSV: %(error)s", error=str(error))) from None
    header_row, columns = None, {}
    for number, cells in enumerate(rows[:HEADER_SEARCH], start=1):
        found = {role: _header_index(cells, getattr(fmt, role))
                 for role in ("date", "description", "reference", "debit", "credit", "amount", "flag", "balance",
                              "account")}
        if found["date"] is not None and (found["amount"] is not None or
                                          (found["debit"] is not None and found["credit"] is not None)):
            header_row, columns = number, {k: v for k, v in found.items() if v is not None}
            break
        if not statement.account:
            match = PREAMBLE_ACCOUNT.search(" ".join(cells))
            if match:
                statement.account = _clean_account(match.group(1))
    if header_row is None:
        names = [fmt.date[0], fmt.description[0]] + ([fmt.amount[0]] if fmt.amount else []) + \
                ([fmt.debit[0], fmt.credit[0]] if fmt.debit else [])
        raise _refuse(_l("No header row of this format was found. Its columns are: %(columns)s. Is it the right "
                         "bank?", columns=", ".join(names)), row=1)
    errors = []
    for number, cells in enumerate(rows[header_row:], start=header_row + 1):
        if not any(c.strip() for c in cells) or (cells and FOOTER.match(cells[0])):
            continue
        line = _csv_line(number, cells, columns, fmt, errors)
        if line is not None:
            statement.lines.append(line)
            if not statement.account and "account" in columns:
                statement.account = _clean_account(cells[columns["account"]])
    if errors:
        raise BankFileError(errors)


def _csv_line(number, cells, columns, fmt, errors) -> ParsedLine | None:
    before = len(errors)

    def cell(role):
        index = columns.get(role)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    def bad(role, message, value=""):
        errors.append(RowError(number, getattr(fmt, role)[0] if getattr(fmt, role) else role, message, value[:80]))

    if len(cells) <= max(columns.values()):
        bad("date", _l("The row has %(found)s columns, fewer than the header: is the file cut short?",
                       found=len(cells)), ",".join(cells))
        return None
    raw_day = cell("date")
    booked_on = _day(raw_day, fmt.date_formats)
    if booked_on is None:
        bad("date", _l("Not a date in the form %(form)s.", form=_form(fmt.date_formats[0])), raw_day)
    if "amount" in columns and not ("debit" in columns and "credit" in columns):
        amount = parse_amount(cell("amount"))
        if amount is None:
            bad("amount", _l("Not an amount in whole Rupiah (e.g. 1.500.000,00 or 1500000)."), cell("amount"))
            credit = True
        else:
            flag = cell("flag").upper() if "flag" in columns else ""
            trailing = re.search(r"(?i)(CR|DB)\s*$", cell("amount"))
            flag = flag or (trailing.group(1).upper() if trailing else "")
            if flag:
                credit = flag in fmt.credit_flags
                if flag not in fmt.credit_flags and flag not in ("DB", "D", "DEBIT", "DEBET"):
                    bad("flag", _l("Give D or C (DB or CR)."), flag)
            else:
                credit = amount > 0
            amount = abs(amount)
    else:
        debit, credit_amount = cell("debit"), cell("credit")
        debit_value, credit_value = parse_amount(debit or "0"), parse_amount(credit_amount or "0")
        if debit_value is None:
            bad("debit", _l("Not an amount in whole Rupiah (e.g. 1.500.000,00 or 1500000)."), debit)
        if credit_value is None:
            bad("credit", _l("Not an amount in whole Rupiah (e.g. 1.500.000,00 or 1500000)."), credit_amount)
        if debit_value and credit_value:
            bad("credit", _l("A line is either a debit or a credit, not both."), f"{debit} / {credit_amount}")
        credit = bool(credit_value)
        amount = abs(credit_value or debit_value or 0)
    if len(errors) == before and not amount:
        bad("amount", _l("The amount is zero."), "0")
    balance = parse_amount(cell("balance")) if "balance" in columns and cell("balance") else None
    if len(errors) > before:
        return None
    return ParsedLine(number, booked_on, credit, amount, cell("description")[:1000], cell("reference")[:100], balance)


def _form(pattern: str) -> str:
    return pattern.replace("%d", "DD").replace("%m", "MM").replace("%Y", "YYYY").replace("%y", "YY")


def _day(text: str, formats) -> date | None:
    text = (text or "").strip().split(" ")[0]
    for pattern in formats:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def _line_of(text: str, needle: str) -> int | None:
    index = text.find(needle) if needle else -1
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _read_mt940(text: str, statement: ParsedStatement) -> None:
    if ":61:" not in text and ":20:" not in text:
        raise _refuse(_l("Not an MT940 statement (no :20: and :61: fields)."))
    try:
        transactions = mt940.parse(text)
        parsed = list(transactions)
    except Exception as error:  # the parser says which text it could not read; find its line
        bad = error.args[2] if isinstance(error, RuntimeError) and len(error.args) > 2 else ""
        raise BankFileError([RowError(_line_of(text, str(bad)), ":61:", _l(
            "This MT940 field cannot be read (a wrong date or amount?)."), str(bad)[:80])]) from None
    info = transactions.data
    if "final_closing_balance" not in info and ":62F:" not in text:
        raise _refuse(_l("The statement ends before its closing balance (:62F:): is the file cut short?"))
    if not statement.account:
        statement.account = _clean_account(info.get("account_identification", ""))
    starts = [m.start() for m in re.finditer(r"^:61:", text, re.M)]
    for index, transaction in enumerate(parsed):
        values = transaction.data
        amount = values["amount"].amount
        row = text.count("\n", 0, starts[index]) + 1 if index < len(starts) else 0
        if amount != amount.to_integral_value() or amount == 0:
            raise BankFileError([RowError(row, ":61:", _l("Not an amount in whole Rupiah (e.g. 1.500.000,00 or "
                                                         "1500000)."), str(amount))])
        reference = values.get("bank_reference") or values.get("customer_reference") or ""
        if reference.upper() == "NONREF":
            reference = ""
        details = " ".join(filter(None, (values.get("transaction_details"), values.get("extra_details"))))
        statement.lines.append(ParsedLine(row, date(values["date"].year, values["date"].month, values["date"].day),
                                          amount > 0, abs(int(amount)), details.replace("\n", " ")[:1000],
                                          reference.strip()[:100]))


# ------------------------------------------------------------------------------------------ storing


def store_statement(parsed: ParsedStatement, actor) -> BankStatement:
    """Record the statement and each line not already known (``INSERT .. ON CONFLICT DO NOTHING``)."""
    statement = BankStatement(bank=parsed.bank, account=parsed.account, file_name=parsed.name[:200],
                              sha256=parsed.sha256, first_day=parsed.first_day, last_day=parsed.last_day,
                              lines_read=len(parsed.lines), uploaded_by_id=getattr(actor, "id", None))
    db.session.add(statement)
    db.session.flush()
    new = 0
    for line in parsed.lines:
        new += len(db.session.execute(insert_or_ignore(BankLine.__table__, {
            "statement_id": statement.id, "line_key": line.key, "bank": parsed.bank, "account": parsed.account,
            "booked_on": line.booked_on, "credit": line.credit, "amount": line.amount,
            "description": line.description, "reference": line.reference, "balance": line.balance,
            "file_row": line.row, "status": BankLineStatus.OPEN.value}, ["line_key"])
            .returning(BankLine.__table__.c.id)).all())  # the rows inserted (a rowcount may say -1 on PostgreSQL)
    statement.lines_new = new
    record_audit(actor, "bank.statement_uploaded", statement,
                 f"{parsed.bank} {parsed.account}: {len(parsed.lines)} lines, {new} new",
                 details={"format": FORMATS[parsed.bank], "account": parsed.account, "lines": len(parsed.lines),
                          "new": new})
    return statement


# ------------------------------------------------------------------------------------------ matching

MATCHED, SPLIT, MANUAL = "matched", "split", "manual"


@dataclass
class Proposal:
    line: BankLine
    kind: str  # matched, split or manual (left for a person)
    allocations: list = field(default_factory=list)  # [(Invoice, amount)]


def open_lines():
    """The credit lines still to review, oldest first."""
    return db.session.execute(
        select(BankLine).where(BankLine.status == BankLineStatus.OPEN, BankLine.credit.is_(True))
        .order_by(BankLine.booked_on, BankLine.id)).scalars().all()


def open_invoices():
    """Issued invoices with a balance, oldest first (period, then number)."""
    rows = db.session.execute(
        select(Invoice).where(Invoice.state.in_(OPEN_STATES)).options(joinedload(Invoice.wapu))
        .order_by(Invoice.period, Invoice.id)).scalars().all()
    return [invoice for invoice in rows if invoice.balance > 0]


def propose(lines, invoices) -> list[Proposal]:
    """A proposal per line; matched and split ones take their amounts from the balances the next
    lines see, so accepting every proposal never asks more than an invoice's balance."""
    remaining = {invoice.id: invoice.balance for invoice in invoices}
    proposals = []
    for line in lines:
        text = normalise(f"{line.description} {line.reference}")
        eligible = [i for i in invoices if remaining[i.id] > 0 and i.issue_date and i.issue_date <= line.booked_on]
        proposal = _by_number(line, text, eligible, remaining) or _by_wapu(line, text, eligible, remaining) \
            or Proposal(line, MANUAL)
        if proposal.kind != MANUAL:
            for invoice, amount in proposal.allocations:
                remaining[invoice.id] -= amount
        proposals.append(proposal)
    return proposals


def _by_number(line, text, eligible, remaining):
    named = [i for i in eligible if i.number and normalise(i.number) in text]
    exact = [i for i in named if remaining[i.id] == line.amount]
    if exact:
        return Proposal(line, MATCHED, [(exact[0], line.amount)])
    if len(named) > 1 and sum(remaining[i.id] for i in named) == line.amount:
        return Proposal(line, SPLIT, [(i, remaining[i.id]) for i in named])
    return None


def _by_wapu(line, text, eligible, remaining):
    wapus = {i.wapu_id for i in eligible if normalise(i.wapu.code) and normalise(i.wapu.code) in text}
    if len(wapus) != 1:
        return None
    own = [i for i in eligible if i.wapu_id in wapus]
    exact = [i for i in own if remaining[i.id] == line.amount]
    if exact:
        return Proposal(line, MATCHED, [(exact[0], line.amount)])
    left, allocations = line.amount, []
    for invoice in own:  # oldest first, never above a balance
        if not left:
            break
        share = min(left, remaining[invoice.id])
        allocations.append((invoice, share))
        left -= share
    if not left and len(allocations) > 1:
        return Proposal(line, SPLIT, allocations)
    return Proposal(line, MANUAL, allocations)  # a suggestion a person has to confirm


# ------------------------------------------------------------------------------------------ applying


@dataclass
class Decision:
    line_id: int
    action: str  # accept or ignore
    allocations: list = field(default_factory=list)  # [(invoice_id, amount)]


def _line_error(line, message):
    return ServiceError(_l("Line of %(day)s, %(amount)s: %(problem)s", day=line.booked_on.strftime("%d/%m/%Y"),
                           amount=format_rupiah(line.amount), problem=message), code="bank_line")


def _line(line_id) -> BankLine:
    line = db.session.get(BankLine, line_id)
    if line is None:
        raise ServiceError(_l("No such bank line."), code="not_found")
    return line


def _take(line_id, status, actor) -> BankLine:
    """Move an open credit line to ``status`` (once: a conditional UPDATE), or refuse."""
    line = _line(line_id)
    done = db.session.execute(
        update(BankLine).where(BankLine.id == line_id, BankLine.status == BankLineStatus.OPEN)
        .values(status=status, decided_by_id=getattr(actor, "id", None), decided_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        raise _line_error(line, _l("it was already decided (matched or ignored)."))
    db.session.refresh(line)
    return line


def apply_decisions(decisions, actor, *, today=None) -> dict:
    """Apply accepted and ignored lines in the caller's unit of work: each accepted line's payments
    are recorded by ``record_payment`` (never above a balance; states, audit and the WAPU's notice as
    on the manual form) with the line's reference, and linked to it. Any refusal raises, and the
    caller's rollback undoes all of it."""
    today = today or today_wib()
    counts = Counter()
    for decision in decisions:
        if decision.action == "ignore":
            line = _take(decision.line_id, BankLineStatus.IGNORED, actor)
            record_audit(actor, "bank.line_ignored", line, f"ignored {line.amount} of {line.booked_on}",
                         details={"amount": line.amount, "day": line.booked_on.isoformat(),
                                  "reference": line.payment_reference})
            counts["ignored"] += 1
            continue
        line = _take(decision.line_id, BankLineStatus.MATCHED, actor)
        if not line.credit:
            raise _line_error(line, _l("only money received (a credit) pays an invoice."))
        if not decision.allocations:
            raise _line_error(line, _l("choose the invoice(s) it pays."))
        if any(amount is None or amount <= 0 for _invoice, amount in decision.allocations):
            raise _line_error(line, _l("each amount must be more than Rp0."))
        if sum(amount for _invoice, amount in decision.allocations) > line.amount:
            raise _line_error(line, _l("the amounts add up to more than the line."))
        for invoice_id, amount in decision.allocations:
            try:
                payment = record_payment(invoice_id, actor, paid_on=line.booked_on, amount=amount,
                                         reference=line.payment_reference, today=today)
            except ServiceError as error:
                raise _line_error(line, error.message) from None
            db.session.add(BankMatch(bank_line_id=line.id, payment_id=payment.id, invoice_id=invoice_id,
                                     amount=amount))
            counts["payments"] += 1
            counts["amount"] += amount
        db.session.flush()
        record_audit(actor, "bank.line_matched", line,
                     f"{line.amount} of {line.booked_on}: {len(decision.allocations)} payment(s)",
                     details={"amount": line.amount, "day": line.booked_on.isoformat(),
                              "reference": line.payment_reference, "payments": len(decision.allocations)})
        counts["matched"] += 1
    return dict(counts)


def unmatch_line(line_id, actor, *, reason, today=None) -> int:
    """Un-match a matched line (its payments reversed with ``reason``), or re-open an ignored one;
    the line is open for review again. Returns how many payments were reversed."""
    reason = check_reversal_reason(reason)
    line = _line(line_id)
    done = db.session.execute(
        update(BankLine).where(BankLine.id == line_id, BankLine.status != BankLineStatus.OPEN)
        .values(status=BankLineStatus.OPEN, decided_by_id=getattr(actor, "id", None), decided_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        raise ServiceError(_l("This line is not matched."), code="not_matched")
    db.session.refresh(line)
    reversed_count = 0
    for match in line.live_matches:
        reverse_payment(match.payment_id, actor, reason=reason, today=today)
        reversed_count += 1
    record_audit(actor, "bank.line_unmatched", line, f"{line.amount} of {line.booked_on}: {reversed_count} "
                 f"payment(s) reversed — {reason}",
                 details={"amount": line.amount, "day": line.booked_on.isoformat(), "reference": line.payment_reference,
                          "payments": reversed_count, "note": reason})
    return reversed_count


def parse_allocations(text: str) -> list[tuple[int, int]]:
    """``INV/2026/10/00001 = 1.500.000; INV/2026/10/00002 = 250.000`` → [(invoice id, amount)]."""
    allocations = []
    for part in re.split(r"[;\n]+", text or ""):
        if not part.strip():
            continue
        number, _, amount_text = part.rpartition("=")
        number = number.strip()
        invoice = db.session.execute(select(Invoice).where(Invoice.number == number)).scalar() if number else None
        if invoice is None:
            raise ServiceError(_l("No invoice has the number %(number)s.", number=number or part.strip()),
                               code="unknown_invoice")
        amount = parse_amount(amount_text)
        if amount is None or amount <= 0:
            raise ServiceError(_l("Not an amount in whole Rupiah (e.g. 1.500.000,00 or 1500000)."), code="bad_amount")
        allocations.append((invoice.id, amount))
    return allocations


def allocation_text(allocations) -> str:
    """The editable text of a proposal's allocations (what :func:`parse_allocations` reads)."""
    return "; ".join(f"{invoice.number} = {amount}" for invoice, amount in allocations)
