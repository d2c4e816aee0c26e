"""The validate stage end to end on small extracts with planted faults (real Spark, GE and policy)."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from pathlib import Path

import pandas as pd
import pytest

from ig_policies.audit import AuditLog
from ig_policies.errors import InputError
from ig_policies.workspace import Workspace
from linkage.identifiable.validation import quarantine_path, validate_extracts, validated_path
from tests.unit.test_validation_data import (
    demo_engine,
    employment_people,
    files_under,
    health_into_work_rows,
    ways_to_work_rows,
    write_delimited,
    write_health,
    write_health_into_work,
    write_ways_to_work,
)

pytestmark = pytest.mark.spark

ACTOR = "demo-processor"
N = 150  # 7 planted row faults = 4.7% of rows: under the demo policy's 5% tolerance


def _plant_ways_to_work(rows: list[dict]) -> dict[int, str]:
    """Corrupt single cells; returns source_row -> the reason code validation must give."""
    rows[4]["Client Ref"] = rows[2]["Client Ref"]  # row 5 repeats row 3's key
    rows[9]["Start Date"] = "31/02/2021"  # no such date
    rows[14]["Start Date"] = "03/03/2020"  # before the programme window (2021-2023)
    rows[19]["Gender"] = "Unknown"
    rows[24]["DOB"] = rows[24]["Start Date"][:6] + str(int(rows[24]["Start Date"][6:]) - 5)  # aged 5
    rows[29]["Client Ref"] = ""
    rows[34]["DOB"] = "30/02/1980"  # no such day: quarantined, never guessed
    rows[39]["NHS Number"] = "1234567890"  # bad check digit: kept (links on other fields), counted
    return {
        5: "duplicate_key",
        10: "invalid_date",
        15: "date_out_of_range",
        20: "invalid_code",
        25: "implausible_dob",
        30: "missing_key",
        35: "implausible_dob",
    }


def _audit_entries(ws: Workspace) -> list[dict]:
    return [
        e
        for e in AuditLog.for_workspace(ws).entries()
        if e.get("action") == "validate" and e["decision"] != "started"
    ]


def _guard_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make any connection or name lookup beyond this machine fail, and record the attempt."""
    attempts: list[object] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
    local = (None, "127.0.0.1", "::1", "localhost")

    def guarded_connect(self, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in local and not host.startswith("/"):
            attempts.append(address)
            raise OSError(f"network access attempted during validation: {address}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in local:
            attempts.append(host)
            raise OSError(f"name lookup attempted during validation: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


def test_planted_faults_are_quarantined_with_their_reasons_and_nothing_is_lost(
    spark, workspace: Workspace, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = employment_people(N, seed=11)
    rows = ways_to_work_rows(people)
    planted = _plant_ways_to_work(rows)
    write_ways_to_work(workspace.landing, rows)
    hiw_people = employment_people(40, seed=12)
    hiw_people[0]["dob"] = dt.date(1962, 7, 14)  # written 14-Jul-62: read naively it is 2062
    write_health_into_work(workspace.landing, health_into_work_rows(hiw_people))
    write_health(workspace.landing)
    engine = demo_engine(workspace)
    attempts = _guard_network(monkeypatch)  # GE, Spark and the policy engine stay offline

    result = validate_extracts(workspace, engine, ACTOR, spark)

    assert attempts == []

    assert result.passed
    wtw = result.get("ways_to_work")
    assert (wtw.rows_in, wtw.rows_quarantined, wtw.rows_accepted) == (N, len(planted), N - len(planted))
    assert wtw.reason_counts == {**{code: 1 for code in planted.values()}, "implausible_dob": 2}
    assert wtw.invalid_nhs_numbers == 1 and wtw.unreadable_dates_of_birth == 1
    assert set(wtw.dropped_columns) == {"Keyworker Notes", "Telephone"}

    quarantined = pd.read_parquet(quarantine_path(workspace, "ways_to_work"))
    assert list(quarantined.columns) == ["source_row", "reason_field", "reason_code", "reason"]
    assert dict(zip(quarantined.source_row, quarantined.reason_code, strict=True)) == planted

    accepted = spark.read.parquet(str(validated_path(workspace, "ways_to_work")))
    types = dict(accepted.dtypes)
    assert types["enrolment_date"] == "date" and types["job_start_date"] == "date"
    assert types["date_of_birth"] == "string" and types["source_row"] == "bigint"
    assert "Keyworker Notes" not in accepted.columns and "Telephone" not in accepted.columns
    assert {r.programme for r in accepted.select("programme").distinct().collect()} == {"ways_to_work"}
    kept = {r.source_row for r in accepted.select("source_row").collect()}
    assert kept.isdisjoint(planted) and kept | set(planted) == set(range(1, N + 1))
    assert accepted.where("source_row = 40").first().nhs_number == "1234567890"

    for name in ("health_into_work", "health_demographics", "health_conditions", "health_activity"):
        d = result.get(name)
        assert d.rows_quarantined == 0 and d.rows_accepted == d.rows_in > 0, name
        assert validated_path(workspace, name).is_dir()
    hiw = spark.read.parquet(str(validated_path(workspace, "health_into_work"))).collect()
    assert {r.ethnicity for r in hiw} <= {"Asian", "Black", "Mixed", "White", "Other"}
    assert {r.sr_depression for r in hiw} <= {"Y", "N"}
    assert "Address Line 1" in result.get("health_into_work").dropped_columns

    (entry,) = _audit_entries(workspace)
    assert entry["decision"] == "allowed"
    assert entry["counts"] == {
        "rows_in": result.rows_in,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": len(planted),
    }
    summary = {d["dataset"]: d for d in entry["details"]["validation"]}
    assert summary["ways_to_work"]["dropped_columns"] == ["Keyworker Notes", "Telephone"]
    assert summary["ways_to_work"]["reason_counts"] == wtw.reason_counts

    # Data Docs exist for every extract and carry no identifying value
    assert result.data_docs_index.is_file()
    assert all(d.data_docs_page is not None and d.data_docs_page.is_file() for d in result.datasets)
    # ... and a reader's browser is never sent to the internet: no page names a remote address
    # (stylesheet, script, image, CSS background or link; test_data_docs opens them in a browser)
    pages = [p.read_text() for p in (workspace.reports / "data_docs").rglob("*.html")]
    assert len(pages) > len(result.datasets) and not any(re.search(r"https?://", p) for p in pages)
    artefacts = "\n".join(
        p.read_text(errors="ignore")
        for p in [
            *files_under(workspace.reports),
            *files_under(workspace.quarantine),
            *files_under(workspace.audit),
        ]
        if p.suffix in (".html", ".json", ".jsonl", ".log", "")
    ) + json.dumps(entry)
    for person in people[:20]:
        assert person["ref"] not in artefacts
        assert person["surname"] not in artefacts or person["surname"] in ("Smith", "Taylor", "Evans")
        assert person["dob"].strftime("%d/%m/%Y") not in artefacts
        if person["nhs"]:
            assert person["nhs"] not in artefacts


def test_over_tolerance_stops_the_flow_and_passes_nothing_on(
    spark, workspace: Workspace, master_secret_env: str, tmp_path: Path
) -> None:
    rows = ways_to_work_rows(employment_people(40, seed=21))
    for row in rows[:5]:  # 12.5% bad codes, the policy tolerates 5%
        row["Ethnic Group"] = "Z"
    delivery = write_delimited(tmp_path / "delivery" / "wtw_june.csv", rows)  # handed in with --input
    stale = validated_path(workspace, "ways_to_work")
    stale.mkdir(parents=True)  # an older validated table must not survive a failing extract
    (stale / "part-0.parquet").write_bytes(b"old")
    engine = demo_engine(workspace)

    with pytest.raises(InputError) as caught:
        validate_extracts(
            workspace, engine, ACTOR, spark, datasets=["ways_to_work"], inputs={"ways_to_work": delivery}
        )

    received = workspace.landing / "received" / "ways_to_work" / "wtw_june.csv"
    assert received.read_bytes() == delivery.read_bytes()  # taken into the landing zone first
    message = str(caught.value)
    assert str(received) in message and "5 of 40 rows" in message and "invalid_code 5" in message
    assert "What to do:" in message and "quarantine" in message
    assert not stale.exists()
    assert files_under(workspace.landing / "validated") == []
    assert (
        pd.read_parquet(quarantine_path(workspace, "ways_to_work")).reason_code.tolist()
        == ["invalid_code"] * 5
    )
    assert (workspace.reports / "data_docs" / "index.html").is_file()
    (entry,) = _audit_entries(workspace)
    assert entry["decision"] == "failed" and "InputError" in entry["reason"]
    assert entry["counts"]["rows_quarantined"] == 5
    assert entry["inputs"] == [
        {"path": "landing/received/ways_to_work/wtw_june.csv", "sha256": entry["inputs"][0]["sha256"]}
    ]
