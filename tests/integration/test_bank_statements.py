"""Bank statements → payments: the parsers on each bank's layout and on bad files, the matching, the
review through the web, who may do what, and properties over random statements and invoices (no
payment twice across re-uploads and overlapping statements, no overpaid invoice, the applied matches
equal the payments, un-matching restores the invoices exactly)."""

import io
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from scm.auth.models import Role
from scm.billing import bank
from scm.billing.models import (
    BankLine,
    BankLineStatus,
    BankMatch,
    BankStatement,
    Invoice,
    InvoiceState,
    MinimumPolicy,
    Payment,
)
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.models import AuditLog
from scm.extensions import db

DATA = Path(__file__).parent.parent / "data" / "bank"
TODAY = today_wib()
EXPECTED = [(date(2026, 11, 2), True, 1_500_000), (date(2026, 11, 2), False, 10_000), (date(2026, 11, 3), True, 2_000_000)]


# --------------------------------------------------------------------------- parsers


@pytest.mark.parametrize(("name", "fmt", "account", "expected_account"), [
    ("bca.csv", "bca", "", "0123456789"),  # the account from BCA's preamble
    ("mandiri.csv", "mandiri", "", "1230001234567"),  # from its Account No column; amounts 1.500.000,00 and ';'
    ("bni.csv", "bni", "0259-11", "025911"),  # date with a time, amount + Db/Cr
    ("bri.csv", "bri", "0331 01 000123 30 5", "033101000123305"),  # BOM, ';', two-digit years
    ("generic.csv", "generic", "777", "777"),  # ISO dates, a signed amount
    ("mt940.sta", "mt940", "", "1230001234567"),  # :25: BIC/account
])
def test_each_bank_layout_is_read(app, name, fmt, account, expected_account):
    with app.app_context():
        statement = bank.read_statement((DATA / name).read_bytes(), fmt, account=account, name=name)
    assert statement.account == expected_account
    assert [(line.booked_on, line.credit, line.amount) for line in statement.lines] == EXPECTED
    assert "00001" in statement.lines[0].description.replace(" ", "")
    assert len({line.key for line in statement.lines}) == 3


@pytest.mark.parametrize(("text", "value"), [
    ("1.234.567,00", 1_234_567), ("1,234,567.00", 1_234_567), ("1234567", 1_234_567), ("Rp 1.500.000", 1_500_000),
    ("-250.000,00", -250_000), ("2,000,000.00 CR", 2_000_000), ("1,5", None), ("1.234.567.00", None), ("abc", None),
    ("1.234,56", None),  # sen: money is whole Rupiah
])
def test_indonesian_and_english_amounts(text, value):
    assert bank.parse_amount(text) == value


@pytest.mark.parametrize(("name", "fmt", "row", "column"), [
    ("bca_truncated.csv", "bca", 10, "tanggal transaksi"),  # cut in the middle of a row
    ("mandiri_wrong_date.csv", "mandiri", 2, "date"),  # ISO dates where the bank writes DD/MM/YYYY
    ("mt940_truncated.sta", "mt940", None, ""),  # no closing balance
    ("mt940_bad_line.sta", "mt940", 9, ":61:"),  # a :61: line that cannot be read
    ("mandiri.csv", "bca", 1, ""),  # the wrong bank picked
])
def test_bad_files_are_refused_with_row_numbers(app, name, fmt, row, column):
    with app.app_context(), pytest.raises(bank.BankFileError) as caught:
        bank.read_statement((DATA / name).read_bytes(), fmt, account="1")
    first = caught.value.errors[0]
    assert (first.row, first.column) == (row, column)


def test_bad_amounts_semicolons_and_a_binary_file(app):
    bad = "date;description;reference;debit;credit\n2026-11-02;X;R1;0;1.500.000,50\n2026-11-03;Y;R2;abc;0\n"
    with app.app_context():
        with pytest.raises(bank.BankFileError) as caught:
            bank.read_statement(bad.encode(), "generic", account="1")
        assert [(e.row, e.column) for e in caught.value.errors] == [(2, "credit"), (3, "debit")]
        with pytest.raises(bank.BankFileError):
            bank.read_statement(b"PK\x03\x04\x00\x00", "generic", account="1")
        with pytest.raises(bank.BankFileError):
            bank.read_statement(b"date,description,amount\n2026-11-02,X,100\n", "generic")  # no account


