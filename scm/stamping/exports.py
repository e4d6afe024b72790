"""Exports of stamp history: pure functions that write an XLSX from rows (views only send it).

openpyxl's write-only mode streams rows to disk, so memory stays flat however long the list.
"""

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from scm.core.xlsx import text_cell

HEADERS = ("Serial", "WAPU", "State", "Document type", "Document number", "Document date",
           "Reserved at (WIB)", "Stamped at (WIB)", "Released at (WIB)", "Release reason", "Source")


def write_stamps_xlsx(rows, target, headers=HEADERS, title="Riwayat pembubuhan"):
    """Write ``rows`` (tuples matching ``headers``; datetimes naive WIB) to ``target`` (path or file)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])
    sheet.freeze_panes = "A2"
    for index, width in enumerate((24, 10, 11, 20, 22, 20, 19, 19, 19, 28, 8), start=1):
        sheet.column_dimensions[chr(64 + index)].width = width
    bold = Font(bold=True)
    header = []
    for name in headers:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    count = 0
    for row in rows:
        cells = []
        for value in row:
            if hasattr(value, "year") and hasattr(value, "hour"):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                cells.append(cell)
            else:
                cells.append(text_cell(sheet, value))
        sheet.append(cells)
        count += 1
    sheet.auto_filter.ref = f"A1:{chr(64 + len(headers))}{count + 1}"
    workbook.save(target)
    return count
