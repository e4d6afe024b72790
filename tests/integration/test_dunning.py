"""Reminders (dunning) and disputes: each step once per invoice, to the WAPU's FIN and SPV, never
after payment or while disputed; the job survives re-runs, a run killed half-way and two runs at
once; the schedule is edited by DIST_ADMIN only; the invoice page shows the reminders and links
to their mail."""

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role
from scm.billing import dunning, tasks
from scm.billing.models import DunningOutcome, DunningSent, DunningStep, Invoice
from scm.core.database import unit_of_work
from scm.core.models import AuditLog, OutboxEmail
from scm.extensions import db
from tests.fixtures.factories import insert_stamps

UTC = timezone.utc
DUE = date(2026, 11, 10)  # October's invoices, issued on 2 November, are due on the 10th
STEPS = {"friendly": -7, "first": 1, "second": 14, "final": 30}


def on(day: date, count: int) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    return [start + timedelta(minutes=i) for i in range(count)]


@pytest.fixture
def invoiced(app, factory, mailbox):
    """Two WAPUs with October invoices issued on 2 November (due 10 November); the mail so far cleared."""
    from scm.billing.services import issue_invoice

    first, second = factory.wapu(), factory.wapu()
    with app.app_context():
        insert_stamps(first["id"], on(date(2026, 10, 20), 120))
        insert_stamps(second["id"], on(date(2026, 10, 21), 30))
        tasks.draft_billing_job(today=date(2026, 11, 1))
        ids = {}
        for wapu in (first, second):
            with unit_of_work():
                invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu["id"])).scalar_one()
                issue_invoice(invoice.id, None, today=date(2026, 11, 2))
                ids[wapu["id"]] = invoice.id
        assert {db.session.get(Invoice, i).due_date for i in ids.values()} == {DUE}
    mailbox.clear()
    return {"first": first, "second": second, "first_invoice": ids[first["id"]], "second_invoice": ids[second["id"]]}


def run(day_offset: int) -> dict:
    return tasks.dunning_job(today=DUE + timedelta(days=day_offset))


def sent_rows(invoice_id=None):
    stmt = select(DunningSent).order_by(DunningSent.id)
    if invoice_id is not None:
        stmt = stmt.where(DunningSent.invoice_id == invoice_id)
    return db.session.execute(stmt).scalars().all()


def dunning_mail_count() -> int:
    return sum(len(row.mails) for row in sent_rows())


def outbox_count() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxEmail))


def step_offsets(rows, outcome=DunningOutcome.SENT):
    return [row.step.offset_days for row in rows if row.outcome == outcome]


def fin_user(factory):
    from scm.auth.services import find_active_user

    return find_active_user(factory.user(Role.DIST_FIN))


def test_the_default_schedule_is_created_once_on_first_use(app):
    with app.app_context():
        with unit_of_work():
            steps = dunning.schedule()
        with unit_of_work():
            again = dunning.schedule()
        assert [s.offset_days for s in steps] == sorted(STEPS.values()) == [s.offset_days for s in again]
        assert db.session.scalar(select(func.count()).select_from(DunningStep)) == len(STEPS)
        for step in steps:  # the default texts use only known placeholders
            dunning.check_text(step.subject, "subject")
            dunning.check_text(step.body, "body")


