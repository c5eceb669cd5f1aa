"""Spreadsheet cells that cannot run as formulas (CSV injection, OWASP).

One rule for every file a spreadsheet may open: the bundle export, the CSV and
xlsx datasets; the bundle import reads such cells back.

Promises: `to_cell` prefixes a single quote to a text value starting with =, +,
-, @, a tab or a carriage return, and leaves every other value (numbers
included, so -3 stays a number) unchanged; `from_cell(to_cell(text)) == text`
for every text.
"""

import csv
import io

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_cell(value):
    """`value`, with a quote in front if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def from_cell(text: str) -> str:
    """A cell written by `to_cell` read back: exactly the neutralising quote is taken off."""
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS:
        return text[1:]
    return text


class CsvWriter:
    """`csv.writer(handle, lineterminator="\\n")` that also quotes a field holding a carriage
    return, as PostgreSQL's COPY does: Python 3.11's writer quotes only the characters of its
    line terminator, so a lone "\\r" went out bare and a reader in universal-newline mode
    (Excel, R, pandas) split the row there. The few rows with one are written with a
    "\\r\\n" terminator (which quotes them), then ended with "\\n" like the rest."""

    def __init__(self, handle):
        self.handle = handle
        self._writer = csv.writer(handle, lineterminator="\n")

    def writerow(self, row) -> None:
        row = list(row)
        if not any(isinstance(v, str) and "\r" in v for v in row):
            self._writer.writerow(row)
            return
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(row)
        self.handle.write(buffer.getvalue()[:-2] + "\n")
