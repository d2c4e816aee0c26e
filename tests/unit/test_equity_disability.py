"""Disability in the equity audit: census layouts, the clients' proxy, and planted selection.

The census side is "disabled under the Equality Act" (2021 census); the clients' side is the proxy
"any self-reported condition". Two small synthetic regions plant selection towards and away from
people with long-term conditions, and the audit must find disabled people over- and
under-represented accordingly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.area_data import load_census_population_by_group, load_lsoa_lookup
from analysis.equity import (
    audit_programmes,
    client_local_authorities,
    describe_ratio,
    with_disability,
)
from synthetic.config import CONDITIONS

PEOPLE = 15_000
LA = "E08000012"


# --------------------------------------------------------------------------------------------
# Published census layouts


def _ons_custom(disability_column: str, labels: list[str]) -> pd.DataFrame:
    """An ONS 'create a custom dataset' download: one row per category combination."""
    rows = []
    for k, label in enumerate(labels):
        for status in ("Economically active (excluding full-time students): Unemployed", "Does not apply"):
            rows.append(
                {
                    "Lower tier local authorities Code": LA,
                    "Lower tier local authorities": "Liverpool",
                    f"{disability_column} Code": k + 1,
                    disability_column: label,
                    "Economic activity status (4 categories) Code": 1,
                    "Economic activity status (4 categories)": status,
                    "Observation": 100 * (k + 1),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("column", "labels", "expected"),
    [
        (
            "Disability (2 categories)",
            ["Disabled under the Equality Act", "Not disabled under the Equality Act"],
            {"Yes": 100, "No": 200},
        ),
        (
            "Disability (3 categories)",
            [
                "Disabled under the Equality Act: Day-to-day activities limited a lot",
                "Disabled under the Equality Act: Day-to-day activities limited a little",
                "Not disabled under the Equality Act",
            ],
            {"Yes": 300, "No": 300},
        ),
        (
            "Disability (4 categories)",
            [
                "Disabled under the Equality Act: Day-to-day activities limited a lot",
                "Disabled under the Equality Act: Day-to-day activities limited a little",
                "Not disabled under the Equality Act: Has long term physical or mental health condition "
                "but day-to-day activities are not limited",
                "Not disabled under the Equality Act: No long term physical or mental health conditions",
            ],
            {"Yes": 300, "No": 700},
        ),
        (
            "Long-term health problem or disability",
            [
                "Day-to-day activities limited a lot",
                "Day-to-day activities limited a little",
                "Day-to-day activities not limited",
            ],
            {"Yes": 300, "No": 300},
        ),
    ],
)
def test_published_disability_categories_collapse_to_disabled_or_not(tmp_path, column, labels, expected):
    path = tmp_path / "census.csv"
    _ons_custom(column, labels).to_csv(path, index=False)
    out = load_census_population_by_group(path)
    assert set(out.columns) == {"lad22cd", "status", "disability", "people"}
    # "Does not apply" economic activity rows (under 16s) are not counted
    assert out.groupby("disability")["people"].sum().to_dict() == expected
    assert set(out["status"]) == {"unemployed"}


def test_synthetic_layout_keeps_disability_alongside_the_other_characteristics(tmp_path):
    census = pd.DataFrame(
        {
            "lsoa21cd": ["E01006512"] * 3,
            "lad22cd": [LA] * 3,
            "age_band": ["16-24", "16-24", "50-64"],
            "sex": ["Female", "Male", "Female"],
            "ethnicity": ["White", "White", "Asian"],
            "disability": [
                "Disabled under the Equality Act",
                "Not disabled under the Equality Act",
                "Disabled under the Equality Act",
            ],
            "economic_activity": ["Economically inactive: Long-term sick or disabled"] * 3,
            "count": [7, 11, 5],
        }
    )
    census.to_csv(tmp_path / "by_group.csv", index=False)
    out = load_census_population_by_group(tmp_path / "by_group.csv")
    assert out.groupby("disability")["people"].sum().to_dict() == {"Yes": 12, "No": 11}
    assert {"age_band", "sex", "ethnicity", "disability"} <= set(out.columns)


# --------------------------------------------------------------------------------------------
# The clients' proxy


def test_any_self_reported_condition_is_the_disability_proxy():
    clients = pd.DataFrame(
        {
            "sr_depression": pd.array([True, False, False, None], dtype="boolean"),
            "sr_asthma": pd.array([False, True, False, None], dtype="boolean"),
        }
    )
    assert with_disability(clients)["disability"].tolist() == ["Yes", "Yes", "No", pd.NA]
    # no self-reported flags at all: no disability column, so the characteristic is skipped
    assert "disability" not in with_disability(clients.drop(columns=["sr_depression", "sr_asthma"]))
    yes = describe_ratio("disability", "Yes", 0.5, 0.4, 0.6, "out_of_work")
    assert yes.startswith("Disabled people or people with a long-term health condition are under-represented")


# --------------------------------------------------------------------------------------------
# Planted selection in a small synthetic region


def _clients_from_truth(ws) -> pd.DataFrame:
    """The research dataset's clients, built from the truth (perfect linkage)."""
    enrolments = pd.read_parquet(ws.truth / "enrolments.parquet")
    persons = pd.read_parquet(ws.truth / "persons.parquet")[
        ["person_id", "sex", "ethnicity", "lsoa21cd", "lad22cd", "imd_decile"]
    ]
    e = enrolments.merge(persons, on="person_id", how="left")
    clients = pd.DataFrame(
        {
            "client_pseudonym": "C" + e["client_ref"].astype(str),
            "client_cluster": e["person_id"],
            "programme": e["programme"],
            "enrolment_date": pd.to_datetime(e["enrolment_date"]),
            "age_band": e["age_band"],
            "sex": e["sex"],
            "ethnicity": e["ethnicity"],
            "imd_quintile": np.ceil(e["imd_decile"] / 2).astype("Int64"),
            "lsoa21cd": e["lsoa21cd"],
            "local_authority": e["lad22cd"],
        }
    )
    for c in CONDITIONS:
        clients[f"sr_{c}"] = e[f"sr_{c}"].astype("boolean")
    return clients


