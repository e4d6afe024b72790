"""Spreadsheet cells that are safe for user data (formula injection)."""

from openpyxl.cell import WriteOnlyCell

FORMULA_STARTS = ("=", "+", "-", "@")


def text_cell(sheet, value):
    """A cell for user data: text starting with = + - @ is stored as a string, never a formula."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        cell.data_type = "s"
    return cell
