"""Natural-experiment estimators on simulated panels with a planted (known) effect, and with none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.natural_experiment import estimate_all
from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.panel import DensePanel, index_to_month, month_index
from analysis.natural_experiment.simulation import simulate_region

PLANTED = {"gp_appointments": -0.15, "ae_attendances": -0.2}


@pytest.fixture(scope="module")
def planted():
    return simulate_region(n_clients=2500, n_pool=5000, seed=11, effects=PLANTED)


@pytest.fixture(scope="module")
def null():
    return simulate_region(n_clients=2500, n_pool=5000, seed=12, effects={})


# ---- the dense panel ----------------------------------------------------------------------


def test_dense_panel_leaves_unobserved_months_missing_not_zero() -> None:
    panel = pd.DataFrame(
        {
            "client_pseudonym": ["A", "A", "B"],
            "month": pd.to_datetime(["2020-01-01", "2020-03-01", "2020-02-01"]),
            "enrolment_month": pd.to_datetime(["2020-02-01", "2020-02-01", "2020-03-01"]),
            "gp_appointments": [0, 2, 1],
        }
    )
    dp = DensePanel.from_long(panel, "gp_appointments")
    assert dp.y.shape == (2, 3)
    assert dp.y[0, 0] == 0 and np.isnan(dp.y[0, 1]) and dp.y[0, 2] == 2
    assert np.isnan(dp.y[1, 0]) and np.isnan(dp.y[1, 2])
    assert dp.cohort.tolist() == [1, 2]
    assert index_to_month(month_index(panel["month"]))[1] == pd.Timestamp("2020-03-01")


# ---- event study --------------------------------------------------------------------------


def _noise_free_panel(seed: int, missing: float) -> tuple[pd.DataFrame, dict[int, float]]:
    """y = person effect + calendar effect + tau(e) after enrolment; tau grows with time since enrolment.

    With dynamic effects like these a two-way fixed-effects regression is biased; group-time effects
    against not-yet-enrolled people recover tau exactly, missing months or not.
    """
    rng = np.random.default_rng(seed)
    n, months = 400, 60
    cohort = rng.integers(5, 55, size=n)
    person = rng.normal(size=n) * 3
    calendar = np.cumsum(rng.normal(size=months))
    tau = {e: 0.1 * (e + 1) for e in range(0, 25)}
    rows = []
    for i in range(n):
        for t in range(max(0, cohort[i] - 24), min(months, cohort[i] + 25)):
            if rng.random() < missing:
                continue
            e = t - cohort[i]
            rows.append((f"C{i}", t, cohort[i], e, person[i] + calendar[t] + (tau[e] if e >= 0 else 0.0)))
    df = pd.DataFrame(rows, columns=["client_pseudonym", "t", "c", "event_time", "y"])
    df["month"] = index_to_month(2019 * 12 + df["t"].to_numpy())
    df["enrolment_month"] = index_to_month(2019 * 12 + df["c"].to_numpy())
    return df, tau


@pytest.mark.parametrize("missing", [0.0, 0.15])
def test_event_study_recovers_dynamic_effects_exactly_without_noise(missing: float) -> None:
    df, tau = _noise_free_panel(seed=3, missing=missing)
    study = event_study(DensePanel.from_long(df, "y"), "y", placebo_shift=None)
    table = study.table.dropna(subset=["effect"]).set_index("event_time")
    for e in range(0, 10):
        assert table.loc[e, "effect"] == pytest.approx(tau[e], abs=1e-9)
    pre = table.loc[table.index < -1, "effect"]
    assert len(pre) > 10 and np.allclose(pre, 0.0, atol=1e-9)
    assert study.overall.effect == pytest.approx(np.mean([tau[e] for e in table.index if e >= 0]), abs=1e-9)


def test_event_study_finds_planted_effect_and_passes_pretrend_and_placebo(planted) -> None:
    study = event_study(DensePanel.from_long(planted.panel, "gp_appointments"), "gp_appointments")
    est = study.overall
    assert est.relative_ci_high < 0  # significant fall
    assert est.relative_ci_low <= PLANTED["gp_appointments"] <= est.relative_ci_high
    assert -0.25 < est.relative_change < -0.07
    assert est.effect < 0 and est.ci_low < est.effect < est.ci_high
    assert 0 < est.n_people <= 2500 and est.n_comparison_people > 0 and est.n_person_months > 0
    assert study.pretrend_p > 0.01 and study.pretrend_df > 10
    assert study.placebo is not None and study.placebo.relative_ci_low < 0 < study.placebo.relative_ci_high
    table = study.table
    assert (table.loc[table["event_time"] == -1, "effect"] == 0).all()
    assert table.loc[table["effect"].notna(), "n_people"].min() > 0


def test_event_study_finds_nothing_when_nothing_is_planted(null) -> None:
    est = event_study(DensePanel.from_long(null.panel, "gp_appointments"), "gp_appointments").overall
    assert est.relative_ci_low < 0 < est.relative_ci_high
    assert abs(est.relative_change) < 0.06


@settings(max_examples=5, deadline=None)
@given(shift=st.floats(min_value=-3, max_value=3), seed=st.integers(0, 1000))
def test_event_study_ignores_constant_person_differences(shift: float, seed: int) -> None:
    region = simulate_region(n_clients=150, n_pool=10, seed=seed, effects={"gp_appointments": -0.1})
    panel = region.panel
    dense = DensePanel.from_long(panel, "gp_appointments")
    moved = DensePanel(
        dense.person, dense.cohort, dense.y + shift * (np.arange(dense.n_people) % 3)[:, None], dense.t0
    )
    a = event_study(dense, "gp_appointments", placebo_shift=None).overall.effect
    b = event_study(moved, "gp_appointments", placebo_shift=None).overall.effect
    assert a == pytest.approx(b, abs=1e-9)


# ---- interrupted time series --------------------------------------------------------------


def test_its_finds_planted_level_change(planted) -> None:
    res = interrupted_time_series(planted.panel, "gp_appointments")
    est = res.estimate
    assert est.relative_ci_high < 0
    assert est.relative_ci_low <= PLANTED["gp_appointments"] <= est.relative_ci_high
    assert abs(res.slope_change) < 0.01
    assert est.n_person_months == len(planted.panel)
    assert set(res.series.columns) >= {"event_time", "rate", "fitted", "counterfactual", "n_people"}


def test_its_negative_binomial_and_null(null) -> None:
    for family in ("poisson", "negative_binomial"):
        est = interrupted_time_series(null.panel, "ae_attendances", family=family).estimate
        assert est.relative_ci_low < 0 < est.relative_ci_high


# ---- matched comparison -------------------------------------------------------------------


def test_matched_comparison_finds_planted_effect(planted) -> None:
    est = matched_comparison(
        planted.panel, planted.comparison_people, planted.comparison_pool, "gp_appointments"
    )
    assert est.relative_ci_high < 0
    assert est.relative_ci_low <= PLANTED["gp_appointments"] <= est.relative_ci_high
    assert est.n_people > 0.8 * 2500 * 0.9  # most clients find a match
    assert est.n_comparison_people > 100


def test_matched_comparison_null(null) -> None:
    est = matched_comparison(null.panel, null.comparison_people, null.comparison_pool, "gp_appointments")
    assert est.relative_ci_low < 0 < est.relative_ci_high


def test_matched_comparison_without_any_match_reports_no_effect(planted) -> None:
    pool_people = planted.comparison_people.assign(sex="X")  # nobody shares a stratum
    est = matched_comparison(planted.panel, pool_people, planted.comparison_pool, "gp_appointments")
    assert est.n_people == 0 and np.isnan(est.effect) and est.details["unmatched_people"] > 0


# ---- all designs together -----------------------------------------------------------------


def test_estimate_all_reports_every_design_for_each_outcome(planted) -> None:
    res = estimate_all(
        planted.panel,
        planted.comparison_people,
        planted.comparison_pool,
        outcomes=("ae_attendances",),
    )
    table = res.table()
    assert set(table["estimator"]) == {
        "interrupted_time_series",
        "event_study",
        "event_study_placebo",
        "matched_comparison",
    }
    main = table[table["estimator"] != "event_study_placebo"]
    assert (main["relative_change"] < 0).all()
    assert {"effect", "ci_low", "ci_high", "relative_change", "n_people", "n_person_months"} <= set(
        table.columns
    )


# ---- the stage: policy engine, disclosure control, audit ----------------------------------


@pytest.mark.usefixtures("master_secret_env")
def test_stage_requests_outputs_through_disclosure_control_and_is_audited(workspace, tmp_path) -> None:
    import json

    from analysis.natural_experiment import run_natural_experiment
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_USERS, demo_engine, write_demo_policy
    from ig_policies.errors import InputError, PolicyRefused
    from ig_policies.workspace import write_parquet

    engine = demo_engine(workspace)
    with pytest.raises(InputError, match="research dataset"):
        run_natural_experiment(workspace, engine, DEMO_USERS["researcher"])
    region = simulate_region(n_clients=800, n_pool=1500, seed=5, effects=PLANTED)
    write_parquet(region.panel, workspace.analysis / "panel.parquet")
    write_parquet(region.comparison_people, workspace.analysis / "comparison_people.parquet")
    write_parquet(region.comparison_pool, workspace.analysis / "comparison_pool.parquet")
    run = run_natural_experiment(
        workspace, engine, DEMO_USERS["researcher"], outcomes=("gp_appointments", "ae_attendances")
    )
    names = [name for name, _, _ in run.requests]
    assert names == [
        "natural-experiment-estimates",
        "natural-experiment-event-study",
        "natural-experiment-event-study-plot",
        "natural-experiment-time-series",
    ]
    assert not run.blocked, run.requests
    for folder in run.pending:
        assert folder.parent == workspace.pending and (folder / "check_report.txt").exists()
    plot = run.pending[2]
    assert next((plot / "preview").glob("*.png")).read_bytes()[:4] == b"\x89PNG"
    released = pd.read_csv(next((run.pending[0] / "preview").glob("*.csv")))
    assert not any("pseudonym" in c for c in released.columns)
    assert {"relative_change", "relative_ci_lower", "n_people_rounded"} <= set(released.columns)
    assert released["note"].fillna("").eq("").all()  # nothing withheld at 800 clients
    by_event_time = pd.read_csv(next((run.pending[1] / "preview").glob("*.csv")))
    assert {"estimate", "ci_lower", "relative_change", "relative_ci_lower", "relative_ci_upper"} <= set(
        by_event_time.columns
    )
    shown = by_event_time[by_event_time["note"].fillna("").eq("") & (by_event_time["event_time"] >= 0)]
    assert len(shown) > 20 and (shown["relative_ci_lower"] < shown["relative_ci_upper"]).all()
    entries = AuditLog.for_workspace(workspace).entries()
    stage = [e for e in entries if e["action"] == "natural_experiment"]
    assert stage[-1]["decision"] == "allowed" and stage[-1]["analysis"] == "natural_experiment"
    assert "C0000001" not in json.dumps(entries)
    assert "C0000001" not in "".join(
        p.read_text(errors="ignore") for f in run.pending for p in f.rglob("*.txt")
    )

    with pytest.raises(PolicyRefused):
        run_natural_experiment(workspace, engine, DEMO_USERS["data_processor"])
    narrow = write_demo_policy(tmp_path / "narrow.yaml", {"analyses": ["equity_audit"]})
    with pytest.raises(PolicyRefused, match="natural_experiment"):
        run_natural_experiment(workspace, demo_engine(workspace, narrow), DEMO_USERS["researcher"])


@pytest.mark.usefixtures("master_secret_env")
def test_cli_runs_the_analysis_and_says_what_is_missing(workspace) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
    from ig_policies.errors import EXIT_BAD_INPUT
    from ig_policies.workspace import write_parquet

    common = [
        "analyse",
        "natural-experiment",
        "--workspace",
        str(workspace.root),
        "--policy",
        str(DEMO_POLICY),
        "--trust-store",
        str(DEMO_TRUST_STORE),
    ]
    runner = CliRunner()
    missing = runner.invoke(app, common)
    assert missing.exit_code == EXIT_BAD_INPUT and "ehl research-dataset" in missing.output
    bad = runner.invoke(app, [*common, "--measure", "steps_walked"])
    assert bad.exit_code == EXIT_BAD_INPUT and "steps_walked" in bad.output
    region = simulate_region(n_clients=400, n_pool=10, seed=8, effects=PLANTED, measures=("gp_appointments",))
    write_parquet(region.panel, workspace.analysis / "panel.parquet")
    ok = runner.invoke(app, [*common, "--measure", "gp_appointments", "--placebo-shift", "0"])
    assert ok.exit_code == 0, ok.output
    assert "gp_appointments:" in ok.output and "outputs/pending/" in ok.output


def test_its_with_a_calendar_reference_removes_a_common_shock() -> None:
    # Enrolment in months 24..59 and a 40% dip in months 15..26 for everyone: the dip sits just
    # before enrolment for the early cohorts, so the uncontrolled series sees a spurious rise.
    region = simulate_region(
        n_clients=2500,
        n_pool=5000,
        seed=21,
        effects={"gp_appointments": -0.1},
        measures=("gp_appointments",),
        enrolment_range=(24, 60),
        common_shock=(15, 27, 0.6),
    )
    reference = region.comparison_pool.groupby("month")["gp_appointments"].mean()
    plain = interrupted_time_series(region.panel, "gp_appointments").estimate
    controlled = interrupted_time_series(region.panel, "gp_appointments", calendar_rate=reference).estimate
    assert controlled.details["calendar_reference"] and not plain.details["calendar_reference"]
    assert controlled.covers(-0.1)
    assert abs(controlled.relative_change + 0.1) < abs(plain.relative_change + 0.1)
