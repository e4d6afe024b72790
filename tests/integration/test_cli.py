"""Operator commands: create-admin, wapu list, demo load (idempotent)."""

import re

from sqlalchemy import func, select

from scm.auth.models import Role, User
from scm.core.formatting import today_wib
from scm.extensions import db
from scm.people.models import StandIn
from scm.procurement.models import PurchaseRequestEvent
from scm.registration.models import (
    CompanyChange,
    ContractWarning,
    Registration,
    RegistrationState,
    Wapu,
    WapuStatus,
)


def test_create_admin_with_given_password(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--email", "Boss@Distributor.example.com",
                                 "--name", "Bos", "--password", "Kopi-Tubruk-Pagi-77"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "boss@distributor.example.com")).scalar_one()
        assert user.role == Role.DIST_ADMIN and not user.must_change_password


def test_create_admin_generates_a_one_time_password_and_refuses_bad_input(app):
    """Commands speak the default language (Bahasa Indonesia)."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--email", "a@distributor.example.com", "--name", "A"],
                           input="\n\n")
    assert result.exit_code == 0 and "One-time password" in result.output
    with app.app_context():
        assert db.session.execute(select(User.must_change_password)).scalar_one() is True
    again = runner.invoke(args=["users", "create-admin", "--email", "a@distributor.example.com", "--name", "A",
                                "--password", "Kopi-Tubruk-Pagi-77"])
    assert again.exit_code != 0 and "Pengguna dengan email ini sudah ada" in again.output
    weak = runner.invoke(args=["users", "create-admin", "--email", "b@distributor.example.com", "--name", "B",
                               "--password", "password123"])
    assert weak.exit_code != 0 and "terlalu umum" in weak.output
    bad = runner.invoke(args=["users", "create-admin", "--email", "not-an-email", "--name", "B",
                              "--password", "Kopi-Tubruk-Pagi-77"])
    assert bad.exit_code != 0 and "alamat email yang valid" in bad.output


def _demo_counts():
    from scm.billing.models import CreditNote, Invoice, Payment
    from scm.quota.models import QuotaEntry
    from scm.stamping.models import Stamp

    return tuple(db.session.execute(select(func.count()).select_from(model)).scalar()
                 for model in (User, Registration, Invoice, Payment, CreditNote, Stamp, QuotaEntry))


def test_demo_load_is_idempotent_and_wapu_list_prints_it(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "admin@distributor.example.com" in first.output and "Meterai-Demo-2026" in first.output
    assert "18 invoices" in first.output
    # The logins come before the correction link, which opens the returned registration's form.
    assert first.output.index("Demo logins") < first.output.index("/register/correct/")
    link = re.search(r"http://testserver(/register/correct/\S+)", first.output).group(1)
    assert app.test_client().get(link).status_code == 200
    with app.app_context():
        counts = _demo_counts()
        states = db.session.execute(select(Registration.state)).scalars().all()
        assert states.count(RegistrationState.APPROVED) == 5
        assert states.count(RegistrationState.SUBMITTED) == 2
        assert states.count(RegistrationState.RETURNED) == 1
        assert db.session.execute(select(func.count()).select_from(Wapu)).scalar() == 5
        # A WAPU's life: W0004's contract ends within 30 days (warned at 60 and 30), W0005 suspended,
        # W0001's renewal entered and coming, W0002's 16-digit NPWP waiting for review.
        wapus = {w.code: w for w in db.session.execute(select(Wapu)).scalars()}
        today = today_wib()
        assert 0 <= (wapus["W0004"].last_day_under_contract - today).days <= 30
        assert wapus["W0005"].status == WapuStatus.SUSPENDED and wapus["W0005"].status_reason
        assert [c.start_date > today for c in wapus["W0001"].contracts] == [True, False]
        assert sorted(db.session.execute(select(ContractWarning.days)).scalars()) == [30, 60]
        change = db.session.execute(select(CompanyChange)).scalar_one()
        assert change.wapu_id == wapus["W0002"].id and change.npwp == "0" + wapus["W0002"].npwp
        # People: W0001 has two SPVs, the second standing in for the first this week (and has decided a
        # PR on their behalf); a former STAFF member's account is off; the admin stands in for DIST_SPV.
        w1 = {u.email: u for u in wapus["W0001"].users}
        assert w1["spv2@disdik-jabar.example.com"].role == Role.WAPU_SPV
        assert not w1["staff.lama@disdik-jabar.example.com"].active
        stand_ins = {(s.principal.email, s.substitute.email) for s in db.session.execute(select(StandIn)).scalars()}
        assert stand_ins == {("spv@disdik-jabar.example.com", "spv2@disdik-jabar.example.com"),
                             ("spv@distributor.example.com", "admin@distributor.example.com")}
        on_behalf = db.session.execute(select(PurchaseRequestEvent).where(
            PurchaseRequestEvent.on_behalf_of_id.is_not(None))).scalar_one()
        assert (on_behalf.actor.email, on_behalf.on_behalf_of.email) == (
            "spv2@disdik-jabar.example.com", "spv@disdik-jabar.example.com")
    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0 and "already loaded" in second.output
    with app.app_context():
        assert counts == _demo_counts()
    listing = runner.invoke(args=["wapu", "list"])
    lines = listing.output.strip().splitlines()
    assert len(lines) == 5
    code, name, npwp, status = lines[0].split("\t")
    assert code == "W0001" and status == "active"
    assert len(npwp) == 20 and npwp[2] == "." and npwp[12] == "-"  # 99.999.999.9-999.999
    verify = runner.invoke(args=["quota", "verify"])
    assert verify.exit_code == 0 and "OK" in verify.output
    _check_demo_billing(app)


def _check_demo_billing(app):
    """Six billed months per WAPU up to last month (one load of the demo is slow enough: shared);
    older ones paid; last month partly paid, paid or open, and overdue once the 10th has passed;
    this month W0003 runs below the minimum."""
    from scm.billing.models import Invoice, InvoiceState, LineKind, MinimumPolicy
    from scm.billing.usage import add_months, check_month, month_of, usage_by_month
    from scm.core.formatting import today_wib
    from scm.quota.services import verify_ledger

    today = today_wib()
    last = add_months(month_of(today), -1)
    months = [add_months(last, -n) for n in range(5, -1, -1)]
    with app.app_context():
        assert verify_ledger() == []
        invoices = db.session.execute(select(Invoice).join(Wapu).order_by(Invoice.period, Wapu.code)).scalars().all()
        assert [(i.wapu.code, i.period) for i in invoices] == [
            (code, month) for month in months for code in ("W0001", "W0002", "W0003")]
        numbers = [i.number for i in invoices]
        assert None not in numbers and len(set(numbers)) == 18
        used = usage_by_month(months[0], last)
        for invoice in invoices:
            assert invoice.issue_date.day <= 4 and invoice.issue_date >= add_months(invoice.period, 1)
            assert invoice.used == used[invoice.wapu_id, invoice.period] - (
                12 if invoice.wapu.code == "W0002" and invoice.period == months[-2] else 0)
            assert invoice.total_due == sum(line.amount for line in invoice.lines)
            if invoice.period < last:
                assert invoice.state == InvoiceState.PAID and invoice.balance == 0
                assert all(p.paid_on <= invoice.due_date and p.paid_on.weekday() < 5 for p in invoice.payments)
        w3 = [i for i in invoices if i.wapu.code == "W0003"]
        assert all(i.minimum_policy == MinimumPolicy.TRUE_UP and 0 < i.used < 1000 for i in w3)
        assert all(sum(line.amount for line in i.lines if line.kind != LineKind.SERVICE_FEE) == 1000 * i.unit_price
                   for i in w3)  # usage + true-up = the minimum (the service fee comes on top)
        assert all(i.ppn_amount > 0 and LineKind.SERVICE_FEE in [line.kind for line in i.lines] for i in invoices)
        assert all(LineKind.TRUE_UP in [line.kind for line in i.lines] for i in w3)
        credited = [i for i in invoices if i.credited_amount]
        assert [(i.wapu.code, i.period, i.credited_amount) for i in credited] == [("W0002", months[2], 250_000)]
        assert credited[0].credit_notes[0].reason == "Koreksi 25 e-Meterai gagal dibubuhkan"

        w1, w2, w3 = (i for i in invoices if i.period == last)
        assert w1.paid_amount == w1.total_due * 40 // 100
        assert w1.state == (InvoiceState.PARTIALLY_PAID if today <= w1.due_date else InvoiceState.OVERDUE)
        assert w3.paid_amount == 0
        assert w3.state == (InvoiceState.OVERDUE if today.day > 10 else InvoiceState.ISSUED)
        assert w2.state in (InvoiceState.PAID, InvoiceState.ISSUED)
        assert [(line.kind, line.usage_month, line.quantity) for line in w2.lines if line.kind == LineKind.LATE_USAGE] \
            == [(LineKind.LATE_USAGE, months[-2], 12)]

        running = {check.wapu.code: check for check in check_month(month_of(today), today)}
        assert running["W0003"].below and running["W0003"].minimum == 1000
