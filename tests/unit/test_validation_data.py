"""Small provider extracts for the ingest and validation tests, written in each provider's layout.

The builders write exactly what the providers send (headings, encodings, delimiters, date styles,
codes, the unpermitted free-text columns), so the tests exercise the real dataset configs. Each row
is a plain dict in the *provider's* column names, so a test can corrupt a single cell and know which
``source_row`` (1-based data row) should be quarantined and why.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ig_policies.engine import PolicyEngine
from ig_policies.workspace import Workspace
from linkage.identifiable.validation import nhs_number_is_valid

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "ig_policies" / "configs" / "demo"
AS_OF = dt.date(2026, 6, 1)

CONDITION_FLAGS = {
    "Depression": "HC_Depression",
    "Severe Mental Illness": "HC_SMI",
    "Epilepsy": "HC_Epilepsy",
    "COPD": "HC_COPD",
    "Diabetes": "HC_Diabetes",
    "CHD": "HC_CHD",
    "Hypertension": "HC_Hypertension",
    "Learning Disability": "HC_LD",
    "Osteoporosis": "HC_Osteoporosis",
    "Asthma": "HC_Asthma",
}
FORENAMES = ["Aoife", "Ben", "Chloé", "Dylan", "Esmé", "Fatima", "Grace", "Hamza", "Isla", "Jack"]
SURNAMES = ["O'Brien", "Smith", "Nguyen", "Jones", "Okafor", "Williams", "Brontë", "Taylor", "Khan", "Evans"]
ETHNICITIES = ["Asian", "Black", "Mixed", "White", "Other"]


def make_nhs_number(rng: random.Random) -> str:
    """A random 10-digit NHS number with a valid modulus-11 check digit."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def employment_people(n: int, seed: int = 1) -> list[dict]:
    """Neutral facts of ``n`` clients (real dates), formatted per provider by the writers below."""
    rng = random.Random(seed)
    people = []
    for i in range(n):
        enrolment = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(0, 3 * 365 - 1))
        dob = enrolment - dt.timedelta(days=rng.randint(18 * 365, 60 * 365))
        job = rng.random() < 0.4
        people.append(
            {
                "ref": f"C{seed:02d}{i:06d}",
                "forename": rng.choice(FORENAMES),
                "surname": rng.choice(SURNAMES),
                "dob": dob,
                "sex": rng.choice("MF"),
                "postcode": f"L{rng.randint(1, 36)} {rng.randint(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}",
                "nhs": make_nhs_number(rng) if rng.random() < 0.3 else None,
                "ethnicity": rng.choice(ETHNICITIES),
                "enrolment": enrolment,
                "la": rng.choice(["Liverpool", "Wirral", "Sefton", "Knowsley", "St Helens", "Halton"]),
                "flags": {name: rng.random() < 0.2 for name in CONDITION_FLAGS},
                "job": job,
                "job_date": enrolment + dt.timedelta(days=rng.randint(10, 200)) if job else None,
                "sustained": job and rng.random() < 0.5,
            }
        )
    return people


def ways_to_work_rows(people: list[dict]) -> list[dict]:
    rows = []
    for p in people:
        row = {
            "Client Ref": p["ref"],
            "First Name": p["forename"],
            "Last Name": p["surname"],
            "DOB": p["dob"].strftime("%d/%m/%Y"),
            "Gender": {"M": "Male", "F": "Female"}[p["sex"]],
            "Postcode": p["postcode"],
            "NHS Number": p["nhs"] or "",
            "Ethnic Group": p["ethnicity"],
            "Start Date": p["enrolment"].strftime("%d/%m/%Y"),
            "Local Authority": p["la"],
        }
        row.update({name: "Y" if flag else "N" for name, flag in p["flags"].items()})
        row["Job Start"] = "Y" if p["job"] else "N"
        row["Job Start Date"] = p["job_date"].strftime("%d/%m/%Y") if p["job_date"] else ""
        row["Sustained 26 Weeks"] = "Y" if p["sustained"] else "N"
        row["Keyworker Notes"] = f"Met {p['forename']} at the job centre; follow up"
        row["Telephone"] = "07700 900" + p["ref"][-3:]
        rows.append(row)
    return rows


def health_into_work_rows(people: list[dict]) -> list[dict]:
    def short(d: dt.date | None) -> str:
        return d.strftime("%d-%b-%y") if d else ""

    rows = []
    for p in people:
        row = {
            "ParticipantID": p["ref"],
            "Forename": p["forename"],
            "Surname": p["surname"],
            "DateOfBirth": short(p["dob"]),
            "Sex": p["sex"],
            "PostCode": p["postcode"],
            "NHSNo": p["nhs"] or "",
            "EthnicityCode": p["ethnicity"][0],
            "EnrolmentDate": short(p["enrolment"]),
            "LA": p["la"],
        }
        row.update({CONDITION_FLAGS[name]: "1" if flag else "0" for name, flag in p["flags"].items()})
        row["Outcome_JobStart"] = "1" if p["job"] else "0"
        row["Outcome_JobStartDate"] = short(p["job_date"])
        row["Outcome_Sustained26"] = "1" if p["sustained"] else "0"
        row["Address Line 1"] = f"{len(p['surname'])} Hope Street"
        rows.append(row)
    return rows


