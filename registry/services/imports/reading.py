"""Reading a bundle: its files from a folder or a zip, each CSV as rows of text.

Promises: every problem found on the way is a BundleError (file, line,
column, value, what was expected), collected, not raised; a source that is not
a bundle at all (no such folder, not a zip, too large unpacked) is refused with
ImportRefused.
"""

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..bundles import (
    FILES,
    BundleFile,
)

MAX_UNCOMPRESSED = 2 * 1024**3  # a zip bomb guard; 10,000 patients are ~20 MB


@dataclass(frozen=True)
class BundleError:
    """One problem in the bundle: where it is, what was found, what was expected."""

    file: str
    line: int | None
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        column = f" {self.column}" if self.column else ""
        value = f" '{self.value}'" if self.value or self.column else ""
        return f"{where}{column}{value}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column,
                "value": self.value, "message": self.message}


class ImportRefused(Exception):
    """The bundle could not be read at all (not a folder or zip, unreadable)."""


# ---------------------------------------------------------------- reading


def _read_source(source) -> tuple[str, dict[str, bytes], list[BundleError]]:
    """The bundle's files as bytes, by file name, from a folder, a .zip path or a
    binary file object holding a zip."""
    errors: list[BundleError] = []
    known = {spec.name for spec in FILES}
    files: dict[str, bytes] = {}
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() != ".csv":
                    continue
                if child.name in known:
                    files[child.name] = child.read_bytes()
                else:
                    errors.append(BundleError(child.name, None, "", "", _unknown_file()))
            return name, files, errors
        if not path.is_file():
            raise ImportRefused(f"{path}: no such folder or .zip file.")
        handle = path.open("rb")
    else:
        name = getattr(source, "name", "upload")
        handle = source
    try:
        with zipfile.ZipFile(handle) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")
                       and not PurePosixPath(m.filename).name.startswith("._")
                       and m.filename.lower().endswith(".csv")]
            if sum(m.file_size for m in members) > MAX_UNCOMPRESSED:
                raise ImportRefused(f"{name}: more than 2 GB of CSV once unpacked.")
            for member in members:
                base = PurePosixPath(member.filename).name
                if base not in known:
                    errors.append(BundleError(member.filename, None, "", "", _unknown_file()))
                elif base in files:
                    errors.append(BundleError(member.filename, None, "", "",
                                              f"a second {base} in the zip; keep one."))
                else:
                    files[base] = archive.read(member)
    except zipfile.BadZipFile:
        raise ImportRefused(f"{name}: not a .zip file or a folder.") from None
    finally:
        if isinstance(source, str | Path):
            handle.close()
    return str(name), files, errors


def _unknown_file() -> str:
    return "unknown file; expected " + ", ".join(spec.name for spec in FILES) + "."


@dataclass
class _Table:
    spec: BundleFile
    present: set[str]
    rows: list[tuple[int, dict[str, str]]]


def _table(spec: BundleFile, data: bytes, errors: list[BundleError]) -> _Table:
    try:
        text = data.decode("utf-8-sig")  # with or without BOM (Excel writes one)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        errors.append(BundleError(spec.name, line, "", "", "expected UTF-8 text (save the file "
                                  "as 'CSV UTF-8')."))
        return _Table(spec, set(), [])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        errors.append(BundleError(spec.name, 1, "", "", "the file is empty; expected a header "
                                  "row: " + ",".join(spec.required_columns)))
        return _Table(spec, set(), [])
    known = set(spec.column_names)
    for name in header:
        if name not in known:
            errors.append(BundleError(spec.name, 1, name, name,
                                      "unknown column; expected " + ", ".join(spec.column_names)))
    seen = set()
    for name in header:
        if name in seen and name in known:
            errors.append(BundleError(spec.name, 1, name, name, "the column appears twice."))
        seen.add(name)
    for name in spec.required_columns:
        if name not in header:
            errors.append(BundleError(spec.name, 1, name, "", "missing required column."))
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines
            if len(values) != len(header):
                errors.append(BundleError(spec.name, line, "", ",".join(values)[:80],
                                          f"expected {len(header)} values as in the header, "
                                          f"found {len(values)}."))
                continue
            rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)
                                if h in known}))
    except csv.Error as exc:
        errors.append(BundleError(spec.name, reader.line_num, "", "", f"unreadable CSV: {exc}."))
    return _Table(spec, known & set(header), rows)
