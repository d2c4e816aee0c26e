"""Read a provider's extract as received (CSV, Excel or Parquet) into canonical columns on Spark.

Ingest is the first place a file is opened, so it is where a broken delivery must stop: a file in
the wrong format, cut short, in another encoding, missing columns or empty raises ``InputError``
naming the file, the problem and what to ask the provider for, before any check runs or anything
is written. Reading is strict on purpose (no guessed encodings when one is declared, no silently
padded rows at the end of a file) because a quietly mangled extract would be linked and analysed
as if it were right.

Every row keeps ``source_row``: its 1-based position among the data rows of the received file
(the header is not counted; for Excel, the first row under the header is 1), so a quarantined row
can be discussed with the provider without copying its values anywhere.

Columns are renamed to canonical fields by the dataset config; columns the config does not map, and
mapped fields the signed policy does not permit, are dropped here and only their *names* are
reported (for the audit entry).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig_policies.errors import ConfigError, InputError, environment_problem
from ig_policies.workspace import content_hash
from linkage.dataset_config import DatasetConfig, FileFormat

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: columns ingest adds to every extract
SOURCE_ROW = "source_row"
MALFORMED = "_malformed"
PROGRAMME = "programme"

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"
_DELIMITER_WORDS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
#: the longest single value a delimited file may hold (Python's csv default): longer ones are
#: almost always a quote that was never closed, or a free-text column nobody asked for
MAX_FIELD_CHARS = 131_072
_ENCODING_WORDS = {
    "utf-8": "UTF-8",
    "cp1252": "Windows-1252 (cp1252)",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16 (little-endian, no byte-order mark)",
    "utf-16-be": "UTF-16 (big-endian, no byte-order mark)",
}


@dataclass(frozen=True)
class ReceivedFile:
    """The file as it arrived: what it is and its content hash (recorded in the audit entry)."""

    path: Path
    format: FileFormat
    content_hash: str
    size_bytes: int
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    other_sheets: tuple[str, ...] = ()

    @property
    def sheet_note(self) -> str | None:
        """Which worksheet was read, when the workbook has others that were not (else None)."""
        if self.sheet is None or not self.other_sheets:
            return None
        others = ", ".join(f"'{s}'" for s in self.other_sheets)
        return (
            f"read worksheet '{self.sheet}' of {self.path.name}; its other sheets were not read: {others} "
            "(set `sheet:` in the dataset config to read another)"
        )


@dataclass(frozen=True)
class IngestedExtract:
    """An extract read into canonical columns, not yet checked. ``frame`` is a Spark DataFrame."""

    dataset: str
    received: ReceivedFile
    frame: DataFrame
    rows_in: int
    fields: tuple[str, ...]
    dropped_columns: tuple[str, ...]
    headings: dict[str, str] = field(default_factory=dict)  # canonical field -> heading as received


@dataclass(frozen=True)
class _TextTable:
    header: list[str]
    rows: list[list[str | None]]
    malformed: list[bool]
    sheet: str | None = None
    other_sheets: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# What kind of file is it?

_MAGIC: dict[bytes, FileFormat] = {b"PK\x03\x04": "xlsx", b"PAR1": "parquet"}
_FORMAT_WORDS = {
    "csv": "a delimited text (CSV) file",
    "xlsx": "an Excel (.xlsx) workbook",
    "parquet": "a Parquet file",
}


#: binary formats a provider sends by mistake, by their first bytes
_OTHER_BINARY: dict[bytes, str] = {
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook (or another old Office file)",
    b"%PDF-": "a PDF document",
    b"\x1f\x8b": "a gzip-compressed file",
    b"PK\x05\x06": "an empty zip archive",
    b"PK\x07\x08": "a zip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}


def _not_a_text_file(path: Path, what: str | None = None) -> InputError:
    kind = f" (it looks like {what})" if what else ""
    return InputError(
        str(path),
        f"the file is not a text file: it holds binary data{kind}, and it is neither an Excel (.xlsx) "
        "workbook nor a Parquet file.",
        hint="ask the provider to export the extract as CSV, Excel .xlsx or Parquet, uncompressed.",
    )


def _utf16_without_marker(head: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' when every other byte is zero (UTF-16 text saved without a BOM)."""
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    zero_even, zero_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zero_odd > 0.9 and zero_even < 0.1:
        return "utf-16-le"
    if zero_even > 0.9 and zero_odd < 0.1:
        return "utf-16-be"
    return None


