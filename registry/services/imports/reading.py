"""Reading a bundle: its files from a folder or a zip, each CSV as rows of text.

Promises: every problem found on the way is a BundleError (file, line,
column, value, what was expected), collected, not raised; a source that is not
a bundle at all (no such folder, not a zip, an unreadable zip: encrypted,
deflate64 or corrupt, larger than the REGISTRY_IMPORT_MAX_* limits packed or
unpacked) is refused with ImportRefused, naming the file and the limit. Files are
read in chunks and counted as they unpack (a zip's own size fields may lie), so
memory stays bounded whatever the upload; a line longer than
REGISTRY_IMPORT_MAX_LINE_LENGTH or a row with more than REGISTRY_IMPORT_MAX_COLUMNS
values stops the reading of that file with an error.
"""

import csv
import io
import itertools
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from .. import inputs
from ..bundles import (
    FILES,
    BundleFile,
)
from ..cells import from_cell

CHUNK = 1024 * 1024
# Bundle files above this size are kept in a temporary file, not in memory.
SPOOL_BYTES = 4 * 1024 * 1024


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
    """The bundle could not be read at all (not a folder or zip, unreadable, too large)."""


def _megabytes(size: int) -> str:
    return f"{size / 1024**2:g} MB"


# ---------------------------------------------------------------- reading


def _read_source(source) -> tuple[str, dict, list[BundleError]]:
    """The bundle's files as binary file objects, by file name, from a folder, a .zip
    path or a binary file object holding a zip."""
    errors: list[BundleError] = []
    known = {spec.name for spec in FILES}
    files: dict = {}
    max_packed = settings.REGISTRY_IMPORT_MAX_COMPRESSED
    max_unpacked = settings.REGISTRY_IMPORT_MAX_UNCOMPRESSED
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        if path.is_dir():
            children = [c for c in sorted(path.iterdir()) if c.suffix.lower() == ".csv"]
            if sum(c.stat().st_size for c in children) > max_unpacked:
                raise ImportRefused(f"{name}: more than {_megabytes(max_unpacked)} of CSV "
                                    "(REGISTRY_IMPORT_MAX_UNCOMPRESSED).")
            for child in children:
                if child.name in known:
                    files[child.name] = child.open("rb")
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
        handle.seek(0, io.SEEK_END)
        packed = handle.tell()
        handle.seek(0)
        if packed > max_packed:
            raise ImportRefused(f"{name}: the zip is larger than {_megabytes(max_packed)} "
                                "(REGISTRY_IMPORT_MAX_COMPRESSED).")
        with zipfile.ZipFile(handle) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")
                       and not PurePosixPath(m.filename).name.startswith("._")
                       and m.filename.lower().endswith(".csv")]
            too_large = ImportRefused(f"{name}: more than {_megabytes(max_unpacked)} of CSV once "
                                      "unpacked (REGISTRY_IMPORT_MAX_UNCOMPRESSED).")
            if sum(m.file_size for m in members) > max_unpacked:
                raise too_large
            unpacked = 0
            for member in members:
                base = PurePosixPath(member.filename).name
                if member.flag_bits & 0x1:
                    raise ImportRefused(f"{name}: {member.filename} is password-protected; zip "
                                        "the bundle without a password.")
                if base not in known:
                    errors.append(BundleError(member.filename, None, "", "", _unknown_file()))
                    continue
                if base in files:
                    errors.append(BundleError(member.filename, None, "", "",
                                              f"a second {base} in the zip; keep one."))
                    continue
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
                with archive.open(member) as stream:
                    while chunk := stream.read(CHUNK):
                        unpacked += len(chunk)
                        if unpacked > max_unpacked:  # the size fields of the zip lied
                            spool.close()
                            raise too_large
                        spool.write(chunk)
                spool.seek(0)
                files[base] = spool
    except ImportRefused:
        _close(files)
        raise
    except NotImplementedError as exc:  # deflate64, implode, ... (zipfile cannot unpack them)
        _close(files)
        raise ImportRefused(f"{name}: the zip uses a compression this registry cannot read "
                            f"({exc}); zip the bundle again with ordinary (deflate) compression.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
        _close(files)
        if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
            raise ImportRefused(f"{name}: the zip is password-protected; zip the bundle without "
                                "a password.") from None
        raise ImportRefused(f"{name}: not a .zip file or a folder, or a damaged zip ({exc}).") from None
    finally:
        if isinstance(source, str | Path):
            handle.close()
    return str(name), files, errors


def _close(files: dict) -> None:
    for handle in files.values():
        handle.close()


def _unknown_file() -> str:
    return "unknown file; expected " + ", ".join(spec.name for spec in FILES) + "."


@dataclass
class _Table:
    spec: BundleFile
    present: set[str]
    rows: list[tuple[int, dict[str, str]]]


class _LineTooLong(Exception):
    pass


class _NotUtf8(Exception):
    def __init__(self, line: int):
        self.line = line


def _lines(data, limit: int):
    """The lines of the binary file `data` as text, never reading more than `limit`
    bytes into one (decoded line by line, so an encoding error has its line)."""
    number = 0
    while line := data.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith((b"\n", b"\r")):
            raise _LineTooLong
        try:
            # with or without BOM (Excel writes one)
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _NotUtf8(number) from None


def _table(spec: BundleFile, data, errors: list[BundleError],
           notes: list[str] | None = None) -> _Table:
    """The rows of one bundle file (a binary file object, closed here). A file
    separated by semicolons or tabs is read as such and said in `notes`."""
    with data:
        return _read_table(spec, data, errors, notes if notes is not None else [])


SEPARATORS = {",": "commas", ";": "semicolons (;)", "\t": "tabs"}


def separator_of(header_line: str) -> str:
    """The separator of a CSV file from its header line: the one of , ; tab it holds
    most (column names have none of them); a comma when it holds none. Dutch or
    German Excel saves 'CSV' with semicolons, some exports use tabs."""
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: (counts[sep], sep == ","))
    return best if counts[best] else ","