def write_delimited(path: Path, rows: list[dict], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_ways_to_work(landing: Path, rows: list[dict]) -> Path:
    return write_delimited(landing / "employment" / "ways_to_work.csv", rows)


def write_health_into_work(landing: Path, rows: list[dict]) -> Path:
    return write_delimited(landing / "employment" / "health_into_work.csv", rows, ";", "cp1252")


def write_health(landing: Path, n: int = 40, seed: int = 3) -> dict[str, Path]:
    """Small demographics, conditions and activity Parquet files with real dates."""
    rng = random.Random(seed)
    ids = [f"PAT{i:08d}" for i in range(1, n + 1)]
    demographics = pd.DataFrame(
        {
            "patient_id": ids,
            "nhs_number": [make_nhs_number(rng) for _ in ids],
            "forename": [rng.choice(FORENAMES) for _ in ids],
            "surname": [rng.choice(SURNAMES) for _ in ids],
            "date_of_birth": [dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 20000)) for _ in ids],
            "sex": [rng.choice("MF") for _ in ids],
            "ethnicity": [rng.choice(ETHNICITIES) for _ in ids],
            "postcode": ["L8 1AB"] * n,
            "practice_code": ["N82001"] * n,
            "lsoa21cd": ["E01006512"] * n,
            "registration_start": [dt.date(2010, 1, 1)] * n,
            "registration_end": [None] * n,
            "date_of_death": [None] * n,
        }
    )
    conditions = pd.DataFrame(
        {
            "patient_id": ids[: n // 2],
            "condition": [rng.choice(["depression", "asthma", "diabetes"]) for _ in ids[: n // 2]],
            "diagnosis_date": [
                dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3000)) for _ in ids[: n // 2]
            ],
        }
    )
    activity = pd.DataFrame(
        {
            "patient_id": [pid for pid in ids for _ in range(2)],
            "month": [dt.date(2020, m, 1) for _ in ids for m in (1, 2)],
            "measure": ["gp_appointments"] * (2 * n),
            "count": [rng.randint(1, 4) for _ in range(2 * n)],
        }
    )
    health = landing / "health"
    health.mkdir(parents=True, exist_ok=True)
    paths = {
        "health_demographics": health / "demographics.parquet",
        "health_conditions": health / "conditions.parquet",
        "health_activity": health / "activity.parquet",
    }
    date_columns = ("date_of_birth", "registration_start", "registration_end", "date_of_death")
    schema = pa.schema([(c, pa.date32() if c in date_columns else pa.string()) for c in demographics.columns])
    pq.write_table(
        pa.Table.from_pandas(demographics, schema=schema, preserve_index=False), paths["health_demographics"]
    )
    conditions.to_parquet(paths["health_conditions"], index=False)
    activity.to_parquet(paths["health_activity"], index=False)
    return paths


def demo_engine(workspace: Workspace) -> PolicyEngine:
    """The signed demo policy under the demo trust store, on a fixed date inside its validity."""
    return PolicyEngine.load(
        DEMO / "policy.yaml", workspace, trust_store=DEMO / "trust_store.yaml", today=AS_OF
    )


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# --------------------------------------------------------------------------------------------
# The builders themselves


def test_builder_nhs_numbers_pass_the_check_digit_and_a_changed_digit_fails() -> None:
    rng = random.Random(7)
    numbers = [make_nhs_number(rng) for _ in range(200)]
    assert all(nhs_number_is_valid(n) for n in numbers)
    assert nhs_number_is_valid("943 476 5919") and nhs_number_is_valid("943-476-5919")
    broken = [n[:9] + str((int(n[9]) + 1) % 10) for n in numbers]
    assert not any(nhs_number_is_valid(n) for n in broken)
    assert not nhs_number_is_valid("12345") and not nhs_number_is_valid(None)


def test_builders_write_the_provider_layouts(tmp_path: Path) -> None:
    people = employment_people(3)
    wtw = write_ways_to_work(tmp_path, ways_to_work_rows(people))
    hiw = write_health_into_work(tmp_path, health_into_work_rows(people))
    assert wtw.read_text(encoding="utf-8").startswith("Client Ref,First Name,Last Name,DOB,")
    text = hiw.read_bytes().decode("cp1252")
    assert text.startswith("ParticipantID;Forename;Surname;DateOfBirth;Sex;")
