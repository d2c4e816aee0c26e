"""Health-service use against the comparison population: directly standardised rates and ratios."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.service_use import (
    client_months,
    comparison_months,
    describe_service_use,
    service_use_outputs,
    service_use_table,
    standardised_rate,
)

BANDS = ("16-24", "25-34", "35-49", "50-64")
#: comparison GP rate per person-year by age band (women 1.3 times men's)
BASE_RATE = {"16-24": 3.0, "25-34": 4.0, "35-49": 6.0, "50-64": 9.0}


def test_standardisation_matches_a_hand_computation():
    """Two strata, weights 0.25/0.75: 0.25 * 12 + 0.75 * 2 = 4.5 events per person-year."""
    per_person = pd.DataFrame(
        {
            "person": ["a", "b", "c", "d"],
            "age_band": ["16-24", "16-24", "50-64", "50-64"],
            "sex": ["F", "F", "F", "F"],
            "events": [10, 14, 1, 3],  # stratum 1: 24 events in 24 months; stratum 2: 4 in 24
            "months": [12, 12, 12, 12],
        }
    )
    weights = pd.Series({("16-24", "F"): 0.25, ("50-64", "F"): 0.75})
    got = standardised_rate(per_person, weights)
    assert got.rate == pytest.approx(0.25 * 12 + 0.75 * 2)
    # ratio-estimator variance per stratum: n/(n-1) * sum (y - r t)^2 / T^2
    var1 = 2 * ((10 - 12) ** 2 + (14 - 12) ** 2) / 2**2
    var2 = 2 * ((1 - 2) ** 2 + (3 - 2) ** 2) / 2**2
    se = math.sqrt(0.25**2 * var1 + 0.75**2 * var2)
    assert got.se_log == pytest.approx(se / 4.5)
    assert got.ci_low == pytest.approx(4.5 * math.exp(-1.959964 * se / 4.5))
    assert got.people == 4 and got.person_years == 4


def _planted_months(rate_ratio: float, seed: int = 4):
    """Clients (two programmes, older and more often male than the comparison) with every
    stratum's rate ``rate_ratio`` times the comparison's, and gamma frailty per person."""
    rng = np.random.default_rng(seed)
    frames = []
    for group, n, band_p, male_p in (
        ("ways_to_work", 1500, (0.1, 0.2, 0.3, 0.4), 0.6),
        ("health_into_work", 1500, (0.1, 0.2, 0.3, 0.4), 0.6),
        ("comparison", 6000, (0.4, 0.3, 0.2, 0.1), 0.45),
    ):
        band = rng.choice(BANDS, n, p=band_p)
        sex = np.where(rng.random(n) < male_p, "M", "F")
        base = np.array([BASE_RATE[b] for b in band]) * np.where(sex == "F", 1.3, 1.0) / 12
        mult = rate_ratio if group != "comparison" else 1.0
        frailty = rng.gamma(2.0, 0.5, n)
        months = 12
        counts = rng.poisson((base * mult * frailty)[:, None], (n, months))
        frames.append(
            pd.DataFrame(
                {
                    "person": np.repeat([f"{group}{i}" for i in range(n)], months),
                    "programme": group,
                    "age_band": np.repeat(band, months),
                    "sex": np.repeat(sex, months),
                    "month": np.tile(pd.date_range("2021-01-01", periods=months, freq="MS"), n),
                    "gp_appointments": counts.ravel(),
                }
            )
        )
    both = pd.concat(frames, ignore_index=True)
    return both[both["programme"] != "comparison"], both[both["programme"] == "comparison"]


def test_recovers_a_planted_rate_ratio_that_the_crude_ratio_overstates():
    clients, comparison = _planted_months(1.5)
    table = service_use_table(clients, comparison, ["gp_appointments"]).set_index("programme")
    for programme in ("ways_to_work", "health_into_work"):
        row = table.loc[programme]
        assert row["ratio_ci_low"] < 1.5 < row["ratio_ci_high"]
        assert row["ratio_ci_high"] / row["ratio_ci_low"] < 1.4  # informative, not merely wide
    crude = clients["gp_appointments"].mean() / comparison["gp_appointments"].mean()
    assert crude > 1.5 * 1.2  # older clients: the crude ratio is confounded by age


def test_no_difference_is_reported_as_none_and_sentences_name_the_programme():
    clients, comparison = _planted_months(1.0, seed=9)
    table = service_use_table(clients, comparison, ["gp_appointments"])
    for _, row in table.iterrows():
        assert row["ratio_ci_low"] < 1 < row["ratio_ci_high"]
        sentence = describe_service_use(row)
        assert "no clear difference" in sentence
        assert sentence.startswith(("Ways to work clients", "Health into work clients"))
        assert "GP appointments per person-year" in sentence
        # rounded: no figure with more than two decimals
        assert not any(len(tok.split(".")[-1].strip("(),;–")) > 2 for tok in sentence.split() if "." in tok)


def test_outputs_are_estimates_with_people_counts_and_rounded_numbers():
    clients, comparison = _planted_months(1.5)
    table = service_use_table(clients, comparison, ["gp_appointments"])
    [(name, result)] = service_use_outputs(table, min_people=10)
    assert name == "service-use-standardised-rates"
    coef = result.coefficients
    assert len(coef) == 5  # two programmes' rates, one comparison rate, two ratios
    assert (coef["n_people"] >= 1500).all()
    assert (coef["estimate"].round(3) == coef["estimate"]).all()
    assert "Ways to work clients had" in result.description


def test_panel_and_pool_are_cut_to_pre_enrolment_working_age_months():
    panel = pd.DataFrame(
        {
            "client_pseudonym": ["c1"] * 4 + ["c2"],
            "programme": "ways_to_work",
            "event_time": [-13, -12, -1, 0, -3],
            "age_band": ["25-34"] * 4 + ["unknown"],
            "sex": "F",
            "month": pd.to_datetime(["2020-01-01", "2020-02-01", "2021-01-01", "2021-02-01", "2021-01-01"]),
            "gp_appointments": [1, 2, 3, 4, 5],
        }
    )
    pre = client_months(panel, months_before=12)
    assert pre["event_time"].tolist() == [-12, -1]
    pool = pd.DataFrame(
        {
            "patient_pseudonym": ["p1", "p1", "p2"],
            "month": pd.to_datetime(["2019-06-01", "2020-06-01", "2020-06-01"]),
            "gp_appointments": [1, 1, 1],
        }
    )
    people = pd.DataFrame(
        {"patient_pseudonym": ["p1", "p2"], "year_of_birth": [1990, 1950], "sex": ["F", "M"]}
    )
    comp = comparison_months(pool, people, pre["month"])
    # p1 outside the clients' months in 2019 is left out; p2 is 70 in 2020 (not working age)
    assert comp["person"].tolist() == ["p1"] and comp["age_band"].tolist() == ["25-34"]


def test_no_shared_age_sex_group_is_a_plain_error():
    from ig_policies.errors import InputError

    clients, comparison = _planted_months(1.0)
    with pytest.raises(InputError, match="share no age-sex group"):
        service_use_table(
            clients[clients["sex"] == "M"], comparison[comparison["sex"] == "F"], ["gp_appointments"]
        )


def test_disclosure_control_passes_the_estimates_and_withholds_a_small_group():
    from analysis.disclosure import check_output
    from ig_policies.demo import DEMO_POLICY
    from ig_policies.policy import load_policy

    rules = load_policy(DEMO_POLICY).outputs
    clients, comparison = _planted_months(1.5)
    [(_, result)] = service_use_outputs(service_use_table(clients, comparison, ["gp_appointments"]), 10)
    report = check_output(result, rules)
    assert report.outcome.value != "fail" and len(report.protected) == 5
    hiw = clients[clients["programme"] == "health_into_work"]
    few = pd.concat(
        [clients[clients["programme"] == "ways_to_work"], hiw[hiw["person"].isin(hiw["person"].unique()[:3])]]
    )
    [(_, small)] = service_use_outputs(service_use_table(few, comparison, ["gp_appointments"]), 10)
    protected = check_output(small, rules).protected.set_index("term")
    withheld = protected[protected.index.str.startswith("Health into work")]
    assert len(withheld) == 2 and withheld["estimate"].isna().all()  # the 3-person programme's rows
    assert protected.loc[protected.index.str.startswith("Ways to work"), "estimate"].notna().all()


def _panel_and_pool(rate_ratio: float):
    """The research dataset's tables from the planted months: panel (event time -12..-1 and two
    months after, which must be ignored), comparison pool and comparison people."""
    clients, comparison = _planted_months(rate_ratio)
    enrolment = pd.Timestamp("2022-01-01")
    panel = clients.rename(columns={"person": "client_pseudonym"}).copy()
    panel["event_time"] = (panel["month"].dt.month - 13).astype("int16")  # Jan 2021 -> -12
    after = panel[panel["event_time"] >= -2].copy()
    after["event_time"] = after["event_time"] + 2
    after["month"] = enrolment + pd.to_timedelta(after["event_time"] * 31, unit="D")
    after["gp_appointments"] = 1000  # use after enrolment is not "before enrolment"
    panel = pd.concat([panel, after], ignore_index=True)
    for m in ("ae_attendances", "emergency_admissions", "outpatient_appointments", "antidepressant_items"):
        panel[m] = 0
    band_age = {"16-24": 20, "25-34": 30, "35-49": 42, "50-64": 57}
    people = comparison.drop_duplicates("person")[["person", "age_band", "sex"]]
    people = pd.DataFrame(
        {
            "patient_pseudonym": people["person"],
            "year_of_birth": [2021 - band_age[b] for b in people["age_band"]],
            "sex": people["sex"],
        }
    )
    pool = comparison.rename(columns={"person": "patient_pseudonym"})[
        ["patient_pseudonym", "month", "gp_appointments"]
    ].copy()
    return panel, pool, people


@pytest.mark.usefixtures("master_secret_env")
def test_stage_requests_the_standardised_rates_under_a_policy_that_permits_it(workspace, tmp_path):
    from analysis.service_use import run_service_use
    from ig_policies.demo import DEMO_POLICY, DEMO_USERS, demo_engine, write_demo_policy
    from ig_policies.errors import PolicyRefused
    from ig_policies.policy import Analysis, load_policy
    from ig_policies.workspace import write_parquet

    panel, pool, people = _panel_and_pool(1.5)
    write_parquet(panel, workspace.analysis / "panel.parquet")
    write_parquet(pool, workspace.analysis / "comparison_pool.parquet")
    write_parquet(people, workspace.analysis / "comparison_people.parquet")
    analyses = [str(a) for a in load_policy(DEMO_POLICY).analyses if a != Analysis.SERVICE_USE]
    permits = write_demo_policy(tmp_path / "policy.yaml", {"analyses": [*analyses, "service_use"]})
    result = run_service_use(workspace, demo_engine(workspace, permits), DEMO_USERS["researcher"])
    assert [(n, s) for n, _, s in result.requests] == [("service-use-standardised-rates", "pending")]
    estimates = pd.read_csv(result.pending[0] / "preview" / "service-use-standardised-rates.csv").set_index(
        "term"
    )
    ratio = estimates.loc["Health into work: GP appointments, rate ratio against the comparison population"]
    assert ratio["ci_lower"] < 1.5 < ratio["ci_upper"]  # months after enrolment were left out
    assert any(
        s.startswith("Health into work clients had") and "1.5" in s and "higher once age and sex" in s
        for s in result.sentences
    )

    refuses = write_demo_policy(tmp_path / "without.yaml", {"analyses": analyses})
    with pytest.raises(PolicyRefused, match="service_use"):
        run_service_use(workspace, demo_engine(workspace, refuses), DEMO_USERS["researcher"])
