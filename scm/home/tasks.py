"""Work the queue runs for the pages that span the features: a large audit-log export."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from scm.core.database import unit_of_work
from scm.core.uploads import Upload
from scm.extensions import db
from scm.home.views import MIMETYPES, audit_file, audit_file_name, audit_query

WRITING = _l("Writing the rows")


def audit_export_task(task):
    """The audit log, filtered as the admin filtered it, as XLSX or CSV in the admin's language."""
    fmt = task.params["fmt"]
    _form, stmt = audit_query(MultiDict(task.params["args"]))
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar()
    task.progress(0, total, WRITING, force=True)
    data = audit_file(stmt, fmt, progress=lambda done: task.progress(done, total, WRITING)).getvalue()
    db.session.rollback()
    with unit_of_work():
        task.finish({"rows": total}, file=Upload(data, audit_file_name(fmt), MIMETYPES[fmt]))
