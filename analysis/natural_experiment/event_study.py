"""Staggered-adoption difference-in-differences: group-time effects aggregated to event time.

People enrol in different months. A two-way fixed-effects regression on such data compares
later enrollers with *earlier* enrollers as if the earlier ones were untreated, which biases the
estimate whenever the effect changes with time since enrolment. Instead, following Callaway and
Sant'Anna (2021), each enrolment cohort ``g`` (people who enrolled in calendar month ``g``) is
compared, month by month, only with people who had *not yet* enrolled:

    ATT(g, t) = mean over cohort g of [Y(t) - Y(g-1)]
              - mean over people enrolling after max(t, g-1) of [Y(t) - Y(g-1)]

using people observed in both months (the panel is unbalanced: months outside registration are
missing, not zero). The event-time effect ``theta(e)`` is the cohort-size weighted average of
``ATT(g, g+e)``; month ``e = -1`` is the common reference. Standard errors come from each person's
influence function, summed over every role the person plays (treated in their own cohort, control
for earlier cohorts), which makes them person-clustered and gives the covariance of all event-time
effects at once (for the pre-trend test and the overall effect) without bootstrapping.

People who never enrolled can join the comparison explicitly (``never_enrolled=``): they count as
"enrolling after" every month. In Callaway and Sant'Anna's terms that is the "not yet treated"
comparison group with the never-treated included, and a universal base period ``g-1`` (``g-1-δ``
with anticipation δ) for every ``t``; with those settings the ATT(g, t) and their analytic
standard errors equal the ``differences`` package's on a balanced panel (a test checks it).

Each event time's effect is also given on the relative scale: divided by the counterfactual mean
(the treated people's observed mean at that event time minus the effect), with a delta-method CI
from the same influence functions.

Everything is vectorised over people within a cohort: 100k people x 48 months takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.natural_experiment.panel import DensePanel, PanelColumns, index_to_month
from analysis.natural_experiment.results import (
    Z95,
    Estimate,
    EventStudy,
    normal_ci,
    relative_from_influence,
)
from ig_policies.errors import InputError


@dataclass(frozen=True)
class _EventTimeEffects:
    event_times: np.ndarray
    theta: np.ndarray  # (E,)
    level: np.ndarray  # (E,) treated mean outcome at g+e
    influence: np.ndarray  # (N, E) influence functions of theta
    level_influence: np.ndarray  # (N, E)
    n_treated: np.ndarray  # (E,)
    n_controls: np.ndarray  # (E,) distinct control people
    contributes: np.ndarray  # (N,) bool: person used anywhere
    group_time: pd.DataFrame  # one row per usable (cohort column, event time): ATT(g, t), se, people


def _event_time_effects(
    y: np.ndarray, cohort: np.ndarray, event_times: np.ndarray, anticipation: int, min_controls: int
) -> _EventTimeEffects:
    n, n_months = y.shape
    delta = anticipation
    order = np.argsort(cohort, kind="stable")
    sorted_cohort = cohort[order]
    block_cohorts, block_starts = np.unique(sorted_cohort, return_index=True)
    block_ends = np.append(block_starts[1:], n)
    observed = ~np.isnan(y)
    # Observed column range per block: controls are only looked up where they have data.
    block_lo = np.empty(len(block_cohorts), dtype=np.int64)
    block_hi = np.empty(len(block_cohorts), dtype=np.int64)
    for b, (s, e) in enumerate(zip(block_starts, block_ends, strict=True)):
        cols = np.flatnonzero(observed[order[s:e]].any(axis=0))
        block_lo[b], block_hi[b] = (cols[0], cols[-1]) if len(cols) else (1, 0)

    groups = block_cohorts[(block_cohorts >= 1 + delta) & (block_cohorts <= n_months - 1)]
    pos = np.minimum(np.searchsorted(groups, cohort), max(len(groups) - 1, 0))
    person_g = (
        np.where((len(groups) > 0) & (groups[pos] == cohort), pos, -1) if len(groups) else np.full(n, -1)
    )
    is_treatable = person_g >= 0
    rows = np.arange(n)

    n_e = len(event_times)
    theta = np.full(n_e, np.nan)
    level = np.full(n_e, np.nan)
    influence = np.zeros((n, n_e))
    level_influence = np.zeros((n, n_e))
    n_treated = np.zeros(n_e, dtype=np.int64)
    n_controls = np.zeros(n_e, dtype=np.int64)
    contributes = np.zeros(n, dtype=bool)
    gt_parts: list[pd.DataFrame] = []

    for j, ev in enumerate(event_times):
        # Treated side: each person in their own cohort.
        t_col = cohort + ev
        a_col = cohort - 1 - delta
        ok = is_treatable & (t_col >= 0) & (t_col < n_months) & (a_col >= 0) & (a_col < n_months)
        d_treated = np.full(n, np.nan)
        yt = np.full(n, np.nan)
        idx = rows[ok]
        yt[idx] = y[idx, t_col[ok]]
        d_treated[idx] = yt[idx] - y[idx, a_col[ok]]
        valid_t = ~np.isnan(d_treated)
        n_t = np.bincount(person_g[valid_t], minlength=len(groups)).astype(float)
        sum_t = np.bincount(person_g[valid_t], weights=d_treated[valid_t], minlength=len(groups))
        sq_t = np.bincount(person_g[valid_t], weights=d_treated[valid_t] ** 2, minlength=len(groups))

        # Control side: people who enrol after max(t, g-1-delta) + delta, one cohort block at a time.
        sum_c = np.zeros(len(groups))
        sq_c = np.zeros(len(groups))
        n_c = np.zeros(len(groups))
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        t_g = groups + ev
        a_g = groups - 1 - delta
        for b, c in enumerate(block_cohorts):
            eligible = (c > np.maximum(t_g, a_g) + delta) & (groups != c)
            eligible &= (np.minimum(t_g, a_g) >= block_lo[b]) & (np.maximum(t_g, a_g) <= block_hi[b])
            if not eligible.any():
                continue
            gi = np.flatnonzero(eligible)
            members = order[block_starts[b] : block_ends[b]]
            block = y[members]
            d = block[:, t_g[gi]] - block[:, a_g[gi]]
            valid = ~np.isnan(d)
            d0 = np.where(valid, d, 0.0)
            sum_c[gi] += d0.sum(axis=0)
            sq_c[gi] += (d0**2).sum(axis=0)
            n_c[gi] += valid.sum(axis=0)
            pieces.append((members, gi, d))

        usable = (n_t > 0) & (n_c >= min_controls)
        if not usable.any():
            continue
        m_c = np.divide(sum_c, n_c, out=np.zeros_like(sum_c), where=n_c > 0)
        gt_parts.append(_group_time_rows(groups, ev, usable, n_t, sum_t, sq_t, n_c, m_c, sq_c))
        n_all = n_t[usable].sum()
        th = float((sum_t[usable] - n_t[usable] * m_c[usable]).sum() / n_all)
        tr = valid_t & is_treatable
        tr[tr] = usable[person_g[tr]]
        lev = float(yt[tr].sum() / n_all)
        influence[tr, j] = (d_treated[tr] - m_c[person_g[tr]] - th) / n_all
        level_influence[tr, j] = (yt[tr] - lev) / n_all
        coef = np.where(usable, n_t / (n_all * np.maximum(n_c, 1)), 0.0)
        used_controls = np.zeros(n, dtype=bool)
        for members, gi, d in pieces:
            valid = ~np.isnan(d) & usable[gi][None, :]
            if not valid.any():
                continue
            centred = np.where(valid, d - m_c[gi][None, :], 0.0)
            influence[members, j] -= centred @ coef[gi]
            used_controls[members] |= valid.any(axis=1)
        theta[j], level[j] = th, lev
        n_treated[j] = int(n_all)
        n_controls[j] = int(used_controls.sum())
        contributes |= tr | used_controls
    return _EventTimeEffects(
        event_times=np.asarray(event_times),
        theta=theta,
        level=level,
        influence=influence,
        level_influence=level_influence,
        n_treated=n_treated,
        n_controls=n_controls,
        contributes=contributes,
        group_time=(
            pd.concat(gt_parts, ignore_index=True)
            if gt_parts
            else pd.DataFrame(columns=["cohort", "event_time", "att", "se", "n_treated", "n_comparison"])
        ),
    )


def _group_time_rows(
    groups: np.ndarray,
    ev: int,
    usable: np.ndarray,
    n_t: np.ndarray,
    sum_t: np.ndarray,
    sq_t: np.ndarray,
    n_c: np.ndarray,
    m_c: np.ndarray,
    sq_c: np.ndarray,
) -> pd.DataFrame:
    """ATT(g, g+ev) of each usable cohort, with its own standard error.

    Within one (g, t) every person plays one role (treated or control), so the influence function's
    sum of squares splits into the two sides' sums of squared deviations over their sizes squared.
    """
    u = usable
    m_t = sum_t[u] / n_t[u]
    ss_t = np.maximum(sq_t[u] - n_t[u] * m_t**2, 0.0)
    ss_c = np.maximum(sq_c[u] - n_c[u] * m_c[u] ** 2, 0.0)
    return pd.DataFrame(
        {
            "cohort": groups[u],
            "event_time": ev,
            "att": m_t - m_c[u],
            "se": np.sqrt(ss_t / n_t[u] ** 2 + ss_c / n_c[u] ** 2),
            "n_treated": n_t[u].astype(np.int64),
            "n_comparison": n_c[u].astype(np.int64),
        }
    )


def _relative_by_event_time(fx: _EventTimeEffects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each event time's effect as a fraction of its counterfactual mean, with a delta-method 95% CI.

    The same calculation as the overall relative change (``relative_from_influence``), column by
    column: the treated mean and the effect come from the same people, so their joint influence
    functions give the ratio's standard error.
    """
    theta, level = fx.theta, fx.level
    cf = level - theta
    ok = np.isfinite(cf) & (cf > 0)
    safe_cf = np.where(ok, cf, 1.0)
    rel = np.where(ok, theta / safe_cf, np.nan)
    if_r = (
        fx.influence * np.where(ok, level, 0.0) - np.where(ok, theta, 0.0) * fx.level_influence
    ) / safe_cf**2
    se = np.sqrt((if_r**2).sum(axis=0))
    ok &= se > 0
    rel = np.where(ok, rel, np.nan)
    return rel, np.where(ok, rel - Z95 * se, np.nan), np.where(ok, rel + Z95 * se, np.nan)