def _is_utf16(head: bytes, declared_encoding: str | None) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _utf16_without_marker(head):
        return True
    return declared_encoding is not None and codecs.lookup(declared_encoding).name.startswith("utf-16")


#: bytes no text export contains: C0 control codes other than tab, line ends and form feed, and DEL
_CONTROL_BYTES = bytes([*range(0, 9), 14, *range(15, 32), 127])


def _control_fraction(head: bytes) -> float:
    return (len(head) - len(head.translate(None, _CONTROL_BYTES))) / len(head) if head else 0.0


def detect_format(
    path: Path, declared: FileFormat | None = None, declared_encoding: str | None = None
) -> FileFormat:
    """The file's format from its first bytes; a mismatch with the declared format is an error.

    The content decides, not the file name: providers rename files, and a workbook saved as
    ``.csv`` must not be parsed as text. Binary content that is neither a workbook nor Parquet is
    refused as "not a text file" (naming what it looks like when its first bytes tell); a few stray
    zero bytes in an otherwise text file are left for the reader to report by row.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise environment_problem(exc, str(path), "read") from None
    if not head:
        raise InputError(
            str(path),
            "the file is empty (0 bytes).",
            hint="ask the provider to send the extract again; the delivery arrived without any content.",
        )
    found: FileFormat | None = next((fmt for magic, fmt in _MAGIC.items() if head.startswith(magic)), None)
    if found is None:
        if not _is_utf16(head, declared_encoding):
            what = next((w for magic, w in _OTHER_BINARY.items() if head.startswith(magic)), None)
            if what is not None or head.count(0) > max(2, len(head) // 100) or _control_fraction(head) > 0.05:
                raise _not_a_text_file(path, what)
        found = "csv"
    if declared is not None and found != declared:
        raise InputError(
            str(path),
            f"the file is {_FORMAT_WORDS[found]}, but its dataset config says it should be {_FORMAT_WORDS[declared]}.",
            hint=(
                f"ask the provider to send the extract as agreed ({declared}), or, if the new format is "
                "agreed, change `format` in the dataset config."
            ),
        )
    return found


# --------------------------------------------------------------------------------------------
# Delimited text


def _row_of_offset(text_bytes: bytes, offset: int) -> int:
    """1-based data row (header excluded) holding byte ``offset``; 0 means the header."""
    return text_bytes.count(b"\n", 0, offset)


def _decode(path: Path, raw: bytes, declared: str | None) -> tuple[str, str]:
    """Decode strictly with the declared encoding, or detect one; return (text, encoding used)."""
    if raw.startswith(codecs.BOM_UTF8):
        if declared is not None and codecs.lookup(declared).name not in ("utf-8", "utf-8-sig"):
            raise InputError(
                str(path),
                f"the file is UTF-8 text (it starts with a UTF-8 marker), but its dataset config says {declared}.",
                hint="ask the provider which encoding they now export in, and correct `encoding` in the dataset config.",
            )
        declared, raw = "utf-8", raw[len(codecs.BOM_UTF8) :]
    utf16 = _utf16_of(raw)
    if utf16 is not None:
        if declared is not None and not codecs.lookup(declared).name.startswith("utf-16"):
            raise InputError(
                str(path),
                f"the file is {_ENCODING_WORDS[utf16]} text (two bytes per character), but its dataset "
                f"config says {declared}.",
                hint=(
                    f"set `encoding: {utf16}` in the dataset config, or ask the provider to re-export the "
                    f"extract as {declared}."
                ),
            )
        declared = declared or utf16
    if declared is None:
        # UTF-8 first (strict, so a match is certain), then Windows-1252, the code page of UK
        # Windows exports: statistical detection alone confuses it with other single-byte pages
        for candidate in ("utf-8", "cp1252"):
            try:
                return raw.decode(candidate), candidate
            except UnicodeDecodeError:
                pass
        from charset_normalizer import from_bytes

        best = from_bytes(raw[: 4 * _SNIFF_BYTES]).best()
        if best is None:
            raise InputError(
                str(path),
                "the text encoding of the file could not be recognised.",
                hint="ask the provider to export the extract as UTF-8, or declare `encoding` in the dataset config.",
            )
        declared = best.encoding
    name = codecs.lookup(declared).name
    try:
        text = raw.decode(name)
    except UnicodeDecodeError as exc:
        row = _row_of_offset(raw, exc.start)
        likely = next((e for e in ("utf-8", "cp1252") if e != name and _decodes(raw, e)), None)
        guess = f"; it decodes cleanly as {_ENCODING_WORDS[likely]}" if likely else ""
        raise InputError(
            str(path),
            f"the file is not valid {declared} text (the first bad byte is in data row {row}); it was "
            f"probably saved in a different encoding{guess}.",
            hint=(
                f"set `encoding: {likely}` in the dataset config if the provider now exports in it, or ask "
                f"the provider to re-export the extract as {declared}."
                if likely
                else f"ask the provider to re-export the extract as {declared}, or correct `encoding` in the dataset config."
            ),
            row=row or None,
        ) from None
    if (
        name not in ("utf-8", "ascii")
        and not name.startswith("utf-16")
        and not raw.isascii()
        and _is_utf8(raw)
    ):
        # a single-byte code page decodes almost anything, so UTF-8 read as cp1252 would pass
        # silently as mojibake ("Ã©" for "é") and corrupt names before linkage
        raise InputError(
            str(path),
            f"the file is declared as {declared} but is UTF-8 text; reading it as {declared} would garble "
            "accented names.",
            hint="ask the provider which encoding they now export in, and correct `encoding` in the dataset config.",
        )
    if name.startswith("utf-16"):
        text = text.removeprefix("\ufeff")
    return text, name


def _utf16_of(raw: bytes) -> str | None:
    """The UTF-16 codec a file is written in (by its marker or its zero bytes), else None."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return _utf16_without_marker(raw)


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8(raw: bytes) -> bool:
    return _decodes(raw, "utf-8")


