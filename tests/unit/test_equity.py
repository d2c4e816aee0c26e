"""Equity audit: representation ratios, standardisation and linkage bias against planted selection."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.equity import (
    audit_programmes,
    describe_ratio,
    goodness_of_fit,
    harmonise_age_bands,
    linkage_skew,
    one_row_per_person,
    representation_ratios,
)
from analysis.linkage_weights import linkage_weights

AGE_W = {"16-24": 1.4, "25-34": 1.0, "35-49": 0.85, "50-64": 0.6}
ETH_W = {"White": 1.0, "Asian": 0.55, "Black": 1.0}
LAS = ["E08000011", "E08000012"]


def census_population() -> pd.DataFrame:
    """Out-of-work population by LA, age, sex, ethnicity and disability; the Asian share falls with
    age, so crude and age-standardised ethnicity comparisons differ."""
    rows = []
    asian_share = {"16-24": 0.25, "25-34": 0.15, "35-49": 0.08, "50-64": 0.04}
    for la, age, sex in itertools.product(LAS, AGE_W, ["F", "M"]):
        total = 20000 if age != "50-64" else 30000
        for eth in ETH_W:
            share = (
                asian_share[age]
                if eth == "Asian"
                else (1 - asian_share[age]) * (0.9 if eth == "White" else 0.1)
            )
            for dis, dshare in (("Yes", 0.2 + 0.1 * list(AGE_W).index(age)), ("No", 0.0)):
                dshare = dshare if dis == "Yes" else 1 - (0.2 + 0.1 * list(AGE_W).index(age))
                rows.append((la, age, sex, eth, dis, round(total * share * dshare)))
    return pd.DataFrame(rows, columns=["lad22cd", "age_band", "sex", "ethnicity", "disability", "people"])


def sampled_clients(pop: pd.DataFrame, n: int = 6000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    w = pop["people"] * pop["age_band"].map(AGE_W) * pop["ethnicity"].map(ETH_W)
    idx = rng.choice(len(pop), size=n, p=(w / w.sum()).to_numpy())
    cl = pop.iloc[idx].reset_index(drop=True)
    return pd.DataFrame(
        {
            "client_pseudonym": [f"C{i:05d}" for i in range(n)],
            "client_cluster": [f"K{i:05d}" for i in range(n)],
            "programme": "ways_to_work",
            "enrolment_date": pd.Timestamp("2022-05-01"),
            "age_band": cl["age_band"],
            "sex": cl["sex"],
            "ethnicity": cl["ethnicity"],
            "sr_depression": cl["disability"] == "Yes",
            "lad22cd": cl["lad22cd"],
        }
    )


def expected_crude_ratio(pop: pd.DataFrame, column: str, category: str) -> float:
    w = pop["people"] * pop["age_band"].map(AGE_W) * pop["ethnicity"].map(ETH_W)
    return (w[pop[column] == category].sum() / w.sum()) / (
        pop.loc[pop[column] == category, "people"].sum() / pop["people"].sum()
    )


@pytest.fixture(scope="module")
def audit():
    pop = census_population()
    clients = sampled_clients(pop)
    population = {c: pop for c in ("age_band", "sex", "ethnicity", "disability")}
    return (
        pop,
        clients,
        audit_programmes(clients, population, basis="out_of_work", lad_of_client=clients["lad22cd"]),
    )


def test_representation_ratios_recover_planted_selection(audit):
    pop, _, result = audit
    ratios = result.ratios_table().set_index(["characteristic", "category"])
    for age in AGE_W:
        truth = expected_crude_ratio(pop, "age_band", age)
        row = ratios.loc[("age_band", age)]
        assert row["ci_low"] < truth < row["ci_high"], (age, truth, row["ratio"])
    assert ratios.loc[("age_band", "50-64"), "ci_high"] < 1  # under-represented, and detected
    assert ratios.loc[("sex", "F"), "ci_low"] < 1 < ratios.loc[("sex", "F"), "ci_high"]  # no sex selection
    tests = result.tests_table().set_index("characteristic")
    assert tests.loc["age_band", "p_g"] < 1e-6 and tests.loc["sex", "p_g"] > 0.001


def test_age_sex_standardisation_removes_the_age_confounding(audit):
    pop, clients, result = audit
    std = result.standardised_table().set_index(["characteristic", "category"])
    crude = result.ratios_table().set_index(["characteristic", "category"])
    # the truth: within each age-sex stratum, Asian people are selected with relative weight 0.55
    strata = clients.groupby(["age_band", "sex"]).size()
    cell = pop.groupby(["age_band", "sex", "ethnicity"])["people"].sum()
    stratum = pop.groupby(["age_band", "sex"])["people"].sum()
    weighted = (cell * cell.index.get_level_values("ethnicity").map(ETH_W)).groupby(["age_band", "sex"]).sum()
    expected_asian = sum(strata[s] * cell[(*s, "Asian")] * 0.55 / weighted[s] for s in strata.index)
    census_expected = sum(strata[s] * cell[(*s, "Asian")] / stratum[s] for s in strata.index)
    truth = expected_asian / census_expected
    row = std.loc[("ethnicity", "Asian")]
    assert row["ci_low"] < truth < row["ci_high"]
    # young people are over-selected and more often Asian: the crude ratio flatters the programme
    assert crude.loc[("ethnicity", "Asian"), "ratio"] > row["ratio"] + 0.03
    # disability rises with age, clients are younger: crude under-representation, standardised fair
    assert crude.loc[("disability", "Yes"), "ci_high"] < 1
    assert std.loc[("disability", "Yes"), "ci_low"] < 1 < std.loc[("disability", "Yes"), "ci_high"]


def test_plain_english_lines(audit):
    _, _, result = audit
    lines = result.sentences()
    assert any(
        line.strip().startswith("People aged 50–64 are under-represented among Ways to work clients: their")
        for line in lines
    )
    assert describe_ratio(
        "age_band", "50-64", 0.62, 0.55, 0.70, "out-of-work population aged 16–64", "health_into_work"
    ) == (
        "People aged 50–64 are under-represented among Health into work clients: their share of clients "
        "is 0.62 times their share of the out-of-work population aged 16–64 (95% CI 0.55 to 0.70; p < 0.001)."
    )
    line = describe_ratio("sex", "F", 1.01, 0.95, 1.08, "inactive_sick")
    assert "represented in proportion" in line and "p = 0.76" in line


def test_representation_ratio_literal_table():
    out = representation_ratios(pd.Series({"a": 30, "b": 70}), pd.Series({"a": 5000, "b": 5000})).set_index(
        "category"
    )
    assert out.loc["a", "ratio"] == pytest.approx(0.6)
    assert out.loc["b", "ratio"] == pytest.approx(1.4)
    assert out.loc["a", "ci_low"] < 0.6 < out.loc["a", "ci_high"] < 1
    fit = goodness_of_fit(pd.Series({"a": 30, "b": 70}), pd.Series({"a": 5000, "b": 5000}))
    assert fit.chi_square == pytest.approx(16.0) and fit.df == 1


def test_counts_are_people_not_enrolments():
    df = pd.DataFrame(
        {
            "client_pseudonym": ["C1", "C2", "C3"],
            "client_cluster": ["K1", "K1", "K2"],
            "programme": ["p", "p", "p"],
            "enrolment_date": pd.to_datetime(["2022-02-01", "2021-01-01", "2021-01-01"]),
        }
    )
    out = one_row_per_person(df)
    assert sorted(out["client_pseudonym"]) == ["C2", "C3"]  # the earlier enrolment is kept


def test_age_bands_are_harmonised_to_common_cuts():
    maps = harmonise_age_bands(
        ["16-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown"],
        [
            "Aged 16 to 24 years",
            "Aged 25 to 34 years",
            "Aged 35 to 49 years",
            "Aged 50 to 64 years",
            "Aged 65 years and over",
        ],
    )
    assert maps["clients"] == {
        "16-24": "16-24",
        "25-34": "25-34",
        "35-44": "35-64",
        "45-54": "35-64",
        "55-64": "35-64",
        "65+": "65+",
    }
    assert maps["census"]["Aged 50 to 64 years"] == "35-64"


def test_linkage_skew_flags_a_planted_difference_only():
    rates = pd.DataFrame(
        {
            "group": ["overall"] + ["age_band"] * 4 + ["sex"] * 2,
            "level": ["all", "16-24", "50-64", "unknown", "65+", "F", "M"],
            "clients": [4504, 1000, 1000, 500, 4, 1000, 1000],
            "matched": [3706, 800, 900, 100, 0, 850, 852],
        }
    )
    rates["match_rate"] = rates["matched"] / rates["clients"]
    out = linkage_skew(rates).set_index("group")
    assert out.loc["age_band", "skewed"] and not out.loc["sex", "skewed"]
    # unknown and tiny levels (4 clients, none matched) are not quoted
    assert "from 80% (16-24) to 90% (50-64)" in out.loc["age_band", "sentence"]
    assert out.loc["age_band", "clients"] == 2000 and "overall" not in out.index


def test_linkage_weights_make_the_linked_subset_resemble_all_clients():
    rng = np.random.default_rng(4)
    n = 5000
    df = pd.DataFrame(
        {
            "age_band": rng.choice(["16-24", "25-34", "50-64"], n),
            "sex": rng.choice(["F", "M"], n),
            "programme": rng.choice(["a", "b"], n),
        }
    )
    p_link = df["age_band"].map({"16-24": 0.6, "25-34": 0.8, "50-64": 0.95})
    df["linked"] = rng.random(n) < p_link
    w = linkage_weights(df)
    assert w[~df["linked"]].isna().all()
    share_all = (df["age_band"] == "16-24").mean()
    linked = df[df["linked"]]
    share_unweighted = (linked["age_band"] == "16-24").mean()
    share_weighted = np.average(linked["age_band"] == "16-24", weights=w[df["linked"]])
    assert share_unweighted < share_all - 0.03  # the linked subset is skewed ...
    assert share_weighted == pytest.approx(share_all, abs=0.005)  # ... and the weights undo it
    assert w.mean() == pytest.approx(1.0, abs=0.05)  # stabilised


# --------------------------------------------------------------------------------------------
# The stage: policy engine, disclosure control, audit


def _stage_workspace(workspace, pop: pd.DataFrame, clients: pd.DataFrame) -> None:
    """Write the stage's inputs in their workspace layouts (synthetic census layout)."""
    from ig_policies.workspace import write_csv, write_parquet

    lsoa_of_la = {la: f"E0100000{i}" for i, la in enumerate(LAS)}
    lookup = pd.DataFrame(
        {
            "lsoa21cd": list(lsoa_of_la.values()),
            "lsoa21nm": ["A 001A", "B 001A"],
            "lad22cd": LAS,
            "lad22nm": ["Knowsley", "Liverpool"],
            "imd_decile": [1, 5],
        }
    )
    write_csv(lookup, workspace.reference / "lsoa_lookup.csv")
    out_of_work = pop.assign(
        economic_activity=np.where(
            pop["disability"] == "Yes",
            "Economically inactive: Long-term sick or disabled",
            "Economically active: Unemployed",
        )
    )
    employed = out_of_work.assign(
        economic_activity="Economically active: In employment", people=pop["people"] * 3
    )
    census = pd.concat([out_of_work, employed]).assign(
        lsoa21cd=lambda d: d["lad22cd"].map(lsoa_of_la),
        sex=lambda d: d["sex"].map({"F": "Female", "M": "Male"}),
    )
    census = census.rename(columns={"people": "count"})[
        ["lsoa21cd", "lad22cd", "age_band", "sex", "ethnicity", "economic_activity", "count"]
    ]
    write_csv(census, workspace.reference / "census_economic_activity_by_group.csv")
    rows = clients.assign(
        lsoa21cd=clients["lad22cd"].map(lsoa_of_la),
        local_authority=None,
        linked=np.arange(len(clients)) % 5 != 0,
    ).drop(columns="lad22cd")
    write_parquet(rows, workspace.analysis / "clients.parquet")
    rates = pd.DataFrame(
        {"group": ["sex", "sex"], "level": ["F", "M"], "clients": [3000, 3000], "matched": [2400, 2700]}
    ).assign(match_rate=lambda d: d["matched"] / d["clients"])
    write_parquet(rates, workspace.linked / "match_rates.parquet")
    write_parquet(
        rates, workspace.analysis / "match_rates.parquet"
    )  # the research dataset's copy, which researchers read


