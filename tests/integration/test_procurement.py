"""Ordering quota over HTTP: PR -> SPV -> PO -> distributor -> quota, guards, tenancy, notifications."""

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from scm.core.models import Notification
from scm.extensions import db
from scm.procurement.models import POState, PRState, PurchaseOrder, PurchaseRequest
from scm.quota.models import QuotaAccount, QuotaEntry
from scm.registration.models import Contract, Wapu, WapuStatus


@pytest.fixture
def team(app, factory, login_as):
    """A WAPU with a logged-in STAFF and SPV, and a logged-in distributor SPV."""
    wapu = factory.wapu(501)
    return {
        "wapu": wapu,
        "staff": login_as("WAPU_STAFF", wapu_id=wapu["id"]),
        "spv": login_as("WAPU_SPV", wapu_id=wapu["id"]),
        "fin": login_as("WAPU_FIN", wapu_id=wapu["id"]),
        "dist": login_as("DIST_SPV"),
    }


def _id(response, kind):
    return int(re.search(rf"/{kind}/(\d+)", response.headers["Location"]).group(1))


def raise_pr(staff, quantity=1500, submit=True, **extra):
    data = {"quantity": str(quantity), "purpose": "Ijazah", **extra}
    data["submit" if submit else "save"] = "1"
    response = staff.post("/purchase-requests/new", data)
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    return _id(response, "purchase-requests")


def full_order(team, quantity=1500):
    pr_id = raise_pr(team["staff"], quantity)
    assert team["spv"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    response = team["staff"].post(f"/purchase-requests/{pr_id}/order")
    assert response.status_code == 302
    po_id = _id(response, "purchase-orders")
    return pr_id, po_id


def test_the_whole_flow_issues_quota_and_notifies(app, team, mailbox):
    pr_id = raise_pr(team["staff"], 1500)
    # The SPV is told, in the app and by email.
    assert "1" in team["spv"].get("/").get_data(as_text=True)
    with app.app_context():
        pr = db.session.get(PurchaseRequest, pr_id)
        assert pr.state == PRState.SUBMITTED and re.fullmatch(r"PR/W\d{4}/\d{4}/\d{5}", pr.number)
        assert mailbox.to(team["spv"].email) and not mailbox.to(team["fin"].email)
    assert team["spv"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    assert mailbox.to(team["staff"].email), "the creator hears of the decision"

    preview = team["staff"].get(f"/purchase-requests/{pr_id}/order").get_data(as_text=True)
    assert "Rp10.000" in preview and "Rp15.000.000" in preview
    response = team["staff"].post(f"/purchase-requests/{pr_id}/order")
    po_id = _id(response, "purchase-orders")
    assert mailbox.to(team["dist"].email), "distributor supervisors hear of the PO"
    with app.app_context():
        po = db.session.get(PurchaseOrder, po_id)
        assert po.state == POState.SUBMITTED and po.unit_price == 10_000 and po.total == 15_000_000
        assert re.fullmatch(rf"PO/{team['wapu']['code']}/\d{{4}}/00001", po.number)
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.ORDERED

    mailbox.clear()
    response = team["dist"].post(f"/purchase-orders/{po_id}/approve")
    assert response.status_code == 302
    with app.app_context():
        account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == team["wapu"]["id"])).scalar_one()
        assert (account.available, account.issued, account.reserved, account.consumed) == (1500, 1500, 0, 0)
        entry = db.session.execute(select(QuotaEntry)).scalar_one()
        assert entry.idempotency_key == f"po-{po_id}" and entry.reference.startswith("PO/")
    # STAFF, SPV and FIN each get the news with the quantity; the distributor does not.
    for who in ("staff", "spv", "fin"):
        messages = mailbox.to(team[who].email)
        assert messages and "1.500 e-Meterai" in mailbox.body(messages[0]), who
    assert not mailbox.to(team["dist"].email)
    page = team["staff"].get("/").get_data(as_text=True)
    assert 'data-testid="quota-available">1.500<' in page
    assert 'data-testid="unread-count"' in page
    notifications = team["staff"].get("/notifications").get_data(as_text=True)
    assert 'data-notification="po_approved"' in notifications
    assert 'data-testid="unread-count"' not in team["staff"].get("/").get_data(as_text=True)  # read on open


def test_draft_edit_and_submit(app, team):
    pr_id = raise_pr(team["staff"], 100, submit=False)
    with app.app_context():
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.DRAFT
        assert db.session.execute(select(func.count()).select_from(Notification)).scalar() == 0
    response = team["staff"].post(f"/purchase-requests/{pr_id}/edit", {"quantity": "250", "purpose": "x", "submit": "1"})
    assert response.status_code == 302
    with app.app_context():
        pr = db.session.get(PurchaseRequest, pr_id)
        assert (pr.quantity, pr.state) == (250, PRState.SUBMITTED)
        assert [e.action for e in pr.events] == ["create", "submit"]
    # No more edits once submitted.
    assert team["staff"].post(f"/purchase-requests/{pr_id}/edit", {"quantity": "9"}).status_code == 302
    with app.app_context():
        assert db.session.get(PurchaseRequest, pr_id).quantity == 250