def _region(tmp_path_factory, name: str, condition_or: float, sick_or: float):
    """A region whose selection favours (OR > 1) or avoids (OR < 1) people with conditions."""
    from ig_policies.workspace import Workspace
    from synthetic import SynthConfig, generate_region

    cfg = SynthConfig()
    selection = cfg.selection.model_copy(
        update={
            "rate": 0.2,
            "or_condition": dict.fromkeys(CONDITIONS, condition_or),
            "or_economic_status": {
                "employed": 0.25,
                "unemployed": 3.0,
                "inactive_sick": sick_or,
                "inactive_other": 1.0,
            },
        }
    )
    ws = Workspace.open(tmp_path_factory.mktemp(name) / "ws")
    generate_region(ws, PEOPLE, seed=3, config=cfg.model_copy(update={"selection": selection}))
    return ws


def _audit(ws):
    clients = _clients_from_truth(ws)
    lookup = load_lsoa_lookup(ws.reference / "lsoa_lookup.csv")
    census = load_census_population_by_group(ws.reference / "census_economic_activity_by_group.csv", lookup)
    return audit_programmes(clients, census, "out_of_work", None, client_local_authorities(clients, lookup))


@pytest.fixture(scope="module")
def favoured(tmp_path_factory):
    return _region(tmp_path_factory, "favoured", condition_or=3.0, sick_or=8.0)


@pytest.fixture(scope="module")
def avoided(tmp_path_factory):
    return _region(tmp_path_factory, "avoided", condition_or=0.3, sick_or=0.3)


def test_census_file_counts_every_adult_by_their_planted_disability(favoured):
    persons = pd.read_parquet(favoured.truth / "persons.parquet")
    adults = persons[persons["economic_status"] != "under_16"]
    lookup = load_lsoa_lookup(favoured.reference / "lsoa_lookup.csv")
    census = load_census_population_by_group(
        favoured.reference / "census_economic_activity_by_group.csv", lookup
    )
    truth = adults.groupby(["lad22cd", "census_disabled"]).size()
    loaded = census.groupby(["lad22cd", "disability"])["people"].sum()
    for (la, disabled), n in truth.items():
        assert loaded[(la, "Yes" if disabled else "No")] == n
    # the planted model: disability depends on conditions and economic status
    by_status = adults.groupby("economic_status")["census_disabled"].mean()
    assert by_status["inactive_sick"] > 0.7 > 0.3 > by_status["employed"]
    with_ld = adults.loc[adults["has_learning_disability"], "census_disabled"].mean()
    without_any = adults.loc[~adults[[f"has_{c}" for c in CONDITIONS]].any(axis=1), "census_disabled"].mean()
    assert with_ld > without_any + 0.3


def test_audit_finds_disabled_people_over_represented_when_selection_favours_them(favoured):
    audit = _audit(favoured)
    ratios = audit.ratios_table().set_index(["programme", "characteristic", "category"])
    for programme in ("ways_to_work", "health_into_work"):
        assert ratios.loc[(programme, "disability", "Yes"), "ci_low"] > 1
        assert ratios.loc[(programme, "disability", "No"), "ci_high"] < 1
    assert "disability" in set(audit.standardised_table()["characteristic"])
    assert any(
        "Disabled people or people with a long-term health condition are over-represented" in s
        for s in audit.sentences()
    )
    tests = audit.tests_table().set_index(["programme", "characteristic"])
    assert tests.loc[("ways_to_work", "disability"), "p_g"] < 1e-4


def test_audit_finds_disabled_people_under_represented_when_selection_avoids_them(avoided):
    audit = _audit(avoided)
    ratios = audit.ratios_table().set_index(["programme", "characteristic", "category"])
    for programme in ("ways_to_work", "health_into_work"):
        assert ratios.loc[(programme, "disability", "Yes"), "ci_high"] < 1
        assert ratios.loc[(programme, "disability", "No"), "ci_low"] > 1
    std = audit.standardised_table().set_index(["programme", "characteristic", "category"])
    assert std.loc[("ways_to_work", "disability", "Yes"), "ci_high"] < 1
    assert any(
        "Disabled people or people with a long-term health condition are under-represented" in s
        for s in audit.sentences()
    )


@pytest.mark.usefixtures("master_secret_env")
def test_stage_charts_and_describes_disability_through_disclosure_control(avoided):
    from analysis.equity import run_equity_audit
    from ig_policies.demo import DEMO_USERS, demo_engine
    from ig_policies.workspace import write_parquet

    clients = _clients_from_truth(avoided)
    write_parquet(clients.assign(linked=True), avoided.analysis / "clients.parquet")
    result = run_equity_audit(avoided, demo_engine(avoided), DEMO_USERS["researcher"])
    by_name = {
        name: (status, folder)
        for (name, _, status), folder in zip(result.requests, result.pending, strict=True)
    }
    status, folder = by_name["equity-chart-disability"]
    assert status != "blocked"
    assert (folder / "preview" / "equity-chart-disability.png").read_bytes()[:4] == b"\x89PNG"
    ratios = pd.read_csv(
        by_name["equity-representation-ratios"][1] / "preview" / "equity-representation-ratios.csv"
    )
    assert "Ways to work: disabled or with a long-term condition" in set(ratios["term"])
    assert any("long-term health condition are under-represented" in s for s in result.sentences)
