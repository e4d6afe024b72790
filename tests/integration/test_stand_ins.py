"""Several SPVs and stand-ins: any active SPV of the WAPU decides a PR (never their own) and all of
them are notified; a supervisor on leave names a stand-in, whose decisions during the leave are
recorded on the supervisor's behalf and refused after it (when their own role may not decide);
segregation of duties holds for stand-ins too."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from scm.auth.models import User
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.models import AuditLog, Notification
from scm.extensions import db
from scm.people.models import StandIn
from scm.procurement.models import (
    POState,
    PRState,
    PurchaseOrder,
    PurchaseOrderEvent,
    PurchaseRequest,
    PurchaseRequestEvent,
)


def _id(response, kind):
    return int(re.search(rf"/{kind}/(\d+)", response.headers["Location"]).group(1))


def _user_id(app, email):
    with app.app_context():
        return db.session.execute(select(User.id).where(User.email == email)).scalar_one()


def raise_pr(staff):
    response = staff.post("/purchase-requests/new", {"quantity": "1500", "purpose": "Ijazah", "submit": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)[-1500:]
    return _id(response, "purchase-requests")


def name_stand_in(client, substitute_id, start=None, end=None):
    today = today_wib()
    return client.post("/stand-ins", {"substitute": str(substitute_id), "start_date": (start or today).isoformat(),
                                      "end_date": (end or today + timedelta(days=3)).isoformat()})


def move_leave(app, start, end):
    with app.app_context(), unit_of_work():
        db.session.execute(update(StandIn).values(start_date=start, end_date=end))


@pytest.fixture
def team(app, factory, login_as):
    wapu = factory.wapu()
    return {"wapu": wapu, "staff": login_as("WAPU_STAFF", wapu_id=wapu["id"]),
            "spv": login_as("WAPU_SPV", wapu_id=wapu["id"]), "spv2": login_as("WAPU_SPV", wapu_id=wapu["id"])}


def test_every_active_spv_is_notified_and_any_may_decide_but_not_their_own(app, team, mailbox):
    issued_spv = team["wapu"]["users"]["WAPU_SPV"][0]
    pr_id = raise_pr(team["staff"])
    for email in (issued_spv, team["spv"].email, team["spv2"].email):
        assert mailbox.to(email), email
        with app.app_context():
            assert db.session.execute(select(Notification).where(
                Notification.user_id == _user_id(app, email), Notification.kind == "pr_submitted")).scalar_one()
    assert team["spv2"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    assert team["spv"].post(f"/purchase-requests/{pr_id}/approve").status_code == 409, "decided once"
    with app.app_context():
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.APPROVED


def test_a_wapu_stand_in_decides_on_behalf_during_the_leave_only(app, team, mailbox):
    spv2_id = _user_id(app, team["spv2"].email)
    spv_id = _user_id(app, team["spv"].email)
    assert name_stand_in(team["spv"], spv2_id).status_code == 302
    assert mailbox.to(team["spv2"].email), "the stand-in is told"
    assert "Pengguna WAPU_SPV" in team["spv2"].get("/stand-ins").get_data(as_text=True)

    pr_id = raise_pr(team["staff"])
    assert 'data-testid="deciding-on-behalf"' in team["spv2"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    assert 'data-testid="deciding-on-behalf"' not in team["spv"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    assert team["spv2"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    with app.app_context():
        event = db.session.execute(select(PurchaseRequestEvent).where(
            PurchaseRequestEvent.purchase_request_id == pr_id, PurchaseRequestEvent.action == "approve")).scalar_one()
        assert (event.actor_id, event.on_behalf_of_id) == (spv2_id, spv_id)
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "purchase_request.approve")).scalar_one()
        assert entry.details["on_behalf_of"] == team["spv"].email
    page = team["staff"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    assert 'data-testid="on-behalf-of"' in page

    # After the leave the same SPV decides in their own right: no longer on anyone's behalf.
    move_leave(app, today_wib() - timedelta(days=5), today_wib() - timedelta(days=1))
    pr_id = raise_pr(team["staff"])
    assert team["spv2"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    with app.app_context():
        event = db.session.execute(select(PurchaseRequestEvent).where(
            PurchaseRequestEvent.purchase_request_id == pr_id, PurchaseRequestEvent.action == "approve")).scalar_one()
        assert event.on_behalf_of_id is None


def test_a_stand_in_never_decides_their_own_pr(app, team):
    spv2_id = _user_id(app, team["spv2"].email)
    name_stand_in(team["spv"], spv2_id)
    pr_id = raise_pr(team["staff"])
    with app.app_context(), unit_of_work():  # as if the stand-in had raised it
        db.session.execute(update(PurchaseRequest).where(PurchaseRequest.id == pr_id).values(created_by_id=spv2_id))
    assert 'data-action="approve"' not in team["spv2"].get(f"/purchase-requests/{pr_id}").get_data(as_text=True)
    assert team["spv2"].post(f"/purchase-requests/{pr_id}/approve").status_code == 409
    with app.app_context():
        assert db.session.get(PurchaseRequest, pr_id).state == PRState.SUBMITTED


def _new_po(team):
    pr_id = raise_pr(team["staff"])
    assert team["spv"].post(f"/purchase-requests/{pr_id}/approve").status_code == 302
    response = team["staff"].post(f"/purchase-requests/{pr_id}/order")
    assert response.status_code == 302
    return _id(response, "purchase-orders")


def test_a_distributor_admin_standing_in_for_a_distributor_spv(app, login_as, team, mailbox):
    dist_spv, admin = login_as("DIST_SPV"), login_as("DIST_ADMIN")
    spv_id, admin_id = _user_id(app, dist_spv.email), _user_id(app, admin.email)
    # Before naming: the admin may not decide a PO.
    po_id = _new_po(team)
    assert 'data-action="approve"' not in admin.get(f"/purchase-orders/{po_id}").get_data(as_text=True)
    assert admin.post(f"/purchase-orders/{po_id}/approve").status_code == 409

    # A leave that starts tomorrow: not yet.
    tomorrow = today_wib() + timedelta(days=1)
    assert name_stand_in(dist_spv, admin_id, tomorrow, tomorrow + timedelta(days=2)).status_code == 302
    assert admin.post(f"/purchase-orders/{po_id}/approve").status_code == 409
    # During the leave: routed to the admin too, decided on the SPV's behalf.
    move_leave(app, today_wib(), today_wib() + timedelta(days=2))
    mailbox.clear()
    po_id = _new_po(team)
    assert mailbox.to(admin.email) and mailbox.to(dist_spv.email)
    page = admin.get(f"/purchase-orders/{po_id}").get_data(as_text=True)
    assert 'data-action="approve"' in page and 'data-testid="deciding-on-behalf"' in page
    assert admin.post(f"/purchase-orders/{po_id}/approve").status_code == 302
    with app.app_context():
        assert db.session.get(PurchaseOrder, po_id).state == POState.APPROVED
        event = db.session.execute(select(PurchaseOrderEvent).where(
            PurchaseOrderEvent.purchase_order_id == po_id, PurchaseOrderEvent.action == "approve")).scalar_one()
        assert (event.actor_id, event.on_behalf_of_id) == (admin_id, spv_id)
    # After the leave: refused.
    move_leave(app, today_wib() - timedelta(days=9), today_wib() - timedelta(days=1))
    po_id = _new_po(team)
    assert admin.post(f"/purchase-orders/{po_id}/reject", {"comment": "Tidak"}).status_code == 409
    with app.app_context():
        assert db.session.get(PurchaseOrder, po_id).state == POState.SUBMITTED
    # A cancelled stand-in ends at once.
    move_leave(app, today_wib(), today_wib())
    with app.app_context():
        stand_in_id = db.session.execute(select(StandIn.id)).scalar_one()
    assert dist_spv.post(f"/stand-ins/{stand_in_id}/cancel").status_code == 302
    assert admin.post(f"/purchase-orders/{po_id}/approve").status_code == 409


def test_who_may_stand_in_for_whom(app, factory, login_as, team):
    other_wapu_spv = factory.user("WAPU_SPV", wapu_id=factory.wapu()["id"])
    staff_id = _user_id(app, team["staff"].email)
    dist_fin = factory.user("DIST_FIN")
    dist_admin = factory.user("DIST_ADMIN")
    for substitute in (_user_id(app, other_wapu_spv), staff_id, _user_id(app, dist_admin)):
        response = name_stand_in(team["spv"], substitute)
        assert response.status_code == 200 and 'data-field-error="substitute"' in response.get_data(as_text=True)
    dist_spv = login_as("DIST_SPV")
    response = name_stand_in(dist_spv, _user_id(app, dist_fin))
    assert 'data-field-error="substitute"' in response.get_data(as_text=True)
    past = today_wib() - timedelta(days=3)
    response = name_stand_in(dist_spv, _user_id(app, dist_admin), past, past + timedelta(days=1))
    assert 'data-field-error="end_date"' in response.get_data(as_text=True)
    response = name_stand_in(dist_spv, _user_id(app, dist_admin), today_wib() + timedelta(days=3), today_wib())
    assert 'data-field-error="end_date"' in response.get_data(as_text=True)
    # Staff and finance have no stand-ins page; nobody cancels another's stand-in.
    assert team["staff"].get("/stand-ins").status_code == 403
    assert name_stand_in(team["spv"], _user_id(app, team["spv2"].email)).status_code == 302
    with app.app_context():
        stand_in_id = db.session.execute(select(StandIn.id)).scalar_one()
    assert team["spv2"].post(f"/stand-ins/{stand_in_id}/cancel").status_code == 404
