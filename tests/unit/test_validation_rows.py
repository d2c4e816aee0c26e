"""Row checks: each planted fault gets its reason, clean rows pass, and no row is ever lost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage.dataset_config import load_dataset_configs
from linkage.identifiable.ingest import ingest_extract
from linkage.identifiable.validation.row_checks import (
    REASON_CODE,
    REASONS,
    apply_row_checks,
    nhs_number_valid,
)
from tests.unit.test_validation_data import (
    AS_OF,
    employment_people,
    make_nhs_number,
    ways_to_work_rows,
    write_delimited,
)

pytestmark = pytest.mark.spark

CONFIGS = load_dataset_configs()
WTW = CONFIGS["ways_to_work"]

#: one way to break a row for each reason that a single cell can cause
FAULTS = {
    "missing_key": lambda row: row.update({"Client Ref": ""}),
    "missing_value": lambda row: row.update({"Gender": ""}),
    "invalid_date": lambda row: row.update({"Start Date": "2021-13-45"}),
    "date_out_of_range": lambda row: row.update({"Start Date": "01/01/2030"}),
    "implausible_dob": lambda row: row.update({"DOB": "01/01/1890"}),
    "invalid_code": lambda row: row.update({"Sustained 26 Weeks": "maybe"}),
}


@settings(
    max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(faults=st.lists(st.sampled_from([None, *FAULTS]), min_size=3, max_size=25))
def test_rows_in_equal_accepted_plus_quarantined_and_each_fault_gets_its_reason(
    spark, tmp_path: Path, faults: list[str | None]
) -> None:
    rows = ways_to_work_rows(employment_people(len(faults), seed=len(faults)))
    for row, fault in zip(rows, faults, strict=True):
        if fault is not None:
            FAULTS[fault](row)
    path = write_delimited(tmp_path / f"wtw_{len(faults)}_{abs(hash(tuple(faults)))}.csv", rows)
    extract = ingest_extract(spark, path, WTW, WTW.columns.values())

    checked = apply_row_checks(extract.frame, WTW, AS_OF).select("source_row", REASON_CODE).collect()

    assert len(checked) == extract.rows_in == len(faults)
    got = {r.source_row: r[REASON_CODE] for r in checked}
    assert got == {i: fault for i, fault in enumerate(faults, start=1)}
    assert set(got.values()) - {None} <= set(REASONS)


def test_nhs_check_digit_on_spark_agrees_with_python(spark) -> None:
    import random

    from pyspark.sql import functions as F

    from linkage.identifiable.validation import nhs_number_is_valid

    rng = random.Random(3)
    good = [make_nhs_number(rng) for _ in range(30)]
    values = [
        *good,
        *(n[:9] + str((int(n[9]) + 3) % 10) for n in good[:10]),
        "943 476 5919",
        "94347659",
        "abcdefghij",
    ]
    values.append(None)
    df = spark.createDataFrame([(v,) for v in values], "nhs string")
    got = [r.ok for r in df.select(nhs_number_valid(F.col("nhs")).alias("ok")).collect()]
    assert got == [None if v is None else nhs_number_is_valid(v) for v in values]
    assert sum(bool(g) for g in got) == 31


def test_dates_of_birth_at_the_age_limits(spark, tmp_path: Path) -> None:
    """Ages 14 and 100 at enrolment pass; 13, 101 and a day that does not exist are quarantined."""
    enrol = dt.date(2022, 6, 15)
    dobs = {
        "14": enrol.replace(year=enrol.year - 14).strftime("%d/%m/%Y"),
        "13": enrol.replace(year=enrol.year - 14, day=16).strftime("%d/%m/%Y"),
        "100": enrol.replace(year=enrol.year - 100).strftime("%d/%m/%Y"),
        "101": enrol.replace(year=enrol.year - 101).strftime("%d/%m/%Y"),
        "unreadable": "31/04/1990",
    }
    rows = ways_to_work_rows(employment_people(len(dobs), seed=4))
    for row, dob in zip(rows, dobs.values(), strict=True):
        row["DOB"], row["Start Date"] = dob, enrol.strftime("%d/%m/%Y")
    path = write_delimited(tmp_path / "wtw.csv", rows)
    extract = ingest_extract(spark, path, WTW, WTW.columns.values())
    got = apply_row_checks(extract.frame, WTW, AS_OF).orderBy("source_row").collect()
    assert [r[REASON_CODE] for r in got] == [
        None,
        "implausible_dob",
        None,
        "implausible_dob",
        "implausible_dob",
    ]
    assert got[4].check_dob is None and got[4].date_of_birth == "31/04/1990"