def test_return_for_revision_and_resubmit(app, team):
    pr_id = raise_pr(team["staff"], 300)
    assert team["spv"].post(f"/purchase-requests/{pr_id}/return", {"comment": ""}).status_code == 409
    assert team["spv"].post(f"/purchase-requests/{pr_id}/return", {"comment": "Kurangi jumlahnya"}).status_code == 302
    page = team["staff"].get(f"/purchase-requests/{pr_id}/edit").get_data(as_text=True)
    assert "Kurangi jumlahnya" in page
    team["staff"].post(f"/purchase-requests/{pr_id}/edit", {"quantity": "200", "submit": "1"})
    detail = team["spv"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    assert 'data-action="approve"' in detail and "Kurangi jumlahnya" in detail  # the timeline keeps the comment
    with app.app_context():
        assert [e.action for e in db.session.get(PurchaseRequest, pr_id).events] == ["create", "submit", "return", "submit"]


def test_reject_and_cancel(app, team):
    rejected = raise_pr(team["staff"], 10)
    assert team["spv"].post(f"/purchase-requests/{rejected}/reject", {"comment": "Tidak perlu"}).status_code == 302
    cancelled = raise_pr(team["staff"], 10, submit=False)
    assert team["staff"].post(f"/purchase-requests/{cancelled}/cancel").status_code == 302
    with app.app_context():
        assert db.session.get(PurchaseRequest, rejected).state == PRState.REJECTED
        assert db.session.get(PurchaseRequest, cancelled).state == PRState.CANCELLED
    # A rejected PR cannot become a PO.
    assert team["staff"].post(f"/purchase-requests/{rejected}/order").status_code == 302
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(PurchaseOrder)).scalar() == 0


@pytest.mark.parametrize("quantity, needed_by", [("0", ""), ("-5", ""), ("1.5", ""), ("abc", ""), ("1000001", ""),
                                                  ("10", "2000-01-01")])
def test_bad_pr_input_is_refused_beside_its_field(app, team, quantity, needed_by):
    response = team["staff"].post("/purchase-requests/new", {"quantity": quantity, "needed_by": needed_by, "submit": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "data-field-error" in page
    assert f'value="{quantity}"' in page or quantity in ("1.5", "abc")
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(PurchaseRequest)).scalar() == 0


def _set_wapu(app, wapu_id, status=None, contract_days=None):
    with app.app_context():
        wapu = db.session.get(Wapu, wapu_id)
        if status:
            wapu.status = status
        if contract_days is not None:
            contract = db.session.execute(select(Contract).where(Contract.wapu_id == wapu_id)).scalar_one()
            today = date.today()
            contract.start_date, contract.end_date = (
                (today - timedelta(days=400), today - timedelta(days=1)) if contract_days < 0
                else (today + timedelta(days=10), today + timedelta(days=400)))
        db.session.commit()


@pytest.mark.parametrize("block, message", [("suspended", "ditangguhkan"), ("expired", "berakhir"),
                                             ("not_started", "belum dimulai")])
def test_inactive_wapu_cannot_submit_prs_or_pos(app, team, block, message):
    approved_pr = raise_pr(team["staff"], 50)
    team["spv"].post(f"/purchase-requests/{approved_pr}/approve")
    if block == "suspended":
        _set_wapu(app, team["wapu"]["id"], status=WapuStatus.SUSPENDED)
    else:
        _set_wapu(app, team["wapu"]["id"], contract_days=-1 if block == "expired" else 1)
    response = team["staff"].post("/purchase-requests/new", {"quantity": "5", "submit": "1"})
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert message in team["staff"].get("/purchase-requests").get_data(as_text=True)
    team["staff"].post(f"/purchase-requests/{approved_pr}/order")
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(PurchaseOrder)).scalar() == 0
        assert db.session.execute(select(func.count()).select_from(PurchaseRequest)).scalar() == 1
    # A draft can still be saved.
    assert team["staff"].post("/purchase-requests/new", {"quantity": "5", "save": "1"}).status_code == 302


def test_nobody_decides_on_a_pr_they_created(app, team):
    from scm.auth.models import Role, User
    from scm.core.database import unit_of_work
    from scm.core.errors import ServiceError
    from scm.procurement.services import decide_purchase_request

    pr_id = raise_pr(team["staff"], 5)
    with app.app_context():
        creator = db.session.execute(select(User).where(User.email == team["staff"].email)).scalar_one()
        creator.role = Role.WAPU_SPV  # promoted after raising it
        db.session.commit()
        with pytest.raises(ServiceError) as refused, unit_of_work():
            decide_purchase_request(db.session.get(PurchaseRequest, pr_id), db.session.get(User, creator.id),
                                    action="approve")
        assert refused.value.code == "forbidden" and "Anda buat sendiri" in str(refused.value.message)
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.SUBMITTED


