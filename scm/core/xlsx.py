"""Spreadsheets and CSV files that are safe for user data (formula injection) and stream in flat memory."""

import csv
import io

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

FORMULA_STARTS = ("=", "+", "-", "@")


def text_cell(sheet, value):
    """A cell for user data: text starting with = + - @ is stored as a string, never a formula."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        cell.data_type = "s"
    return cell


def write_rows_xlsx(rows, target, headers, title, widths=()):
    """Write ``rows`` (tuples matching ``headers``; datetimes naive, local time) to ``target`` (a path
    or file) as one sheet with a bold, frozen, filterable header. Write-only: memory stays flat.
    Returns the number of rows written."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(str(title)[:31])
    sheet.freeze_panes = "A2"
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    header = []
    for name in headers:
        cell = WriteOnlyCell(sheet, value=str(name))
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
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{count + 1}"
    workbook.save(target)
    return count


def _csv_safe(value):
    """A CSV field a spreadsheet will not run: text starting with = + - @ (or a tab/CR) gets a leading '."""
    if value is None:
        return ""
    if hasattr(value, "year") and hasattr(value, "hour"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, "\t", "\r")):
        return "'" + value
    return value


def csv_lines(headers, rows):
    """A CSV file, line by line (UTF-8 with a BOM, so that Excel reads it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([str(h) for h in headers])
    yield "\ufeff" + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_safe(v) for v in row])
        yield buffer.getvalue()
