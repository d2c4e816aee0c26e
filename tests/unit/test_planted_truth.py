"""The planted truth matches the generator: every recorded planted parameter is recomputed from
the generated files of one region and must lie within its sampling error.

Each parameter is estimated the way it was planted, so a truth file that drifts from the
generator (a parameter applied on another scale, conditional on other terms, or overwritten by
later code) fails here:

* selection and outcome odds ratios: logistic regressions on exactly the planted terms;
* area elasticities: a Poisson regression of LSOA counts on log prevalences with LA effects and
  the residents 16+ as exposure (the planted model is multiplicative in the expected count);
* enrolment effects on health-service use: a two-way fixed-effects Poisson model (person and
  calendar month), with the planted condition rate ratios as an offset from each diagnosis month;
* representation ratios: each group's share of a programme's clients over its
  share of the comparison population.

Values are read from ``truth/planted.json`` only, never written here. The region is the cheapest
that gives tight intervals: 60,000 people, 70% of the eligible residents enrolling (the
calibrated intercepts absorb it; odds ratios do not move) and LSOAs of 200 residents; the
effect fits use 8,000 enrolled patients. Measured on the shared 2-core machine under a load
average of 12: generation ~18 s, the effect fits 60-110 s, selection ~10 s, the rest a few
seconds; so those tests are marked ``slow``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from ig_policies.workspace import Workspace
from synthetic import SynthConfig, generate_region
from synthetic.config import CONDITIONS, MEASURES

PEOPLE = 60_000
SEED = 7
#: standard errors allowed between estimate and planted value. About 100 values are checked, so
#: 3.5 keeps the chance that any honest estimate falls outside near 5%; the seed is fixed, so the
#: result is reproducible. The region is large enough that the drift the issue reported (0.49
#: recorded as 0.6) is more than 4 standard errors.
Z = 3.5
#: enrolled patients used for the effect fits (in patient-id order, which is unrelated to people)
EFFECT_PATIENTS = 8_000
ENROL_START, ENROL_END = pd.Timestamp("2021-01-01"), pd.Timestamp("2023-12-31")
BAND_EDGES = [(16, 24, "16-24"), (25, 34, "25-34"), (35, 49, "35-49"), (50, 64, "50-64")]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    base = SynthConfig()
    cfg = base.model_copy(
        update={
            "selection": base.selection.model_copy(update={"rate": 0.7}),
            "geography": base.geography.model_copy(update={"people_per_lsoa": 200}),
        }
    )
    ws = Workspace.open(tmp_path_factory.mktemp("planted") / "ws")
    generate_region(ws, PEOPLE, seed=SEED, config=cfg)
    return ws, json.loads((ws.truth / "planted.json").read_text())


# ---------------------------------------------------------------------------------------------
# estimation helpers


def _design(
    frame: pd.DataFrame,
    categorical: dict[str, dict[str, float]],
    binary: dict[str, float],
    references: dict[str, str],
):
    """Design matrix of the planted terms; returns it with the planted log contrast of each column.

    The truth records each categorical's odds ratios against its reference category
    (``reference_categories``); the estimable contrast of level k against that level r is
    log OR_k - log OR_r (log OR_r is 0 as recorded; dividing keeps the check honest if not).
    """
    columns: dict[str, np.ndarray] = {"const": np.ones(len(frame))}
    planted: dict[str, float] = {}
    for var, table in categorical.items():
        values = frame[var].astype(str).to_numpy()
        ref = references[var]
        assert (values == ref).any(), f"no {var} {ref} in the data to compare with"
        present = [k for k in table if k != ref and (values == k).any()]
        for level in present:
            name = f"{var}={level}"
            columns[name] = (values == level).astype(float)
            planted[name] = math.log(table[level]) - math.log(table[ref])
    for var, odds_ratio in binary.items():
        columns[var] = frame[var].astype(float).to_numpy()
        planted[var] = math.log(odds_ratio)
    return pd.DataFrame(columns, index=frame.index), planted


def _assert_within(estimates: pd.Series, errors: pd.Series, planted: dict[str, float], what: str) -> None:
    misses = {
        term: (round(math.exp(estimates[term]), 3), round(math.exp(value), 3), round(errors[term], 3))
        for term, value in planted.items()
        if abs(estimates[term] - value) > Z * errors[term]
    }
    assert not misses, f"{what}: estimate, planted, SE of the log: {misses}"


def _logit(y: np.ndarray, x: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    fit = sm.Logit(y.astype(float), x).fit(disp=0, maxiter=100)
    return fit.params, fit.bse


def _completed_years(born: pd.Series, on: pd.Timestamp) -> np.ndarray:
    b = pd.to_datetime(born)
    before_birthday = (b.dt.month > on.month) | ((b.dt.month == on.month) & (b.dt.day > on.day))
    return (on.year - b.dt.year - before_birthday.astype(int)).to_numpy()


def _band(age: np.ndarray) -> np.ndarray:
    out = np.full(len(age), "", dtype=object)
    for low, high, label in BAND_EDGES:
        out[(age >= low) & (age <= high)] = label
    return out


def _quintile(decile: pd.Series) -> np.ndarray:
    return ((decile.to_numpy() + 1) // 2).astype(str)


# ---------------------------------------------------------------------------------------------
# tests


@pytest.mark.slow
def test_job_start_and_sustainment_odds_ratios_match_the_generated_outcomes(region):
    ws, planted = region
    truth = planted["outcomes"]
    enrol = pd.read_parquet(ws.truth / "enrolments.parquet")
    persons = pd.read_parquet(
        ws.truth / "persons.parquet", columns=["person_id", "sex", "ethnicity", "imd_decile"]
    )
    e = enrol.merge(persons, on="person_id", how="left", validate="many_to_one")
    e["female"] = e["sex"] == "F"
    e["imd_quintile"] = _quintile(e["imd_decile"])
    for c in CONDITIONS:
        e[c] = e[f"gp_{c}"]

    # the realised rate is exactly what the files hold
    assert truth["realised_job_start_rate"] == pytest.approx(e["job_start"].mean(), abs=1e-6)

    odds = truth["job_start_odds_ratios"]
    x, want = _design(
        e,
        {k: odds[k] for k in ("age_band", "ethnicity", "imd_quintile", "programme")},
        {"female": odds["female"]} | odds["condition"],
        truth["reference_categories"],
    )
    _assert_within(*_logit(e["job_start"].to_numpy(), x), want, "job start")

    started = e[e["job_start"]]
    sus = truth["sustained_odds_ratios"]
    x, want = _design(
        started, {"programme": sus["programme"]}, sus["condition"], truth["reference_categories"]
    )
    _assert_within(*_logit(started["sustained_26_weeks"].to_numpy(), x), want, "sustained 26 weeks")


@pytest.mark.slow
def test_selection_odds_ratios_match_who_enrolled(region):
    """Selection uses characteristics on a date drawn per resident that the files do not hold, so
    the check uses residents for whom that date cannot matter: aged 16-64 and in the same age band
    through the whole enrolment window, alive and registered throughout, and with no planted
    condition diagnosed during it. Restricting on characteristics leaves the logistic model intact."""
    ws, planted = region
    odds = planted["selection"]["odds_ratios"]
    p = pd.read_parquet(ws.truth / "persons.parquet")
    conditions = pd.read_parquet(ws.landing / "health" / "conditions.parquet")
    conditions["diagnosis_date"] = pd.to_datetime(conditions["diagnosis_date"])

    age_start = _completed_years(p["date_of_birth"], ENROL_START)
    age_end = _completed_years(p["date_of_birth"], ENROL_END)
    band = _band(age_start)
    keep = (band != "") & (band == _band(age_end))
    death = pd.to_datetime(p["date_of_death"])
    keep &= (death.isna() | (death > ENROL_END)).to_numpy() & p["patient_id"].notna().to_numpy()
    planted_conditions = list(odds["condition"])
    during = conditions[
        conditions["condition"].isin(planted_conditions)
        & conditions["diagnosis_date"].between(ENROL_START, ENROL_END)
    ]
    keep &= ~p["patient_id"].isin(during["patient_id"]).to_numpy()

    frame = pd.DataFrame(
        {
            "enrolled": p["enrolments"].to_numpy() > 0,
            "age_band": band,
            "female": (p["sex"] == "F").to_numpy(),
            "ethnicity": p["ethnicity"].to_numpy(),
            "imd_quintile": _quintile(p["imd_decile"]),
            "economic_status": p["economic_status"].to_numpy(),
            "patient_id": p["patient_id"].to_numpy(),
        }
    )[keep]
    before = conditions[conditions["diagnosis_date"] < ENROL_START]
    for c in planted_conditions:
        frame[c] = frame["patient_id"].isin(before.loc[before["condition"] == c, "patient_id"])
    x, want = _design(
        frame,
        {k: odds[k] for k in ("age_band", "ethnicity", "imd_quintile", "economic_status")},
        {"female": odds["female"]} | odds["condition"],
        planted["selection"]["reference_categories"],
    )
    assert len(frame) > 15_000 and frame["enrolled"].sum() > 3_000
    _assert_within(*_logit(frame["enrolled"].to_numpy(), x), want, "selection")


@pytest.mark.slow
def test_area_elasticities_match_the_census_counts(region):
    ws, planted = region
    ea = planted["economic_activity"]
    area = pd.read_parquet(ws.truth / "area_truth.parquet")
    assert len(area) >= 250
    x = pd.DataFrame({f"log_{c}": np.log(area[f"prevalence_{c}"]) for c in CONDITIONS})
    for la in sorted(area["lad22cd"].unique()):
        x[la] = (area["lad22cd"] == la).astype(float)
    for status, key in (
        ("inactive_sick", "elasticities_inactive_sick"),
        ("unemployed", "elasticities_unemployed"),
    ):
        fit = sm.GLM(
            area[f"count_{status}"].to_numpy(),
            x,
            family=sm.families.Poisson(),
            exposure=area["residents_16_plus"].to_numpy(),
        ).fit(scale="X2")
        want = {f"log_{c}": ea[key].get(c, 0.0) for c in CONDITIONS}
        misses = {
            c: (round(fit.params[c], 3), v, round(fit.bse[c], 3))
            for c, v in want.items()
            if abs(fit.params[c] - v) > Z * fit.bse[c]
        }
        assert not misses, f"{status} elasticities: estimate, planted, SE: {misses}"


def _two_way_poisson(y: np.ndarray, at_risk: np.ndarray, offset: np.ndarray, post: np.ndarray):
    """Poisson MLE of ``y_it ~ a_i * b_t * exp(offset_it + beta * post_it)`` over at-risk cells,
    by alternating closed-form updates; returns beta and its person-clustered sandwich SE."""
    w = at_risk * np.exp(offset)
    a, b, beta = np.ones(y.shape[0]), np.ones(y.shape[1]), 0.0
    for _ in range(200):
        e = np.exp(beta * post)
        a = y.sum(1) / np.maximum((w * e * b[None, :]).sum(1), 1e-300)
        b = y.sum(0) / np.maximum((w * e * a[:, None]).sum(0), 1e-300)
        mu_post = (w * a[:, None] * b[None, :] * post).sum()
        new = math.log((y * post).sum() / mu_post)
        if abs(new - beta) < 1e-7:
            beta = new
            break
        beta = new
    mu = w * a[:, None] * b[None, :] * np.exp(beta * post)
    # sandwich with both sets of effects partialled out: post minus its mu-weighted projection on
    # person and month effects (alternating projections), as fixed-effects Poisson software does
    resid = post.copy()
    for _ in range(100):
        resid -= ((mu * resid).sum(1) / np.maximum(mu.sum(1), 1e-300))[:, None]
        step = (mu * resid).sum(0) / np.maximum(mu.sum(0), 1e-300)
        resid -= step[None, :]
        if np.abs(step).max() < 1e-6:
            break
    info = (mu * resid**2).sum()
    score = (resid * (y - mu)).sum(1)
    return beta, math.sqrt((score**2).sum()) / info


@pytest.mark.slow
def test_enrolment_effects_on_service_use_match_the_activity(region):
    ws, planted = region
    effect = planted["health_effect"]
    condition_rr = planted["activity"]["condition_log_rate_ratio"]
    # enrolled patients only: their staggered enrolment months identify the calendar months too,
    # and a fixed number of them keeps the fit's cost fixed
    persons = pd.read_parquet(ws.truth / "persons.parquet").dropna(
        subset=["patient_id", "first_enrolment_date"]
    )
    activity = pd.read_parquet(ws.landing / "health" / "activity.parquet")
    activity = activity[activity["patient_id"].isin(persons["patient_id"])]
    conditions = pd.read_parquet(ws.landing / "health" / "conditions.parquet")
    start = pd.Period("2019-01", "M")

    patients = persons["patient_id"].to_numpy()
    row = pd.Series(np.arange(len(patients)), index=patients)
    n_months = planted["study_window"]["months"]
    months = np.arange(n_months)

    def month_of(dates: pd.Series, missing: int) -> np.ndarray:
        d = pd.to_datetime(dates)
        idx = (d.dt.year - start.year) * 12 + (d.dt.month - 1)
        return idx.fillna(missing).astype(int).to_numpy()

    first = month_of(persons["registration_start"], -1)
    last = np.minimum(
        month_of(persons["registration_end"], n_months), month_of(persons["date_of_death"], n_months)
    )
    at_risk = ((months[None, :] >= first[:, None]) & (months[None, :] <= last[:, None])).astype(float)
    enrolled_from = month_of(persons["first_enrolment_date"], 10_000)
    post = (months[None, :] >= enrolled_from[:, None]).astype(float)

    conditions = conditions[conditions["patient_id"].isin(persons["patient_id"])]
    diag = conditions.assign(m=month_of(conditions["diagnosis_date"], 10_000))
    act = activity.assign(r=activity["patient_id"].map(row).to_numpy(), m=month_of(activity["month"], -1))
    checked = 0
    for measure in MEASURES:
        offset = np.zeros(at_risk.shape)
        for c in CONDITIONS:
            rr = condition_rr[c][measure]
            if rr:
                d = diag[diag["condition"] == c]
                # as generated: a diagnosis before the window raises every month
                onset = np.full(len(patients), 10_000)
                onset[row[d["patient_id"]].to_numpy()] = np.maximum(d["m"].to_numpy(), 0)
                offset += rr * (months[None, :] >= onset[:, None])
        y = np.zeros(at_risk.shape)
        a = act[act["measure"] == measure]
        np.add.at(y, (a["r"].to_numpy(), a["m"].to_numpy()), a["count"].to_numpy())
        beta, se = _two_way_poisson(y, at_risk, offset, post)
        want = effect["log_rate_ratio"][measure]
        assert abs(beta - want) <= Z * se, (measure, round(beta, 4), want, round(se, 4))
        checked += 1
    assert checked == len(MEASURES)


@pytest.mark.slow
def test_representation_ratios_match_the_clients(region):
    """Representation ratios are read from the truth: programme -> characteristic -> category.

    The comparison population is the generator's own definition
    (``synthetic.representation.in_comparison_population``); clients count once per programme,
    with their age band at their first enrolment on it."""
    ws, planted = region
    recorded = planted["selection"]["representation_ratios"]
    from synthetic.representation import in_comparison_population

    persons = pd.read_parquet(ws.truth / "persons.parquet")
    enrol = pd.read_parquet(ws.truth / "enrolments.parquet")
    population = persons[in_comparison_population(persons)].copy()
    population["imd_quintile"] = _quintile(population["imd_decile"])
    population["age_band"] = _band(population["age_at_census"].to_numpy())
    clients = enrol.sort_values("enrolment_date").drop_duplicates(["dataset", "person_id"])
    clients = clients[["dataset", "person_id", "age_band"]].merge(
        persons[["person_id", "sex", "ethnicity", "imd_decile"]], on="person_id"
    )
    clients["imd_quintile"] = _quintile(clients["imd_decile"])
    misses, checked = {}, 0
    for programme, by_characteristic in recorded.items():
        mine = clients[clients["dataset"] == programme]
        for characteristic, ratios in by_characteristic.items():
            pop_share = population[characteristic].astype(str).value_counts(normalize=True)
            counts = mine[characteristic].astype(str).value_counts()
            n = len(mine)
            for category, ratio in ratios.items():
                k = int(counts.get(category, 0))
                if k < 30 or ratio <= 0:
                    continue  # too few clients for a normal interval
                share = k / n
                estimate = math.log(share / pop_share[category])
                se = math.sqrt((1 - share) / k)
                checked += 1
                if abs(estimate - math.log(ratio)) > Z * se:
                    misses[(programme, characteristic, category)] = (round(math.exp(estimate), 3), ratio)
    assert checked >= 20, "too few groups with enough clients to check"
    assert not misses, f"representation ratios, estimate and planted: {misses}"


def test_odds_ratios_are_recorded_against_their_reference_category():
    """A configuration may give a baseline an odds ratio other than 1; the truth records what an
    analysis with the recorded baseline finds (ages 50-64 against 25-34 here: 1.2 / 2 = 0.6)."""
    from synthetic.region import PLANTED_REFERENCE, _against_reference

    recorded = _against_reference({"age_band": {"16-24": 2.4, "25-34": 2.0, "50-64": 1.2}, "female": 0.8})
    assert recorded["age_band"] == {"25-34": 1.0, "16-24": 1.2, "50-64": 0.6}
    assert recorded["female"] == 0.8
    # a baseline left out of the configuration has odds ratio 1, as the generator applies it
    assert _against_reference({"imd_quintile": {"1": 0.6}})["imd_quintile"] == {"3": 1.0, "1": 0.6}
    # the success analysis's default baselines are the planted ones, so its defaults find them
    from analysis.success import PREFERRED_REFERENCE

    shared = set(PLANTED_REFERENCE) & set(PREFERRED_REFERENCE)
    assert shared >= {"age_band", "ethnicity", "imd_quintile", "programme"}
    assert all(PLANTED_REFERENCE[v] == PREFERRED_REFERENCE[v] for v in shared)