def test_identical_lines_of_a_day_keep_their_position(app):
    two = b"date,description,amount\n2026-11-02,SETORAN TUNAI,100000\n2026-11-02,SETORAN TUNAI,100000\n"
    one = b"date,description,amount\n2026-11-02,SETORAN TUNAI,100000\n2026-11-03,LAIN,5\n"
    with app.app_context():
        a = bank.read_statement(two, "generic", account="1")
        b = bank.read_statement(one, "generic", account="1")
    assert len({line.key for line in a.lines}) == 2  # two real transfers
    assert b.lines[0].key == a.lines[0].key  # the first of the day is the same line in both


# --------------------------------------------------------------------------- a world of invoices


def _invoice(wapu, number, total, *, issue_date, due_date, state=InvoiceState.ISSUED, period=None):
    invoice = Invoice(
        wapu_id=wapu["id"], period=period or date(2026, 1, 1), state=state, number=number, issue_date=issue_date,
        due_date=due_date, seller_name="PT Distributor", seller_address="Jakarta", seller_npwp="0" * 16,
        bank_name="BCA", bank_account_number="0123456789", bank_account_name="PT Distributor",
        buyer_name=f"WAPU {wapu['code']}", buyer_address="Jakarta", buyer_npwp="1" * 16,
        minimum_policy=MinimumPolicy.REPORT, unit_price=10_000, subtotal=total, total_due=total)
    db.session.add(invoice)
    db.session.flush()
    return invoice.id


def _reset():
    with unit_of_work():
        for model in (BankMatch, BankLine, BankStatement, Payment, Invoice):
            db.session.execute(delete(model))


def _fin_user():
    from scm.auth.models import User

    return db.session.execute(select(User).where(User.role == Role.DIST_FIN)).scalars().first()


@pytest.fixture
def world(app, factory):
    """Two WAPUs and a finance user (created once; invoices per test)."""
    first, second = factory.wapu(), factory.wapu()
    factory.user(Role.DIST_FIN)
    return {"wapus": [first, second]}


def _csv(lines, account="5550001"):
    """A generic statement: (day, description, amount) rows."""
    text = "date,description,reference,amount\n" + "".join(
        f"{day.isoformat()},{description},,{amount}\n" for day, description, amount in lines)
    return text.encode()


def _upload(data, actor, fmt="generic", account="5550001"):
    parsed = bank.read_statement(data, fmt, account=account)
    with unit_of_work():
        statement = bank.store_statement(parsed, actor)
        return statement.lines_new


def _accept_proposals(actor):
    proposals = [p for p in bank.propose(bank.open_lines(), bank.open_invoices()) if p.kind != bank.MANUAL]
    decisions = [bank.Decision(p.line.id, "accept", [(invoice.id, amount) for invoice, amount in p.allocations])
                 for p in proposals]
    with unit_of_work():
        bank.apply_decisions(decisions, actor)
    return proposals


def test_matching_exact_split_and_left_for_a_person(app, world):
    one, two = world["wapus"]
    day = TODAY - timedelta(days=5)
    with app.app_context():
        with unit_of_work():
            a = _invoice(one, "INV/2026/09/00001", 1_500_000, issue_date=day - timedelta(days=30),
                         due_date=TODAY + timedelta(days=10), period=date(2026, 9, 1))
            b = _invoice(two, "INV/2026/09/00002", 700_000, issue_date=day - timedelta(days=30),
                         due_date=TODAY + timedelta(days=10), period=date(2026, 9, 1))
            c = _invoice(two, "INV/2026/10/00003", 300_000, issue_date=day - timedelta(days=20),
                         due_date=TODAY + timedelta(days=10), period=date(2026, 10, 1))
        actor = _fin_user()
        _upload(_csv([(day, "TRF inv / 2026/09-00001 PT MAJU", 1_500_000),  # number, spaces and case differ
                      (day, f"PEMBAYARAN {two['code'].lower()} SEPT OKT", 1_000_000),  # 700.000 + 300.000
                      (day, "SETORAN TANPA BERITA", 400_000)]), actor)
        proposals = bank.propose(bank.open_lines(), bank.open_invoices())
        kinds = [(p.kind, [(i.id, amount) for i, amount in p.allocations]) for p in proposals]
        assert kinds == [(bank.MATCHED, [(a, 1_500_000)]), (bank.SPLIT, [(b, 700_000), (c, 300_000)]),
                         (bank.MANUAL, [])]
        _accept_proposals(actor)
        states = {i.id: (i.state, i.paid_amount) for i in db.session.execute(select(Invoice)).scalars()}
        assert states == {a: (InvoiceState.PAID, 1_500_000), b: (InvoiceState.PAID, 700_000),
                          c: (InvoiceState.PAID, 300_000)}
        payment = db.session.execute(select(Payment).where(Payment.invoice_id == a)).scalar_one()
        assert payment.paid_on == day and payment.recorded_by_id == actor.id
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action == "invoice.payment_recorded")) == 3


