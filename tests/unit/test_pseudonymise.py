"""The pseudonymisation stage end to end on a tiny workspace: contract columns, opt-out, audit,
key rotation through the CLI, and a canary scan of every file the step wrote."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ig_policies.errors import InputError, PolicyRefused
from ig_policies.master_secret import MasterSecret
from ig_policies.workspace import Workspace, write_csv, write_parquet
from linkage.bloom import ENCODING_COLUMNS
from linkage.identifiable.pseudonymise import METADATA_FILE, pseudonymise_extracts
from linkage.identifiable.tokens import TOKEN_FIELDS, SparkHmacKey, python_token, research_pseudonym
from tests.conftest import TEST_MASTER_SECRET

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
DEMO_POLICY = REPO / "ig_policies" / "configs" / "demo" / "policy.yaml"
DEMO_TRUST = REPO / "ig_policies" / "configs" / "demo" / "trust_store.yaml"
TODAY = dt.date(2026, 6, 1)
PROJECT = "ehl-lcr-demo"
PROCESSOR = "demo-processor"
SECRET = MasterSecret(bytes.fromhex(TEST_MASTER_SECRET))

# Distinctive identifiers of one person, present in both an employment extract and the GP data.
CANARY = {
    "forename": "Zebedee",
    "surname": "Quixley-Vantablack",
    "dob_text": "13/07/1961",
    "dob_iso": "1961-07-13",
    "postcode": "ch649qz",
    "postcode_std": "CH64 9QZ",
    "nhs_number": "9434765919",
    "client_ref": "WTWCANARY77",
    "patient_id": "PATCANARY01",
}
OPTED_OUT_NHS = "4010232137"

EMPLOYMENT_COLUMNS = [
    "client_pseudonym", "programme", *TOKEN_FIELDS, *ENCODING_COLUMNS, "sex", "year_of_birth", "ethnicity", "lsoa21cd",
    "local_authority", "enrolment_date", "sr_depression", "sr_diabetes", "job_start", "job_start_date",
    "sustained_26_weeks", "nhs_number_valid", "dob_valid", "postcode_valid",
]  # fmt: skip


def _employment(rows: list[dict]) -> pd.DataFrame:
    base = {
        "ethnicity": "White",
        "enrolment_date": "2021-03-01",
        "local_authority": "Liverpool",
        "sr_depression": "Y",
        "sr_diabetes": "N",
        "job_start": "Y",
        "job_start_date": "2021-09-01",
        "sustained_26_weeks": "N",
    }
    df = pd.DataFrame([{**base, **r} for r in rows]).astype("string")
    df["source_row"] = range(1, len(df) + 1)
    return df


def make_workspace(root: Path, opt_out: bool = True) -> Workspace:
    ws = Workspace.open(root)
    validated = ws.landing / "validated"
    write_parquet(
        _employment(
            [
                {
                    "client_ref": CANARY["client_ref"],
                    "forename": f"Mr {CANARY['forename']}",
                    "surname": CANARY["surname"],
                    "date_of_birth": CANARY["dob_text"],
                    "sex": "Male",
                    "postcode": CANARY["postcode"],
                    "nhs_number": CANARY["nhs_number"],
                },
                {
                    "client_ref": "WTW2",
                    "forename": "Peggy",
                    "surname": "Smith",
                    "date_of_birth": "31/02/1980",
                    "sex": "Female",
                    "postcode": "L8 1AB",
                    "nhs_number": "1234567890",
                },
            ]
        ),
        validated / "ways_to_work.parquet",
    )
    write_parquet(
        _employment(
            [
                {
                    "client_ref": "H1",
                    "forename": "Bill",
                    "surname": "Jones",
                    "date_of_birth": "05-Mar-87",
                    "sex": "M",
                    "postcode": "L8 1AB",
                    "nhs_number": None,
                },
            ]
        ),
        validated / "health_into_work.parquet",
    )
    demographics = pd.DataFrame(
        {
            "patient_id": [CANARY["patient_id"], "PAT2", "PAT3"],
            "nhs_number": [CANARY["nhs_number"], OPTED_OUT_NHS, None],
            "forename": [CANARY["forename"].upper(), "Ann", "William"],
            "surname": [CANARY["surname"], "Opted", "Jones"],
            "date_of_birth": [dt.date(1961, 7, 13), dt.date(1970, 1, 2), dt.date(1987, 3, 5)],
            "sex": ["M", "F", "M"],
            "ethnicity": ["White", "Asian", "Black"],
            "postcode": [CANARY["postcode_std"], "L8 1AB", "L8 1AB"],
            "practice_code": ["N82001", "N82001", "N82002"],
            "lsoa21cd": ["E01007000", "E01006512", "E01006512"],
            "registration_start": [dt.date(2000, 1, 1)] * 3,
            "registration_end": [dt.date(2025, 1, 1), None, None],
            "date_of_death": [None, dt.date(2024, 1, 1), None],
            "source_row": [1, 2, 3],
        }
    )
    write_parquet(demographics, validated / "health_demographics.parquet")
    write_parquet(
        pd.DataFrame(
            {
                "patient_id": [CANARY["patient_id"], "PAT2", "PAT3"],
                "condition": ["depression", "asthma", "copd"],
                "diagnosis_date": [dt.date(2018, 1, 1)] * 3,
                "source_row": [1, 2, 3],
            }
        ),
        validated / "health_conditions.parquet",
    )
    write_parquet(
        pd.DataFrame(
            {
                "patient_id": [CANARY["patient_id"], "PAT2", "PAT2", "PAT3"],
                "month": [dt.date(2020, 1, 1)] * 4,
                "measure": ["gp_appointments"] * 4,
                "count": [2, 1, 3, 1],
                "source_row": [1, 2, 3, 4],
            }
        ),
        validated / "health_activity.parquet",
    )
    write_csv(
        pd.DataFrame(
            {
                "pcds": ["L8 1AB", "CH64 9QZ"],
                "lsoa21cd": ["E01006512", "E01007000"],
                "lad22cd": ["E08000012"] * 2,
            }
        ),
        ws.reference / "postcode_lookup.csv",
    )
    if opt_out:
        write_csv(pd.DataFrame({"nhs_number": [OPTED_OUT_NHS]}), ws.landing / "health" / "opt_out.csv")
    return ws


def engine_for(ws: Workspace):
    from ig_policies.engine import PolicyEngine

    return PolicyEngine.load(DEMO_POLICY, ws, trust_store=DEMO_TRUST, today=TODAY, actor=PROCESSOR)


@pytest.fixture
def run(pseudonymised_run):
    """The shared run (``tests/unit/conftest.py``), shared with the Bloom-filter stage tests."""
    r = pseudonymised_run
    return r.workspace, r.engine, r.result, r.tables


def test_validated_and_pseudonymised_files_are_readable_by_their_owner_only(run):
    from tests.unit.test_workspace_zones import assert_zones_sealed

    assert_zones_sealed(run[0])


def test_writes_the_contract_tables(run):
    ws, _, result, tables = run
    assert set(result.outputs) == {
        "employment_support",
        "health_demographics",
        "health_conditions",
        "health_activity",
    }
    emp = tables["employment_support"]
    assert list(emp.columns) == EMPLOYMENT_COLUMNS
    assert sorted(emp["programme"]) == ["health_into_work", "ways_to_work", "ways_to_work"]
    demo = tables["health_demographics"]
    assert list(demo.columns) == [
        "patient_pseudonym", *TOKEN_FIELDS, *ENCODING_COLUMNS, "sex", "year_of_birth", "ethnicity", "practice_code", "lsoa21cd",
        "registration_start", "registration_end", "date_of_death", "nhs_number_valid", "dob_valid", "postcode_valid",
    ]  # fmt: skip
    assert list(tables["health_conditions"].columns) == ["patient_pseudonym", "condition", "diagnosis_date"]
    assert list(tables["health_activity"].columns) == ["patient_pseudonym", "month", "measure", "count"]
    for path in result.outputs.values():
        meta = json.loads((path / METADATA_FILE).read_text())
        assert (meta["project_id"], meta["key_version"]) == (PROJECT, 1)
        assert meta["token_domains"]["t_dob_day"] == meta["token_domains"]["t_dob_month"]


def test_field_values_and_flags(run):
    _, _, _, tables = run
    emp = tables["employment_support"].set_index("programme", append=True)
    row = tables["employment_support"].sort_values("client_pseudonym")
    canary = row[row["year_of_birth"] == 1961].iloc[0]
    assert canary["lsoa21cd"] == "E01007000"  # from the postcode lookup
    assert (canary["sex"], bool(canary["dob_valid"]), bool(canary["postcode_valid"])) == ("M", True, True)
    assert bool(canary["sr_depression"]) is True and bool(canary["sr_diabetes"]) is False
    assert canary["enrolment_date"] == dt.date(2021, 3, 1)
    peggy = row[row["sex"] == "F"].iloc[0]
    assert not peggy["dob_valid"] and pd.isna(peggy["t_dob"]) and pd.isna(peggy["year_of_birth"])
    assert not peggy["nhs_number_valid"] and pd.isna(peggy["t_nhs_number"])
    assert len(emp) == 3


def test_research_pseudonyms_match_the_python_function(run):
    _, _, _, tables = run
    key = SECRET.derive("research-pseudonym", PROJECT, 1)
    expected_clients = research_pseudonym(pd.Series(["ways_to_work:WTW2", "health_into_work:H1"]), key, "C")
    assert set(expected_clients) <= set(tables["employment_support"]["client_pseudonym"])
    expected_patients = research_pseudonym(pd.Series(["PAT3"]), key, "P")
    assert expected_patients.iloc[0] in set(tables["health_demographics"]["patient_pseudonym"])


def test_the_same_person_gets_the_same_tokens_in_both_sources(run):
    _, _, _, tables = run
    emp = tables["employment_support"]
    client = emp[emp["year_of_birth"] == 1961].iloc[0]
    demo = tables["health_demographics"]
    patient = demo[demo["year_of_birth"] == 1961].iloc[0]
    for token in TOKEN_FIELDS:
        assert client[token] == patient[token], token
    key = SECRET.derive("match-tokens", PROJECT, 1)
    assert client["t_surname"] == python_token(key, "name", "QUIXLEYVANTABLACK")
    assert client["t_surname_first"] == python_token(key, "name", "QUIXLEY")
    assert client["t_postcode_sector"] == python_token(key, "postcode_sector", "CH64 9")


def test_opt_out_removes_the_patient_from_every_health_dataset(run):
    _, _, result, tables = run
    by_name = {e.dataset: e for e in result.extracts}
    assert by_name["health_demographics"].rows_opted_out == 1
    assert by_name["health_conditions"].rows_opted_out == 1
    assert by_name["health_activity"].rows_opted_out == 2
    assert by_name["ways_to_work"].rows_opted_out == 0
    opted = research_pseudonym(
        pd.Series(["PAT2"]), SECRET.derive("research-pseudonym", PROJECT, 1), "P"
    ).iloc[0]
    for name in ("health_demographics", "health_conditions", "health_activity"):
        assert opted not in set(tables[name]["patient_pseudonym"]), name
    assert len(tables["health_activity"]) == 2
    assert result.rows_opted_out == 4


def test_audit_entry_has_row_and_flag_counts(run):
    ws, engine, _, _ = run
    entry = [e for e in engine.audit.entries() if e["action"] == "pseudonymise"][-1]
    assert entry["decision"] == "allowed"
    assert entry["counts"]["rows_opted_out"] == 4
    assert entry["counts"]["rows_in"] == 3 + 3 + 3 + 4
    flags = entry["details"]["extracts"]["ways_to_work"]["flags"]
    assert flags["dob_impossible"] == 1 and flags["nhs_number_invalid"] == 1 and flags["title_removed"] == 1
    assert entry["details"]["key_version"] == 1
    assert {o["path"] for o in entry["outputs"]} >= {"pseudonymised/employment_support"}


def _canaries() -> list[str]:
    match_key = SECRET.derive("match-tokens", PROJECT, 1)
    research_key = SECRET.derive("research-pseudonym", PROJECT, 1)
    prepared = SparkHmacKey.from_key(match_key)
    values = [
        CANARY["forename"], CANARY["surname"], "QUIXLEYVANTABLACK", "VANTABLACK", CANARY["dob_text"],
        CANARY["dob_iso"], CANARY["postcode"], CANARY["postcode_std"], "CH649QZ", CANARY["nhs_number"],
        CANARY["client_ref"], CANARY["patient_id"], OPTED_OUT_NHS,
        TEST_MASTER_SECRET, base64.b64encode(SECRET._value).decode(), match_key.hex(), research_key.hex(),
        prepared._ipad_hex, prepared._opad_hex,
    ]  # fmt: skip
    return [v.lower() for v in values]


def _text_of(path: Path) -> str:
    raw = path.read_bytes()
    text = raw.decode("latin-1")
    if path.suffix == ".parquet" or raw[:4] == b"PAR1":
        table = pq.read_table(path)
        text += json.dumps(table.to_pylist(), default=str)
        text += str(table.schema) + str(pq.read_metadata(path).metadata)
    return text.lower()


def test_canary_scan_finds_no_identifier_or_key_in_anything_written(run):
    ws, _, _, _ = run
    written = [
        p
        for zone in ("pseudonymised", "audit", "quarantine", "linked", "analysis", "outputs", "reports")
        for p in (ws.root / zone).rglob("*")
        if p.is_file()
    ]
    assert any(p.suffix == ".parquet" for p in written) and any("audit" in p.parts for p in written)
    canaries = _canaries()
    for path in written:
        text = _text_of(path)
        found = [c for c in canaries if c in text]
        assert not found, f"{path.relative_to(ws.root)} contains identifiers or key material"


def _copy_workspace(ws: Workspace, dest: Path) -> Workspace:
    """A copy of a workspace with its DEMO audit writer (beside it), so its audit log goes on."""
    import shutil

    from ig_policies.audit import demo_writer_directory

    shutil.copytree(ws.root, dest)
    writer = demo_writer_directory(ws)
    if writer.exists():
        shutil.copytree(writer, demo_writer_directory(Workspace(dest.resolve())))
    return Workspace.open(dest)


def test_key_rotation_through_the_cli_re_pseudonymises(run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    shared, _, _, tables = run
    ws = _copy_workspace(shared, tmp_path / "ws")  # the shared run stays as it was
    settings = tmp_path / "settings.yaml"
    settings.write_text("spark: {master: 'local[2]', driver_memory: 2g, shuffle_partitions: 2}\n")
    monkeypatch.setenv("EHL_SETTINGS", str(settings))
    monkeypatch.setenv("EHL_MASTER_SECRET", TEST_MASTER_SECRET)
    monkeypatch.setenv("EHL_TRUST_STORE", str(DEMO_TRUST))
    monkeypatch.setenv("EHL_POLICY", str(DEMO_POLICY))
    args = ["pseudonymise", "--workspace", str(ws.root), "--key-version", "2"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "key version 2" in out.output
    meta = json.loads((ws.pseudonymised / "employment_support" / METADATA_FILE).read_text())
    assert meta["key_version"] == 2
    rotated = pd.read_parquet(ws.pseudonymised / "employment_support")
    old, new = set(tables["employment_support"]["t_dob_year"].dropna()), set(rotated["t_dob_year"].dropna())
    assert old and new and not (old & new)
    assert not set(tables["employment_support"]["client_pseudonym"]) & set(rotated["client_pseudonym"])
    assert TEST_MASTER_SECRET not in out.output


def test_refusals_write_nothing_and_are_audited(tmp_path, spark):
    ws = make_workspace(tmp_path / "ws", opt_out=False)
    engine = engine_for(ws)
    with pytest.raises(PolicyRefused) as refused:
        pseudonymise_extracts(ws, engine, "demo-researcher", spark, master_secret=SECRET)
    assert refused.value.rule == "user_not_in_role"
    with pytest.raises(PolicyRefused) as no_list:
        pseudonymise_extracts(ws, engine, PROCESSOR, spark, master_secret=SECRET)
    assert no_list.value.rule == "national_data_opt_out"
    assert not any(ws.pseudonymised.iterdir())
    decisions = [e["decision"] for e in engine.audit.entries() if e["action"] == "pseudonymise"]
    assert decisions == ["refused", "started", "failed"]


def test_no_validated_extracts_is_a_plain_input_error(tmp_path, spark):
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(InputError, match="ehl validate"):
        pseudonymise_extracts(ws, engine_for(ws), PROCESSOR, spark, master_secret=SECRET)
