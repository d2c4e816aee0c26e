"""Matched comparison group of never-enrolled people, then difference-in-differences.

For each client, people in the health data who never enrolled and who, *at the client's enrolment
month*, were registered, had the same age band, sex, IMD quintile, long-term-condition burden
(coarsened: none, one, two or more; and whether depression/SMI is recorded) and a similar use of
the service in the previous 12 months (coarsened bands), form the client's stratum. Each comparison
person is given the client's enrolment month as a pseudo-enrolment date, so calendar trends and
seasonality cancel. Coarsened exact matching weights (each stratum's comparison people together
count as much as its clients) give the average effect on the enrolled; clients with no comparison
person in their stratum are dropped and counted.

The effect is a difference in differences of person means: (post mean - pre mean) for clients
minus the weighted same for comparisons. Standard errors are person-clustered through influence
functions summed per person (a comparison person can serve several clients).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.natural_experiment.panel import (
    PanelColumns,
    check_clients_panel,
    check_never_enrolled,
    checked_months,
    checked_outcome,
    month_index,
    require_columns,
)
from analysis.natural_experiment.results import Estimate, normal_ci, relative_from_influence
from analysis.vocabulary import AGE_BANDS, CONDITIONS

USE_BANDS = np.array([0.5, 1.5, 3.5, 7.5])  # prior-year count: 0, 1, 2-3, 4-7, 8+
MENTAL_HEALTH = ("depression", "smi")


@dataclass(frozen=True)
class _Calendar:
    """Cumulative sums over calendar months, so any window's sum and observed-month count is O(1)."""

    t0: int
    csum: np.ndarray  # (N, T+1) cumulative counts (NaN treated as 0)
    cobs: np.ndarray  # (N, T+1) cumulative observed months
    observed: np.ndarray  # (N, T)

    @classmethod
    def build(
        cls, ids: pd.Index, person: pd.Series, months: pd.Series, values: np.ndarray, t0: int, n_months: int
    ):
        rows = ids.get_indexer(person)
        keep = rows >= 0  # pool months of people not in the people table are not used
        cols = month_index(months) - t0
        y = np.full((len(ids), n_months), np.nan)
        y[rows[keep], cols[keep]] = values[keep]
        observed = ~np.isnan(y)
        csum = np.zeros((len(ids), n_months + 1))
        csum[:, 1:] = np.cumsum(np.where(observed, y, 0.0), axis=1)
        cobs = np.zeros((len(ids), n_months + 1), dtype=np.int32)
        cobs[:, 1:] = np.cumsum(observed, axis=1)
        return cls(t0=t0, csum=csum, cobs=cobs, observed=observed)

    def window(self, rows: np.ndarray | slice, lo: np.ndarray | int, hi: np.ndarray | int):
        """Sum and observed count over columns [lo, hi) (clipped to the calendar)."""
        n = self.observed.shape[1]
        lo = np.clip(lo, 0, n)
        hi = np.clip(hi, 0, n)
        return self.csum[rows, hi] - self.csum[rows, lo], self.cobs[rows, hi] - self.cobs[rows, lo]


def _age_code(band: pd.Series) -> np.ndarray:
    labels = [b[0] for b in AGE_BANDS]
    return band.map({lab: i + 1 for i, lab in enumerate(labels)}).fillna(0).to_numpy(dtype=np.int64)


def _stratum(
    age: np.ndarray, sex: np.ndarray, imd: np.ndarray, ncond: np.ndarray, mh: np.ndarray, use: np.ndarray
):
    ncond = np.minimum(ncond, 2)
    return ((((age * 3 + sex) * 6 + imd) * 3 + ncond) * 2 + mh) * 5 + use


def _sex_code(sex: pd.Series) -> np.ndarray:
    return sex.map({"F": 1, "M": 2}).fillna(0).to_numpy(dtype=np.int64)