def _delimiter(path: Path, text: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    sample = text[:_SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        pass
    # the sniffer gives up on short files whose values hold another candidate (a one-row extract
    # with "Met Ben; follow up"): the heading line, which holds no such values, then decides
    first_line = sample.splitlines()[0] if sample else ""
    widths = {sep: len(next(csv.reader([first_line], delimiter=sep), [])) for sep in _DELIMITERS}
    widest = max(widths, key=lambda sep: widths[sep])
    if widths[widest] > 1 and sorted(widths.values())[-2] < widths[widest]:
        return widest
    raise InputError(
        str(path),
        "cannot tell how the columns are separated (tried comma, semicolon, tab and bar).",
        hint="ask the provider for a standard CSV export, or declare `delimiter` in the dataset config.",
    )


def read_delimited(
    path: Path, encoding: str | None = None, delimiter: str | None = None
) -> tuple[_TextTable, str, str]:
    """Parse a delimited text file strictly; returns the table, the encoding and the delimiter used.

    Row numbers in messages count data rows as ``source_row`` does (header and blank lines excluded).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise environment_problem(exc, str(path), "read") from None
    text, used_encoding = _decode(path, raw, encoding)
    sep = _delimiter(path, text, delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    header: list[str] | None = None
    records: list[list[str]] = []
    try:
        header = next(reader, None)
        for record in reader:
            if record:  # blank lines carry no record
                records.append(record)
    except csv.Error as exc:
        raise _parse_error(path, text, sep, header, len(records) + 1, exc) from None
    if header is None or not any(h.strip() for h in header):
        raise InputError(
            str(path),
            "the file has no column headings and no rows.",
            hint="ask the provider to send the extract again; this delivery has no data in it.",
        )
    if not records:
        raise InputError(
            str(path),
            "the file has column headings but no data rows.",
            hint="ask the provider whether the extract should be empty; if not, ask for it to be sent again.",
        )
    width = len(header)
    if not text.endswith(("\n", "\r")) and len(records[-1]) != width:
        raise InputError(
            str(path),
            f"the file is cut short: its last line ends mid-row ({len(records[-1])} of {width} columns) "
            "with no line ending.",
            hint="ask the provider to send the complete extract again; the file looks truncated in transfer.",
            row=len(records),
        )
    if "\x00" in text:
        raise _zero_byte(path, header, records)
    malformed = [len(r) != width for r in records]
    rows: list[list[str | None]] = [
        (list(r) + [None] * (width - len(r)))[:width] if bad else list(r)
        for r, bad in zip(records, malformed, strict=True)
    ]
    return _TextTable(header=header, rows=rows, malformed=malformed), used_encoding, sep


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """Raise Python's csv field limit for one re-read (it is process-wide), then restore it."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _column_name(header: Sequence[str] | None, index: int) -> str:
    if header is not None and index < len(header) and header[index].strip():
        return header[index].strip()
    return f"column {index + 1} (beyond the headings)"


def _parse_error(
    path: Path, text: str, sep: str, header: list[str] | None, row: int, exc: csv.Error
) -> InputError:
    """Name what stopped the parser: an oversized value, a quote never closed, or a stray quote."""
    reason = str(exc)
    data_row = row if header is not None else None
    if "field larger than field limit" in reason:
        with _field_limit(sys.maxsize):
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=False)
            next(reader, None)
            number = 0
            for record in reader:
                number += bool(record) or header is None
                big = next((i for i, v in enumerate(record) if len(v) > MAX_FIELD_CHARS), None)
                if big is not None:
                    value = record[big]
                    column = _column_name(header, big) if header is not None else None
                    if value.count("\n") >= 2:
                        return InputError(
                            str(path),
                            f"a quoted value is never closed: it runs on for {len(value):,} characters over "
                            f"{value.count(chr(10)):,} lines, swallowing the rows after it.",
                            hint="ask the provider to re-export the extract with every quote closed (a stray "
                            "double quote in a free-text field is the usual cause).",
                            row=number if header is not None else None,
                            column=column,
                        )
                    return InputError(
                        str(path),
                        f"a value is {len(value):,} characters long, over the limit of {MAX_FIELD_CHARS:,} "
                        "characters for one field.",
                        hint="ask the provider to re-export the extract without this column or with the "
                        "value shortened; a field this long is not an identifier or a code.",
                        row=number if header is not None else None,
                        column=column,
                    )
    swallowed = text.count("\n") - row - 1  # lines after the row where the quote opened
    if ("unexpected end of data" in reason or "EOF" in reason) and swallowed >= 2:
        return InputError(
            str(path),
            f"a quoted value opened in this row is never closed, so the rest of the file (about "
            f"{swallowed:,} lines) reads as one value.",
            hint="ask the provider to re-export the extract with every quote closed (a stray double quote "
            "in a free-text field is the usual cause).",
            row=data_row,
        )
    if "unexpected end of data" in reason or "EOF" in reason:
        return InputError(
            str(path),
            "the file is cut short or damaged: a quoted value is never closed before the end of the file.",
            hint="ask the provider to send the complete extract again; the file looks truncated in transfer.",
            row=data_row,
        )
    return InputError(
        str(path),
        f"the file is damaged: a quoted value is followed by other characters before the next "
        f"{_DELIMITER_WORDS.get(sep, repr(sep))} ({reason}).",
        hint="ask the provider to re-export the extract with standard CSV quoting (quotes inside a value doubled).",
        row=data_row,
    )


def _zero_byte(path: Path, header: list[str], records: list[list[str]]) -> InputError:
    """A text file with a zero (NUL) byte in a value: damaged in export or transfer; say where."""
    for number, record in enumerate(records, start=1):
        for index, value in enumerate(record):
            if "\x00" in value:
                return InputError(
                    str(path),
                    "a value holds a zero (NUL) byte, which no text export contains: the file is damaged.",
                    hint="ask the provider to export the extract again and re-send it.",
                    row=number,
                    column=_column_name(header, index),
                )
    index = next((i for i, h in enumerate(header) if "\x00" in h), 0)
    return InputError(
        str(path),
        "a column heading holds a zero (NUL) byte, which no text export contains: the file is damaged.",
        hint="ask the provider to export the extract again and re-send it.",
        column=f"heading {index + 1}",
    )


# --------------------------------------------------------------------------------------------
# Excel


def _cell_text(value: Any) -> str | None:
    """A cell as text. Real dates become ISO dates; whole numbers lose Excel's '.0'."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _other_sheets(others: tuple[str, ...]) -> str:
    """The end of a sentence about a worksheet: the workbook's other sheets, when it has any."""
    return f" (the workbook's other sheets: {', '.join(repr(o) for o in others)})." if others else "."


def _other_sheets_hint(others: tuple[str, ...]) -> str:
    """The end of a hint about a worksheet: how to choose another sheet, when there is one."""
    return "; if the extract is on another sheet, set `sheet:` in the dataset config." if others else "."


def read_xlsx(path: Path, sheet: str | None = None) -> _TextTable:
    """Read one worksheet of an .xlsx workbook (first row = headings) as text cells."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except PermissionError as exc:
        raise environment_problem(exc, str(path), "read") from None
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, EOFError) as exc:
        raise InputError(
            str(path),
            f"the Excel workbook cannot be opened; it is damaged or cut short ({type(exc).__name__}).",
            hint="ask the provider to save the workbook again as .xlsx and re-send it.",
        ) from None
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise InputError(
                str(path),
                f"the workbook has no worksheet '{sheet}' (it has: {', '.join(workbook.sheetnames)}).",
                hint="ask the provider which sheet holds the extract, and set `sheet` in the dataset config.",
            )
        ws = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        used, others = ws.title, tuple(n for n in workbook.sheetnames if n != ws.title)
        cells = [[_cell_text(v) for v in row] for row in ws.iter_rows(values_only=True)]
    except (zipfile.BadZipFile, KeyError, EOFError, ValueError) as exc:
        raise InputError(
            str(path),
            f"the Excel workbook is damaged or cut short and cannot be read ({type(exc).__name__}).",
            hint="ask the provider to save the workbook again as .xlsx and re-send it.",
        ) from None
    finally:
        workbook.close()
    while cells and not any(c not in (None, "") for c in cells[-1]):
        cells.pop()  # Excel keeps formatted but empty rows at the end
    if not cells:
        raise InputError(
            str(path),
            f"the worksheet '{used}' is empty: no column headings and no rows" + _other_sheets(others),
            hint="ask the provider to send the extract again; this workbook has no data in it"
            + _other_sheets_hint(others),
        )
    header = [c or "" for c in cells[0]]
    while header and header[-1] == "":
        header.pop()
    width = len(header)
    records = cells[1:]
    if not records:
        raise InputError(
            str(path),
            f"the worksheet '{used}' has column headings but no data rows" + _other_sheets(others),
            hint="ask the provider whether the extract should be empty; if not, ask for it to be sent again"
            + _other_sheets_hint(others),
        )
    malformed = [any(c not in (None, "") for c in r[width:]) for r in records]
    rows = [(r + [None] * (width - len(r)))[:width] for r in records]
    return _TextTable(header=header, rows=rows, malformed=malformed, sheet=used, other_sheets=others)


def _sheet_headings(path: Path) -> dict[str, list[str]]:
    """The first row of every worksheet (to say which sheet holds the columns a config expects)."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        headings = {}
        for ws in workbook.worksheets:
            first = next(ws.iter_rows(values_only=True, max_row=1), ())
            headings[ws.title] = [_cell_text(v) or "" for v in first]
        return headings
    finally:
        workbook.close()


# --------------------------------------------------------------------------------------------
# Column mapping


def _norm(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).casefold()


@dataclass(frozen=True)
class ColumnPlan:
    """Which received columns become which canonical fields, and which are dropped (names only)."""

    rename: dict[str, str]  # received column name -> canonical field
    dropped: tuple[str, ...]


#: a sentence saying why the columns were not found, and what to do (None: no better reading found)
Diagnosis = Callable[[], "tuple[str, str] | None"]


def plan_columns(
    path: Path,
    header: Sequence[str],
    config: DatasetConfig,
    permitted: Iterable[str] | None,
    diagnose: Diagnosis | None = None,
) -> ColumnPlan:
    """Match received headings to the config (ignoring case and spacing) and apply the policy.

    When most required columns are missing the cause is rarely the provider dropping them: it is a
    file read the wrong way (delimiter, encoding, worksheet). ``diagnose`` is then asked for a
    reading that would have matched, so the message says what to change instead of listing every
    column as missing.

    A required field the policy does not permit is a contradiction between the dataset config and
    the signed policy; it is reported as a config error rather than silently validated away.
    """
    permitted_set = set(permitted) if permitted is not None else None
    seen: dict[str, str] = {}
    repeated: list[str] = []
    for name in header:
        key = _norm(name)
        if key in seen:
            repeated.append(name)
        seen.setdefault(key, name)
    wanted = {_norm(provider): canonical for provider, canonical in config.columns.items()}
    by_canonical = {canonical: provider for provider, canonical in config.columns.items()}
    missing = [by_canonical[f] for f in config.required_fields if _norm(by_canonical[f]) not in seen]
    if missing:
        required = config.required_fields
        if len(missing) > 6:
            listed = ", ".join(repr(m) for m in missing[:5])
            share = (
                f"all {len(required)}"
                if len(missing) == len(required)
                else f"{len(missing)} of the {len(required)}"
            )
            problem = f"{share} required columns are missing ({listed} and {len(missing) - 5} more)."
        else:
            problem = f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(repr(m) for m in missing)}."
        hint = (
            "ask the provider to include these columns, or, if they were only renamed, update the column "
            f"mapping in the dataset config for '{config.name}'."
        )
        diagnosis = diagnose() if diagnose is not None and 2 * len(missing) > len(required) else None
        if diagnosis is not None:
            problem, hint = f"{problem} {diagnosis[0]}", diagnosis[1]
        raise InputError(str(path), problem, hint=hint)
    if repeated:
        # only once the headings are known to be headings (a first line of data would repeat
        # values, and they must not be echoed)
        raise InputError(
            str(path),
            f"the column heading '{repeated[0].strip()}' appears twice, so we cannot tell which one to use.",
            hint="ask the provider to re-export the extract with each column once.",
        )
    if permitted_set is not None:
        refused = [f for f in (*config.keys, *config.not_null) if f not in permitted_set]
        if refused:
            raise ConfigError(
                f"dataset config '{config.name}': the policy does not permit "
                f"{', '.join(sorted(set(refused)))}, which the config needs to check rows.",
                hint="align the dataset config's keys/not_null with the policy's fields for this dataset.",
            )
    rename: dict[str, str] = {}
    dropped: list[str] = []
    for key, name in seen.items():
        canonical = wanted.get(key)
        if canonical is None or (permitted_set is not None and canonical not in permitted_set):
            if name.strip():
                dropped.append(name.strip())
            continue
        rename[name] = canonical
    return ColumnPlan(rename=rename, dropped=tuple(dropped))


