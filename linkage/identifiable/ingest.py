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
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig_policies.errors import ConfigError, InputError
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


@dataclass(frozen=True)
class ReceivedFile:
    """The file as it arrived: what it is and its content hash (recorded in the audit entry)."""

    path: Path
    format: FileFormat
    content_hash: str
    size_bytes: int
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class IngestedExtract:
    """An extract read into canonical columns, not yet checked. ``frame`` is a Spark DataFrame."""

    dataset: str
    received: ReceivedFile
    frame: DataFrame
    rows_in: int
    fields: tuple[str, ...]
    dropped_columns: tuple[str, ...]


@dataclass(frozen=True)
class _TextTable:
    header: list[str]
    rows: list[list[str | None]]
    malformed: list[bool]


# --------------------------------------------------------------------------------------------
# What kind of file is it?

_MAGIC: dict[bytes, FileFormat] = {b"PK\x03\x04": "xlsx", b"PAR1": "parquet"}
_FORMAT_WORDS = {
    "csv": "a delimited text (CSV) file",
    "xlsx": "an Excel (.xlsx) workbook",
    "parquet": "a Parquet file",
}


def detect_format(path: Path, declared: FileFormat | None = None) -> FileFormat:
    """The file's format from its first bytes; a mismatch with the declared format is an error.

    The content decides, not the file name: providers rename files, and a workbook saved as
    ``.csv`` must not be parsed as text.
    """
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head:
        raise InputError(
            str(path),
            "the file is empty (0 bytes).",
            hint="ask the provider to send the extract again; the delivery arrived without any content.",
        )
    found: FileFormat | None = next((fmt for magic, fmt in _MAGIC.items() if head.startswith(magic)), None)
    if found is None:
        if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise InputError(
                str(path),
                "the file is not a table we can read: it is binary, but neither an Excel (.xlsx) workbook "
                "nor a Parquet file (an old .xls workbook, a PDF or a zip archive, perhaps).",
                hint="ask the provider to export the extract as CSV, Excel .xlsx or Parquet.",
            )
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
        raise InputError(
            str(path),
            f"the file is not valid {declared} text (the first bad byte is in data row {row}); it was "
            "probably saved in a different encoding.",
            hint=f"ask the provider to re-export the extract as {declared}, or correct `encoding` in the dataset config.",
            row=row or None,
        ) from None
    if name not in ("utf-8", "ascii") and not raw.isascii() and _is_utf8(raw):
        # a single-byte code page decodes almost anything, so UTF-8 read as cp1252 would pass
        # silently as mojibake ("Ã©" for "é") and corrupt names before linkage
        raise InputError(
            str(path),
            f"the file is declared as {declared} but is UTF-8 text; reading it as {declared} would garble "
            "accented names.",
            hint="ask the provider which encoding they now export in, and correct `encoding` in the dataset config.",
        )
    return text, name


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _delimiter(path: Path, text: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    sample = text[:_SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        raise InputError(
            str(path),
            "cannot tell how the columns are separated (tried comma, semicolon, tab and bar).",
            hint="ask the provider for a standard CSV export, or declare `delimiter` in the dataset config.",
        ) from None


def read_delimited(
    path: Path, encoding: str | None = None, delimiter: str | None = None
) -> tuple[_TextTable, str, str]:
    """Parse a delimited text file strictly; returns the table, the encoding and the delimiter used."""
    raw = path.read_bytes()
    text, used_encoding = _decode(path, raw, encoding)
    sep = _delimiter(path, text, delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        header = next(reader, None)
        records = [r for r in reader if r]  # blank lines carry no record
    except csv.Error as exc:
        raise InputError(
            str(path),
            f"the file is cut short or damaged: a quoted value is never closed ({exc}).",
            hint="ask the provider to send the complete extract again; the file looks truncated in transfer.",
            row=reader.line_num - 1 or None,
        ) from None
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
    malformed = [len(r) != width for r in records]
    rows: list[list[str | None]] = [
        (list(r) + [None] * (width - len(r)))[:width] if bad else list(r)
        for r, bad in zip(records, malformed, strict=True)
    ]
    return _TextTable(header=header, rows=rows, malformed=malformed), used_encoding, sep


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


def read_xlsx(path: Path, sheet: str | None = None) -> _TextTable:
    """Read one worksheet of an .xlsx workbook (first row = headings) as text cells."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
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
            "the worksheet is empty: no column headings and no rows.",
            hint="ask the provider to send the extract again; this workbook has no data in it.",
        )
    header = [c or "" for c in cells[0]]
    while header and header[-1] == "":
        header.pop()
    width = len(header)
    records = cells[1:]
    if not records:
        raise InputError(
            str(path),
            "the worksheet has column headings but no data rows.",
            hint="ask the provider whether the extract should be empty; if not, ask for it to be sent again.",
        )
    malformed = [any(c not in (None, "") for c in r[width:]) for r in records]
    rows = [(r + [None] * (width - len(r)))[:width] for r in records]
    return _TextTable(header=header, rows=rows, malformed=malformed)


# --------------------------------------------------------------------------------------------
# Column mapping


def _norm(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).casefold()


@dataclass(frozen=True)
class ColumnPlan:
    """Which received columns become which canonical fields, and which are dropped (names only)."""

    rename: dict[str, str]  # received column name -> canonical field
    dropped: tuple[str, ...]


def plan_columns(
    path: Path, header: Sequence[str], config: DatasetConfig, permitted: Iterable[str] | None
) -> ColumnPlan:
    """Match received headings to the config (ignoring case and spacing) and apply the policy.

    A required field the policy does not permit is a contradiction between the dataset config and
    the signed policy; it is reported as a config error rather than silently validated away.
    """
    permitted_set = set(permitted) if permitted is not None else None
    seen: dict[str, str] = {}
    for name in header:
        key = _norm(name)
        if key in seen:
            raise InputError(
                str(path),
                f"the column heading '{name.strip()}' appears twice, so we cannot tell which one to use.",
                hint="ask the provider to re-export the extract with each column once.",
            )
        seen[key] = name
    wanted = {_norm(provider): canonical for provider, canonical in config.columns.items()}
    by_canonical = {canonical: provider for provider, canonical in config.columns.items()}
    missing = [by_canonical[f] for f in config.required_fields if _norm(by_canonical[f]) not in seen]
    if missing:
        raise InputError(
            str(path),
            f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(repr(m) for m in missing)}.",
            hint=(
                "ask the provider to include these columns, or, if they were only renamed, update the column "
                f"mapping in the dataset config for '{config.name}'."
            ),
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
    staging_dir.mkdir(parents=True, exist_ok=True)
    staged = staging_dir / f"{len(list(staging_dir.iterdir())):03d}.parquet"
    pq.write_table(columns, staged)
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


def ingest_extract(
    spark: SparkSession,
    path: str | Path,
    config: DatasetConfig,
    permitted_fields: Iterable[str] | None = None,
    staging_dir: Path | None = None,
) -> IngestedExtract:
    """Read one extract as received and map it to canonical fields (no row checks yet).

    Raises ``InputError`` for a file that cannot be used at all. ``permitted_fields`` are the
    policy's fields for this dataset (None only in tests of reading alone). ``staging_dir`` (inside
    the landing zone) receives CSV and Excel rows as Parquet for Spark to scan; the caller removes it.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            str(p),
            "the file does not exist.",
            hint="check that the provider's delivery was saved where the dataset config says (`file`).",
        )
    fmt = detect_format(p, config.format)
    encoding = delimiter = None
    if fmt == "parquet":
        header, rows_in = _parquet_header(p)
        if rows_in == 0:
            raise InputError(
                str(p),
                "the Parquet file has columns but no rows.",
                hint="ask the provider whether the extract should be empty; if not, ask for it to be sent again.",
            )
        plan = plan_columns(p, header, config, permitted_fields)
        frame = _parquet_frame(spark, p, plan)
    else:
        if fmt == "csv":
            table, encoding, delimiter = read_delimited(p, config.encoding, config.delimiter)
        else:
            table = read_xlsx(p, config.sheet)
        plan = plan_columns(p, table.header, config, permitted_fields)
        frame = _text_frame(spark, table, plan, staging_dir)
        rows_in = len(table.rows)
    if config.programme is not None:
        from pyspark.sql import functions as F

        frame = frame.withColumn(PROGRAMME, F.lit(config.programme))
    received = ReceivedFile(
        path=p,
        format=fmt,
        content_hash=content_hash(p),
        size_bytes=p.stat().st_size,
        encoding=encoding,
        delimiter=delimiter,
    )
    return IngestedExtract(
        dataset=config.name,
        received=received,
        frame=frame,
        rows_in=rows_in,
        fields=tuple(plan.rename.values()),
        dropped_columns=plan.dropped,
    )
