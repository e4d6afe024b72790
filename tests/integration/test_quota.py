"""The quota ledger: idempotent issue, safe adjust, verify, and exactly-once PO approval under concurrency."""

import threading

import pytest
from sqlalchemy import func, select, text

from scm.auth.models import Role, User
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError, TransitionError
from scm.core.models import AppendOnlyError
from scm.extensions import db
from scm.procurement.models import POState, PurchaseOrder
from scm.quota.models import EntryKind, QuotaAccount, QuotaEntry
from scm.quota.services import InsufficientQuota, adjust_quota, issue_quota, verify_ledger


@pytest.fixture
def wapu(factory):
    return factory.wapu(601)


def _user(email):
    return db.session.execute(select(User).where(User.email == email)).scalar_one()


def _account(wapu_id):
    return db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one()


def test_issue_is_idempotent_by_key(app, wapu):
    with app.app_context():
        for _ in range(3):
            with unit_of_work():
                entry = issue_quota(wapu["id"], quantity=500, key="po-77", reference="PO/TEST/1")
        assert entry.kind == EntryKind.ISSUE and entry.available_after == 500
        account = _account(wapu["id"])
        assert (account.available, account.issued) == (500, 500)
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 1
        with unit_of_work():
            issue_quota(wapu["id"], quantity=200, key="po-78", reference="PO/TEST/2")
        assert _account(wapu["id"]).available == 700
        assert verify_ledger() == []


def test_issue_refuses_non_positive_quantities(app, wapu):
    with app.app_context():
        for quantity in (0, -5):
            with pytest.raises(ServiceError), unit_of_work():
                issue_quota(wapu["id"], quantity=quantity, key=f"bad-{quantity}", reference="x")
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 0


def test_adjust_below_zero_is_refused_and_changes_nothing(app, wapu, factory):
    admin_email = factory.user("DIST_ADMIN")
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=100, key="po-1", reference="PO/1")
        admin = _user(admin_email)
        with pytest.raises(InsufficientQuota), unit_of_work():
            adjust_quota(wapu["id"], admin, delta=-101, reason="koreksi")
        account = _account(wapu["id"])
        assert (account.available, account.adjusted) == (100, 0)
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 1
        with unit_of_work():
            adjust_quota(wapu["id"], _user(admin_email), delta=-100, reason="salah input")
            adjust_quota(wapu["id"], _user(admin_email), delta=30, reason="kompensasi gangguan")
        account = _account(wapu["id"])
        assert (account.available, account.issued, account.adjusted) == (30, 100, -70)
        assert verify_ledger() == []


def test_only_the_distributor_admin_adjusts_and_a_reason_is_required(app, wapu, factory):
    spv_email = factory.user("DIST_SPV")
    admin_email = factory.user("DIST_ADMIN")
    with app.app_context():
        with pytest.raises(ServiceError) as refused, unit_of_work():
            adjust_quota(wapu["id"], _user(spv_email), delta=10, reason="alasan")
        assert refused.value.code == "forbidden"
        with pytest.raises(ServiceError) as refused, unit_of_work():
            adjust_quota(wapu["id"], _user(admin_email), delta=10, reason="  ")
        assert refused.value.field == "reason"
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar() == 0


def test_admin_adjusts_through_the_ledger_page(app, wapu, login_as):
    admin = login_as("DIST_ADMIN")
    page = admin.post(f"/quota/wapus/{wapu['id']}", {"delta": "-5", "reason": "uji"}).get_data(as_text=True)
    assert 'data-field-error="delta"' in page
    assert admin.post(f"/quota/wapus/{wapu['id']}", {"delta": "25", "reason": "kompensasi"}).status_code == 302
    assert 'data-testid="quota-available">25<' in admin.get(f"/quota/wapus/{wapu['id']}").get_data(as_text=True)
    spv = login_as("DIST_SPV")
    assert spv.post(f"/quota/wapus/{wapu['id']}", {"delta": "25", "reason": "x"}).status_code == 403
    assert 'name="delta"' not in spv.get(f"/quota/wapus/{wapu['id']}").get_data(as_text=True)


