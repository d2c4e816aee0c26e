"""A fuzzed ingest: malformed extracts built from a valid one are read or refused by name, never lost.

Each example starts from a valid Ways to Work extract (a few rows, in the provider's layout) and
applies a random set of the faults real deliveries have: truncation at a random byte, another
delimiter or encoding, byte-order marks, mixed line endings, duplicated, missing, shuffled or
extra columns, blank lines, a huge field, NUL bytes, mixed date formats, invalid NHS numbers,
Excel serial dates and formula injection (``=cmd|...``) in names; some are saved as .xlsx. The
properties:

* the file is accepted with every row accounted for (rows read = data rows written, numbered
  1..n; after the row checks, accepted + quarantined = rows in), or refused with an
  ``EhlError`` of exit code 4 whose message names the file (and the row and column, where the
  fault has one) — never another exception, so never a traceback or exit 1;
* a file whose only faults are in row values, column order, extra columns or the container
  (BOM, line endings, a detected encoding or delimiter) is never refused;
* on refusal nothing is written under ``landing/validated/``, ``quarantine/`` or ``reports/``; on
  success the tables written hold exactly the rows in, and the quarantine report holds no value.

Two tests share one generator. ``test_fuzzed_extract_is_read_or_refused_by_name`` runs the whole
reading path without Spark (format, encoding, delimiter, worksheet, columns, rows, the Arrow table
Spark is given) on many examples; ``test_fuzzed_extract_through_the_stage`` runs the real stage
(``check_extracts``: Spark row checks, Great Expectations, the writes) on a few, because each
costs seconds of Spark.

In ``make test`` the first runs 300 examples and the second 2. For many thousands on demand:

    EHL_FUZZ_EXAMPLES=5000 EHL_FUZZ_STAGE_EXAMPLES=40 \\
        pytest -q -p no:cacheprovider tests/unit/test_ingest_fuzz.py --hypothesis-show-statistics

``--hypothesis-show-statistics`` prints the outcomes (accepted, or refused and why) as events.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from ig_policies.errors import EXIT_BAD_INPUT, EhlError
from ig_policies.workspace import Workspace
from linkage.dataset_config import load_dataset_configs
from linkage.identifiable.ingest import SOURCE_ROW, _text_columns, read_extract
from linkage.identifiable.validation import check_extracts, quarantine_path, quarantine_report_path
from linkage.identifiable.validation.stage import validated_path
from tests.unit.test_validation_data import AS_OF, employment_people, files_under, ways_to_work_rows

WTW = load_dataset_configs()["ways_to_work"]
DETECTING = WTW.model_copy(update={"encoding": None, "delimiter": None})  # a config that detects both
XLSX = WTW.model_copy(update={"format": "xlsx", "encoding": None, "delimiter": None})

settings.register_profile(
    "ingest-fuzz",
    max_examples=int(os.environ.get("EHL_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile(
    "ingest-fuzz-stage",
    max_examples=int(os.environ.get("EHL_FUZZ_STAGE_EXAMPLES", "2")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
FUZZ = settings.get_profile("ingest-fuzz")
FUZZ_STAGE = settings.get_profile("ingest-fuzz-stage")

INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "=1+1",
]
OTHER_DATES = ["2021-03-04", "03/04/21", "4-Mar-21", "2021.03.04", "44197", "31/02/2021", "00/00/0000", ""]
BAD_NHS = ["1234567890", "12345", "943 476 5918", "ABCDEFGHIJ", "9434765919000"]


@dataclass
class Extract:
    """A fuzzed delivery: its bytes, how it must be read, and what the generator knows of it."""

    config: object
    suffix: str
    data: bytes
    rows_written: int
    faults: list[str] = field(default_factory=list)
    file_faults: bool = False  # a fault the file may legitimately be refused for
    row_count_known: bool = True  # False once bytes were cut or damaged

    def __repr__(self) -> str:  # what a failing example prints: the faults, not pages of bytes
        config = "detecting" if self.config is DETECTING else getattr(self.config, "format", "?")
        return (
            f"Extract(config={config}, {self.suffix}, {len(self.data)} bytes starting {self.data[:120]!r}, "
            f"rows_written={self.rows_written}, faults={self.faults}, file_faults={self.file_faults})"
        )


# --------------------------------------------------------------------------------------------
# Row-level faults: always acceptable (rows are quarantined or kept, never the file refused)


def _row_faults(draw: st.DrawFn, rows: list[dict], faults: list[str]) -> None:
    rng = random.Random(draw(st.integers(0, 2**16)))
    for kind in draw(
        st.lists(
            st.sampled_from(["dates", "nhs", "serial", "injection", "empty", "duplicate", "codes"]),
            max_size=3,
        )
    ):
        row = rng.choice(rows)
        if kind == "dates":
            row[rng.choice(["DOB", "Start Date", "Job Start Date"])] = rng.choice(OTHER_DATES)
        elif kind == "nhs":
            row["NHS Number"] = rng.choice(BAD_NHS)
        elif kind == "serial":
            row[rng.choice(["DOB", "Start Date"])] = str(rng.randint(20000, 46000))
        elif kind == "injection":
            row[rng.choice(["First Name", "Last Name", "Client Ref", "Postcode"])] = rng.choice(INJECTIONS)
        elif kind == "empty":
            row[rng.choice(["Client Ref", "Gender", "Start Date", "Job Start"])] = ""
        elif kind == "duplicate":
            row["Client Ref"] = rows[0]["Client Ref"]
        else:
            row[rng.choice(["Gender", "Ethnic Group", "Asthma"])] = rng.choice(["Unknown", "X", "y", "1"])
        faults.append(kind)


# --------------------------------------------------------------------------------------------
# The generator


@st.composite
def extracts(draw: st.DrawFn, gentle: bool = False) -> Extract:
    """A fuzzed extract; ``gentle`` ones have only faults a file is never refused for (row values,
    column order, extra columns, BOM, line endings, blank lines), so they reach the row checks."""
    n = draw(st.integers(1, 6))
    rows = ways_to_work_rows(employment_people(n, seed=draw(st.integers(1, 50))))
    faults: list[str] = []
    _row_faults(draw, rows, faults)
    header = list(rows[0])
    file_faults = False

    # headings: shuffled and extra columns are fine; duplicated or missing ones are not
    layouts = ["shuffle", "extra"] if gentle else ["shuffle", "extra", "duplicate_heading", "missing_heading"]
    layout = draw(st.lists(st.sampled_from(layouts), max_size=2))
    cells = [[r[h] for h in header] for r in rows]
    for kind in layout:
        faults.append(kind)
        if kind == "shuffle":
            order = draw(st.permutations(range(len(header))))
            header, cells = [header[i] for i in order], [[c[i] for i in order] for c in cells]
        elif kind == "extra":
            header = [*header, f"Extra Notes {len(header)}"]
            cells = [[*c, draw(st.sampled_from(["", "x", "=HYPERLINK(1)", "a, b"]))] for c in cells]
        elif kind == "duplicate_heading":
            i, j = draw(st.integers(0, len(header) - 1)), draw(st.integers(0, len(header) - 1))
            if i != j:
                header[j] = header[i]
                file_faults = True
        else:
            drop = draw(st.integers(0, len(header) - 1))
            if header[drop] not in ("Keyworker Notes", "Telephone"):
                file_faults = True
            header = header[:drop] + header[drop + 1 :]
            cells = [c[:drop] + c[drop + 1 :] for c in cells]

    if draw(st.integers(0, 9)) == 0:  # one example in ten is a workbook
        wb = Workbook()
        ws = wb.active
        ws.title = draw(st.sampled_from(["Sheet1", "Clients"]))
        if draw(st.booleans()):
            wb.create_sheet("Notes").append(["prepared by", "the provider"])
            faults.append("second_sheet")
        ws.append(header)
        for c in cells:
            ws.append(c)
        buf = io.BytesIO()
        wb.save(buf)
        data = buf.getvalue()
        extract = Extract(XLSX, ".xlsx", data, n, faults, file_faults)
        if not gentle and draw(st.integers(0, 4)) == 0:
            cut = len(data) * draw(st.integers(0, 999)) // 1000  # workbook bytes carry the time
            extract.data = data[:cut]
            extract.faults.append("truncated_workbook")
            extract.file_faults, extract.row_count_known = True, False
        return extract

    # container: delimiter, encoding, BOM, line endings, quoting (as declared, or detected)
    detect = draw(st.booleans())
    delimiter = draw(st.sampled_from([",", ",", ";", "\t", "|"])) if detect else ","
    wrong_delimiter = not gentle and draw(st.integers(0, 7)) == 0
    if wrong_delimiter:
        delimiter = draw(st.sampled_from([";", "\t", "|"]))
        faults.append("wrong_delimiter")
    encoding = (
        draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"])) if detect else "utf-8"
    )
    if not detect and not gentle and draw(st.integers(0, 7)) == 0:
        encoding = draw(st.sampled_from(["cp1252", "utf-16", "utf-16-le"]))
        faults.append(f"wrong_encoding_{encoding}")
        file_faults = True  # é in a cp1252 file, or UTF-16, under a config that says UTF-8
    if wrong_delimiter and not detect:
        file_faults = True
    endings = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(cells)
    text = buf.getvalue()
    if endings == "\n":
        text = text.replace("\r\n", "\n")
    elif endings == "mixed":
        lines = text.split("\r\n")
        text = "".join(line + ("\n" if i % 2 else "\r\n") for i, line in enumerate(lines[:-1]))
        faults.append("mixed_line_endings")
    if draw(st.booleans()):  # blank lines between records carry nothing and are skipped
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(1, len(lines)))
        text = "".join([*lines[:at], "\n", *lines[at:]])
        faults.append("blank_line")
    data = codecs.encode(text, encoding)
    if encoding == "utf-8-sig":
        faults.append("bom")
    extract = Extract(DETECTING if detect else WTW, ".csv", data, n, faults, file_faults)

    # bytes: huge field, NUL, truncation, a random byte (each a file-level fault, or harmless)
    byte_faults = [] if gentle else ["huge", "nul", "truncate", "flip"]
    for kind in draw(st.lists(st.sampled_from(byte_faults), max_size=2)) if byte_faults else []:
        extract.faults.append(kind)
        if kind == "huge" and encoding in ("utf-8", "utf-8-sig") and not wrong_delimiter:
            notes = draw(st.sampled_from([200_000, 1_100_000]))
            extract.data = extract.data.replace(b"Met ", b"M" + b"x" * notes + b" ", 1)
            extract.file_faults = True
        elif kind == "nul":
            at = draw(st.integers(0, len(extract.data)))
            extract.data = extract.data[:at] + b"\x00" + extract.data[at:]
            extract.file_faults, extract.row_count_known = True, False
        elif kind == "truncate":
            extract.data = extract.data[: draw(st.integers(0, len(extract.data)))]
            extract.file_faults, extract.row_count_known = True, False
        elif kind == "flip":
            at = draw(st.integers(0, max(0, len(extract.data) - 1)))
            if extract.data:
                flipped = bytes([draw(st.integers(0, 255))])
                extract.data = extract.data[:at] + flipped + extract.data[at + 1 :]
                extract.file_faults, extract.row_count_known = True, False
    return extract


# --------------------------------------------------------------------------------------------
# Oracles


_REASONS: list[tuple[str, str]] = [
    ("not a text file", "not a text file"),
    ("is empty", "empty file"),
    ("-separated", "required columns missing: delimiter diagnosed"),
    ("text, not", "required columns missing: encoding diagnosed"),
    ("but sheet", "required columns missing: worksheet diagnosed"),
    ("required column", "required columns missing"),
    ("appears twice", "duplicated heading"),
    ("characters long", "oversized field"),
    ("never closed", "quote never closed / cut short"),
    ("cut short", "quote never closed / cut short"),
    ("zero (NUL) byte", "NUL byte"),
    ("not valid", "wrong encoding"),
    ("UTF-16", "wrong encoding"),
    ("declared as", "wrong encoding"),
    ("UTF-8 marker", "wrong encoding"),
    ("no data rows", "no data rows"),
    ("no column headings", "no headings"),
    ("cannot tell how the columns", "delimiter not recognisable"),
    ("workbook", "damaged workbook"),
    ("worksheet", "damaged workbook"),
    ("followed by other characters", "stray quote"),
]


def _reason(err: EhlError) -> str:
    text = str(err)
    for needle, label in _REASONS:
        if needle in text:
            return label
    return "other: " + re.sub(r"\d+", "N", getattr(err, "problem", text))[:60]


def _check_refusal(err: BaseException, extract: Extract, path: Path) -> None:
    assert isinstance(err, EhlError), f"{type(err).__name__} escaped: {err!r} (faults {extract.faults})"
    assert err.exit_code == EXIT_BAD_INPUT, err
    assert str(path) in str(err), err
    assert "Traceback" not in str(err) and err.hint, err
    assert extract.file_faults, f"a file with only row-level faults {extract.faults} was refused: {err}"
    row = getattr(err, "row", None)
    if row is not None:
        assert row >= 1 and f"row {row}" in str(err), err
    if "characters long" in str(err):
        assert row is not None and getattr(err, "column", None), err  # the fault has a place
    if "NUL" in str(err):
        assert getattr(err, "column", None), err
    event(f"refused: {_reason(err)}")


def _read(extract: Extract, folder: Path) -> tuple[Path, object]:
    path = folder / f"wtw{extract.suffix}"
    path.write_bytes(extract.data)
    try:
        return path, read_extract(path, extract.config, WTW.columns.values())
    except Exception as exc:  # noqa: BLE001 - the property is about what escapes
        return path, exc


# --------------------------------------------------------------------------------------------
# The properties


@FUZZ
@given(extracts())
def test_fuzzed_extract_is_read_or_refused_by_name(tmp_path: Path, extract: Extract) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path, outcome = _read(extract, folder)
    assert sorted(folder.iterdir()) == [path]  # reading writes nothing anywhere
    if isinstance(outcome, BaseException):
        _check_refusal(outcome, extract, path)
        return
    read = outcome
    if extract.row_count_known:
        assert read.rows_in == extract.rows_written, (read.rows_in, extract.faults)
    assert read.rows_in >= 1
    if read.table is not None:
        arrow = _text_columns(read.table, read.plan)  # exactly what Spark is handed
        assert arrow.num_rows == read.rows_in
        assert arrow.column(SOURCE_ROW).to_pylist() == list(range(1, read.rows_in + 1))
        assert set(read.plan.rename.values()) >= set(WTW.required_fields)
    event(
        "accepted" + (" (a fault the file may be refused for, harmless here)" if extract.file_faults else "")
    )


@pytest.mark.spark
@FUZZ_STAGE
@given(st.sampled_from([True, True, False]).flatmap(lambda gentle: extracts(gentle=gentle)))
def test_fuzzed_extract_through_the_stage(spark, tmp_path: Path, extract: Extract) -> None:
    ws = Workspace.open(Path(tempfile.mkdtemp(dir=tmp_path)) / "ws")
    path = ws.landing / "employment" / f"ways_to_work{extract.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(extract.data)
    config = extract.config.model_copy(update={"file": f"employment/{path.name}"})
    tolerance = 1.0 if len(extract.faults) % 2 else 0.05  # some pass, some are over tolerance
    try:
        result = check_extracts(
            ws, spark, [config], {WTW.name: WTW.columns.values()}, {WTW.name: tolerance}, as_of=AS_OF
        )
    except Exception as exc:  # noqa: BLE001
        _check_refusal(exc, extract, path)
        for zone in (ws.landing / "validated", ws.quarantine, ws.reports):
            assert files_under(zone) == [], zone
        return
    d = result.get(WTW.name)
    assert d.rows_accepted + d.rows_quarantined == d.rows_in
    if extract.row_count_known:
        assert d.rows_in == extract.rows_written
    quarantined = pd.read_parquet(quarantine_path(ws, WTW.name))
    assert len(quarantined) == d.rows_quarantined
    report = pd.read_csv(quarantine_report_path(ws, WTW.name), dtype=str, keep_default_na=False)
    assert list(report.columns) == ["row", "column", "reason_code", "reason"]
    assert len(report) == d.rows_quarantined
    text = quarantine_report_path(ws, WTW.name).read_text()
    assert not any(value in text for value in [*INJECTIONS, *OTHER_DATES[:7], *BAD_NHS])  # no values
    if d.passed:
        accepted = pd.read_parquet(validated_path(ws, WTW.name))
        assert len(accepted) == d.rows_accepted
        assert set(accepted.source_row) | set(quarantined.source_row) == set(range(1, d.rows_in + 1))
        event("accepted by the stage")
    else:
        assert files_under(ws.landing / "validated") == []
        event("over tolerance: quarantine written, nothing validated")
