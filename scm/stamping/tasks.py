"""Scheduled stamping jobs, and the usage-file check and apply the queue runs."""

from flask_babel import lazy_gettext as _l

from scm.core.database import run_once_more_on_conflict, unit_of_work
from scm.core.errors import ServiceError
from scm.core.uploads import release_held_upload, take_held_upload
from scm.extensions import db
from scm.stamping.services import expire_reservations
from scm.stamping.usage_import import HELD_KIND, UsageFileError, apply_usage_file, read_usage_file


def expire_reservations_job():
    """Release the reservations past their expiry."""
    return {"released": expire_reservations()}


# --------------------------------------------------------------------------- usage files in the queue

CHECKING, APPLYING = _l("Checking every row"), _l("Applying the stamps")


def _errors(error: UsageFileError) -> dict:
    return {"message": str(error.message), "errors": [
        {"row": e.row, "column": e.column, "value": e.value, "message": str(e.message)} for e in error.errors]}


def _held(task):
    held = take_held_upload(task.params["token"], HELD_KIND)
    if held is None:
        raise ServiceError(_l("The uploaded file is no longer available; upload it again."), code="upload_gone")
    return held


def usage_check_task(task):
    """Check every row of a held usage file and preview it per WAPU; nothing changes."""
    task.progress(0, 1, CHECKING, force=True)
    held = _held(task)
    try:
        usage = read_usage_file(held.data, held.original_name, allow_old=task.params["allow_old"])
    except UsageFileError as error:
        result = _errors(error)
    else:
        rows = usage.preview()
        result = {"name": usage.name, "rows": usage.rows, "allow_old": usage.allow_old, "old_rows": usage.old_rows,
                  "lookback_start": usage.lookback_start.isoformat() if usage.lookback_start else None,
                  "preview": [{"wapu": {"id": r["wapu"].id, "code": r["wapu"].code, "name": r["wapu"].name},
                               "stamped": r["stamped"], "failed": r["failed"], "known": r["known"],
                               "available": r["available"],
                               "months": [[month.isoformat(), count, invoiced] for month, count, invoiced in r["months"]]}
                              for r in rows]}
    db.session.rollback()
    with unit_of_work():
        task.finish(result)


def usage_apply_task(task):
    """Check the held file again and apply it, all in one unit of work with the task's end: a retried
    task applies it once (a second apply would only find every stamp already recorded)."""
    held = _held(task)
    try:
        usage = read_usage_file(held.data, held.original_name, allow_old=task.params["allow_old"])
    except UsageFileError as error:
        with unit_of_work():
            task.finish(_errors(error))
        return
    db.session.rollback()
    task.progress(0, usage.rows, APPLYING, force=True)

    def apply():
        result = apply_usage_file(usage, task.actor, reason=task.params.get("reason"),
                                  progress=lambda done: task.progress(done, usage.rows, APPLYING))
        task.finish({"name": usage.name, "rows": usage.rows, "total": dict(result.total), "per_wapu": [
            {"wapu": {"id": wapu_id, "code": usage.wapus[wapu_id].code, "name": usage.wapus[wapu_id].name},
             "counts": dict(counts)} for wapu_id, counts in result.per_wapu.items()]})

    run_once_more_on_conflict(apply)
    release_held_upload(task.params["token"], HELD_KIND)


def history_export_task(task):
    """The stamping history, filtered as its reader filtered it and scoped to what they may see, as XLSX."""
    from werkzeug.datastructures import MultiDict

    from scm.stamping.views import EXPORT_NAME, XLSX, export_query, history_filter, history_workbook

    user = task.actor
    stmt = export_query(history_filter(MultiDict(task.params["args"]), user), user)
    task.export(stmt, lambda rows, watch: history_workbook(rows, watch).getvalue(), EXPORT_NAME, XLSX)
