"""The equity audit's comparison population: configuration, census categories, and what outputs say.

Each programme's clients are compared with the out-of-work population the service is for
(default: aged 16-64, unemployed or economically inactive other than retired and students),
not with every out-of-work resident aged 16+, half of whom are retired.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from analysis.area_data import load_census_population_by_group
from analysis.equity import (
    ComparisonPopulation,
    ComparisonPopulations,
    audit_programmes,
    equity_outputs,
)
from analysis.equity.statistics import format_p
from ig_policies.errors import InputError

LA = "E08000011"
STATUS_LABELS = {
    "employed": "Economically active: In employment",
    "unemployed": "Economically active: Unemployed",
    "inactive_sick": "Economically inactive: Long-term sick or disabled",
    "inactive_home": "Economically inactive: Looking after home or family",
    "inactive_student": "Economically inactive: Student",
    "inactive_retired": "Economically inactive: Retired",
    "inactive_other": "Economically inactive: Other",
}
#: people per age band and status: retired people are mostly 65+, students mostly 16-24
PEOPLE = {
    "16-24": {"employed": 900, "unemployed": 200, "inactive_sick": 50, "inactive_home": 60,
              "inactive_student": 900, "inactive_retired": 0, "inactive_other": 90},
    "25-34": {"employed": 1500, "unemployed": 200, "inactive_sick": 100, "inactive_home": 200,
              "inactive_student": 100, "inactive_retired": 5, "inactive_other": 95},
    "35-49": {"employed": 2000, "unemployed": 200, "inactive_sick": 200, "inactive_home": 250,
              "inactive_student": 30, "inactive_retired": 20, "inactive_other": 100},
    "50-64": {"employed": 1600, "unemployed": 150, "inactive_sick": 300, "inactive_home": 150,
              "inactive_student": 5, "inactive_retired": 500, "inactive_other": 100},
    "65+": {"employed": 200, "unemployed": 20, "inactive_sick": 100, "inactive_home": 50,
            "inactive_student": 0, "inactive_retired": 4000, "inactive_other": 30},
}  # fmt: skip


def census_file(tmp_path) -> pd.DataFrame:
    rows = [
        {
            "lsoa21cd": "E01006512",
            "lad22cd": LA,
            "age_band": band,
            "sex": sex,
            "economic_activity": STATUS_LABELS[status],
            "count": n // 2,
        }
        for band, by_status in PEOPLE.items()
        for status, n in by_status.items()
        for sex in ("Female", "Male")
        if n
    ]
    path = tmp_path / "census_economic_activity_by_group.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return load_census_population_by_group(path)


def clients_in_proportion(population: pd.DataFrame, n: int = 4000, seed: int = 2) -> pd.DataFrame:
    """Clients drawn in proportion to ``population`` (so every true ratio is 1), two programmes."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(
        len(population), size=n, p=(population["people"] / population["people"].sum()).to_numpy()
    )
    drawn = population.iloc[idx].reset_index(drop=True)
    return pd.DataFrame(
        {
            "client_pseudonym": [f"C{i:05d}" for i in range(n)],
            "client_cluster": [f"K{i:05d}" for i in range(n)],
            "programme": np.where(np.arange(n) % 2 == 0, "ways_to_work", "health_into_work"),
            "enrolment_date": pd.Timestamp("2022-05-01"),
            "age_band": drawn["age_band"],
            "sex": drawn["sex"],
            "lad22cd": LA,
        }
    )


# --------------------------------------------------------------------------------------------
# Configuration


def test_default_is_working_age_out_of_work_without_retired_people_or_students():
    default = ComparisonPopulation()
    assert (default.min_age, default.max_age) == (16, 64)
    assert set(default.activity) == {"unemployed", "inactive_sick", "inactive_home", "inactive_other"}
    assert default.name() == "out-of-work population aged 16–64"
    assert default.definition() == (
        "census 2021 residents aged 16–64 who are unemployed or economically inactive (long-term sick or "
        "disabled, looking after home or family or another reason)"
    )
    assert default.left_out() == "employed people, students and retired people"
    assert ComparisonPopulations().for_programme("anything") == default


