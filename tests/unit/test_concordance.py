"""Concordance of self-reported and GP-recorded conditions against planted error rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa

from analysis.concordance import cohen_kappa, concordance_table, describe_concordance, wilson_interval


def planted(
    n: int = 4000, seed: int = 3, sensitivity: float = 0.6, false_report: float = 0.02
) -> pd.DataFrame:
    """GP-recorded depression in 25% of people; clients report it with the planted sensitivity and
    report it falsely with probability ``false_report`` (so PPV follows from Bayes' rule)."""
    rng = np.random.default_rng(seed)
    gp = rng.random(n) < 0.25
    sr = np.where(gp, rng.random(n) < sensitivity, rng.random(n) < false_report)
    df = pd.DataFrame(
        {
            "client_pseudonym": [f"C{i}" for i in range(n)],
            "client_cluster": [f"K{i}" for i in range(n)],
            "programme": "ways_to_work",
            "enrolment_date": pd.Timestamp("2022-01-01"),
            "linked": True,
            "sr_depression": sr,
            "gp_depression": pd.Series(gp, dtype="boolean"),
        }
    )
    unlinked = df.head(500).assign(
        client_pseudonym=lambda d: "U" + d["client_pseudonym"],
        client_cluster=lambda d: "U" + d["client_cluster"],
        linked=False,
        gp_depression=pd.NA,
        sr_depression=True,
    )
    return pd.concat([df, unlinked], ignore_index=True)


def test_recovers_planted_sensitivity_and_ppv_among_linked_people_only():
    row = concordance_table(planted()).iloc[0]
    assert row["condition"] == "depression"
    assert row["people"] == 4000  # the unlinked clients are not counted
    assert row["sensitivity_ci_low"] < 0.6 < row["sensitivity_ci_high"]
    ppv = 0.25 * 0.6 / (0.25 * 0.6 + 0.75 * 0.02)
    assert row["ppv_ci_low"] < ppv < row["ppv_ci_high"]
    assert row["both"] + row["self_report_only"] + row["gp_record_only"] + row["neither"] == 4000
    assert describe_concordance(row).startswith(
        f"depression: of clients on the GP register, {row['sensitivity']:.0%}"
    )


def test_repeat_enrolments_count_once():
    df = planted(n=300)
    again = df[df["linked"]].head(50).assign(client_pseudonym=lambda d: d["client_pseudonym"] + "b")
    row = concordance_table(pd.concat([df, again])).iloc[0]
    assert row["people"] == 300


def test_kappa_matches_statsmodels_reference():
    table = np.array([[120, 15], [80, 785]])
    kappa, low, high = cohen_kappa(120, 15, 80, 785)
    ref = cohens_kappa(table)
    assert kappa == pytest.approx(ref.kappa)
    assert (low, high) == pytest.approx((ref.kappa_low, ref.kappa_upp), abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200), st.integers(0, 200))
def test_kappa_and_wilson_properties(a: int, b: int, c: int, d: int):
    kappa, low, high = cohen_kappa(a, b, c, d)
    if not np.isnan(kappa):
        assert -1 <= kappa <= 1 + 1e-12
        assert low <= kappa <= high
    if b == 0 and c == 0 and a > 0 and d > 0:
        assert kappa == pytest.approx(1.0)  # perfect agreement
    lo, hi = wilson_interval(a, a + b)
    if a + b:
        assert 0 <= lo <= a / (a + b) <= hi <= 1


@pytest.mark.usefixtures("master_secret_env")
def test_stage_releases_counts_and_estimates_with_small_cells_withheld(workspace):
    from analysis.concordance import run_concordance
    from ig_policies.demo import DEMO_USERS, demo_engine
    from ig_policies.workspace import write_parquet

    clients = planted(n=2000)
    # a rare condition: 4 people on the register who reported it -> its cells must be withheld
    rng = np.random.default_rng(9)
    clients["gp_epilepsy"] = pd.Series(False, index=clients.index, dtype="boolean").where(
        clients["linked"], pd.NA
    )
    clients["sr_epilepsy"] = False
    clients.loc[:3, ["gp_epilepsy", "sr_epilepsy"]] = True
    clients.loc[4:40, "sr_epilepsy"] = rng.random(37) < 0.5
    write_parquet(clients, workspace.analysis / "clients.parquet")
    result = run_concordance(workspace, demo_engine(workspace), DEMO_USERS["researcher"])
    assert [n for n, _, _ in result.requests] == [
        "concordance-counts",
        "concordance-estimates",
        "concordance-chart",
    ]
    estimates = pd.read_csv(result.pending[1] / "preview" / "concordance-estimates.csv").set_index("term")
    assert estimates.loc["epilepsy | sensitivity", "note"] == "suppressed"
    assert pd.isna(estimates.loc["epilepsy | sensitivity", "estimate"])
    assert 0.55 < estimates.loc["depression | sensitivity", "estimate"] < 0.65
    counts = pd.read_csv(result.pending[0] / "preview" / "concordance-counts.csv")
    assert "count_people_rounded" in counts.columns
    assert all(s.startswith("depression") for s in result.sentences)  # nothing said about epilepsy
