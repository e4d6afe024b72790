"""Spreadsheets and CSV files that are safe for user data (formula injection) and stream in flat memory."""

import csv
import io
import tempfile
import zipfile

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

FORMULA_STARTS = ("=", "+", "-", "@")


def written(write) -> bytes:
    """The bytes ``write(file)`` writes, through a temporary file (a big workbook is built on disk,
    not beside its own copy in memory)."""
    with tempfile.TemporaryFile() as file:
        write(file)
        file.seek(0)
        return file.read()


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


# What a workbook people upload may hold, checked before it is parsed: a small file can inflate to
# gigabytes (a "zip bomb"), or declare A1:XFD1048576 and make a reader pad every row.
MAX_PART_BYTES = 100 * 1024 * 1024  # one part (a sheet's XML), uncompressed
MAX_TOTAL_BYTES = 150 * 1024 * 1024
MAX_RATIO = 100  # real sheets compress 5-20 times; a bomb hundreds or thousands of times


class UnsafeWorkbook(ValueError):
    """The upload is not a workbook we read: damaged, foreign, or built to exhaust the server."""


def check_xlsx(data: bytes) -> None:
    """Refuse, before parsing, a workbook whose parts would inflate beyond the limits."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise UnsafeWorkbook("not a zip archive") from None
    total = 0
    for part in parts:
        total += part.file_size
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > MAX_PART_BYTES or total > MAX_TOTAL_BYTES or (part.file_size > 1_000_000 and ratio > MAX_RATIO):
            raise UnsafeWorkbook(f"{part.filename} inflates to {part.file_size} bytes (ratio {ratio:.0f})")


def xlsx_rows(data: bytes, *, max_rows: int, max_columns: int):
    """(row number, cells) of the first sheet of an uploaded workbook, read safely: parts checked
    first (``check_xlsx``), declared dimensions ignored, only ``max_columns`` columns read, and every
    row counted, empty or not: past ``max_rows`` rows it raises ``TooManyRows``. Cells keep their type."""
    check_xlsx(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # a declared A1:XFD1048576 would pad every row to 16,384 cells
    except UnsafeWorkbook:
        raise
    except Exception:  # openpyxl raises many kinds on a damaged or foreign zip
        raise UnsafeWorkbook("not a readable workbook") from None
    try:
        for number, cells in enumerate(sheet.iter_rows(values_only=True, max_col=max_columns), start=1):
            if number > max_rows:
                raise TooManyRows(max_rows)
            yield number, cells
    finally:
        book.close()


class TooManyRows(ValueError):
    """The sheet has more rows (empty ones included) than it may."""

    def __init__(self, limit):
        super().__init__(f"more than {limit} rows")
        self.limit = limit