def matched_comparison(
    panel: pd.DataFrame,
    comparison_people: pd.DataFrame,
    comparison_pool: pd.DataFrame,
    outcome: str,
    months_before: int = 24,
    months_after: int = 24,
    prior_months: int = 12,
    *,
    columns: PanelColumns | None = None,
    source: str = "panel",
) -> Estimate:
    """Coarsened-exact-matched never-enrolled comparison, then a person-level DiD on ``outcome``.

    ``panel``: the clients' person-month panel with ``columns.person``, ``columns.month``,
    ``columns.enrolment_month``, the outcome and the clients' covariates ``columns.age_band``,
    ``columns.sex``, ``columns.imd_quintile`` (``columns.n_conditions`` and the
    ``<condition_flag_prefix>depression``/``smi`` flags are used when present).
    ``comparison_people``: one row per never-enrolled person with
    ``columns.never_enrolled_person``, ``columns.year_of_birth``, ``columns.sex``,
    ``columns.imd_quintile`` and ``<diagnosis_prefix><condition>`` first-diagnosis months (when
    present). ``comparison_pool``: their person-months (``columns.never_enrolled_person``,
    ``columns.month``, the outcome). Every table is checked before matching.
    """
    columns = columns or PanelColumns()
    people_source = f"{source} (never-enrolled people)"
    pool_source = f"{source} (never-enrolled months)"
    clients = check_clients_panel(panel, columns, source)
    y_clients = checked_outcome(panel, outcome, source)
    require_columns(
        panel,
        [
            (columns.age_band, "the age band"),
            (columns.sex, "sex"),
            (columns.imd_quintile, "the IMD quintile"),
        ],
        source,
    )
    require_columns(
        comparison_people,
        [
            (columns.never_enrolled_person, "the never-enrolled person"),
            (columns.year_of_birth, "the year of birth"),
            (columns.sex, "sex"),
            (columns.imd_quintile, "the IMD quintile"),
        ],
        people_source,
    )
    pool_months = check_never_enrolled(comparison_pool, columns, pool_source)
    y_pool = checked_outcome(comparison_pool, outcome, pool_source)
    client_months = checked_months(panel, columns.month, source)
    months_all = pd.concat([client_months, pool_months])
    m_idx = month_index(months_all)
    t0, n_months = int(m_idx.min()), int(m_idx.max() - m_idx.min() + 1)

    # Clients: one row per person with covariates and their calendar array.
    person_col = columns.person
    first = panel.drop_duplicates(person_col).set_index(person_col)
    t_ids = first.index
    treated = _Calendar.build(t_ids, panel[person_col], client_months, y_clients, t0, n_months)
    first_enrolment = pd.Series(clients.enrolment, index=panel[person_col].to_numpy())
    cohort = first_enrolment[~first_enrolment.index.duplicated()].reindex(t_ids).to_numpy() - t0
    prefix = columns.condition_flag_prefix
    mh_cols = [f"{prefix}{c}" for c in MENTAL_HEALTH if f"{prefix}{c}" in first.columns]
    t_mh = first[mh_cols].fillna(False).astype(bool).any(axis=1).to_numpy().astype(np.int64) if mh_cols else 0
    if columns.n_conditions in first.columns:
        t_ncond = (
            pd.to_numeric(first[columns.n_conditions], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
        )
    else:
        t_ncond = np.zeros(len(first), dtype=np.int64)
    t_imd = pd.to_numeric(first[columns.imd_quintile], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    t_age, t_sex = _age_code(first[columns.age_band]), _sex_code(first[columns.sex])
    rows_t = np.arange(len(t_ids))
    prior_sum, _ = treated.window(rows_t, cohort - prior_months, cohort)
    t_use = np.searchsorted(USE_BANDS, prior_sum)
    t_key = _stratum(t_age, t_sex, t_imd, t_ncond, t_mh, t_use)
    present = (cohort >= 1) & (cohort < n_months)
    present[present] &= (
        treated.observed[rows_t[present], cohort[present] - 1]
        & treated.observed[rows_t[present], cohort[present]]
    )
    pre_s, pre_n = treated.window(rows_t, cohort - months_before, cohort)
    post_s, post_n = treated.window(rows_t, cohort, cohort + months_after + 1)
    ok_t = present & (pre_n > 0) & (post_n > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_post_mean = post_s / post_n
        t_delta = t_post_mean - pre_s / pre_n

    # The never-enrolled pool.
    n_person = columns.never_enrolled_person
    people = comparison_people.drop_duplicates(n_person).set_index(n_person)
    pool_ids = people.index
    pool = _Calendar.build(pool_ids, comparison_pool[n_person], pool_months, y_pool, t0, n_months)
    yob = pd.to_numeric(people[columns.year_of_birth], errors="coerce").to_numpy(dtype=float)
    p_sex = _sex_code(people[columns.sex])
    p_imd = pd.to_numeric(people[columns.imd_quintile], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    dx_prefix = columns.diagnosis_prefix
    dx = {}
    for c in CONDITIONS:
        if f"{dx_prefix}{c}" in people:
            diagnosed = checked_months(people, f"{dx_prefix}{c}", people_source, allow_missing=True)
            dx[c] = month_index(diagnosed.fillna(pd.Timestamp("2262-01-01"))) - t0
    rows_p = np.arange(len(pool_ids))

    w_rows: list[np.ndarray] = []  # pool row, weight, delta, post mean per matched comparison use
    w_vals: list[np.ndarray] = []
    w_delta: list[np.ndarray] = []
    matched_t = np.zeros(len(t_ids), dtype=bool)
    for c in np.unique(cohort[ok_t]):
        these = np.flatnonzero(ok_t & (cohort == c))
        eligible = pool.observed[:, c - 1] & pool.observed[:, c]
        if not eligible.any():
            continue
        cand = rows_p[eligible]
        year = (t0 + c) // 12
        age = year - yob[cand]
        p_age = np.zeros(len(cand), dtype=np.int64)
        for i, (_, lo, hi) in enumerate(AGE_BANDS):
            p_age[(age >= max(lo, 16)) & (age <= hi)] = i + 1
        ncond = (
            sum((dx[k][cand] < c).astype(np.int64) for k in dx) if dx else np.zeros(len(cand), dtype=np.int64)
        )
        mh = np.zeros(len(cand), dtype=np.int64)
        for k in MENTAL_HEALTH:
            if k in dx:
                mh |= (dx[k][cand] < c).astype(np.int64)
        prior, _ = pool.window(cand, c - prior_months, c)
        p_key = _stratum(
            p_age, p_sex[cand], p_imd[cand], np.asarray(ncond), mh, np.searchsorted(USE_BANDS, prior)
        )
        pre_s_p, pre_n_p = pool.window(cand, c - months_before, c)
        post_s_p, post_n_p = pool.window(cand, c, c + months_after + 1)
        okp = (pre_n_p > 0) & (post_n_p > 0)
        cand, p_key = cand[okp], p_key[okp]
        delta_p = post_s_p[okp] / post_n_p[okp] - pre_s_p[okp] / pre_n_p[okp]
        keys_t, n_t = np.unique(t_key[these], return_counts=True)
        keys_c, n_c = np.unique(p_key, return_counts=True)
        common, it, ic = np.intersect1d(keys_t, keys_c, return_indices=True)
        if len(common) == 0:
            continue
        ratio = dict(zip(common.tolist(), (n_t[it] / n_c[ic]).tolist(), strict=True))
        sel = np.isin(p_key, common)
        w_rows.append(cand[sel])
        w_vals.append(np.array([ratio[k] for k in p_key[sel].tolist()]))
        w_delta.append(delta_p[sel])
        matched_t[these[np.isin(t_key[these], common)]] = True

    nan = float("nan")
    n_treated = int(matched_t.sum())
    if n_treated == 0:
        return Estimate(
            "matched_comparison", outcome, nan, nan, nan, nan, nan, nan, nan, 0, 0, 0,
            {"unmatched_people": int(ok_t.sum())},
        )  # fmt: skip
    rows_c = np.concatenate(w_rows)
    w = np.concatenate(w_vals)
    d_c = np.concatenate(w_delta)
    d_t = t_delta[matched_t]
    m_t = float(d_t.mean())
    m_c = float((w * d_c).sum() / w.sum())
    theta = m_t - m_c
    level = float(t_post_mean[matched_t].mean())
    # Influence functions: clients first, then comparison people (summed over their uses).
    if_t = (d_t - m_t) / n_treated
    if_c = np.bincount(rows_c, weights=-w * (d_c - m_c) / w.sum(), minlength=len(pool_ids))
    if_theta = np.concatenate([if_t, if_c])
    if_level = np.concatenate([(t_post_mean[matched_t] - level) / n_treated, np.zeros(len(pool_ids))])
    se = float(np.sqrt(np.sum(if_theta**2)))
    lo, hi, p = normal_ci(theta, se)
    rel, rlo, rhi = relative_from_influence(theta, level, if_theta, if_level)
    months_t = int((pre_n + post_n)[matched_t].sum())
    return Estimate(
        estimator="matched_comparison",
        outcome=outcome,
        effect=theta,
        ci_low=lo,
        ci_high=hi,
        relative_change=rel,
        relative_ci_low=rlo,
        relative_ci_high=rhi,
        p_value=p,
        n_people=n_treated,
        n_comparison_people=int(np.unique(rows_c).size),
        n_person_months=months_t + int(pool.observed[np.unique(rows_c)].sum()),
        details={
            "se": se,
            "counterfactual_mean": level - theta,
            "unmatched_people": int(ok_t.sum()) - n_treated,
            "comparison_uses": len(rows_c),
            "prior_months_matched": prior_months,
        },
    )
