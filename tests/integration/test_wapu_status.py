"""Suspending and reactivating a WAPU (issue #11): what a suspended WAPU's users and API token
can and cannot do, who may suspend, and that both steps are audited and told to the WAPU's users."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role
from scm.auth.services import find_active_user
from scm.billing.models import Invoice, InvoiceState
from scm.billing.services import issue_invoice, run_billing
from scm.billing.usage import add_months, month_of
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.models import AuditLog, Notification
from scm.extensions import db
from scm.procurement.models import PurchaseOrder, PurchaseRequest
from scm.registration.models import Wapu, WapuStatus
from tests.fixtures.client import Client
from tests.fixtures.factories import insert_stamps
from tests.integration.api_helpers import Api, check_ok, check_problem, event, give_quota, new_token

REASON = "Tagihan tiga bulan belum dibayar"
LAST = add_months(month_of(today_wib()), -1)
BEFORE_LAST = add_months(LAST, -1)


def _stamps(app, wapu_id, month, count):
    start = datetime(month.year, month.month, 2, 3, tzinfo=timezone.utc)
    with app.app_context():
        insert_stamps(wapu_id, [start + timedelta(minutes=7 * i) for i in range(count)])


@pytest.fixture
def suspended(app, factory, login_as):
    """A WAPU with an issued invoice, an approved PR, two open reservations and a token, then
    suspended by a distributor supervisor through the web."""
    wapu = factory.wapu()
    staff, spv, fin = (login_as(role, wapu["id"]) for role in (Role.WAPU_STAFF, Role.WAPU_SPV, Role.WAPU_FIN))
    finance = factory.user(Role.DIST_FIN)
    answer = staff.post("/purchase-requests/new", {"quantity": "50", "purpose": "Ijazah", "submit": "1"})
    assert answer.status_code == 302
    pr_id = int(answer.headers["Location"].rstrip("/").split("/")[-1])
    assert spv.post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    _stamps(app, wapu["id"], LAST, 40)
    with app.app_context(), unit_of_work():
        run_billing(LAST, source="cli")
    with app.app_context(), unit_of_work():
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu["id"])).scalar_one()
        invoice_id = issue_invoice(invoice.id, find_active_user(finance)).id
    give_quota(app, wapu["id"], 10)
    api = Api(app.test_client(), new_token(app, wapu["id"]))
    check_ok(api.reserve("OPEN-1"), 201)
    check_ok(api.reserve("OPEN-2"), 201)
    supervisor = login_as(Role.DIST_SPV)
    assert supervisor.post(f"/wapus/{wapu['id']}/status", {"reason": REASON}).status_code == 302
    with app.app_context():
        assert db.session.get(Wapu, wapu["id"]).status == WapuStatus.SUSPENDED
    return {"app": app, "wapu": wapu, "staff": staff, "spv": spv, "fin": fin, "api": api, "pr_id": pr_id,
            "invoice_id": invoice_id}


def count(app, model):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar()


# Each action returns True when it was allowed, False when it was refused (and checks the refusal).

def log_in(ctx):
    client = Client(ctx["app"].test_client())
    return client.login(ctx["staff"].email).status_code == 302


def see_dashboard_and_orders(ctx):
    page = ctx["staff"].get("/purchase-requests")
    assert REASON in page.get_data(as_text=True)  # told why ordering is refused
    return page.status_code == 200 and ctx["staff"].get("/").status_code == 200


def see_company_page(ctx):
    page = ctx["spv"].get(f"/wapus/{ctx['wapu']['id']}").get_data(as_text=True)
    assert REASON in page
    return "Ditangguhkan" in page or "ditangguhkan" in page


def download_invoice(ctx):
    answer = ctx["fin"].get(f"/billing/invoices/{ctx['invoice_id']}.pdf")
    return answer.status_code == 200 and answer.data.startswith(b"%PDF")


def submit_purchase_request(ctx):
    before = count(ctx["app"], PurchaseRequest)
    answer = ctx["staff"].post("/purchase-requests/new", {"quantity": "5", "purpose": "x", "submit": "1"})
    refused = answer.status_code == 200 and REASON in answer.get_data(as_text=True)
    assert refused == (count(ctx["app"], PurchaseRequest) == before)
    return not refused


def raise_purchase_order(ctx):
    ctx["staff"].post(f"/purchase-requests/{ctx['pr_id']}/order")
    return count(ctx["app"], PurchaseOrder) > 0


def reserve_through_the_api(ctx):
    answer = ctx["api"].reserve("NEW-1")
    if answer.status_code == 403:
        body = check_problem(answer, 403, "wapu_not_active")
        assert body["reason"] == "suspended"
        return False
    return True


def commit_an_open_reservation(ctx):
    return check_ok(ctx["api"].commit("OPEN-1"))["state"] == "stamped"


def release_an_open_reservation(ctx):
    return check_ok(ctx["api"].release("OPEN-2"))["state"] == "released"


def report_a_batch_of_stamps_already_made(ctx):
    answer = ctx["api"].batch([event("BATCH-1")])
    return answer.status_code == 200


def read_the_quota(ctx):
    return ctx["api"].get("/quota").status_code == 200


def be_billed(ctx):
    _stamps(ctx["app"], ctx["wapu"]["id"], BEFORE_LAST, 12)
    with ctx["app"].app_context(), unit_of_work():
        run_billing(BEFORE_LAST, source="cli")
    with ctx["app"].app_context():
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == ctx["wapu"]["id"],
                                                           Invoice.period == BEFORE_LAST)).scalar_one_or_none()
        return invoice is not None and invoice.state == InvoiceState.DRAFT and invoice.used == 12


WHAT_A_SUSPENDED_WAPU_CAN_DO = [
    (log_in, True),
    (see_dashboard_and_orders, True),
    (see_company_page, True),
    (download_invoice, True),
    (submit_purchase_request, False),
    (raise_purchase_order, False),
    (reserve_through_the_api, False),
    (commit_an_open_reservation, True),
    (release_an_open_reservation, True),
    (report_a_batch_of_stamps_already_made, True),
    (read_the_quota, True),
    (be_billed, True),
]


@pytest.mark.parametrize("action, allowed", WHAT_A_SUSPENDED_WAPU_CAN_DO, ids=[a.__name__ for a, _ in WHAT_A_SUSPENDED_WAPU_CAN_DO])
def test_what_a_suspended_wapu_can_and_cannot_do(suspended, action, allowed):
    assert action(suspended) is allowed


def test_suspension_and_reactivation_are_audited_and_told_to_the_wapu_users(suspended, login_as):
    app, wapu_id = suspended["app"], suspended["wapu"]["id"]
    admin = login_as(Role.DIST_ADMIN)
    assert admin.post(f"/wapus/{wapu_id}/status", {"reason": "Sudah dibayar"}).status_code == 302
    with app.app_context():
        assert db.session.get(Wapu, wapu_id).status == WapuStatus.ACTIVE
        actions = db.session.execute(select(AuditLog.action, AuditLog.object_ref)
                                     .where(AuditLog.action.like("wapu.%")).order_by(AuditLog.id)).all()
        assert [a for a, _ in actions] == ["wapu.create", "wapu.suspend", "wapu.reactivate"]
        users = {u.id for u in db.session.get(Wapu, wapu_id).users}
        for kind in ("wapu_suspended", "wapu_reactivated"):
            told = set(db.session.execute(select(Notification.user_id).where(Notification.kind == kind)).scalars())
            assert told == users
    check_ok(suspended["api"].reserve("AGAIN-1"), 201)  # the same token works again
    log = admin.get("/admin/audit").get_data(as_text=True)
    assert "WAPU ditangguhkan" in log and REASON in log


def test_only_distributor_supervisors_and_admins_suspend_and_a_reason_is_required(app, factory, login_as):
    wapu = factory.wapu()
    for role in (Role.WAPU_SPV, Role.DIST_FIN):
        client = login_as(role, wapu["id"] if role == Role.WAPU_SPV else None)
        assert client.post(f"/wapus/{wapu['id']}/status", {"reason": "x"}).status_code == 403
    answer = login_as(Role.DIST_ADMIN).post(f"/wapus/{wapu['id']}/status", {"reason": " "})
    assert answer.status_code == 422 and "Berikan alasan" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Wapu, wapu["id"]).status == WapuStatus.ACTIVE
