"""Contracts over time (issue #11): renewals and amendments, overlap, early termination, the API
across midnight WIB, billing of a month that straddles a price change, and the expiry warnings."""

import io
import random
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from scm.auth.models import Role, User
from scm.auth.services import find_active_user
from scm.billing.models import Invoice, LineKind
from scm.billing.services import issue_invoice, run_billing
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.formatting import WIB, today_wib
from scm.core.models import Notification, OutboxEmail
from scm.core.uploads import Upload
from scm.extensions import db
from scm.registration import services
from scm.registration.models import Contract, ContractEnd, ContractWarning, Wapu
from scm.registration.tasks import contract_expiry_job
from scm.stamping import services as stamping
from tests.fixtures.factories import insert_stamps, pdf_bytes
from tests.integration.api_helpers import Api, check_ok, check_problem, give_quota, new_token

TODAY = today_wib()


def at_wib(day, hour=0, minute=0, second=0):
    return datetime.combine(day, time(hour, minute, second), WIB).astimezone(timezone.utc)


def admin(factory):
    return factory.user(Role.DIST_ADMIN)


def add_contract(app, admin_email, wapu_id, number, start, end, **options):
    with app.app_context(), unit_of_work():
        contract = services.add_contract(db.session.get(Wapu, wapu_id), find_active_user(admin_email), number=number,
                                         start_date=start, end_date=end, upload=Upload(pdf_bytes(), "k.pdf"),
                                         **options)
        return contract.id


def set_first_contract(app, wapu_id, start, end, unit_price=None):
    with app.app_context(), unit_of_work():
        db.session.execute(update(Contract).where(Contract.wapu_id == wapu_id)
                           .values(start_date=start, end_date=end, unit_price=unit_price))


@pytest.fixture
def clock(monkeypatch):
    """``clock(moment)``: the stamping services' 'now' (reservations, commits) becomes ``moment``."""

    def set_to(moment):
        monkeypatch.setattr(stamping, "utcnow", lambda: moment)

    return set_to


# --------------------------------------------------------------------------- the API across contracts


def test_a_renewal_without_a_gap_keeps_the_api_working_across_midnight_wib(app, factory, clock):
    boss = admin(factory)
    renewed, lapsed = factory.wapu(), factory.wapu()
    last = TODAY + timedelta(days=5)
    for wapu in (renewed, lapsed):
        set_first_contract(app, wapu["id"], date(2026, 1, 1), last)
        give_quota(app, wapu["id"], 10, key=f"po-{wapu['id']}")
    add_contract(app, boss, renewed["id"], "KTR/RENEW/1", last + timedelta(days=1), last + timedelta(days=366))
    renewed_api = Api(app.test_client(), new_token(app, renewed["id"]))
    lapsed_api = Api(app.test_client(), new_token(app, lapsed["id"]))

    clock(at_wib(last, 23, 59, 59))
    check_ok(renewed_api.reserve("MID-1"), 201)
    check_ok(lapsed_api.reserve("MID-2"), 201)
    clock(at_wib(last + timedelta(days=1)))  # 00:00:00 WIB: the renewal is in force, the old one ended
    check_ok(renewed_api.reserve("MID-3"), 201)  # the same token works across the renewal
    body = check_problem(lapsed_api.reserve("MID-4"), 403, "wapu_not_active")
    assert body["reason"] == "contract_ended"
    # reservations made the day before are still settled
    check_ok(renewed_api.commit("MID-1"))
    check_ok(lapsed_api.commit("MID-2"))
    check_ok(renewed_api.commit("MID-3"))


def test_termination_stops_reservations_from_its_date(app, factory, clock):
    boss = admin(factory)
    wapu = factory.wapu()
    give_quota(app, wapu["id"], 10)
    api = Api(app.test_client(), new_token(app, wapu["id"]))
    end_from = TODAY + timedelta(days=20)
    with app.app_context(), unit_of_work():
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == wapu["id"])).scalar_one()
        services.terminate_contract(contract, find_active_user(boss), from_date=end_from, reason="Wanprestasi")
    with app.app_context():
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == wapu["id"])).scalar_one()
        assert contract.last_day == end_from - timedelta(days=1) and contract.ended_how == ContractEnd.TERMINATED
    clock(at_wib(end_from - timedelta(days=1), 23, 59, 59))
    check_ok(api.reserve("TERM-1"), 201)
    clock(at_wib(end_from))
    assert check_problem(api.reserve("TERM-2"), 403, "wapu_not_active")["reason"] == "contract_ended"
    check_ok(api.release("TERM-1"))


