"""Ingest: broken deliveries stop with a clear message before anything is written; good ones map cleanly."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import pytest
from openpyxl import Workbook

from ig_policies.audit import AuditLog
from ig_policies.errors import ConfigError, EnvironmentProblem, InputError, environment_problem
from ig_policies.formulas import neutralise_formula, neutralise_formulas
from ig_policies.workspace import Workspace
from linkage.dataset_config import load_dataset_config, load_dataset_configs
from linkage.identifiable.ingest import detect_format, ingest_extract, read_delimited, read_extract
from linkage.identifiable.validation import validate_extracts
from tests.unit.test_validation_data import (
    demo_engine,
    employment_people,
    files_under,
    health_into_work_rows,
    ways_to_work_rows,
    write_delimited,
    write_health_into_work,
    write_ways_to_work,
)

CONFIGS = load_dataset_configs()
WTW = CONFIGS["ways_to_work"]
HIW = CONFIGS["health_into_work"]


def _wtw_csv(landing: Path, n: int = 5) -> Path:
    return write_ways_to_work(landing, ways_to_work_rows(employment_people(n, seed=5)))


# --------------------------------------------------------------------------------------------
# One broken delivery per kind: each stops the stage with the file named, writing nothing downstream


def _wrong_format(path: Path) -> None:
    wb = Workbook()
    wb.active.append(["Client Ref", "First Name"])
    wb.save(path)  # an Excel workbook under the .csv name the provider was asked for


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # cut mid-row, as an interrupted transfer does


def _wrong_encoding(path: Path) -> None:
    text = path.read_text(encoding="utf-8").replace("follow up", "follow up at the café")
    path.write_bytes(text.encode("cp1252"))  # é as one cp1252 byte: not UTF-8


def _missing_columns(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Start Date", "Enrolled").replace("Client Ref", "Ref No"), encoding="utf-8")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


BROKEN = {
    "wrong format": (_wrong_format, "the file is an Excel (.xlsx) workbook, but its dataset config says"),
    "truncated": (_truncated, "cut short"),
    "wrong encoding": (_wrong_encoding, "not valid utf-8 text"),
    "missing required columns": (_missing_columns, "required columns missing: 'Client Ref', 'Start Date'"),
    "empty": (_empty, "the file is empty"),
}


@pytest.mark.spark
@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_file_stops_the_stage_naming_the_file_and_writing_nothing(
    kind: str, spark, workspace: Workspace, master_secret_env: str
) -> None:
    path = _wtw_csv(workspace.landing, n=8)
    good = write_health_into_work(workspace.landing, health_into_work_rows(employment_people(8, seed=6)))
    breaker, problem = BROKEN[kind]
    breaker(path)
    engine = demo_engine(workspace)

    with pytest.raises(InputError) as caught:
        validate_extracts(workspace, engine, "demo-processor", spark, datasets=["employment_support"])

    err = caught.value
    assert err.path == str(path) and str(path) in str(err)
    assert problem in str(err), str(err)
    assert err.hint and "provider" in err.hint  # says what to ask for
    assert "Traceback" not in str(err)
    for zone in (
        workspace.landing / "validated",
        workspace.quarantine,
        workspace.reports,
        workspace.pseudonymised,
    ):
        assert files_under(zone) == [], zone  # nothing downstream, not even for the good extract
    assert good.exists()
    entries = [
        e
        for e in AuditLog.for_workspace(workspace).entries()
        if e.get("action") == "validate" and e["decision"] != "started"
    ]
    assert [e["decision"] for e in entries] == ["failed"] and "InputError" in entries[0]["reason"]


# --------------------------------------------------------------------------------------------
# Reading details (no Spark)


def test_header_only_file_is_reported_as_having_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "wtw.csv"
    path.write_text("Client Ref,First Name\n", encoding="utf-8")
    with pytest.raises(InputError, match="column headings but no data rows"):
        read_delimited(path, "utf-8", ",")


def test_unclosed_quote_is_reported_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "wtw.csv"
    path.write_text('Client Ref,First Name\nC1,Ann\nC2,"Bo', encoding="utf-8")
    with pytest.raises(InputError, match="cut short"):
        read_delimited(path, "utf-8", ",")


def test_utf8_file_declared_as_cp1252_is_refused_rather_than_garbled(tmp_path: Path) -> None:
    path = tmp_path / "hiw.csv"
    path.write_text("ParticipantID;Forename\nH1;Chloé\n", encoding="utf-8")
    with pytest.raises(InputError, match="declared as cp1252 but is UTF-8"):
        read_delimited(path, "cp1252", ";")


def test_encoding_and_delimiter_are_detected_when_not_declared(tmp_path: Path) -> None:
    rows = health_into_work_rows(employment_people(30, seed=8))
    rows[0]["Forename"], rows[1]["Surname"] = "Chloé", "Brontë"
    path = write_delimited(tmp_path / "hiw.csv", rows, ";", "cp1252")
    table, encoding, delimiter = read_delimited(path)
    assert delimiter == ";" and encoding == "cp1252"
    assert table.header[:3] == ["ParticipantID", "Forename", "Surname"]
    assert table.rows[0][1] == "Chloé" and table.rows[1][2] == "Brontë"


def test_a_row_with_the_wrong_number_of_columns_is_marked_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "wtw.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n", encoding="utf-8")
    table, _, _ = read_delimited(path, "utf-8", ",")
    assert table.malformed == [False, True, True, False]
    assert table.rows[1] == ["4", "5", None] and table.rows[2] == ["6", "7", "8"]


def test_binary_non_table_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wtw.csv"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)  # an old .xls
    with pytest.raises(InputError, match="binary"):
        detect_format(path, "csv")


def test_dataset_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "ways_to_work.yaml"
    text = (Path(__file__).resolve().parents[2] / "linkage" / "datasets" / "ways_to_work.yaml").read_text()
    bad.write_text(text.replace("keys: [client_ref]", "keys: [client_id]"))
    with pytest.raises(ConfigError) as caught:
        load_dataset_config(bad)
    assert str(bad) in str(caught.value) and "keys" in str(caught.value) and "client_id" in str(caught.value)


# --------------------------------------------------------------------------------------------
# Into Spark: xlsx, Parquet, mapping and dropping


@pytest.mark.spark
def test_xlsx_extract_is_ingested_with_real_dates_and_numbers_as_text(spark, tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(6, seed=9))
    wb = Workbook()
    ws = wb.active
    ws.append(list(rows[0]))
    for row in rows:
        cells = dict(row)
        cells["DOB"] = dt.datetime.strptime(row["DOB"], "%d/%m/%Y")  # Excel hands over real dates
        cells["NHS Number"] = 9434765919 if row is rows[0] else row["NHS Number"] or None
        ws.append(list(cells.values()))
    ws.append([None] * len(rows[0]))  # formatted but empty trailing row
    path = tmp_path / "ways_to_work.xlsx"
    wb.save(path)
    config = WTW.model_copy(update={"format": "xlsx", "file": "employment/ways_to_work.xlsx"})

    extract = ingest_extract(spark, path, config, permitted_fields=WTW.columns.values())

    assert extract.received.format == "xlsx" and extract.rows_in == 6
    got = {r.source_row: r for r in extract.frame.collect()}
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[1].nhs_number == "9434765919"
    expected_dob = dt.datetime.strptime(rows[0]["DOB"], "%d/%m/%Y").date().isoformat()
    assert got[1].date_of_birth == expected_dob and got[1].programme == "ways_to_work"
    assert set(extract.dropped_columns) == {"Keyworker Notes", "Telephone"}


@pytest.mark.spark
def test_unpermitted_fields_are_dropped_by_name_and_headings_match_loosely(spark, tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(4, seed=10))
    rows = [{(" client ref " if k == "Client Ref" else k): v for k, v in r.items()} for r in rows]
    path = write_delimited(tmp_path / "wtw.csv", rows)
    permitted = [f for f in WTW.columns.values() if f not in ("postcode", "nhs_number")]

    extract = ingest_extract(spark, path, WTW, permitted_fields=permitted)

    assert set(extract.dropped_columns) == {"Keyworker Notes", "Telephone", "Postcode", "NHS Number"}
    assert "postcode" not in extract.frame.columns and "nhs_number" not in extract.frame.columns
    assert extract.frame.select("client_ref").count() == 4
    assert extract.received.content_hash and extract.received.delimiter == ","


@pytest.mark.spark
def test_parquet_rows_are_numbered_in_file_order(spark, tmp_path: Path) -> None:
    from tests.unit.test_validation_data import write_health

    paths = write_health(tmp_path, n=12)
    extract = ingest_extract(spark, paths["health_demographics"], CONFIGS["health_demographics"])
    got = extract.frame.orderBy("source_row").select("source_row", "patient_id").collect()
    assert [r.source_row for r in got] == list(range(1, 13))
    assert [r.patient_id for r in got] == [f"PAT{i:08d}" for i in range(1, 13)]
    assert dict(extract.frame.dtypes)["date_of_birth"] == "date"


def test_truncated_parquet_is_refused(tmp_path: Path) -> None:
    from tests.unit.test_validation_data import write_health

    paths = write_health(tmp_path, n=12)
    path = paths["health_conditions"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="Parquet file is damaged or cut short"):
        ingest_extract(None, path, CONFIGS["health_conditions"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Diagnosis before rejection (no Spark)


def _refusal(path: Path, config=WTW) -> InputError:
    with pytest.raises(InputError) as caught:
        read_extract(path, config, config.columns.values())
    assert str(path) in str(caught.value)
    return caught.value


def test_cp1252_file_under_a_utf8_config_is_diagnosed_when_headings_do_not_match(tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(4, seed=3))
    path = write_delimited(tmp_path / "wtw.csv", rows, "\t", "utf-16")
    err = _refusal(path, WTW.model_copy(update={"encoding": "cp1252"}))
    assert "UTF-16 text (two bytes per character), but its dataset config says cp1252" in str(err)
    assert "set `encoding: utf-16`" in err.hint


def test_invalid_utf8_says_which_encoding_would_decode_it(tmp_path: Path) -> None:
    path = _wtw_csv(tmp_path)
    _wrong_encoding(path)
    err = _refusal(path)
    assert "not valid utf-8 text" in str(err) and "decodes cleanly as Windows-1252 (cp1252)" in str(err)
    assert "set `encoding: cp1252`" in err.hint


def test_utf16_without_a_marker_is_text_not_binary_when_declared_or_detected(tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(4, seed=3))
    path = write_delimited(tmp_path / "wtw.csv", rows, ",", "utf-16-le")
    assert read_extract(path, WTW.model_copy(update={"encoding": "utf-16-le"})).rows_in == 4
    assert read_extract(path, WTW.model_copy(update={"encoding": None, "delimiter": None})).rows_in == 4
    assert "UTF-16 (little-endian, no byte-order mark)" in str(_refusal(path))


def test_headings_matching_no_reading_say_so_without_showing_the_first_line(tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(4, seed=3))
    path = tmp_path / "wtw.csv"
    path.write_text("\n".join(",".join(r.values()) for r in rows) + "\n", encoding="utf-8")  # no heading row
    err = _refusal(path)
    assert "all 23 required columns are missing" in str(err) and "None of the readings tried" in str(err)
    assert rows[0]["Client Ref"] not in str(err)  # the first line may be a person: never echoed


def test_a_quote_never_closed_mid_file_is_not_called_truncation(tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(8, seed=3))
    rows[1]["Keyworker Notes"] = 'said "call back'
    path = write_delimited(tmp_path / "wtw.csv", rows)
    path.write_text(path.read_text().replace('"said ""call back"', '"said ""call back'), encoding="utf-8")
    err = _refusal(path)
    assert (
        err.row == 2
        and "never closed, so the rest of the file" in str(err)
        and "stray double quote" in err.hint
    )


def test_a_nul_byte_is_located_by_row_and_column(tmp_path: Path) -> None:
    path = _wtw_csv(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"Met", b"M\x00t")
    path.write_bytes(b"\n".join(lines))
    err = _refusal(path)
    assert (err.row, err.column) == (3, "Keyworker Notes") and "zero (NUL) byte" in str(err)


@pytest.mark.parametrize(
    ("head", "named"),
    [(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"), (b"\x1f\x8b\x08\x00" + b"\x01" * 50, "gzip")],
)
def test_other_binary_formats_are_named(tmp_path: Path, head: bytes, named: str) -> None:
    path = tmp_path / "wtw.csv"
    path.write_bytes(head + bytes(range(1, 200)) * 20)
    with pytest.raises(InputError, match="not a text file") as caught:
        detect_format(path, "csv")
    assert named in str(caught.value)


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def test_workbook_read_from_the_wrong_sheet_names_the_sheet_that_matches(tmp_path: Path) -> None:
    rows = ways_to_work_rows(employment_people(3, seed=3))
    extract = [list(rows[0]), *[list(r.values()) for r in rows]]
    path = _workbook(tmp_path / "wtw.xlsx", {"Notes": [["Prepared by"], ["the provider"]], "Data": extract})
    config = WTW.model_copy(update={"format": "xlsx", "encoding": None, "delimiter": None})
    err = _refusal(path, config)
    assert "Worksheet 'Notes' was read, but sheet 'Data' has 23 of the 23 required columns" in str(err)
    assert "set `sheet: Data`" in err.hint
    read = read_extract(path, config.model_copy(update={"sheet": "Data"}))
    assert read.rows_in == 3 and read.received.sheet == "Data" and read.received.other_sheets == ("Notes",)
    assert "its other sheets were not read: 'Notes'" in read.received.sheet_note
    with pytest.raises(InputError, match="has no worksheet 'Clients' \\(it has: Notes, Data\\)"):
        read_extract(path, config.model_copy(update={"sheet": "Clients"}))


def test_unreadable_file_is_an_environment_problem_not_a_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _wtw_csv(tmp_path)
    real_open = open

    def refusing_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)  # root reads everything: refuse as a mount would
    with pytest.raises(EnvironmentProblem) as caught:
        read_extract(path, WTW)
    assert caught.value.exit_code == 4 and str(path) in str(caught.value)
    assert "permission denied" in str(caught.value) and "data processor's account" in caught.value.hint


# --------------------------------------------------------------------------------------------
# Operating-system errors in plain words, and formulas that never run


@pytest.mark.parametrize(
    ("code", "words", "fix"),
    [
        (errno.EACCES, "permission denied", "writable by the data processor's account"),
        (errno.EPERM, "permission denied", "writable by the data processor's account"),
        (errno.ENOSPC, "the disk is full", "free disk space"),
        (errno.EDQUOT, "disk quota", "free disk space"),
        (errno.EROFS, "read-only", "writable volume"),
        (errno.EIO, "Input/output error", "check the disk"),
    ],
)
def test_os_errors_become_environment_problems_naming_the_path(code: int, words: str, fix: str) -> None:
    problem = environment_problem(OSError(code, os.strerror(code), "/ws/quarantine"), doing="write")
    assert isinstance(problem, EnvironmentProblem) and problem.exit_code == 4
    assert str(problem).startswith("/ws/quarantine: ") and words in str(problem) and fix in problem.hint


def test_formula_text_is_neutralised_and_numbers_stay_numbers() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "name": [
                "=cmd|' /C calc'!A0",
                "+SUM(1)",
                "-2+3",
                "@A1",
                "\t=1",
                "\r=1",
                "Ann",
                "-3.5",
                "+44",
                None,
            ],
            "count": [1, -2, 3, 4, 5, 6, 7, 8, 9, 10],
            "=label": ["a"] * 10,
        }
    )
    out = neutralise_formulas(table)
    assert out["name"].tolist()[:7] == [
        "'=cmd|' /C calc'!A0",
        "'+SUM(1)",
        "'-2+3",
        "'@A1",
        "'\t=1",
        "'\r=1",
        "Ann",
    ]
    assert out["name"].tolist()[7:9] == ["-3.5", "+44"] and pd.isna(out["name"].iloc[9])
    assert out["count"].tolist() == table["count"].tolist() and out["count"].dtype == table["count"].dtype
    assert list(out.columns) == ["name", "count", "'=label"]
    assert neutralise_formula(-3) == -3 and neutralise_formula("=1") == "'=1"


def test_one_row_file_whose_value_holds_another_delimiter_is_still_read(tmp_path: Path) -> None:
    """Found by the fuzzed ingest: the sniffer gave up on this ordinary one-row extract."""
    rows = ways_to_work_rows(employment_people(1, seed=1))  # Keyworker Notes holds "; follow up"
    path = write_delimited(tmp_path / "wtw.csv", rows, ";")
    table, _, delimiter = read_delimited(path)
    assert delimiter == ";" and len(table.rows) == 1 and table.header[0] == "Client Ref"