def _required_headings(config: DatasetConfig) -> list[str]:
    by_canonical = {canonical: provider for provider, canonical in config.columns.items()}
    return [_norm(by_canonical[f]) for f in config.required_fields]


def _matched(header: Iterable[str], required: Sequence[str]) -> int:
    found = {_norm(h) for h in header}
    return sum(1 for r in required if r in found)


def _delimiter_setting(sep: str) -> str:
    return 'delimiter: "\\t"' if sep == "\t" else f"delimiter: '{sep}'"


def _text_layout_diagnosis(path: Path, config: DatasetConfig, encoding: str, delimiter: str) -> Diagnosis:
    """Try the other common delimiters and encodings on the heading line; say which one matches."""

    def diagnose() -> tuple[str, str] | None:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
        required = _required_headings(config)

        def score_of(enc: str, sep: str) -> int:
            text = head.decode(enc, errors="replace").lstrip("\ufeff")
            return _matched(next(csv.reader(io.StringIO(text, newline=""), delimiter=sep), []), required)

        readings = [
            (enc, sep)
            for enc in dict.fromkeys([encoding, "utf-8", "cp1252", "utf-16", "utf-16-le", "utf-16-be"])
            for sep in dict.fromkeys([delimiter, *_DELIMITERS])
        ]
        scores = {reading: score_of(*reading) for reading in readings}
        enc, sep = max(readings, key=lambda r: scores[r])  # first best: the config's own reading wins ties
        score, current = scores[(enc, sep)], scores[(encoding, delimiter)]
        if score <= current or 2 * score < len(required):
            return (
                "None of the readings tried (comma, semicolon, tab or bar separated; UTF-8, Windows-1252 "
                "or UTF-16) finds the expected headings either: the first line may not be a heading row, "
                "or this may be a different extract.",
                f"check that this is the '{config.name}' extract; ask the provider for it in the agreed "
                "layout, with one heading row first.",
            )
        found = f"{score} of the {len(required)} required columns are found"
        changes, words = [], []
        if sep != delimiter:
            words.append(
                f"the file looks {_DELIMITER_WORDS[sep]}-separated, not {_DELIMITER_WORDS.get(delimiter, repr(delimiter))}-separated"
            )
            changes.append(f"`{_delimiter_setting(sep)}`")
        if codecs.lookup(enc).name != codecs.lookup(encoding).name:
            words.append(f"the file looks like {_ENCODING_WORDS.get(enc, enc)} text, not {encoding}")
            changes.append(f"`encoding: {enc}`")
        joined = "; ".join(words)
        sentence = f"{joined[0].upper()}{joined[1:]} (read that way, {found})."
        hint = (
            f"set {' and '.join(changes)} in the dataset config for '{config.name}' if the provider now "
            "sends the extract this way, or ask the provider to re-send it as agreed."
        )
        return sentence, hint

    return diagnose