def _read_table(spec: BundleFile, data, errors: list[BundleError], notes: list[str]) -> _Table:
    max_line = settings.REGISTRY_IMPORT_MAX_LINE_LENGTH
    max_columns = settings.REGISTRY_IMPORT_MAX_COLUMNS
    lines = _lines(data, max_line)
    reader = csv.reader([])  # until the header line is read (its line_num is 0)
    rows = []
    header: list[str] = []
    try:
        try:
            first = next(lines)
            separator = separator_of(first)
            if separator != ",":
                notes.append(f"{spec.name}: columns separated by {SEPARATORS[separator]}, "
                             "not commas; read as such.")
            reader = csv.reader(itertools.chain([first], lines), delimiter=separator)
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            errors.append(BundleError(spec.name, 1, "", "", "the file is empty; expected a header "
                                      "row: " + ",".join(spec.required_columns)))
            return _Table(spec, set(), [])
        if len(header) > max_columns:
            errors.append(BundleError(spec.name, 1, "", "", f"{len(header)} columns in the header; "
                                      f"at most {max_columns} (REGISTRY_IMPORT_MAX_COLUMNS)."))
            return _Table(spec, set(), [])
        _check_header(spec, header, errors)
        known = set(spec.column_names)
        # Cells are checked for what cannot be stored by one search each; the message
        # (inputs.value_problem) is made only for a cell that has something to say.
        unstorable = inputs.UNSTORABLE.search
        named_bad = {h for h in header if unstorable(h)}
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines
            if len(values) != len(header):
                errors.append(BundleError(spec.name, line, "", separator.join(values)[:80],
                                          f"expected {len(header)} values as in the header, "
                                          f"found {len(values)}."))
                if len(values) > max_columns:
                    return _Table(spec, known & set(header), rows)
                continue
            # One search over the whole row (the pattern is single characters); cell by
            # cell only when it finds something.
            if named_bad or unstorable("".join(values)):
                for h, v in zip(header, values, strict=True):
                    problem = h in known and (h in named_bad or unstorable(v)) \
                        and inputs.value_problem(h, v)
                    if problem:
                        errors.append(BundleError(spec.name, line, h,
                                                  v.replace("\x00", "\\x00")[:80], problem))
            rows.append((line, {h: from_cell(v.strip())
                                for h, v in zip(header, values, strict=True) if h in known}))
    except _NotUtf8 as exc:
        errors.append(BundleError(spec.name, exc.line, "", "", "expected UTF-8 text "
                                  "(save the file as 'CSV UTF-8')."))
    except _LineTooLong:
        errors.append(BundleError(spec.name, reader.line_num + 1, "", "",
                                  f"a line longer than {max_line} bytes "
                                  "(REGISTRY_IMPORT_MAX_LINE_LENGTH); reading stopped here."))
    except csv.Error as exc:
        errors.append(BundleError(spec.name, reader.line_num, "", "", f"unreadable CSV: {exc}."))
    return _Table(spec, set(spec.column_names) & set(header), rows)


def _check_header(spec: BundleFile, header: list[str], errors: list[BundleError]) -> None:
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
