"""Monthly billing: counting in WIB, drafts and re-runs, issuing, late usage, true-up, payments,
credit notes, overdue and aging — against the real database."""

import threading
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role, User
from scm.billing import payments, services
from scm.billing.models import (
    ImmutableInvoiceError,
    Invoice,
    InvoiceState,
    LineKind,
    MinimumPolicy,
)
from scm.billing.usage import usage_by_month, usage_by_wapu
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.extensions import db
from scm.registration.models import Wapu
from tests.fixtures.factories import insert_stamps

NOV, DEC, JAN = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)
UTC = timezone.utc


@contextmanager
def refused(code=None, field=None):
    """The block must raise a ServiceError with this machine code (and field)."""
    with pytest.raises(ServiceError) as error:
        yield
    assert (code is None or error.value.code == code) and (field is None or error.value.field == field), (
        error.value.code, error.value.field, str(error.value))


def at(day: date, hour=10) -> datetime:
    """A moment on ``day`` at ``hour`` WIB, as UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=7)


def spread(month: date, count: int) -> list[datetime]:
    return [at(month + timedelta(days=i % 28), 9 + i % 8) for i in range(count)]


@pytest.fixture
def finance(app, factory):
    email = factory.user(Role.DIST_FIN)
    with app.app_context():
        return db.session.execute(select(User.id).where(User.email == email)).scalar_one()


def actor(user_id):
    return db.session.get(User, user_id)


def run(month, today=None):
    with unit_of_work():
        result = services.run_billing(month, source="cli", today=today or date(2027, 1, 5))
        return result.created, result.refreshed, result.unchanged


def invoice_of(wapu_id, month) -> Invoice:
    return db.session.execute(
        select(Invoice).where(Invoice.wapu_id == wapu_id, Invoice.period == month)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def issue(wapu_id, month, fin, today=date(2026, 12, 1)):
    with unit_of_work():
        return services.issue_invoice(invoice_of(wapu_id, month).id, actor(fin), today=today).number


def lines(invoice):
    return [(line.kind, line.usage_month, line.quantity, line.amount) for line in invoice.lines]


def set_terms(wapu_id, fin, **terms):
    with unit_of_work():
        wapu = db.session.get(Wapu, wapu_id)
        defaults = dict(effective_from=date(2026, 1, 1), monthly_minimum=1000, minimum_policy="report",
                        first_month="exempt", due_day=10)
        services.save_contract_terms(wapu.contracts[0], actor(fin), **{**defaults, **terms})


def test_a_stamp_belongs_to_its_wib_month(app, factory):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], [
            datetime(2026, 11, 30, 16, 30, tzinfo=UTC),  # 23:30 WIB on 30 November
            datetime(2026, 11, 30, 17, 0, tzinfo=UTC),   # 00:00 WIB on 1 December
            datetime(2026, 10, 31, 17, 0, tzinfo=UTC),   # 00:00 WIB on 1 November
            datetime(2026, 10, 31, 16, 59, 59, tzinfo=UTC),  # 23:59:59 WIB on 31 October
        ])
        assert usage_by_wapu(NOV) == {wapu["id"]: 2}
        assert usage_by_wapu(DEC) == {wapu["id"]: 1}
        assert usage_by_month(date(2026, 10, 1), DEC) == {
            (wapu["id"], date(2026, 10, 1)): 1, (wapu["id"], NOV): 2, (wapu["id"], DEC): 1}


def test_run_drafts_once_and_a_rerun_creates_nothing(app, factory):
    busy, idle = factory.wapu(), factory.wapu()
    with app.app_context():
        insert_stamps(busy["id"], spread(NOV, 1200))
        assert run(NOV) == (1, 0, 0)  # the idle WAPU (report policy) has nothing to bill
        assert run(NOV) == (0, 0, 1)
        draft = invoice_of(busy["id"], NOV)
        assert draft.state == InvoiceState.DRAFT and draft.number is None
        assert lines(draft) == [(LineKind.USAGE, NOV, 1200, 12_000_000)]
        assert draft.total_due == 12_000_000 and draft.shortfall == 0
        assert invoice_of(idle["id"], NOV) is None
        insert_stamps(busy["id"], spread(NOV, 5))  # late reports before issue refresh the draft
        assert run(NOV) == (0, 1, 0)
        assert invoice_of(busy["id"], NOV).total_due == 12_050_000
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1


def test_the_current_month_cannot_be_billed(app):
    with app.app_context(), refused("month_not_ended"), unit_of_work():
        services.run_billing(DEC, today=date(2026, 12, 31))


def test_issue_numbers_snapshots_and_freezes_the_invoice(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 1000))
        run(NOV)
        number = issue(wapu["id"], NOV, finance, today=date(2026, 12, 2))
        assert number == "INV/2026/12/00001"
        invoice = invoice_of(wapu["id"], NOV)
        assert invoice.state == InvoiceState.ISSUED
        assert (invoice.issue_date, invoice.due_date) == (date(2026, 12, 2), date(2026, 12, 10))
        assert invoice.buyer_npwp == db.session.get(Wapu, wapu["id"]).npwp
        with refused("already_issued"), unit_of_work():
            services.issue_invoice(invoice.id, actor(finance), today=date(2026, 12, 2))
        with pytest.raises(ImmutableInvoiceError), unit_of_work():
            invoice_of(wapu["id"], NOV).total_due = 1
        with pytest.raises(ImmutableInvoiceError), unit_of_work():
            invoice_of(wapu["id"], NOV).lines[0].quantity = 1
        assert run(NOV) == (0, 0, 1)
        assert invoice_of(wapu["id"], NOV).total_due == 10_000_000


def test_no_invoice_is_issued_without_the_distributor_npwp_and_bank(app, factory, finance):
    wapu = factory.wapu()
    app.config["DISTRIBUTOR_NPWP"] = ""
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 3))
        run(NOV)
        with refused("settings_incomplete"), unit_of_work():
            services.issue_invoice(invoice_of(wapu["id"], NOV).id, actor(finance), today=date(2026, 12, 1))
        assert invoice_of(wapu["id"], NOV).state == InvoiceState.DRAFT


def test_late_stamps_go_on_the_next_invoice_once(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 1100))
        run(NOV)
        issue(wapu["id"], NOV, finance)
        insert_stamps(wapu["id"], [at(date(2026, 11, 29))] * 7)  # reported after November was issued
        insert_stamps(wapu["id"], spread(DEC, 1000))
        run(DEC, today=date(2027, 1, 2))
        december = invoice_of(wapu["id"], DEC)
        assert lines(december) == [(LineKind.USAGE, DEC, 1000, 10_000_000), (LineKind.LATE_USAGE, NOV, 7, 70_000)]
        issue(wapu["id"], DEC, finance, today=date(2027, 1, 2))
        insert_stamps(wapu["id"], spread(JAN, 1000))
        run(JAN, today=date(2027, 2, 1))
        assert lines(invoice_of(wapu["id"], JAN)) == [(LineKind.USAGE, JAN, 1000, 10_000_000)]


def test_true_up_bills_the_shortfall_and_late_stamps_inside_it_are_not_billed_again(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        set_terms(wapu["id"], finance, minimum_policy="true_up")
        insert_stamps(wapu["id"], spread(NOV, 900))
        run(NOV)
        november = invoice_of(wapu["id"], NOV)
        assert lines(november) == [(LineKind.USAGE, NOV, 900, 9_000_000), (LineKind.TRUE_UP, NOV, 100, 1_000_000)]
        assert (november.used, november.minimum, november.shortfall) == (900, 1000, 100)
        issue(wapu["id"], NOV, finance)
        insert_stamps(wapu["id"], [at(date(2026, 11, 28))] * 150)  # 50 of these were paid by the true-up
        insert_stamps(wapu["id"], spread(DEC, 1000))
        run(DEC, today=date(2027, 1, 2))
        assert lines(invoice_of(wapu["id"], DEC)) == [
            (LineKind.USAGE, DEC, 1000, 10_000_000), (LineKind.LATE_USAGE, NOV, 50, 500_000)]


def test_report_policy_warns_but_bills_only_use(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 10))
        run(NOV)
        invoice = invoice_of(wapu["id"], NOV)
        assert invoice.minimum_policy == MinimumPolicy.REPORT and invoice.shortfall == 990
        assert lines(invoice) == [(LineKind.USAGE, NOV, 10, 100_000)]


def test_service_fee_carries_ppn_that_is_shown_but_not_due(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        with unit_of_work():
            services.save_settings(
                actor(finance), distributor_name="PT Distributor", distributor_address="Jl. A", distributor_npwp=
                "013000666091000", bank_name="Bank Mandiri", bank_account_number="123", bank_account_name="PT D",
                unit_price=10_000, service_fee_per_unit=500, ppn_rate=12, ppn_dpp_other_value=True,
                invoice_number_format="FAK-{year}-{seq:04d}", credit_note_number_format="NK-{year}-{seq:04d}",
                warning_days="15,25")
        insert_stamps(wapu["id"], spread(NOV, 1000))
        run(NOV)
        invoice = invoice_of(wapu["id"], NOV)
        assert lines(invoice) == [(LineKind.USAGE, NOV, 1000, 10_000_000), (LineKind.SERVICE_FEE, NOV, 1000, 500_000)]
        assert (invoice.ppn_base, invoice.ppn_amount) == (458_333, 54_999)  # DPP 11/12, 12%
        assert invoice.total_due == invoice.subtotal == 10_500_000
        assert issue(wapu["id"], NOV, finance) == "FAK-2026-0001"


def test_bad_settings_are_refused_with_the_field(app, finance):
    with app.app_context():
        with pytest.raises(ServiceError) as refused, unit_of_work():
            services.save_settings(
                actor(finance), distributor_name="PT D", distributor_address="Jl. A", distributor_npwp="013000666091000",
                bank_name="B", bank_account_number="1", bank_account_name="D", unit_price=10_000,
                service_fee_per_unit=0, ppn_rate=12, ppn_dpp_other_value=True,
                invoice_number_format="INV/{month}/{seq}", credit_note_number_format="NK/{year}/{seq}",
                warning_days="15")
        assert refused.value.field == "invoice_number_format"
        assert services.current_settings().id is None  # nothing saved


def test_concurrent_issuing_keeps_numbers_gapless(app, factory, finance):
    wapus = [factory.wapu() for _ in range(6)]
    with app.app_context():
        for wapu in wapus:
            insert_stamps(wapu["id"], spread(NOV, 3))
        run(NOV)
        ids = [invoice_of(w["id"], NOV).id for w in wapus]
    results, barrier = [], threading.Barrier(len(ids) + 1)

    def issue_twice(invoice_id):
        with app.app_context():
            barrier.wait()
            for _ in range(2):  # the second try must be refused, not numbered
                try:
                    with unit_of_work():
                        results.append(services.issue_invoice(invoice_id, actor(finance), today=date(2026, 12, 1)).number)
                except ServiceError as error:
                    results.append(error.code)
                finally:
                    db.session.remove()

    threads = [threading.Thread(target=issue_twice, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    with app.app_context():
        db.session.remove()
    barrier.wait()
    for thread in threads:
        thread.join(60)
    numbers = sorted(r for r in results if r.startswith("INV"))
    assert numbers == [f"INV/2026/12/{n:05d}" for n in range(1, 7)]
    assert results.count("already_issued") == 6


def test_issue_all_issues_every_draft_in_wapu_order(app, factory, finance):
    wapus = [factory.wapu() for _ in range(3)]
    with app.app_context():
        for wapu in wapus:
            insert_stamps(wapu["id"], spread(NOV, 2))
        run(NOV)
        with unit_of_work():
            issued = services.issue_drafts(NOV, actor(finance), today=date(2026, 12, 1))
        assert [i.number for i in issued] == ["INV/2026/12/00001", "INV/2026/12/00002", "INV/2026/12/00003"]
        assert [i.wapu.code for i in issued] == sorted(w["code"] for w in wapus)


def test_payments_move_the_state_and_never_overpay(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 100))
        run(NOV)
        issue(wapu["id"], NOV, finance)
        invoice_id = invoice_of(wapu["id"], NOV).id
        with unit_of_work():
            payments.record_payment(invoice_id, actor(finance), paid_on=date(2026, 12, 5), amount=400_000,
                                    reference="TRF-1", today=date(2026, 12, 5))
        assert invoice_of(wapu["id"], NOV).state == InvoiceState.PARTIALLY_PAID
        with refused("over_balance"), unit_of_work():
            payments.record_payment(invoice_id, actor(finance), paid_on=date(2026, 12, 6), amount=600_001,
                                    reference="TRF-2", today=date(2026, 12, 6))
        with refused(field="paid_on"), unit_of_work():
            payments.record_payment(invoice_id, actor(finance), paid_on=date(2026, 12, 9), amount=1,
                                    reference="TRF-2", today=date(2026, 12, 6))
        with unit_of_work():
            assert payments.mark_overdue(date(2026, 12, 11)) == 1
            assert payments.mark_overdue(date(2026, 12, 11)) == 0
        assert invoice_of(wapu["id"], NOV).state == InvoiceState.OVERDUE
        with unit_of_work():
            payments.record_payment(invoice_id, actor(finance), paid_on=date(2026, 12, 12), amount=600_000,
                                    reference="TRF-3", today=date(2026, 12, 12))
        invoice = invoice_of(wapu["id"], NOV)
        assert (invoice.state, invoice.balance, invoice.paid_amount) == (InvoiceState.PAID, 0, 1_000_000)
        with refused("invoice_settled"), unit_of_work():
            payments.record_payment(invoice_id, actor(finance), paid_on=date(2026, 12, 12), amount=1,
                                    reference="TRF-4", today=date(2026, 12, 12))


def test_credit_notes_have_their_own_numbers_and_cannot_exceed_the_balance(app, factory, finance):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], spread(NOV, 100))
        run(NOV)
        issue(wapu["id"], NOV, finance)
        invoice_id = invoice_of(wapu["id"], NOV).id
        with unit_of_work():
            note = payments.issue_credit_note(invoice_id, actor(finance), amount=50_000, reason="Salah hitung",
                                              today=date(2026, 12, 3))
            assert note.number == "NK/2026/12/00001"
        assert invoice_of(wapu["id"], NOV).balance == 950_000
        with refused("over_balance"), unit_of_work():
            payments.issue_credit_note(invoice_id, actor(finance), amount=950_001, reason="x", today=date(2026, 12, 3))
        with unit_of_work():
            assert payments.issue_credit_note(invoice_id, actor(finance), amount=950_000, reason="Batal",
                                              today=date(2026, 12, 3)).number == "NK/2026/12/00002"
        invoice = invoice_of(wapu["id"], NOV)
        assert (invoice.state, invoice.balance, invoice.total_due) == (InvoiceState.CREDITED, 0, 1_000_000)


def test_aging_buckets_by_days_past_due(app, factory, finance):
    wapus = [factory.wapu() for _ in range(2)]
    with app.app_context():
        for wapu in wapus:
            insert_stamps(wapu["id"], spread(date(2026, 8, 1), 10))
        run(date(2026, 8, 1), today=date(2026, 9, 1))
        issue(wapus[0]["id"], date(2026, 8, 1), finance, today=date(2026, 9, 1))  # due 10 September
        issue(wapus[1]["id"], date(2026, 8, 1), finance, today=date(2026, 9, 1))
        with unit_of_work():
            payments.record_payment(invoice_of(wapus[1]["id"], date(2026, 8, 1)).id, actor(finance),
                                    paid_on=date(2026, 9, 2), amount=30_000, reference="T", today=date(2026, 9, 2))
        rows, totals = payments.aging(date(2026, 11, 23))  # 74 days past due
        assert [row.amounts["61_90"] for row in rows] == [100_000, 70_000]
        assert totals.total == 170_000 and totals.amounts["0_30"] == 0
        assert payments.bucket_of(date(2026, 11, 23), date(2026, 11, 23)) == "0_30"
        assert payments.bucket_of(date(2026, 11, 24), date(2026, 11, 23)) == "not_due"
        assert payments.bucket_of(date(2026, 8, 1), date(2026, 11, 23)) == "over_90"


def test_a_deactivated_fin_hears_nothing_more_of_the_wapus_invoices(app, factory, finance, mailbox):
    """Who left the WAPU (deactivated by an admin or their SPV) gets neither bell nor email."""
    from scm.core.models import Notification

    wapu = factory.wapu()
    former = factory.user("WAPU_FIN", wapu_id=wapu["id"], email="fin.lama@test.example.com")
    with app.app_context():
        with unit_of_work():
            db.session.execute(select(User).where(User.email == former)).scalar_one().active = False
        insert_stamps(wapu["id"], spread(NOV, 1000))
        run(NOV)
        issue(wapu["id"], NOV, finance, today=date(2026, 12, 2))
        told = set(db.session.execute(select(User.email).join(Notification, Notification.user_id == User.id)
                                      .where(Notification.kind == "invoice_issued")).scalars())
    assert former not in told and told  # the WAPU's active SPV and FIN are told
    assert not mailbox.to(former)