def test_ledger_entries_are_append_only(app, wapu):
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=10, key="po-9", reference="PO/9")
        entry = db.session.execute(select(QuotaEntry)).scalar_one()
        entry.quantity = 1000
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text("UPDATE quota_entries SET quantity = 1000"))
        db.session.rollback()


def test_quota_verify_passes_on_good_books_and_fails_on_tampering(app, wapu):
    runner = app.test_cli_runner()
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=300, key="po-3", reference="PO/3")
    good = runner.invoke(args=["quota", "verify"])
    assert good.exit_code == 0 and "OK" in good.output
    with app.app_context():
        account = _account(wapu["id"])
        # A forged entry written straight into the database, with no matching balance change.
        db.session.execute(text(
            "INSERT INTO quota_entries (account_id, wapu_id, kind, quantity, idempotency_key, reference, "
            "available_after, created_at) VALUES (:a, :w, 'issue', 1000, 'forged', 'forged', 1300, :now)"),
            {"a": account.id, "w": wapu["id"], "now": "2026-11-01 00:00:00"})
        db.session.commit()
    bad = runner.invoke(args=["quota", "verify"])
    assert bad.exit_code == 1
    assert f"wapu={wapu['id']} issued: account=300 ledger=1300" in bad.output
    with app.app_context():
        db.session.execute(text("UPDATE quota_accounts SET available = available + 1000, issued = issued + 1000"))
        db.session.commit()
    assert runner.invoke(args=["quota", "verify"]).exit_code == 0
    with app.app_context():
        db.session.execute(text("UPDATE quota_accounts SET consumed = 5"))
        db.session.commit()
    bad = runner.invoke(args=["quota", "verify"])
    assert bad.exit_code == 1 and "consumed: account=5 ledger=0" in bad.output and "balance" in bad.output


def test_check_constraints_keep_balances_from_going_negative(app, wapu):
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=1, key="po-c", reference="x")
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE quota_accounts SET available = -1"))
            db.session.commit()
        db.session.rollback()
        assert _account(wapu["id"]).available == 1


@pytest.mark.parametrize("threads", [2, 8])
def test_concurrent_po_approvals_issue_exactly_once(app, factory, threads):
    from scm.procurement import services as procurement

    wapu = factory.wapu(610 + threads)
    staff_email = factory.user("WAPU_STAFF", wapu_id=wapu["id"])
    spv_email = factory.user("WAPU_SPV", wapu_id=wapu["id"])
    approvers = [factory.user("DIST_SPV") for _ in range(threads)]
    with app.app_context():
        with unit_of_work():
            pr = procurement.create_purchase_request(_user(staff_email).wapu, _user(staff_email), quantity=1234, submit=True)
        with unit_of_work():
            procurement.decide_purchase_request(pr, _user(spv_email), action="approve")
        with unit_of_work():
            po = procurement.create_purchase_order(pr, _user(staff_email))
        po_id = po.id
    barrier = threading.Barrier(threads)
    outcomes = []

    def approve(email):
        with app.app_context():
            barrier.wait()
            try:
                with unit_of_work():
                    procurement.decide_purchase_order(db.session.get(PurchaseOrder, po_id), _user(email), action="approve")
                outcomes.append("ok")
            except TransitionError as error:
                outcomes.append(str(error.message))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=approve, args=(email,)) for email in approvers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outcomes.count("ok") == 1, outcomes
    with app.app_context():
        already = str(POState.APPROVED.label)  # "the item is already approved, quota issued"
    assert all(already in o for o in outcomes if o != "ok"), outcomes
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(QuotaEntry)
                                  .where(QuotaEntry.kind == EntryKind.ISSUE)).scalar() == 1
        account = _account(wapu["id"])
        assert (account.available, account.issued) == (1234, 1234)
        assert db.session.get(PurchaseOrder, po_id).state == POState.APPROVED
        assert len(db.session.get(PurchaseOrder, po_id).events) == 2  # submit, approve
        assert verify_ledger() == []


def test_role_of_wapu_users_cannot_reach_the_accounts_page(app, wapu, login_as):
    client = login_as(Role.WAPU_FIN, wapu_id=wapu["id"])
    assert client.get("/quota/accounts").status_code == 403
    assert client.get("/quota").status_code == 200
