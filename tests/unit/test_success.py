"""Success factors: the logistic model recovers planted odds ratios on synthetic clients."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.success import SuccessConfig, fit_success_model, fit_success_models, load_success_config
from ig_policies.errors import ConfigError, InputError

PLANTED_OR = {
    "age_band: 55-64": 0.5,
    "sex: M": 1.5,
    "programme: health_into_work": 0.8,
    "sr_depression": 0.6,
    "gp_diabetes": 0.7,
}


def planted_clients(n: int = 6000, seed: int = 2, repeat_enrolments: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "client_pseudonym": [f"C{i:06d}" for i in range(n)],
            "client_cluster": [f"K{i:06d}" for i in range(n)],
            "age_band": rng.choice(["16-24", "25-34", "35-44", "55-64"], n, p=[0.2, 0.3, 0.3, 0.2]),
            "sex": rng.choice(["F", "M"], n),
            "ethnicity": rng.choice(["White", "Asian", "Black"], n, p=[0.8, 0.1, 0.1]),
            "imd_quintile": rng.integers(1, 6, n),
            "programme": rng.choice(["ways_to_work", "health_into_work"], n),
            "sr_depression": rng.random(n) < 0.3,
            "sr_asthma": rng.random(n) < 0.1,
            "linked": rng.random(n) < 0.85,
        }
    )
    df["gp_diabetes"] = pd.Series(rng.random(n) < 0.15, dtype="boolean").where(df["linked"], pd.NA)

    def has(mask: pd.Series) -> np.ndarray:
        return mask.fillna(False).to_numpy(dtype=bool).astype(float)

    lp = np.full(n, math.log(0.6))
    lp += math.log(PLANTED_OR["age_band: 55-64"]) * has(df["age_band"] == "55-64")
    lp += math.log(PLANTED_OR["sex: M"]) * has(df["sex"] == "M")
    lp += math.log(PLANTED_OR["programme: health_into_work"]) * has(df["programme"] == "health_into_work")
    lp += math.log(PLANTED_OR["sr_depression"]) * has(df["sr_depression"])
    lp += math.log(PLANTED_OR["gp_diabetes"]) * has(df["gp_diabetes"])
    df["job_start"] = rng.random(n) < 1 / (1 + np.exp(-lp))
    df["sustained_26_weeks"] = df["job_start"] & (rng.random(n) < 0.6)
    # some people enrol twice: same person, same outcome, clustered standard errors must cope
    dup = df.sample(repeat_enrolments, random_state=seed).assign(
        client_pseudonym=lambda d: d["client_pseudonym"] + "b"
    )
    return pd.concat([df, dup], ignore_index=True)


def within(table: pd.DataFrame, term: str, truth: float, n_se: float = 3.0) -> bool:
    """The estimate is within ``n_se`` standard errors of the planted odds ratio (log scale)."""
    return abs(table.loc[term, "coefficient"] - math.log(truth)) < n_se * table.loc[term, "std_error"]


def test_recovers_planted_odds_ratios_with_people_counts():
    clients = planted_clients()
    config = SuccessConfig(reference={"age_band": "25-34", "sex": "F", "programme": "ways_to_work"})
    models = {m.name: m for m in fit_success_models(clients, config)}
    assert set(models) == {"all_clients", "linked_clients"}
    allc = models["all_clients"].odds_ratios.set_index("term")
    for term in ("age_band: 55-64", "sex: M", "programme: health_into_work", "sr_depression"):
        assert within(allc, term, PLANTED_OR[term]), term
    # an effect that is not there is not found, and asthma (no planted effect) covers 1
    assert allc.loc["sr_asthma", "ci_low"] < 1 < allc.loc["sr_asthma", "ci_high"]
    # counts are of people: the duplicated enrolments do not add people
    assert models["all_clients"].fit["n_people"] == 6000
    assert models["all_clients"].fit["n_enrolments"] == 6300
    assert (
        allc.loc["sr_depression", "n_people"]
        == clients.drop_duplicates("client_cluster")["sr_depression"].sum()
    )

    linked = models["linked_clients"].odds_ratios.set_index("term")
    assert within(linked, "gp_diabetes", PLANTED_OR["gp_diabetes"])
    assert within(linked, "sr_depression", PLANTED_OR["sr_depression"])
    assert linked.loc["gp_diabetes", "ci_high"] < 1  # the planted GP effect is detected
    assert models["linked_clients"].fit["n_people"] < 6000


def test_sentences_and_fit_statistics():
    model = fit_success_model(
        planted_clients(n=3000, repeat_enrolments=0),
        "job_start",
        ["age_band", "sex"],
        ["sr_depression"],
        reference={"age_band": "25-34", "sex": "F"},
    )
    assert 0.5 < model.fit["c_statistic"] < 0.8
    assert model.fit["residual_df"] == 3000 - len(model.odds_ratios)
    assert any(s.startswith("People who reported depression had lower odds") for s in model.sentences)


def test_rare_conditions_are_left_out():
    clients = planted_clients(n=2000, repeat_enrolments=0)
    clients["sr_epilepsy"] = False
    clients.loc[:4, "sr_epilepsy"] = True
    model = fit_success_model(
        clients, "job_start", ["sex"], ["sr_epilepsy", "sr_depression"], min_people_with_condition=10
    )
    assert "sr_epilepsy" not in set(model.odds_ratios["term"])
    assert "sr_depression" in set(model.odds_ratios["term"])


def test_missing_outcome_and_bad_reference_are_plain_errors():
    clients = planted_clients(n=500, repeat_enrolments=0).drop(columns="sustained_26_weeks")
    with pytest.raises(InputError, match="sustained_26_weeks"):
        fit_success_model(clients, "sustained_26_weeks", ["sex"], [])
    with pytest.raises(ConfigError, match="reference category 'X'"):
        fit_success_model(clients, "job_start", ["sex"], [], reference={"sex": "X"})


def test_config_file_errors_name_file_and_key(tmp_path: Path):
    good = tmp_path / "success.yaml"
    good.write_text("outcome: sustained_26_weeks\ngp_conditions: false\n")
    assert load_success_config(good).outcome == "sustained_26_weeks"
    bad = tmp_path / "bad.yaml"
    bad.write_text("outcome: got_a_job\n")
    with pytest.raises(ConfigError) as err:
        load_success_config(bad)
    assert "bad.yaml" in str(err.value) and "outcome" in str(err.value)
    assert load_success_config(None) == SuccessConfig()


@pytest.mark.usefixtures("master_secret_env")
def test_stage_requests_both_models_and_charts(workspace):
    from analysis.success import run_success_factors
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_USERS, demo_engine
    from ig_policies.workspace import write_parquet

    write_parquet(planted_clients(n=3000, repeat_enrolments=100), workspace.analysis / "clients.parquet")
    config = SuccessConfig(covariates=["age_band", "sex", "programme"])
    result = run_success_factors(workspace, demo_engine(workspace), DEMO_USERS["researcher"], config)
    names = [n for n, _, _ in result.requests]
    assert names == [
        "success-job-start-all-clients",
        "success-job-start-all-clients-chart",
        "success-job-start-linked-clients",
        "success-job-start-linked-clients-chart",
    ]
    assert not result.blocked
    released = pd.read_csv(result.pending[0] / "preview" / "success-job-start-all-clients.csv").set_index(
        "term"
    )
    assert {"n_people_rounded", "n_events_rounded"} <= set(released.columns)
    assert released.loc["sr_depression", "estimate"] < 1
    assert any(s.startswith("People who reported depression had lower odds") for s in result.sentences)
    entry = [e for e in AuditLog.for_workspace(workspace).entries() if e["action"] == "success_factors"][-1]
    assert entry["decision"] == "allowed"

    retention = SuccessConfig(outcome="sustained_26_weeks", among_job_starts=True, gp_conditions=False)
    models = fit_success_models(planted_clients(n=3000, repeat_enrolments=0), retention)
    assert models[0].fit["n_people"] < 1500  # only those who started a job
    with pytest.raises(ConfigError, match="among_job_starts"):
        fit_success_models(planted_clients(n=500, repeat_enrolments=0), SuccessConfig(among_job_starts=True))