def test_each_step_is_sent_once_to_fin_and_spv_of_the_wapu_with_placeholders_filled(app, invoiced, mailbox):
    first, second = invoiced["first"], invoiced["second"]
    with app.app_context():
        assert run(-8) == {"invoices": 0, "mails": 0}  # nothing due yet
        assert run(-7) == {"invoices": 2, "mails": 4}  # the friendly reminder: FIN and SPV of each
        assert run(-7) == {"invoices": 0, "mails": 0}  # a re-run sends nothing
        assert run(-1) == {"invoices": 0, "mails": 0}
        assert run(1) == {"invoices": 2, "mails": 4}  # the first notice
        assert run(2) == {"invoices": 0, "mails": 0}
        for invoice_id in (invoiced["first_invoice"], invoiced["second_invoice"]):
            assert step_offsets(sent_rows(invoice_id)) == [-7, 1]
        number = db.session.get(Invoice, invoiced["first_invoice"]).number
        other_number = db.session.get(Invoice, invoiced["second_invoice"]).number
        assert db.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "invoice.reminder_sent")) == 4
    # Read from the real SMTP server: delivered after each commit.
    fin, spv, staff = (first["users"][role][0] for role in ("WAPU_FIN", "WAPU_SPV", "WAPU_STAFF"))
    assert len(mailbox.to(fin)) == 2 and len(mailbox.to(spv)) == 2 and not mailbox.to(staff)
    friendly = next(m for m in mailbox.to(fin) if m["Subject"].startswith("Pengingat"))
    assert friendly["Subject"] == f"Pengingat: faktur {number} jatuh tempo 10 November 2026"
    body = mailbox.body(friendly)
    assert f"faktur {number} sebesar Rp1.200.000" in body and "Sisa tagihan saat ini Rp1.200.000" in body
    assert "{" not in body and "/billing/invoices/" in body
    assert all(number in m["Subject"] and other_number not in m["Subject"] for m in mailbox.to(fin) + mailbox.to(spv))
    assert all(other_number in m["Subject"] for m in mailbox.to(second["users"]["WAPU_FIN"][0]))


def test_a_job_that_was_down_sends_only_the_latest_due_step_and_skips_the_earlier(app, invoiced, mailbox):
    with app.app_context():
        assert run(20) == {"invoices": 2, "mails": 4}  # -7, +1 and +14 are due: only +14 goes out
        rows = sent_rows(invoiced["first_invoice"])
        assert step_offsets(rows) == [14] and sorted(step_offsets(rows, DunningOutcome.SKIPPED)) == [-7, 1]
        assert run(29) == {"invoices": 0, "mails": 0}
        assert run(30) == {"invoices": 2, "mails": 4}
        assert run(90) == {"invoices": 0, "mails": 0}  # the schedule is done
    fin = invoiced["first"]["users"]["WAPU_FIN"][0]
    assert [m["Subject"].split(":")[0] for m in mailbox.to(fin)] == ["Pemberitahuan kedua", "Pemberitahuan terakhir"]


def test_a_run_killed_half_way_then_run_again_never_sends_twice(app, invoiced, monkeypatch):
    real, calls = dunning.remind_invoice, []

    def dies_after_the_first_invoice(invoice_id, steps, today):
        calls.append(invoice_id)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(invoice_id, steps, today)

    monkeypatch.setattr(dunning, "remind_invoice", dies_after_the_first_invoice)
    with app.app_context():
        with pytest.raises(RuntimeError, match="killed"):
            run(1)
        assert [row.invoice_id for row in sent_rows() if row.outcome == DunningOutcome.SENT] == [invoiced["first_invoice"]]
        assert dunning_mail_count() == 2
        monkeypatch.setattr(dunning, "remind_invoice", real)
        assert run(1) == {"invoices": 1, "mails": 2}  # only what the killed run left
        assert run(1) == {"invoices": 0, "mails": 0}
        assert dunning_mail_count() == 4
        for invoice_id in (invoiced["first_invoice"], invoiced["second_invoice"]):
            assert step_offsets(sent_rows(invoice_id)) == [1]


def test_two_runs_at_once_send_each_step_once(app, invoiced, mailbox):
    barrier, results, errors = threading.Barrier(2), [], []

    def one_run():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                results.append(run(1))
                db.session.remove()
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(r["mails"] for r in results) == 4 and sum(r["invoices"] for r in results) == 2
    with app.app_context():
        assert len([row for row in sent_rows() if row.outcome == DunningOutcome.SENT]) == 2
        assert dunning_mail_count() == 4
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
            OutboxEmail.subject.like("Faktur % telah jatuh tempo"))) == 4
    assert len(mailbox.to(invoiced["first"]["users"]["WAPU_FIN"][0])) == 1


