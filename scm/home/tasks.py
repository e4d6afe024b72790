"""Work the queue runs for the pages that span the features: a large audit-log export."""

from werkzeug.datastructures import MultiDict

from scm.home.views import MIMETYPES, audit_file, audit_file_name, audit_query


def audit_export_task(task):
    """The audit log, filtered as the admin filtered it, as XLSX or CSV in the admin's language."""
    fmt = task.params["fmt"]
    _form, stmt = audit_query(MultiDict(task.params["args"]))
    task.export(stmt, lambda rows, watch: audit_file(rows, fmt, watch).getvalue(), audit_file_name(fmt), MIMETYPES[fmt])