def _sheet_diagnosis(path: Path, config: DatasetConfig, used: str | None) -> Diagnosis:
    """Look for the expected headings on the workbook's other sheets; name the sheet that has them."""

    def diagnose() -> tuple[str, str] | None:
        required = _required_headings(config)
        scores = {name: _matched(h, required) for name, h in _sheet_headings(path).items()}
        others = {name: n for name, n in scores.items() if name != used}
        if not others:
            return None
        best = max(others, key=lambda name: others[name])
        listed = ", ".join(f"'{name}'" for name in others)
        if others[best] <= scores.get(used or "", 0) or 2 * others[best] < len(required):
            return (
                f"Worksheet '{used}' was read; the workbook's other sheets ({listed}) lack them too.",
                f"ask the provider which sheet holds the '{config.name}' extract, and for it in the agreed layout.",
            )
        return (
            f"Worksheet '{used}' was read, but sheet '{best}' has {others[best]} of the {len(required)} "
            f"required columns (the workbook's other sheets: {listed}).",
            f"set `sheet: {best}` in the dataset config for '{config.name}' if that sheet holds the extract, "
            "or ask the provider to send the extract on the first sheet.",
        )

    return diagnose


# --------------------------------------------------------------------------------------------
# Into Spark


def _text_columns(table: _TextTable, plan: ColumnPlan) -> Any:
    """The mapped columns as an Arrow table of trimmed text (empty -> null), plus the row flags."""
    import pyarrow as pa
    import pyarrow.compute as pc

    index = {name: i for i, name in enumerate(table.header)}
    arrays: dict[str, Any] = {}
    for received, canonical in plan.rename.items():
        i = index[received]
        values = pc.utf8_trim_whitespace(pa.array([r[i] for r in table.rows], type=pa.string()))
        arrays[canonical] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    arrays[SOURCE_ROW] = pa.array(range(1, len(table.rows) + 1), type=pa.int64())
    arrays[MALFORMED] = pa.array(table.malformed, type=pa.bool_())
    return pa.table(arrays)