def _overall(
    fx: _EventTimeEffects, post: np.ndarray, y: np.ndarray, outcome: str, estimator: str, **details: object
) -> Estimate:
    """Average of the post-enrolment event-time effects, with its influence function."""
    cols = post & np.isfinite(fx.theta)
    if not cols.any():
        nan = float("nan")
        return Estimate(estimator, outcome, nan, nan, nan, nan, nan, nan, nan, 0, 0, 0, dict(details))
    theta = float(fx.theta[cols].mean())
    level = float(fx.level[cols].mean())
    if_theta = fx.influence[:, cols].mean(axis=1)
    if_level = fx.level_influence[:, cols].mean(axis=1)
    se = float(np.sqrt(np.sum(if_theta**2)))
    lo, hi, p = normal_ci(theta, se)
    rel, rlo, rhi = relative_from_influence(theta, level, if_theta, if_level)
    n_months = int((~np.isnan(y[fx.contributes])).sum())
    return Estimate(
        estimator=estimator,
        outcome=outcome,
        effect=theta,
        ci_low=lo,
        ci_high=hi,
        relative_change=rel,
        relative_ci_low=rlo,
        relative_ci_high=rhi,
        p_value=p,
        n_people=int(fx.n_treated[cols].max()),
        n_comparison_people=int(fx.n_controls[cols].max()),
        n_person_months=n_months,
        details={
            "se": se,
            "counterfactual_mean": level - theta,
            "event_times_averaged": int(cols.sum()),
            **details,
        },
    )