def test_nothing_is_sent_after_full_payment_or_while_disputed_and_a_resolved_dispute_resumes(app, invoiced, factory):
    from scm.billing.payments import record_payment

    paid, disputed = invoiced["first_invoice"], invoiced["second_invoice"]
    with app.app_context():
        assert run(-7)["mails"] == 4
        fin = fin_user(factory)
        with unit_of_work():
            balance = db.session.get(Invoice, paid).balance
            record_payment(paid, fin, paid_on=date(2026, 11, 5), amount=balance, reference="TRF-1",
                           today=date(2026, 11, 5))
        with unit_of_work():
            dunning.open_dispute(disputed, fin, "Jumlah e-Meterai tidak sesuai")
        before = outbox_count()
        assert run(1) == {"invoices": 0, "mails": 0}
        assert run(14) == {"invoices": 0, "mails": 0}
        assert outbox_count() == before
        with unit_of_work():
            dunning.resolve_dispute(disputed, fin, "Sudah dijelaskan kepada WAPU")
        assert run(15) == {"invoices": 1, "mails": 2}  # the latest due step (+14); +1 skipped
        rows = sent_rows(disputed)
        assert step_offsets(rows) == [-7, 14] and step_offsets(rows, DunningOutcome.SKIPPED) == [1]
        assert step_offsets(sent_rows(paid)) == [-7]
        with pytest.raises(dunning.ServiceError):
            with unit_of_work():
                dunning.resolve_dispute(disputed, fin, "lagi")
        actions = db.session.execute(select(AuditLog.action).where(AuditLog.action.like("invoice.dispute%"))).scalars()
        assert sorted(actions) == ["invoice.dispute_opened", "invoice.dispute_resolved"]


def test_a_partial_payment_keeps_the_reminders_going_with_the_new_balance(app, invoiced, factory, mailbox):
    from scm.billing.payments import record_payment

    with app.app_context():
        fin = fin_user(factory)
        with unit_of_work():
            record_payment(invoiced["first_invoice"], fin, paid_on=date(2026, 11, 5), amount=200_000,
                           reference="TRF-2", today=date(2026, 11, 5))
        mailbox.clear()
        assert run(1)["mails"] == 4
    body = mailbox.body(mailbox.to(invoiced["first"]["users"]["WAPU_FIN"][0])[0])
    assert "sisa tagihan Rp1.000.000" in body


@pytest.mark.parametrize("text", ["{nomor_invoice}", "{jumlah.__class__}", "{jumlah!r}", "{jumlah:>20}", "{", "}{"])
def test_placeholders_are_checked(app, text):
    with pytest.raises(dunning.ServiceError) as refused:
        dunning.check_text(f"Faktur {text}", "body")
    assert refused.value.field == "body"


def test_the_schedule_is_edited_by_dist_admin_only_and_bad_placeholders_are_field_errors(app, login_as, factory):
    admin = login_as(Role.DIST_ADMIN)
    page = admin.get("/billing/dunning")
    assert page.status_code == 200 and "Pengingat ramah" in page.get_data(as_text=True)
    with app.app_context():
        step_id = db.session.execute(select(DunningStep.id).where(DunningStep.offset_days == 1)).scalar_one()
    form = {"name": "Pemberitahuan pertama", "offset_days": "2", "subject": "Faktur {nomor_faktur}",
            "body": "Yth. {nama_wapu}, sisa {sisa_tagihan} untuk {nomor_invoice}."}
    answer = admin.post(f"/billing/dunning/steps/{step_id}", data=form)
    assert answer.status_code == 422
    assert 'data-field-error="body"' in answer.get_data(as_text=True) and "{nomor_invoice}" in answer.get_data(as_text=True)
    for bad in ({"offset_days": "dua"}, {"offset_days": "-7"}, {"subject": ""}, {"subject": "Faktur {"}):
        assert admin.post(f"/billing/dunning/steps/{step_id}", data={**form, "body": "Teks", **bad}).status_code == 422
    assert admin.post(f"/billing/dunning/steps/{step_id}", data={**form, "body": "Sisa {sisa_tagihan}."}).status_code == 302
    assert admin.post("/billing/dunning/steps/new", data={**form, "offset_days": "-3", "name": "Pengingat H-3",
                                                           "body": "Jatuh tempo {jatuh_tempo}."}).status_code == 302
    assert admin.post(f"/billing/dunning/steps/{step_id}/remove").status_code == 302
    assert admin.post("/billing/dunning/steps/999999").status_code == 404
    with app.app_context():
        steps = db.session.execute(select(DunningStep).where(DunningStep.active.is_(True))).scalars().all()
        assert sorted(s.offset_days for s in steps) == [-7, -3, 14, 30]
        changed = db.session.get(DunningStep, step_id)
        assert (changed.offset_days, changed.body, changed.active) == (2, "Sisa {sisa_tagihan}.", False)
        actions = db.session.execute(select(AuditLog.action).where(AuditLog.action.like("dunning.%"))).scalars().all()
        assert sorted(actions) == ["dunning.step_removed", "dunning.step_saved", "dunning.step_saved"]
    fin = login_as(Role.DIST_FIN)
    assert fin.get("/billing/dunning").status_code == 200  # read-only
    assert fin.post(f"/billing/dunning/steps/{step_id}", data=form).status_code == 403
    assert fin.post("/billing/dunning/steps/new", data=form).status_code == 403
    wapu = factory.wapu()
    for role in ("WAPU_FIN", "WAPU_SPV"):
        client = login_as(Role(role), wapu_id=wapu["id"])
        assert client.get("/billing/dunning").status_code == 403
        assert client.post("/billing/dunning/steps/new", data=form).status_code == 403