def _text_frame(
    spark: SparkSession, table: _TextTable, plan: ColumnPlan, staging_dir: Path | None
) -> DataFrame:
    """Hand the text table to Spark.

    With a staging directory the table is written there as Parquet and read back by Spark, so
    every later Spark action scans a file instead of re-shipping the rows from the driver (which
    made each action on a 200k-row extract cost seconds). The staging directory must be in the
    landing zone (the rows are still identifiable) and is removed by the caller after the run.
    """
    import pyarrow.parquet as pq

    columns = _text_columns(table, plan)
    if staging_dir is None:
        return spark.createDataFrame(columns.to_pandas(), schema=_text_schema(plan))
    try:
        staging_dir.mkdir(parents=True, exist_ok=True)
        staged = staging_dir / f"{len(list(staging_dir.iterdir())):03d}.parquet"
        pq.write_table(columns, staged)
        staged.chmod(0o600)  # identifiable rows: this run only
    except OSError as exc:
        raise environment_problem(exc, str(staging_dir), "write") from None
    return spark.read.schema(_text_schema(plan)).parquet(str(staged))


def _text_schema(plan: ColumnPlan) -> Any:
    from pyspark.sql import types as T

    fields = [T.StructField(c, T.StringType(), True) for c in plan.rename.values()]
    return T.StructType(
        [
            *fields,
            T.StructField(SOURCE_ROW, T.LongType(), True),
            T.StructField(MALFORMED, T.BooleanType(), True),
        ]
    )