def test_a_wapu_whose_contract_has_not_started_has_no_contract(app, factory):
    wapu = factory.wapu()
    set_first_contract(app, wapu["id"], TODAY + timedelta(days=3), TODAY + timedelta(days=300))
    give_quota(app, wapu["id"], 1)
    api = Api(app.test_client(), new_token(app, wapu["id"]))
    assert check_problem(api.reserve("EARLY-1"), 403, "wapu_not_active")["reason"] == "no_contract"


def test_the_openapi_document_names_the_reasons(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    reason = document["components"]["schemas"]["Problem"]["properties"]["reason"]
    assert reason["enum"] == ["suspended", "no_contract", "contract_ended"]
    forbidden = document["paths"]["/stamps"]["post"]["responses"]["403"]["description"]
    assert "wapu_not_active" in forbidden and "renewals" in forbidden


# --------------------------------------------------------------------------- adding and ending


def test_overlapping_contracts_are_refused_unless_one_supersedes_from_a_date(app, factory):
    boss = admin(factory)
    wapu = factory.wapu()  # its contract runs 2026-01-01 … 2027-12-31
    with pytest.raises(ValidationErrors) as refused:
        add_contract(app, boss, wapu["id"], "KTR/OVER/1", date(2027, 6, 1), date(2028, 5, 31))
    assert "start_date" in refused.value.errors
    with pytest.raises(ValidationErrors):  # superseding from a day already past is refused
        add_contract(app, boss, wapu["id"], "KTR/OVER/2", TODAY - timedelta(days=1), date(2028, 5, 31),
                     supersede=True)
    start = TODAY + timedelta(days=10)
    new_id = add_contract(app, boss, wapu["id"], "KTR/AMD/1", start, date(2028, 12, 31), supersede=True,
                          kind="amendment", unit_price=12_000)
    with app.app_context():
        old, new = sorted(db.session.execute(select(Contract).where(Contract.wapu_id == wapu["id"])).scalars(),
                          key=lambda c: c.id)
        assert new.id == new_id and new.unit_price == 12_000 and new.kind.value == "amendment"
        assert old.ended_from == start and old.ended_how == ContractEnd.SUPERSEDED
        assert old.last_day == start - timedelta(days=1) and old.end_date == date(2027, 12, 31)
        assert db.session.get(Wapu, wapu["id"]).contract_on(start).id == new_id
    with pytest.raises(ValidationErrors) as refused:  # the two contracts no longer overlap each other
        add_contract(app, boss, wapu["id"], "KTR/AMD/2", start + timedelta(days=5), date(2029, 1, 1))
    assert "start_date" in refused.value.errors
    with pytest.raises(ValidationErrors) as refused:  # same number twice
        add_contract(app, boss, wapu["id"], "KTR/AMD/1", date(2029, 1, 1), date(2029, 12, 31))
    assert "number" in refused.value.errors


def test_termination_needs_a_reason_and_a_day_not_past(app, factory):
    boss, supervisor = admin(factory), factory.user(Role.DIST_SPV)
    wapu = factory.wapu()
    with app.app_context(), unit_of_work():
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == wapu["id"])).scalar_one()
        actor = find_active_user(boss)
        with pytest.raises(ServiceError):
            services.terminate_contract(contract, actor, from_date=TODAY, reason=" ")
        with pytest.raises(ServiceError):
            services.terminate_contract(contract, actor, from_date=TODAY - timedelta(days=1), reason="x")
        with pytest.raises(ServiceError):
            services.terminate_contract(contract, find_active_user(supervisor),
                                        from_date=TODAY, reason="x")


