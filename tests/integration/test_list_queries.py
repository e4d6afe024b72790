"""No list page runs one query per row: the statement count is the same for 10 rows and 1,000."""

from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, insert, select

from scm.auth.models import User
from scm.core.database import utcnow
from scm.core.models import Notification
from scm.extensions import db
from scm.procurement.models import POState, PRState, PurchaseOrder, PurchaseRequest
from scm.quota.models import EntryKind, QuotaAccount, QuotaEntry


def _seed(app, wapu_id, user_ids, start, count):
    """Rows for the list pages, inserted in bulk (test-sized set-up, not the code under test)."""
    now = utcnow()
    with app.app_context():
        account_id = db.session.execute(select(QuotaAccount.id).where(QuotaAccount.wapu_id == wapu_id)).scalar()
        if account_id is None:
            account_id = db.session.execute(insert(QuotaAccount).values(wapu_id=wapu_id, available=0, reserved=0,
                                            consumed=0, issued=0, adjusted=0, updated_at=now)
                                            .returning(QuotaAccount.id)).scalar_one()
        creators = list(user_ids)
        prs = [{"wapu_id": wapu_id, "number": f"PR/T/2026/{i:05d}", "quantity": i, "purpose": "",
                "state": PRState.ORDERED, "created_by_id": creators[i % len(creators)],
                "created_at": now - timedelta(minutes=i), "updated_at": now} for i in range(start, start + count)]
        pr_ids = db.session.execute(insert(PurchaseRequest).returning(PurchaseRequest.id), prs).scalars().all()
        db.session.execute(insert(PurchaseOrder), [
            {"wapu_id": wapu_id, "purchase_request_id": pr_id, "number": f"PO/T/2026/{i:05d}", "quantity": i,
             "unit_price": 10_000, "total": i * 10_000, "state": POState.SUBMITTED,
             "created_by_id": creators[i % len(creators)], "created_at": now - timedelta(minutes=i)}
            for i, pr_id in zip(range(start, start + count), pr_ids, strict=True)])
        db.session.execute(insert(QuotaEntry), [
            {"account_id": account_id, "wapu_id": wapu_id, "kind": EntryKind.ISSUE, "quantity": 1,
             "idempotency_key": f"seed-{i}", "reference": "seed", "actor_id": creators[i % len(creators)],
             "available_after": i, "created_at": now} for i in range(start, start + count)])
        db.session.execute(insert(Notification), [
            {"user_id": uid, "kind": "po_approved", "params": {"number": f"PO/{i}", "quantity": i}, "link": "/",
             "created_at": now} for i in range(start, start + count) for uid in creators])
        db.session.commit()


@contextmanager
def counting(app):
    statements = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_list_pages_run_the_same_number_of_queries_for_10_and_1000_rows(app, factory, login_as):
    wapu = factory.wapu(701)
    staff = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    dist = login_as("DIST_SPV")
    admin = login_as("DIST_ADMIN")
    with app.app_context():
        wapu_users = db.session.execute(select(User.id).where(User.wapu_id == wapu["id"])).scalars().all()
    pages = [
        (staff, "/purchase-requests"), (staff, "/purchase-orders"), (staff, "/quota"), (staff, "/"),
        (dist, "/purchase-orders"), (dist, "/purchase-orders?state=submitted"), (dist, "/quota/accounts"),
        (dist, "/"), (admin, "/admin/audit"), (admin, f"/quota/wapus/{wapu['id']}"),
        (staff, "/notifications"),
    ]

    def measure():
        result = {}
        for client, url in pages:
            client.get(url)  # warm up (first-request work such as loading the user)
            with counting(app) as statements:
                response = client.get(url)
            assert response.status_code == 200, url
            result[url + client.email] = len(statements)
        return result

    _seed(app, wapu["id"], wapu_users, 1, 10)
    small = measure()
    _seed(app, wapu["id"], wapu_users, 11, 990)
    large = measure()
    assert small == large
    assert max(large.values()) <= 15, large