def _parquet_header(path: Path) -> tuple[list[str], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            str(path),
            f"the Parquet file is damaged or cut short and cannot be read ({type(exc).__name__}).",
            hint="ask the provider to export the extract again and re-send the complete file.",
        ) from None
    return list(schema.names), meta.num_rows


def _parquet_frame(spark: SparkSession, path: Path, plan: ColumnPlan) -> DataFrame:
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(path))
    selected = [F.col(f"`{received}`").alias(canonical) for received, canonical in plan.rename.items()]
    return df.select(
        *selected,
        (F.col("_metadata.row_index") + 1).cast("long").alias(SOURCE_ROW),
        F.lit(False).alias(MALFORMED),
    )


@dataclass(frozen=True)
class ReadExtract:
    """An extract read and mapped on the driver, before Spark sees it (``table`` None for Parquet)."""

    received: ReceivedFile
    plan: ColumnPlan
    rows_in: int
    table: _TextTable | None


def read_extract(
    path: str | Path, config: DatasetConfig, permitted_fields: Iterable[str] | None = None
) -> ReadExtract:
    """Open one extract as received, refuse it if it cannot be used, and plan its columns.

    Everything that can make a file unusable is decided here, without Spark: the format, the
    encoding and delimiter (with a diagnosis when most columns are missing), the worksheet, the
    rows. Raises ``InputError`` for the file, or ``EnvironmentProblem`` when it cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            str(p),
            "the file does not exist.",
            hint="check that the provider's delivery was saved where the dataset config says (`file`).",
        )
    fmt = detect_format(p, config.format, config.encoding)
    encoding = delimiter = None
    table: _TextTable | None = None
    if fmt == "parquet":
        header, rows_in = _parquet_header(p)
        if rows_in == 0:
            raise InputError(
                str(p),
                "the Parquet file has columns but no rows.",
                hint="ask the provider whether the extract should be empty; if not, ask for it to be sent again.",
            )
        plan = plan_columns(p, header, config, permitted_fields)
    else:
        if fmt == "csv":
            table, encoding, delimiter = read_delimited(p, config.encoding, config.delimiter)
            diagnose = _text_layout_diagnosis(p, config, encoding, delimiter)
        else:
            table = read_xlsx(p, config.sheet)
            diagnose = _sheet_diagnosis(p, config, table.sheet)
        plan = plan_columns(p, table.header, config, permitted_fields, diagnose)
        rows_in = len(table.rows)
    try:
        digest, size = content_hash(p), p.stat().st_size
    except OSError as exc:
        raise environment_problem(exc, str(p), "read") from None
    received = ReceivedFile(
        path=p,
        format=fmt,
        content_hash=digest,
        size_bytes=size,
        encoding=encoding,
        delimiter=delimiter,
        sheet=table.sheet if table is not None else None,
        other_sheets=table.other_sheets if table is not None else (),
    )
    return ReadExtract(received=received, plan=plan, rows_in=rows_in, table=table)


def ingest_extract(
    spark: SparkSession,
    path: str | Path,
    config: DatasetConfig,
    permitted_fields: Iterable[str] | None = None,
    staging_dir: Path | None = None,
) -> IngestedExtract:
    """Read one extract as received and map it to canonical fields (no row checks yet).

    Raises ``InputError`` for a file that cannot be used at all (see ``read_extract``).
    ``permitted_fields`` are the policy's fields for this dataset (None only in tests of reading
    alone). ``staging_dir`` (inside the landing zone) receives CSV and Excel rows as Parquet for
    Spark to scan; the caller removes it.
    """
    read = read_extract(path, config, permitted_fields)
    if read.table is None:
        frame = _parquet_frame(spark, read.received.path, read.plan)
    else:
        frame = _text_frame(spark, read.table, read.plan, staging_dir)
    if config.programme is not None:
        from pyspark.sql import functions as F

        frame = frame.withColumn(PROGRAMME, F.lit(config.programme))
    return IngestedExtract(
        dataset=config.name,
        received=read.received,
        frame=frame,
        rows_in=read.rows_in,
        fields=tuple(read.plan.rename.values()),
        dropped_columns=read.plan.dropped,
        headings={canonical: received.strip() for received, canonical in read.plan.rename.items()},
    )