def test_the_wapu_page_shows_the_history_and_only_the_admin_adds_or_terminates(app, factory, login_as):
    boss_client = login_as(Role.DIST_ADMIN)
    wapu = factory.wapu()
    page = boss_client.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert "Tambah perpanjangan atau amandemen" in page and 'data-standing="in_force"' in page
    answer = boss_client.post(f"/wapus/{wapu['id']}/contracts/new", data={
        "number": "KTR/OVERLAP", "kind": "renewal", "start_date": "2027-06-01", "end_date": "2028-05-31",
        "contract_file": (io.BytesIO(pdf_bytes()), "perpanjangan.pdf")}, content_type="multipart/form-data")
    assert answer.status_code == 422 and "tumpang tindih" in answer.get_data(as_text=True)
    answer = boss_client.post(f"/wapus/{wapu['id']}/contracts/new", data={
        "number": "KTR/RENEW/2028", "kind": "renewal", "start_date": "2028-01-01", "end_date": "2028-12-31",
        "unit_price": "Rp 11.000", "contract_file": (io.BytesIO(pdf_bytes()), "perpanjangan.pdf")},
        content_type="multipart/form-data")
    assert answer.status_code == 302
    page = boss_client.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert "KTR/RENEW/2028" in page and 'data-standing="upcoming"' in page and "Rp11.000" in page
    with app.app_context():
        renewal = db.session.execute(select(Contract).where(Contract.number == "KTR/RENEW/2028")).scalar_one()
        contract_id = renewal.id
    answer = boss_client.post(f"/contracts/{contract_id}/terminate",
                              data={"from_date": "2028-01-01", "reason": "Dibatalkan para pihak"})
    assert answer.status_code == 302
    page = boss_client.get(f"/wapus/{wapu['id']}").get_data(as_text=True)
    assert "Dibatalkan para pihak" in page
    staff = login_as(Role.WAPU_STAFF, wapu["id"])
    assert staff.get(f"/wapus/{wapu['id']}/contracts/new").status_code == 403
    assert staff.post(f"/contracts/{contract_id}/terminate", data={"reason": "x"}).status_code == 403
    assert login_as(Role.DIST_SPV).get(f"/wapus/{wapu['id']}/contracts/new").status_code == 403


# --------------------------------------------------------------------------- billing across a price change


@pytest.mark.parametrize("seed", [1, 2])
def test_a_month_straddling_a_price_change_is_billed_day_by_day(app, factory, seed):
    """October 2026: contract A at Rp9.000 until the 14th, contract B at Rp12.500 from the 15th
    (00:00 WIB). Each stamp is billed at the price of the contract in force on its WIB day; the
    invoice equals a brute-force sum over the stamps."""
    boss, finance = admin(factory), factory.user(Role.DIST_FIN)
    wapu = factory.wapu()
    october, switch = date(2026, 10, 1), date(2026, 10, 15)
    set_first_contract(app, wapu["id"], date(2026, 1, 1), date(2026, 12, 31), unit_price=9_000)
    with app.app_context(), unit_of_work():
        services.add_contract(db.session.get(Wapu, wapu["id"]), find_active_user(boss), number="KTR/PRICE",
                              start_date=switch, end_date=date(2027, 10, 14), upload=Upload(pdf_bytes(), "k.pdf"),
                              unit_price=12_500, supersede=True, today=date(2026, 10, 1))
    rng = random.Random(seed)
    start, end = at_wib(october), at_wib(date(2026, 11, 1))
    moments = [at_wib(october), at_wib(switch) - timedelta(seconds=1), at_wib(switch),
               end - timedelta(seconds=1)]
    moments += [start + (end - start) * rng.random() for _ in range(rng.randint(50, 300))]
    with app.app_context():
        insert_stamps(wapu["id"], moments)
        # and some stamps of the neighbouring months, which October must not bill
        insert_stamps(wapu["id"], [start - timedelta(seconds=1), end])

    def price(moment):
        return 9_000 if moment.astimezone(WIB).date() < switch else 12_500

    expected = sum(price(moment) for moment in moments)
    with app.app_context(), unit_of_work():
        run_billing(october, source="cli", today=date(2026, 11, 30))
    with app.app_context(), unit_of_work():
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu["id"],
                                                           Invoice.period == october)).scalar_one()
        issued = issue_invoice(invoice.id, find_active_user(finance), today=date(2026, 11, 30))
        usage = [(line.quantity, line.unit_price) for line in issued.lines if line.kind == LineKind.USAGE]
        before = sum(1 for m in moments if m.astimezone(WIB).date() < switch)
        assert usage == [(before, 9_000), (len(moments) - before, 12_500)]
        assert issued.subtotal == expected and issued.total_due == expected
        assert issued.used == len(moments)
        assert issued.contract_number == "KTR/PRICE" and issued.unit_price == 12_500  # the month-end contract


