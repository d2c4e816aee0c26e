"""Interrupted time series on the monthly aggregate series around enrolment.

The simplest design the programme can explain: add up everyone's counts by month relative to
enrolment, and ask whether the series jumps (level change) or bends (slope change) at enrolment
beyond its pre-enrolment trend. Counts are modelled by a segmented Poisson (or negative binomial)
regression with the person-months at risk as exposure, so months missing because people were not
registered do not look like falls in use.

Seasonality: event time mixes calendar months (people enrol in different months), so each event
month's seasonal position is the exposure-weighted average of its people's calendar-month harmonics.
Shocks common to everyone (the spring-2020 fall in contacts) are not seasonal and, when enrolment
is concentrated in a few years, land in the same event months for most clients; given a reference
series (the never-enrolled pool's rate by calendar month), each person-month's exposure is weighted
by that month's reference index instead, which removes seasonality and common shocks alike.

Standard errors must allow for autocorrelation. The aggregate series is autocorrelated mainly
because the *same people* make up neighbouring months (a frequent attender lifts every month they
are in), and the mix of people drifts along event time as windows are cut by the study period. A
Newey–West (HAC) sandwich with a few lags on a 49-point series misses that long-memory correlation:
on simulated data its 95% intervals covered the truth only 70-80% of the time. Because a Poisson
model of the aggregate series is the same model as a Poisson model of the person-months with
series-level covariates, the sandwich can instead be clustered by person (each person's score summed
over their months), which allows any correlation between a person's months; that is the default
(``errors="person_cluster"``). ``errors="hac"`` gives Newey–West errors (with a t reference
distribution, the series being short); the negative binomial family always uses HAC.

It has no comparison group: anything else that changes around enrolment (the reason people enrol)
is attributed to enrolment. The event study and the matched comparison exist for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from analysis.natural_experiment.panel import (
    PanelColumns,
    check_clients_panel,
    checked_months,
    checked_outcome,
    month_index,
)
from analysis.natural_experiment.results import Z95, Estimate
from ig_policies.errors import InputError

Family = Literal["poisson", "negative_binomial"]
Errors = Literal["person_cluster", "hac"]


@dataclass(frozen=True)
class ItsResult:
    estimate: Estimate  # level change at enrolment (relative change = rate ratio - 1)
    slope_change: float  # change in the monthly log-rate trend after enrolment
    slope_change_ci: tuple[float, float]
    series: pd.DataFrame  # event_time, count, person_months, n_people, rate, fitted, counterfactual


def calendar_weights(months: pd.Series, calendar_rate: pd.Series | None) -> np.ndarray:
    """Each person-month's calendar-time index: the reference rate in that month over its mean.

    ``calendar_rate`` (rate per person-month by calendar month, e.g. in never-enrolled patients)
    carries the seasonality and shocks common to everyone (a pandemic dip); months it does not
    cover get 1. Without a reference every month weighs 1.
    """
    if calendar_rate is None or len(calendar_rate) == 0:
        return np.ones(len(months))
    ref = pd.Series(calendar_rate.to_numpy(dtype=float), index=month_index(calendar_rate.index))
    ref = ref[ref > 0]
    index = ref / ref.mean()
    return index.reindex(month_index(months)).fillna(1.0).to_numpy()


def aggregate_series(series_rows: pd.DataFrame, calendar_rate: pd.Series | None = None) -> pd.DataFrame:
    """Event-time series: total count, person-months, calendar-expected months, people, harmonics.

    ``series_rows`` has one row per person-month with ``person``, ``month``, ``event_time`` and
    ``count`` (as ``_series_rows`` builds it from the researcher's panel).
    """
    moy = month_index(series_rows["month"]) % 12
    work = pd.DataFrame(
        {
            "event_time": series_rows["event_time"].to_numpy(),
            "count": series_rows["count"].to_numpy(dtype=float),
            "expected": calendar_weights(series_rows["month"], calendar_rate),
            "cos1": np.cos(2 * np.pi * moy / 12),
            "sin1": np.sin(2 * np.pi * moy / 12),
            "cos2": np.cos(4 * np.pi * moy / 12),
            "sin2": np.sin(4 * np.pi * moy / 12),
        }
    )
    g = work.groupby("event_time")
    series = g.agg(
        count=("count", "sum"),
        expected=("expected", "sum"),
        cos1=("cos1", "mean"),
        sin1=("sin1", "mean"),
        cos2=("cos2", "mean"),
        sin2=("sin2", "mean"),
    )
    series["person_months"] = g.size()
    series["n_people"] = series_rows.groupby("event_time")["person"].nunique()
    return series.reset_index()


def _series_rows(panel: pd.DataFrame, outcome: str, columns: PanelColumns, source: str) -> pd.DataFrame:
    """The panel checked against ``columns``, as person, month, event time (worked out) and count."""
    clients = check_clients_panel(panel, columns, source)
    counts = checked_outcome(panel, outcome, source, counts=True)
    return pd.DataFrame(
        {
            "person": clients.codes,
            "month": checked_months(panel, columns.month, source).to_numpy(),
            "event_time": clients.event_time,
            "count": counts,
        }
    )


def interrupted_time_series(
    panel: pd.DataFrame,
    outcome: str,
    family: Family = "poisson",
    maxlags: int | None = None,
    errors: Errors = "person_cluster",
    calendar_rate: pd.Series | None = None,
    *,
    columns: PanelColumns | None = None,
    source: str = "panel",
) -> ItsResult:
    """Segmented regression: log rate = a + b*k + level*post + slope*k*post + seasonality.

    ``panel`` is the clients' person-month panel, checked against ``columns`` (the person, the
    calendar month and the enrolment month; months since enrolment are worked out from the two
    months); ``outcome`` must be a count column (whole numbers are not required, negatives are
    refused). With ``calendar_rate`` (see ``calendar_weights``) the exposure of each event month is
    its person-months weighted by the calendar index, so seasonality and shocks common to everyone
    are taken out by the reference population instead of harmonics ("controlled" time series).
    """
    import statsmodels.api as sm

    if family not in ("poisson", "negative_binomial"):
        raise InputError(source, f"family '{family}' is not one of poisson, negative_binomial")
    if errors not in ("person_cluster", "hac"):
        raise InputError(source, f"errors '{errors}' is not one of person_cluster, hac")
    rows = _series_rows(panel, outcome, columns or PanelColumns(), source)
    series = aggregate_series(rows, calendar_rate)
    controlled = calendar_rate is not None and len(calendar_rate) > 0
    series = series[series["person_months"] > 0].reset_index(drop=True)
    if (series["event_time"] < 0).sum() < 3 or (series["event_time"] >= 0).sum() < 3:
        raise InputError(
            source,
            "the panel needs at least three months before and three after enrolment for a time series",
            hint="rebuild the research dataset with a wider window (--months-before/--months-after).",
        )
    k = series["event_time"].to_numpy(dtype=float)
    post = (k >= 0).astype(float)
    X = pd.DataFrame({"const": 1.0, "trend": k, "level": post, "slope": k * post})
    for h in ("cos1", "sin1", "cos2", "sin2"):
        # A harmonic that barely varies across event time (enrolment spread evenly over the
        # calendar) would be collinear with the intercept: leave it out.
        if not controlled and series[h].std() > 0.02:
            X[h] = series[h].to_numpy()
    y = series["count"].to_numpy()
    person_months = series["person_months"].to_numpy(dtype=float)
    exposure = series["expected"].to_numpy(dtype=float)
    n = len(series)
    lags = maxlags if maxlags is not None else max(1, int(np.floor(4 * (n / 100) ** (2 / 9))))
    if family == "negative_binomial":
        pois = sm.GLM(y, X, family=sm.families.Poisson(), exposure=exposure).fit()
        mu = pois.fittedvalues
        alpha = max(1e-8, float(((y - mu) ** 2 - y).sum() / (mu**2).sum()))
        fam = sm.families.NegativeBinomial(alpha=alpha)
    else:
        fam = sm.families.Poisson()
    fit = sm.GLM(y, X, family=fam, exposure=exposure).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True
    )
    level, slope = float(fit.params["level"]), float(fit.params["slope"])
    ci = fit.conf_int(alpha=0.05)
    hac_ci = (float(ci.loc["level", 0]), float(ci.loc["level", 1]))
    lo, hi = hac_ci
    s_lo, s_hi = (float(v) for v in ci.loc["slope"])
    p_value = float(fit.pvalues["level"])
    if errors == "person_cluster" and family == "poisson":
        cov = _person_clustered_cov(
            rows,
            series["event_time"].to_numpy(),
            X,
            fit.params.to_numpy(),
            exposure,
            calendar_weights(rows["month"], calendar_rate),
        )
        se = np.sqrt(np.diag(cov))
        j_level, j_slope = X.columns.get_loc("level"), X.columns.get_loc("slope")
        lo, hi = level - Z95 * se[j_level], level + Z95 * se[j_level]
        s_lo, s_hi = slope - Z95 * se[j_slope], slope + Z95 * se[j_slope]
        p_value = float(2 * stats.norm.sf(abs(level) / se[j_level]))
    else:
        errors = "hac"

    fitted = fit.predict(X, exposure=exposure)
    X_cf = X.assign(level=0.0, slope=0.0)
    counterfactual = fit.predict(X_cf, exposure=exposure)
    post_mask = post == 1
    cf_rate = float(counterfactual[post_mask].sum() / person_months[post_mask].sum())
    rr = np.exp(level)
    effect = cf_rate * (rr - 1)  # level change, per person-month, at the counterfactual rate
    est = Estimate(
        estimator="interrupted_time_series",
        outcome=outcome,
        effect=float(effect),
        ci_low=float(cf_rate * (np.exp(lo) - 1)),
        ci_high=float(cf_rate * (np.exp(hi) - 1)),
        relative_change=float(rr - 1),
        relative_ci_low=float(np.exp(lo) - 1),
        relative_ci_high=float(np.exp(hi) - 1),
        p_value=p_value,
        n_people=int(rows["person"].nunique()),
        n_comparison_people=0,
        n_person_months=int(person_months.sum()),
        details={
            "family": family,
            "errors": errors,
            "calendar_reference": controlled,
            "hac_maxlags": lags,
            "hac_relative_ci": (float(np.exp(hac_ci[0]) - 1), float(np.exp(hac_ci[1]) - 1)),
            "slope_change": slope,
            "slope_change_ci": (s_lo, s_hi),
            "months_in_series": n,
            "counterfactual_mean": cf_rate,
        },
    )
    series = series.assign(
        rate=y / person_months,
        fitted=np.asarray(fitted) / person_months,
        counterfactual=np.asarray(counterfactual) / person_months,
    )
    return ItsResult(estimate=est, slope_change=slope, slope_change_ci=(s_lo, s_hi), series=series)


def _person_clustered_cov(
    rows: pd.DataFrame,
    event_times: np.ndarray,
    X: pd.DataFrame,
    params: np.ndarray,
    exposure: np.ndarray,
    row_weights: np.ndarray,
) -> np.ndarray:
    """Poisson sandwich with each person's score summed over their months (CR1 small-sample factor)."""
    Xa = X.to_numpy(dtype=float)
    rate = np.exp(Xa @ params)  # per unit of exposure, by event time
    row_of = pd.Series(np.arange(len(event_times)), index=event_times)
    k = row_of.reindex(rows["event_time"].to_numpy()).to_numpy()
    keep = ~np.isnan(k)
    k = k[keep].astype(np.int64)
    resid = rows["count"].to_numpy(dtype=float)[keep] - rate[k] * row_weights[keep]
    codes, uniques = pd.factorize(rows["person"].to_numpy()[keep])
    scores = np.zeros((len(uniques), Xa.shape[1]))
    for j in range(Xa.shape[1]):
        scores[:, j] = np.bincount(codes, weights=resid * Xa[k, j], minlength=len(uniques))
    bread = np.linalg.inv((Xa * (exposure * rate)[:, None]).T @ Xa)
    g = len(uniques)
    meat = scores.T @ scores * (g / max(g - 1, 1))
    return bread @ meat @ bread