# --------------------------------------------------------------------------- the web


def _post_file(client, data, name, fmt, account=""):
    """Upload a statement: it is held and read in the queue (here at once); its task's page says what
    was read, or leads to every error of a refused file."""
    return client.post("/billing/bank/upload", data={"bank_format": fmt, "account": account,
                                                     "statement": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", follow_redirects=True)


def test_upload_review_apply_unmatch_through_the_web(app, world, login_as):
    one, two = world["wapus"]
    day = TODAY - timedelta(days=3)
    with app.app_context(), unit_of_work():
        a = _invoice(one, "INV/2026/10/00011", 1_500_000, issue_date=day - timedelta(days=20),
                     due_date=TODAY + timedelta(days=5))
        b = _invoice(two, "INV/2026/10/00012", 2_000_000, issue_date=day - timedelta(days=20),
                     due_date=TODAY + timedelta(days=5))
    fin = login_as(Role.DIST_FIN)
    csv_bytes = _csv([(day, "TRANSFER INV/2026/10/00011", 1_500_000), (day, f"TRF {two['code']} TAGIHAN", 2_000_000),
                      (day, "BIAYA ADM", -10_000)])
    answer = _post_file(fin, csv_bytes, "mutasi.csv", "generic", "5550001")
    assert answer.status_code == 200 and "3 baris dibaca, 3 baru" in answer.get_data(as_text=True)  # the task page
    page = fin.get("/billing/bank").get_data(as_text=True)
    assert page.count('data-testid="bank-line"') == 2 and 'data-kind="matched"' in page
    again = _post_file(fin, csv_bytes, "mutasi.csv", "generic", "5550001")  # again: nothing new
    assert again.status_code == 200 and "3 baris dibaca, 0 baru; 3 sudah" in again.get_data(as_text=True)
    with app.app_context():
        lines = db.session.execute(select(BankLine).where(BankLine.credit.is_(True)).order_by(BankLine.id)).scalars().all()
        assert len(lines) == 2 and db.session.scalar(select(func.count()).select_from(BankLine)) == 3
        ids = [line.id for line in lines]
    form = {"line": [str(i) for i in ids], **{f"action-{i}": "accept" for i in ids},
            f"alloc-{ids[0]}": "INV/2026/10/00011 = 1.500.000", f"alloc-{ids[1]}": "INV/2026/10/00012 = 2.000.000"}
    assert fin.post("/billing/bank/apply", data=form).status_code == 302
    assert fin.post("/billing/bank/apply", data=form).status_code == 302  # a second submit records nothing
    with app.app_context():
        assert [db.session.get(Invoice, i).state for i in (a, b)] == [InvoiceState.PAID, InvoiceState.PAID]
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 2
        assert {p.reference for p in db.session.execute(select(Payment)).scalars()} <= {
            "TRANSFER INV/2026/10/00011", f"TRF {two['code']} TAGIHAN"}
    assert fin.post(f"/billing/bank/lines/{ids[0]}/unmatch", data={"reason": ""}).status_code == 302  # no reason
    assert fin.post(f"/billing/bank/lines/{ids[0]}/unmatch", data={"reason": "salah transfer"}).status_code == 302
    with app.app_context():
        invoice = db.session.get(Invoice, a)
        assert (invoice.state, invoice.paid_amount) == (InvoiceState.ISSUED, 0)
        payment = db.session.execute(select(Payment).where(Payment.invoice_id == a)).scalar_one()
        assert payment.reversed_at is not None and payment.reversal_reason == "salah transfer"
        assert db.session.get(BankLine, ids[0]).status == BankLineStatus.OPEN
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action.in_(("invoice.payment_reversed", "bank.line_unmatched")))) == 2
    detail = fin.get(f"/billing/invoices/{a}").get_data(as_text=True)
    assert 'data-testid="reversed-payment"' in detail and "<s>" in detail and "salah transfer" in detail


def test_bad_file_through_the_web_changes_nothing_and_speaks_indonesian(app, world, login_as):
    fin = login_as(Role.DIST_FIN)
    answer = _post_file(fin, (DATA / "mandiri_wrong_date.csv").read_bytes(), "m.csv", "mandiri")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'data-row="2"' in page and 'data-row="3"' in page
    assert "Tidak ada data yang diubah" in page and "Bukan tanggal dalam bentuk DD/MM/YYYY" in page
    assert _post_file(fin, b"", "empty.csv", "bca").status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BankLine)) == 0
        assert db.session.scalar(select(func.count()).select_from(BankStatement)) == 0