def test_a_renewal_carries_the_billing_terms_over(app, factory):
    from scm.billing.services import save_contract_terms
    from scm.billing.usage import terms_for

    boss = admin(factory)
    wapu = factory.wapu()
    with app.app_context(), unit_of_work():
        first = db.session.execute(select(Contract).where(Contract.wapu_id == wapu["id"])).scalar_one()
        save_contract_terms(first, find_active_user(boss), effective_from=date(2026, 1, 1), monthly_minimum=2500,
                            minimum_policy="true_up", first_month="full", due_day=20)
    renewal_id = add_contract(app, boss, wapu["id"], "KTR/NEXT", date(2028, 1, 1), date(2028, 12, 31))
    with app.app_context():
        terms = terms_for(db.session.get(Contract, renewal_id), date(2028, 3, 1))
        assert (terms.monthly_minimum, terms.minimum_policy.value, terms.due_day) == (2500, "true_up", 20)


# --------------------------------------------------------------------------- expiry warnings


def _notifications(app, kind="contract_expiring"):
    with app.app_context():
        rows = db.session.execute(select(Notification.user_id, Notification.params)
                                  .where(Notification.kind == kind)).all()
        return [(user_id, params["days"]) for user_id, params in rows]


def test_expiry_warnings_go_once_per_threshold_and_the_job_is_idempotent(app, factory):
    boss = admin(factory)
    wapu = factory.wapu()
    end = date(2027, 3, 31)
    set_first_contract(app, wapu["id"], date(2026, 1, 1), end)
    with app.app_context():
        people = {u.email: u.id for u in db.session.execute(select(User)).scalars()}
        wapu_users = {u.role.value: u.id for u in db.session.get(Wapu, wapu["id"]).users}
    recipients = {wapu_users["WAPU_SPV"], wapu_users["WAPU_FIN"], people[boss]}

    def run(day):
        with app.app_context():
            return contract_expiry_job(day)["warned"]

    assert run(end - timedelta(days=61)) == 0
    assert run(end - timedelta(days=60)) == 1
    assert run(end - timedelta(days=60)) == 0  # the same day again
    assert run(end - timedelta(days=45)) == 0
    assert run(end - timedelta(days=30)) == 1
    assert run(end - timedelta(days=29)) == 0
    assert run(end - timedelta(days=7)) == 1
    assert run(end - timedelta(days=1)) == 0
    assert run(end + timedelta(days=1)) == 0  # ended
    sent = _notifications(app)
    assert sorted(sent) == sorted((user, days) for user in recipients for days in (60, 30, 7))
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(OutboxEmail)
                                  .where(OutboxEmail.to_address == boss)).scalar() >= 3
        assert db.session.execute(select(func.count()).select_from(ContractWarning)).scalar() == 3


def test_a_late_first_run_warns_once_and_a_renewal_moves_the_warnings(app, factory):
    boss = admin(factory)
    wapu = factory.wapu()
    end = date(2027, 3, 31)
    set_first_contract(app, wapu["id"], date(2026, 1, 1), end)
    with app.app_context():
        assert contract_expiry_job(end - timedelta(days=5))["warned"] == 1
        assert contract_expiry_job(end - timedelta(days=4))["warned"] == 0
    assert {days for _, days in _notifications(app)} == {5}
    add_contract(app, boss, wapu["id"], "KTR/2027-2028", end + timedelta(days=1), date(2028, 3, 31))
    with app.app_context():
        assert contract_expiry_job(end - timedelta(days=3))["warned"] == 0  # renewed: nothing ends soon
        assert [row["wapu"].id for row in services.contracts_ending(date(2028, 2, 1))] == [wapu["id"]]


def test_the_distributor_dashboard_lists_contracts_ending_within_60_days(app, factory, login_as):
    soon, later = factory.wapu(), factory.wapu()
    set_first_contract(app, soon["id"], date(2026, 1, 1), TODAY + timedelta(days=20))
    set_first_contract(app, later["id"], date(2026, 1, 1), TODAY + timedelta(days=90))
    page = login_as(Role.DIST_SPV).get("/").get_data(as_text=True)
    assert "Kontrak yang berakhir dalam 60 hari" in page
    panel = page.split('data-testid="contracts-ending"')[1].split("</table>")[0]
    assert soon["code"] in panel and later["code"] not in panel