def test_staff_cannot_approve_and_distributor_finance_cannot_approve_pos(app, team, login_as):
    pr_id = raise_pr(team["staff"], 5)
    assert team["staff"].post(f"/purchase-requests/{pr_id}/approve").status_code == 409
    assert 'data-action="approve"' not in team["staff"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    team["spv"].post(f"/purchase-requests/{pr_id}/approve")
    po_id = _id(team["staff"].post(f"/purchase-requests/{pr_id}/order"), "purchase-orders")
    fin = login_as("DIST_FIN")
    assert fin.post(f"/purchase-orders/{po_id}/approve").status_code == 403
    assert 'data-action="approve"' not in fin.get(f"/purchase-orders/{po_id}").get_data(as_text=True)
    assert team["spv"].post(f"/purchase-orders/{po_id}/approve").status_code == 403
    with app.app_context():
        assert db.session.get(PurchaseOrder, po_id).state == POState.SUBMITTED
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 0


def test_double_click_issues_once_and_says_already_approved(app, team):
    _, po_id = full_order(team, 700)
    assert team["dist"].post(f"/purchase-orders/{po_id}/approve").status_code == 302
    second = team["dist"].post(f"/purchase-orders/{po_id}/approve")
    assert second.status_code == 409
    with app.app_context():
        assert str(POState.APPROVED.label) in second.get_data(as_text=True)  # "... is already approved"
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 1
        assert db.session.execute(select(QuotaAccount.available)).scalar_one() == 700


def test_po_rejection_needs_a_reason_and_issues_nothing(app, team, mailbox):
    _, po_id = full_order(team, 10)
    assert team["dist"].post(f"/purchase-orders/{po_id}/reject", {"comment": ""}).status_code == 409
    assert team["dist"].post(f"/purchase-orders/{po_id}/reject", {"comment": "Melebihi kuota kontrak"}).status_code == 302
    with app.app_context():
        assert db.session.get(PurchaseOrder, po_id).state == POState.REJECTED
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 0
    assert "Melebihi kuota kontrak" in mailbox.body(mailbox.to(team["fin"].email)[-1])


def test_price_is_frozen_on_the_po_and_the_contract_price_wins(app, team):
    with app.app_context():
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == team["wapu"]["id"])).scalar_one()
        contract.unit_price = 9_500
        db.session.commit()
    _, po_id = full_order(team, 100)
    with app.app_context():
        contract = db.session.execute(select(Contract).where(Contract.wapu_id == team["wapu"]["id"])).scalar_one()
        contract.unit_price = 12_000
        db.session.commit()
        po = db.session.get(PurchaseOrder, po_id)
        assert (po.unit_price, po.total) == (9_500, 950_000)


def test_po_numbers_are_sequential_per_wapu(app, team):
    numbers = []
    for _ in range(3):
        _, po_id = full_order(team, 1)
        with app.app_context():
            numbers.append(db.session.get(PurchaseOrder, po_id).number)
    assert [int(n.rsplit("/", 1)[1]) for n in numbers] == [1, 2, 3]


def test_another_wapu_sees_nothing(app, team, factory, login_as):
    pr_id, po_id = full_order(team, 40)
    team["dist"].post(f"/purchase-orders/{po_id}/approve")
    other = factory.wapu(502)
    for role in ("WAPU_STAFF", "WAPU_SPV", "WAPU_FIN"):
        client = login_as(role, wapu_id=other["id"])
        for url in (f"/purchase-requests/{pr_id}", f"/purchase-requests/{pr_id}/edit", f"/purchase-requests/{pr_id}/order",
                    f"/purchase-orders/{po_id}", f"/quota/wapus/{team['wapu']['id']}"):
            response = client.get(url)
            assert response.status_code in (404, 403), (role, url, response.status_code)
            if role != "WAPU_FIN" or "edit" not in url and "order" not in url:
                assert response.status_code == 404 or url.endswith(("/edit", "/order")), (role, url)
        for url in (f"/purchase-requests/{pr_id}/approve", f"/purchase-requests/{pr_id}/cancel"):
            assert client.post(url).status_code in (403, 404)
        lists = client.get("/purchase-requests").get_data(as_text=True) + client.get("/purchase-orders").get_data(as_text=True)
        assert "PR/" + team["wapu"]["code"] not in lists and "PO/" + team["wapu"]["code"] not in lists
        dashboard = client.get("/").get_data(as_text=True)
        assert 'data-testid="quota-available">0<' in dashboard
        assert team["wapu"]["code"] not in client.get("/quota").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.ORDERED


def test_distributor_sees_every_balance_sorted(app, team, factory, login_as):
    _, po_id = full_order(team, 900)
    team["dist"].post(f"/purchase-orders/{po_id}/approve")
    factory.wapu(503)
    page = team["dist"].get("/quota/accounts?sort=available&dir=desc").get_data(as_text=True)
    codes = re.findall(r'data-wapu="(W\d{4})"', page)
    assert codes[0] == team["wapu"]["code"] and len(codes) == 2
    assert "900" in page
    dashboard = team["dist"].get("/").get_data(as_text=True)
    assert 'data-testid="issued-this-month">900<' in dashboard