def test_the_invoice_page_shows_the_dispute_and_the_reminders_with_links_to_their_mail(app, invoiced, login_as):
    invoice_id = invoiced["first_invoice"]
    with app.app_context():
        run(1)
        mail_ids = [mail["id"] for row in sent_rows(invoice_id) for mail in row.mails]
    fin = login_as(Role.DIST_FIN)
    page = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert 'data-testid="reminders"' in page and "Pemberitahuan pertama" in page
    for mail_id in mail_ids:
        assert f'href="/admin/outbox/{mail_id}"' in page
    mail = fin.get(f"/admin/outbox/{mail_ids[0]}")
    assert mail.status_code == 200 and "telah jatuh tempo" in mail.get_data(as_text=True)
    assert login_as(Role.DIST_ADMIN).get(f"/admin/outbox/{mail_ids[0]}").status_code == 200
    assert fin.get("/admin/outbox/999999").status_code == 404
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=invoiced["first"]["id"])
    assert wapu_fin.get(f"/admin/outbox/{mail_ids[0]}").status_code in (403, 404)
    assert login_as(Role.DIST_SPV).get(f"/admin/outbox/{mail_ids[0]}").status_code == 403
    assert "/admin/outbox/" not in wapu_fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)

    # Disputes through the web: a reason is required; the page shows the open dispute; resolved.
    answer = fin.post(f"/billing/invoices/{invoice_id}/dispute", data={"reason": "  "})
    assert answer.status_code == 422 and 'data-field-error="reason"' in answer.get_data(as_text=True)
    assert fin.post(f"/billing/invoices/{invoice_id}/dispute", data={"reason": "Tagihan ganda"}).status_code == 302
    page = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert 'data-testid="open-dispute"' in page and "Tagihan ganda" in page and 'data-testid="resolve-form"' in page
    assert 'data-testid="disputed"' in fin.get("/billing/invoices").get_data(as_text=True)
    assert 'data-testid="open-dispute"' in wapu_fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert wapu_fin.post(f"/billing/invoices/{invoice_id}/dispute/resolve", data={"resolution": "x"}).status_code == 403
    assert login_as(Role.DIST_ADMIN).post(f"/billing/invoices/{invoice_id}/dispute",
                                          data={"reason": "x"}).status_code == 403
    assert fin.post(f"/billing/invoices/{invoice_id}/dispute/resolve", data={"resolution": ""}).status_code == 422
    assert fin.post(f"/billing/invoices/{invoice_id}/dispute/resolve",
                    data={"resolution": "Sudah dikoreksi"}).status_code == 302
    page = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert 'data-testid="open-dispute"' not in page and "Sudah dikoreksi" in page
    other = invoiced["second_invoice"]
    assert wapu_fin.get(f"/billing/invoices/{other}").status_code == 404
    assert fin.post(f"/billing/invoices/{other}/dispute", data={}, csrf=False).status_code == 400


def test_the_scheduler_runs_the_dunning_job_under_its_lease(app, invoiced):
    from scm.core import tasks as scheduler

    with app.app_context():
        assert scheduler.job_function("dunning") is tasks.dunning_job
        assert set(scheduler.run_job("dunning")) == {"invoices", "mails"}
