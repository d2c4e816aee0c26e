"""Turn estimates into the typed outputs disclosure control understands.

Counts released beside an estimate (``n_people``, ``n_comparison_people``, ``n_person_months``)
are given exact: disclosure control checks every ``n_`` column against the threshold and rounds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from analysis.disclosure import Figure, ModelResult
from analysis.natural_experiment.its import ItsResult
from analysis.natural_experiment.plots import render_event_study
from analysis.natural_experiment.results import COMPARISON_WORDS, Estimate, EventStudy

SOURCE = "analysis/panel"


def estimates_output(estimates: Sequence[Estimate], studies: Sequence[EventStudy]) -> ModelResult:
    """One row per outcome and estimator: effect, 95% CI, relative change and its CI, people, months."""
    rows = []
    for est in estimates:
        rows.append(
            {
                "term": f"{est.outcome} | {est.estimator}",
                "estimate": est.effect,
                "ci_lower": est.ci_low,
                "ci_upper": est.ci_high,
                "p_value": est.p_value,
                "n_people": int(est.n_people),
                "relative_change": est.relative_change,
                "relative_ci_lower": est.relative_ci_low,
                "relative_ci_upper": est.relative_ci_high,
                # in the time series people are their own comparison (their months before enrolment)
                "n_comparison_people": (
                    est.n_people if est.estimator == "interrupted_time_series" else est.n_comparison_people
                ),
                "n_person_months": est.n_person_months,
            }
        )
    table = pd.DataFrame(rows)
    stats: dict[str, float] = {}
    for s in studies:
        stats[f"{s.outcome}_pretrend_chi2"] = s.pretrend_chi2
        stats[f"{s.outcome}_pretrend_df"] = float(s.pretrend_df)
        stats[f"{s.outcome}_pretrend_p_value"] = s.pretrend_p
    n_people = int(max((e.n_people for e in estimates), default=0))
    n_obs = int(max((e.n_person_months for e in estimates), default=0))
    return ModelResult(
        coefficients=table,
        n_obs=n_obs,
        n_people=n_people,
        source=SOURCE,
        title="Change in monthly health-service use after enrolment: three designs",
        kind="estimates",
        statistics=stats,
        population="linked employment-support clients (first enrolment), and never-enrolled registered patients",
        description=(
            "estimate: change in mean monthly count per person after enrolment; relative_change: as a "
            "fraction of the counterfactual mean. interrupted_time_series: level change at enrolment "
            "(segmented Poisson, HAC errors); event_study: compared with "
            f"{_comparison_words(studies)} (Callaway-Sant'Anna), "
            "average over post-enrolment months, person-clustered; event_study_placebo: same, enrolment moved "
            "earlier, pre-enrolment data only (expected zero); matched_comparison: coarsened exact matching "
            "then difference-in-differences. n_comparison_people: people in the comparison group (for the time "
            "series, the same clients before enrolment). *_pretrend_*: joint test that pre-enrolment effects are zero."
        ),
    )


def event_study_output(studies: Sequence[EventStudy]) -> ModelResult:
    """All outcomes' event-time effects, each row with the clients it rests on."""
    parts = []
    for s in studies:
        t = s.table.dropna(subset=["effect"]).copy()
        t = t[t["n_people"] > 0]
        parts.append(
            pd.DataFrame(
                {
                    "term": [f"{s.outcome}:e{int(e)}" for e in t["event_time"]],
                    "event_time": t["event_time"].astype(int).to_numpy(),
                    "estimate": t["effect"].to_numpy(),
                    "ci_lower": t["ci_low"].to_numpy(),
                    "ci_upper": t["ci_high"].to_numpy(),
                    "std_error": t["se"].to_numpy(),
                    "p_value": _p_values(t["effect"].to_numpy(), t["se"].to_numpy()),
                    "relative_change": t["relative_change"].to_numpy(),
                    "relative_ci_lower": t["relative_ci_low"].to_numpy(),
                    "relative_ci_upper": t["relative_ci_high"].to_numpy(),
                    "n_people": t["n_people"].astype(int).to_numpy(),
                    "n_comparison_people": t["n_comparison_people"].astype(int).to_numpy(),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return ModelResult(
        coefficients=table,
        n_obs=int(table["n_people"].sum()),
        n_people=int(table["n_people"].max()) if len(table) else 0,
        source=SOURCE,
        title="Event study: change in monthly use by months since enrolment",
        kind="event_study",
        population="linked employment-support clients (first enrolment)",
        description="estimate: change in mean monthly count per person at each event time, relative to the "
        f"month before enrolment (event time -1), comparing each enrolment cohort with {_comparison_words(studies)}"
        "; relative_change: the same change as a fraction of the counterfactual mean (-0.1 = 10% "
        "fewer); 95% CIs (ci_lower/ci_upper, relative_ci_lower/relative_ci_upper), person-clustered.",
    )


def its_output(results: Sequence[ItsResult]) -> ModelResult:
    """The aggregate series behind each ITS: observed, fitted and counterfactual rate per event time."""
    parts = []
    for r in results:
        s = r.series
        parts.append(
            pd.DataFrame(
                {
                    "term": [f"{r.estimate.outcome}:e{int(e)}" for e in s["event_time"]],
                    "event_time": s["event_time"].astype(int).to_numpy(),
                    "estimate": s["rate"].to_numpy(),
                    "ci_lower": np.nan,
                    "ci_upper": np.nan,
                    "p_value": np.nan,
                    "n_people": s["n_people"].astype(int).to_numpy(),
                    "fitted_rate": s["fitted"].to_numpy(),
                    "counterfactual_rate": s["counterfactual"].to_numpy(),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return ModelResult(
        coefficients=table,
        n_obs=int(table["n_people"].sum()),
        n_people=int(table["n_people"].max()) if len(table) else 0,
        source=SOURCE,
        title="Interrupted time series: monthly rate per person by months since enrolment",
        kind="time_series",
        population="linked employment-support clients (first enrolment)",
        description="estimate: observed mean count per person-month; fitted_rate and counterfactual_rate "
        "from the segmented regression (counterfactual: no level or slope change at enrolment).",
    )


def _comparison_words(studies: Sequence[EventStudy]) -> str:
    kinds = list(dict.fromkeys(s.comparison for s in studies)) or ["not_yet_enrolled"]
    return " / ".join(COMPARISON_WORDS[k] for k in kinds)


def event_study_figure(table: ModelResult, studies: Sequence[EventStudy] = ()) -> Figure:
    comparison = _comparison_words(studies)
    return Figure(
        table=table,
        title="Event study of health-service use around enrolment",
        render=partial(render_event_study, comparison=comparison),
        description="One panel per measure; points are event-time effects with 95% CIs.",
    )


def _p_values(effect: np.ndarray, se: np.ndarray) -> np.ndarray:
    from scipy import stats

    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(effect) / se
    p = 2 * stats.norm.sf(z)
    return np.where(se > 0, p, np.nan)