def test_who_may(app, world, login_as):
    one = world["wapus"][0]
    for role in (Role.DIST_ADMIN, Role.DIST_SPV):
        reader = login_as(role)
        assert reader.get("/billing/bank").status_code == 200
        assert _post_file(reader, (DATA / "bca.csv").read_bytes(), "bca.csv", "bca").status_code == 403
        assert reader.post("/billing/bank/apply", data={}).status_code == 403
        assert reader.post("/billing/bank/lines/1/unmatch", data={"reason": "x"}).status_code == 403
    for role in (Role.WAPU_FIN, Role.WAPU_SPV):
        wapu_user = login_as(role, wapu_id=one["id"])
        assert wapu_user.get("/billing/bank").status_code in (403, 404)
        assert _post_file(wapu_user, (DATA / "bca.csv").read_bytes(), "bca.csv", "bca").status_code in (403, 404)
    fin = login_as(Role.DIST_FIN)
    assert fin.post("/billing/bank/apply", data={}, csrf=False).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BankStatement)) == 0


# --------------------------------------------------------------------------- properties

BASE = settings(deadline=None, database=None, max_examples=12, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

invoice_specs = st.lists(st.tuples(st.integers(0, 1), st.integers(1, 40).map(lambda n: n * 50_000), st.booleans()),
                         min_size=1, max_size=5)
line_specs = st.lists(st.tuples(
    st.sampled_from(["number", "wapu", "wapu_all", "noise", "partial"]), st.integers(0, 9), st.integers(0, 4),
    st.integers(1, 60).map(lambda n: n * 25_000)), min_size=1, max_size=10)


@pytest.mark.timeout(900)
@BASE
@given(invoices=invoice_specs, lines=line_specs)
def test_properties_over_random_statements(app, world, invoices, lines):
    with app.app_context():
        _reset()
        actor = _fin_user()
        wapus = world["wapus"]
        start = TODAY - timedelta(days=20)
        numbers = []
        with unit_of_work():
            for index, (which, total, overdue) in enumerate(invoices):
                number = f"INV/2026/P/{index + 1:05d}"
                _invoice(wapus[which], number, total, issue_date=start - timedelta(days=30),
                         due_date=TODAY - timedelta(days=3) if overdue else TODAY + timedelta(days=10),
                         state=InvoiceState.OVERDUE if overdue else InvoiceState.ISSUED,
                         period=date(2026, 1 + index, 1))
                numbers.append((number, wapus[which]["code"], total))
        rows = []
        for kind, day, pick, amount in lines:
            number, code, total = numbers[pick % len(numbers)]
            description, value = {
                "number": (f"TRF {number}", total), "wapu": (f"BAYAR {code}", total),
                "wapu_all": (f"BAYAR {code}", sum(t for _n, c, t in numbers if c == code)),
                "noise": ("SETORAN", amount), "partial": (f"TRF {number}", min(amount, total)),
            }[kind]
            rows.append((start + timedelta(days=day), description, value))
        rows.sort(key=lambda row: row[0])
        early = [row for row in rows if row[0] <= start + timedelta(days=6)]
        late = [row for row in rows if row[0] >= start + timedelta(days=3)]
        before = {i.id: (i.state, i.paid_amount) for i in db.session.execute(select(Invoice)).scalars()}
        total_new = 0
        for part in (early, early, late):  # the same statement twice, then one that overlaps it
            if part:
                total_new += _upload(_csv(part), actor)
                _accept_proposals(actor)
        assert total_new == len(rows) == db.session.scalar(select(func.count()).select_from(BankLine))
        if late:
            assert _upload(_csv(late), actor) == 0
        db.session.expire_all()
        invoices_now = db.session.execute(select(Invoice)).scalars().all()
        assert all(i.paid_amount + i.credited_amount <= i.total_due for i in invoices_now)
        live = db.session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.reversed_at.is_(None)))
        matched = db.session.scalar(select(func.coalesce(func.sum(BankMatch.amount), 0)))
        assert live == matched == sum(i.paid_amount for i in invoices_now)
        for line in db.session.execute(select(BankLine)).scalars():
            assert sum(m.amount for m in line.live_matches) <= line.amount
            assert (line.status == BankLineStatus.MATCHED) == bool(line.matches)
        matched_lines = db.session.execute(select(BankLine.id).where(BankLine.status == BankLineStatus.MATCHED)
                                           ).scalars().all()
        with unit_of_work():
            for line_id in matched_lines:
                bank.unmatch_line(line_id, actor, reason="uji")
        db.session.expire_all()
        after = {i.id: (i.state, i.paid_amount) for i in db.session.execute(select(Invoice)).scalars()}
        assert after == before
        assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.reversed_at.is_(None))) == 0
