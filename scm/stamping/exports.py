"""Exports of stamp history: pure functions that write an XLSX from rows (views only send it).

openpyxl's write-only mode streams rows to disk, so memory stays flat however long the list.
"""

from scm.core.xlsx import write_rows_xlsx

WIDTHS = (24, 10, 11, 20, 22, 20, 19, 19, 19, 28, 8)


def write_stamps_xlsx(rows, target, headers, title):
    """Write ``rows`` (tuples matching ``headers``, in the reader's language; datetimes naive WIB) to
    ``target`` (path or file)."""
    return write_rows_xlsx(rows, target, headers, title, WIDTHS)