@pytest.mark.usefixtures("master_secret_env")
def test_stage_requests_outputs_through_disclosure_control_and_is_audited(workspace, tmp_path):
    import json

    from analysis.equity import ComparisonPopulation, ComparisonPopulations, run_equity_audit
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_USERS, demo_engine, write_demo_policy
    from ig_policies.errors import PolicyRefused

    pop = census_population()
    clients = sampled_clients(pop, n=3000)
    _stage_workspace(workspace, pop, clients)
    engine = demo_engine(workspace)
    result = run_equity_audit(workspace, engine, DEMO_USERS["researcher"], basis="out_of_work")
    names = [name for name, _, _ in result.requests]
    assert "equity-representation-ratios" in names and "equity-chart-age-band" in names
    assert "equity-linkage-bias" in names and "equity-age-sex-standardised" in names
    assert not result.blocked, result.requests
    for folder in result.pending:
        assert folder.parent == workspace.pending and (folder / "check_report.txt").exists()
    chart = next(
        f
        for (n, _, _), f in zip(result.requests, result.pending, strict=True)
        if n == "equity-chart-age-band"
    )
    assert (chart / "preview" / "equity-chart-age-band.png").read_bytes()[:4] == b"\x89PNG"
    assert any("50–64 are under-represented" in s for s in result.sentences)
    assert any("linked subset is skewed by sex" in s for s in result.sentences)
    entries = AuditLog.for_workspace(workspace).entries()
    stage = [e for e in entries if e["action"] == "equity_audit"]
    assert stage and stage[-1]["decision"] == "allowed" and stage[-1]["analysis"] == "equity_audit"
    text = json.dumps(entries)
    assert "C00001" not in text  # no client pseudonyms in the audit log

    # the comparison population is recorded in each output's metadata and description
    by_name = {n: f for (n, _, _), f in zip(result.requests, result.pending, strict=True)}
    saved = json.loads((by_name["equity-representation-ratios"] / "output" / "output.json").read_text())
    assert "for Ways to work: census 2021 residents aged 16–64 who are unemployed" in saved["population"]
    assert saved["title"].endswith("relative to the out-of-work population aged 16–64")
    assert "among Ways to work clients" in saved["description"]

    # the long-term-sick population basis, a configured population, and refusals
    sick = run_equity_audit(workspace, engine, DEMO_USERS["researcher"], basis="inactive_sick")
    assert sick.requests and any("long-term sickness or disability" in s for s in sick.sentences)
    older = run_equity_audit(
        workspace,
        engine,
        DEMO_USERS["researcher"],
        comparison=ComparisonPopulations(default=ComparisonPopulation(min_age=25)),
    )
    assert any("out-of-work population aged 25–64" in s for s in older.sentences)
    assert not any("People aged 16–24" in s for s in older.sentences)
    with pytest.raises(PolicyRefused):
        run_equity_audit(workspace, engine, DEMO_USERS["data_processor"])
    narrow = write_demo_policy(tmp_path / "narrow.yaml", {"analyses": ["natural_experiment"]})
    with pytest.raises(PolicyRefused, match="equity_audit"):
        run_equity_audit(workspace, demo_engine(workspace, narrow), DEMO_USERS["researcher"])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 500), min_size=2, max_size=6),
    st.lists(st.integers(1, 100_000), min_size=6, max_size=6),
)
def test_ratios_weighted_by_population_share_sum_to_one(clients: list[int], population: list[int]):
    """Clients' shares sum to 1, so the ratios weighted by the population shares must too."""
    cats = [f"c{i}" for i in range(len(clients))]
    if sum(clients) == 0:
        return
    out = representation_ratios(
        pd.Series(clients, index=cats), pd.Series(population[: len(cats)], index=cats)
    )
    assert (out["ratio"] * out["population_share"]).sum() == pytest.approx(1.0)
    has = out["clients"] > 0
    assert (out.loc[has, "ci_low"] <= out.loc[has, "ratio"]).all()
    assert (out.loc[has, "ratio"] <= out.loc[has, "ci_high"]).all()