def test_configuration_is_strict_data():
    per_programme = ComparisonPopulations.model_validate(
        {"programmes": {"health_into_work": {"activity": ["inactive_sick"], "min_age": 25}}}
    )
    hiw = per_programme.for_programme("health_into_work")
    assert hiw.activity == ("inactive_sick",) and hiw.min_age == 25 and hiw.max_age == 64
    assert per_programme.for_programme("ways_to_work") == ComparisonPopulation()
    with pytest.raises(ValidationError, match="max_ages"):
        ComparisonPopulation.model_validate({"max_ages": 64})  # a typo is an error, not ignored
    with pytest.raises(ValidationError, match="activity"):
        ComparisonPopulation.model_validate({"activity": ["employed"]})
    with pytest.raises(ValidationError, match="above max_age"):
        ComparisonPopulation(min_age=50, max_age=30)
    with pytest.raises(ValidationError, match="twice"):
        ComparisonPopulation(activity=("unemployed", "unemployed"))
    with pytest.raises(ValidationError):
        ComparisonPopulation().min_age = 18  # type: ignore[misc]  # frozen


# --------------------------------------------------------------------------------------------
# The census table


def test_census_reasons_for_inactivity_are_kept_apart(tmp_path):
    census = census_file(tmp_path)
    assert set(census["status"]) == set(STATUS_LABELS)
    by = census.groupby("status")["people"].sum()
    assert by["inactive_retired"] == sum(PEOPLE[b]["inactive_retired"] // 2 * 2 for b in PEOPLE)
    # ONS labels with the student split of the active categories
    from analysis.area_data import _status_of

    assert _status_of("Economically active and a full-time student: Unemployed") == "unemployed"
    assert _status_of("Economically active and a full-time student: In employment") == "employed"
    assert _status_of("Economically inactive (excluding full-time students): Retired") == "inactive_retired"
    assert _status_of("Economically inactive: Looking after home or family") == "inactive_home"
    assert _status_of("Economically inactive") == "inactive_other"


def test_select_takes_the_ages_and_categories_and_refuses_a_cut_band(tmp_path):
    census = census_file(tmp_path)
    chosen = ComparisonPopulation().select(census)
    assert set(chosen["age_band"]) == {"16-24", "25-34", "35-49", "50-64"}
    assert set(chosen["status"]) == {"unemployed", "inactive_sick", "inactive_home", "inactive_other"}
    expected = sum(
        PEOPLE[b][s] // 2 * 2
        for b in ("16-24", "25-34", "35-49", "50-64")
        for s in ("unemployed", "inactive_sick", "inactive_home", "inactive_other")
    )
    assert chosen["people"].sum() == expected
    everyone = ComparisonPopulation(max_age=200, activity=tuple(s for s in STATUS_LABELS if s != "employed"))
    assert "65+" in set(everyone.select(census)["age_band"])
    with pytest.raises(
        InputError, match="'health_into_work' has the age range 18–64, which cuts the census age band 16-24"
    ):
        ComparisonPopulation(min_age=18).select(census, "census.csv", "health_into_work")
    with pytest.raises(InputError, match="no age bands"):
        ComparisonPopulation().select(census.drop(columns="age_band"))


# --------------------------------------------------------------------------------------------
# The audit and its outputs


def test_clients_in_proportion_to_the_comparison_population_read_as_in_proportion(tmp_path):
    """The bug this fixes: against every out-of-work resident 16+ (half retired), working-age
    clients read as over-represented; against the comparison population they do not."""
    census = census_file(tmp_path)
    clients = clients_in_proportion(ComparisonPopulation().select(census))
    audit = audit_programmes(clients, census)
    ratios = audit.ratios_table().set_index(["programme", "characteristic", "category"])
    for programme in ("ways_to_work", "health_into_work"):
        for band in ("16-24", "25-34", "35-49", "50-64"):
            row = ratios.loc[(programme, "age_band", band)]
            assert row["ci_low"] < 1 < row["ci_high"], (programme, band, row["ratio"])
    assert "65+" not in set(audit.ratios_table()["category"])
    assert audit.notes == ()
    unsplit = census.assign(status=census["status"].replace({"inactive_retired": "inactive_other"}))
    unsplit = unsplit.assign(status=unsplit["status"].replace({"inactive_student": "inactive_other"}))
    caveat = audit_programmes(clients, unsplit)
    assert caveat.notes and "does not give the reason" in caveat.notes[0]
    assert caveat.notes[0] in dict(equity_outputs(caveat, 10))["equity-representation-ratios"].population
    # the old population basis (all ages, retired included) shows the spurious over-representation
    old = census[census["status"] != "employed"]
    wrong = audit_programmes(clients, {"age_band": old}, "out_of_work").ratios_table()
    assert (wrong.loc[wrong["category"] == "35-49", "ci_low"] > 1.3).all()


def test_each_programme_uses_its_own_configured_population(tmp_path):
    census = census_file(tmp_path)
    clients = clients_in_proportion(ComparisonPopulation().select(census))
    config = ComparisonPopulations(
        programmes={"health_into_work": ComparisonPopulation(activity=("inactive_sick",))}
    )
    audit = audit_programmes(clients, census, comparison=config)
    assert audit.populations["health_into_work"].activity == ("inactive_sick",)
    assert audit.populations["ways_to_work"] == ComparisonPopulation()
    by = {a.programme: a.population for a in audit.characteristics}
    assert by["health_into_work"].startswith("population aged 16–64 economically inactive through long-term")
    # basis="inactive_sick" narrows every programme's population, at the same ages
    sick = audit_programmes(clients, census, "inactive_sick")
    assert {c.activity for c in sick.populations.values()} == {("inactive_sick",)}


def test_outputs_are_readable_rounded_and_record_the_population(tmp_path):
    census = census_file(tmp_path)
    clients = clients_in_proportion(ComparisonPopulation().select(census))
    outputs = dict(equity_outputs(audit_programmes(clients, census), min_people=10))
    ratios = outputs["equity-representation-ratios"]
    table = ratios.coefficients
    assert "Health into work: aged 16–24" in set(table["term"]) and "Ways to work: women" in set(
        table["term"]
    )
    assert not table["term"].str.contains(r"\|").any()
    for column in ("estimate", "ci_lower", "ci_upper"):
        assert (table[column].dropna() == table[column].dropna().round(3)).all()
    assert (table["p_value"].dropna() == table["p_value"].dropna().round(4)).all()
    # the population (the reference) is in the metadata and the description, per programme
    for output in (ratios, outputs["equity-tests"], outputs["equity-chart-age-band"].table):
        assert (
            "Comparison population (the reference) for Health into work: census 2021 residents aged 16–64"
            in (output.population)
        )
    assert "Comparison population (the reference) for Ways to work" in ratios.description
    assert "1 means the same share" in ratios.description
    sentences = [line for line in ratios.description.splitlines() if " represented" in line]
    assert sentences and all(
        re.search(r"among (Health into work|Ways to work) clients", s) for s in sentences
    )
    assert all("out-of-work population aged 16–64" in s for s in sentences)
    assert not any(re.search(r"\d\.\d{3,}", s) for s in sentences)
    assert ratios.title.endswith("relative to the out-of-work population aged 16–64")


def test_p_values_read_as_people_say_them():
    assert format_p(1e-191) == "p < 0.001"
    assert format_p(0.0042) == "p = 0.004"
    assert format_p(0.2712) == "p = 0.27"
    assert format_p(float("nan")) == ""


def test_synthetic_region_plants_against_exactly_the_default_population():
    from synthetic import representation

    default = ComparisonPopulation()
    assert (default.min_age, default.max_age) == representation.COMPARISON_AGES
    # the generator's statuses and reasons, in the census categories the audit selects
    as_census = set(representation.COMPARISON_STATUSES) | {
        {"looking_after_home": "inactive_home", "other": "inactive_other"}[r]
        for r in representation.COMPARISON_INACTIVE_REASONS
    }
    assert as_census == set(default.activity)