def event_study(
    data: pd.DataFrame | DensePanel,
    outcome: str,
    months_before: int = 24,
    months_after: int = 24,
    anticipation: int = 0,
    min_controls: int = 1,
    placebo_shift: int | None = 12,
    *,
    columns: PanelColumns | None = None,
    never_enrolled: pd.DataFrame | None = None,
    source: str = "panel",
) -> EventStudy:
    """Callaway–Sant'Anna event study on ``outcome``: not-yet-enrolled (and never-enrolled) controls.

    ``data`` is the clients' long panel (checked against ``columns``, the outcome column included)
    or a ``DensePanel`` already built from it, whose outcome must be ``outcome``.

    ``never_enrolled`` (long panel only): person-month rows of people who never enrolled, with
    ``columns.never_enrolled_person``, ``columns.month`` and the outcome. They join every
    comparison as people who have not (yet) enrolled; without them the comparison is clients who
    enrol later, as in Callaway and Sant'Anna's "not yet treated" group. Never-enrolled people
    make the later months estimable (no client is "not yet enrolled" after the last enrolment) but
    assume they would have followed the clients' trend: check the pre-trend test.

    ``anticipation`` moves the reference month earlier (to ``g-1-anticipation``) when use may change
    before the enrolment date itself (e.g. a referral visit). ``placebo_shift`` re-runs the estimator
    on the pre-enrolment months only, pretending each person enrolled that many months early: a
    clear "effect" there means the design is picking up something other than enrolment.

    Returns the effect by event time on the count scale (``effect``, ``ci_low``, ``ci_high``:
    change in mean count per person-month) and on the relative scale (``relative_change``,
    ``relative_ci_low``, ``relative_ci_high``: the change over the counterfactual mean), the
    group-time effects ATT(g, t) behind them, the overall effect and the pre-trend test.
    """
    if isinstance(data, DensePanel):
        if never_enrolled is not None:
            raise InputError(
                source,
                "never_enrolled= is read with the long panel, not with a DensePanel",
                hint="pass the long panel, or build the DensePanel with DensePanel.from_long(..., never_enrolled=)",
            )
        if data.outcome is not None and data.outcome != outcome:
            raise InputError(
                source,
                f"the dense panel holds '{data.outcome}', not '{outcome}'",
                column=outcome,
                hint=f"build it with DensePanel.from_long(panel, '{outcome}')",
            )
        dense = data
    else:
        dense = DensePanel.from_long(data, outcome, columns, never_enrolled=never_enrolled, source=source)
    if months_before < 2 or months_after < 0:
        raise InputError(
            source,
            f"the event study needs at least two months before enrolment and none or more after "
            f"(got {months_before} before, {months_after} after)",
            hint="use months_before >= 2 and months_after >= 0",
        )
    ref = -1 - anticipation
    event_times = np.array([e for e in range(-months_before, months_after + 1) if e != ref])
    fx = _event_time_effects(dense.y, dense.cohort, event_times, anticipation, min_controls)

    se = np.sqrt((fx.influence**2).sum(axis=0))
    se[~np.isfinite(fx.theta)] = np.nan
    rel, rel_lo, rel_hi = _relative_by_event_time(fx)
    table = pd.DataFrame(
        {
            "event_time": event_times,
            "effect": fx.theta,
            "se": se,
            "ci_low": fx.theta - Z95 * se,
            "ci_high": fx.theta + Z95 * se,
            "treated_mean": fx.level,
            "counterfactual_mean": fx.level - fx.theta,
            "relative_change": rel,
            "relative_ci_low": rel_lo,
            "relative_ci_high": rel_hi,
            "n_people": fx.n_treated,
            "n_comparison_people": fx.n_controls,
        }
    )
    zero = {c: 0.0 for c in ("effect", "se", "ci_low", "ci_high")}
    zero |= {c: 0.0 for c in ("relative_change", "relative_ci_low", "relative_ci_high")}
    ref_row = pd.DataFrame(
        [{"event_time": ref, **zero, "treated_mean": np.nan, "counterfactual_mean": np.nan}]
    )
    ref_row["n_people"] = int(fx.n_treated.max()) if len(fx.n_treated) else 0
    ref_row["n_comparison_people"] = int(fx.n_controls.max()) if len(fx.n_controls) else 0
    table = pd.concat([table, ref_row], ignore_index=True).sort_values("event_time").reset_index(drop=True)
    group_time = fx.group_time.copy()
    group_time.insert(0, "cohort_month", index_to_month(dense.t0 + group_time["cohort"].to_numpy(np.int64)))
    group_time.insert(
        1,
        "month",
        index_to_month(dense.t0 + (group_time["cohort"] + group_time["event_time"]).to_numpy(np.int64)),
    )
    group_time = group_time.drop(columns="cohort").sort_values(["cohort_month", "event_time"])
    group_time = group_time.reset_index(drop=True)

    # Pre-trend: joint Wald test that all pre-enrolment effects (before the reference) are zero.
    pre = (event_times < ref) & np.isfinite(fx.theta)
    chi2, df, p_pre = float("nan"), 0, float("nan")
    if pre.any():
        cov = fx.influence[:, pre].T @ fx.influence[:, pre]
        th = fx.theta[pre]
        chi2 = float(th @ np.linalg.pinv(cov) @ th)
        df = int(np.linalg.matrix_rank(cov))
        p_pre = float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan")

    overall = _overall(fx, event_times >= 0, dense.y, outcome, "event_study")

    placebo = None
    if placebo_shift:
        shift = int(placebo_shift)
        y_pre = dense.y.copy()
        cols = np.arange(dense.n_months)[None, :]
        y_pre[cols >= (dense.cohort - anticipation)[:, None]] = np.nan  # keep only untreated months
        pl_times = np.arange(0, shift)
        fx_pl = _event_time_effects(y_pre, dense.cohort - shift, pl_times, anticipation, min_controls)
        placebo = _overall(fx_pl, pl_times >= 0, y_pre, outcome, "event_study_placebo", shift_months=shift)
    return EventStudy(
        outcome=outcome,
        table=table,
        overall=overall,
        pretrend_chi2=chi2,
        pretrend_df=df,
        pretrend_p=p_pre,
        placebo=placebo,
        group_time=group_time,
        comparison="not_yet_or_never_enrolled" if dense.never_enrolled.any() else "not_yet_enrolled",
    )
