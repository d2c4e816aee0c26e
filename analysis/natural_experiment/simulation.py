"""A small simulated region with a known (planted) effect of enrolment, in the research panel's shape.

Used to check that each estimator recovers a planted effect and finds none when none is planted,
to measure bias and confidence-interval coverage over many seeds, and for power calculations
before a study. The data-generating process is deliberately the one the designs assume:

* each person's monthly counts are Poisson with a person-specific rate (a gamma "frailty" on top
  of age, sex, deprivation and long-term conditions), a calendar trend and seasonality;
* enrolment multiplies the rate by ``1 + effect`` from the enrolment month onwards;
* enrolment month is staggered uniformly over the study window, and who enrols depends on observed
  characteristics only (clients are more deprived and have more conditions than the pool);
* some people register late, leave or die: those months are absent from the panel, not zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.natural_experiment.panel import index_to_month
from analysis.vocabulary import AGE_BANDS, CONDITIONS, MEASURES

BASE_RATES: dict[str, float] = {
    "gp_appointments": 0.45,
    "ae_attendances": 0.035,
    "emergency_admissions": 0.015,
    "outpatient_appointments": 0.09,
    "antidepressant_items": 0.25,
}


@dataclass(frozen=True)
class SimulatedRegion:
    panel: pd.DataFrame
    comparison_people: pd.DataFrame
    comparison_pool: pd.DataFrame
    effects: dict[str, float]


def _people(rng: np.random.Generator, n: int, deprived: bool) -> pd.DataFrame:
    imd_p = [0.35, 0.25, 0.18, 0.12, 0.10] if deprived else [0.22, 0.2, 0.2, 0.19, 0.19]
    imd = rng.choice(np.arange(1, 6), size=n, p=imd_p)
    n_cond = rng.poisson(0.9 if deprived else 0.6, size=n).clip(0, 4)
    age_idx = rng.integers(0, 5, size=n)  # 16-24 .. 55-64
    sex = rng.choice(np.array(["F", "M"]), size=n)
    frailty = rng.gamma(2.0, 0.5, size=n)
    mh = rng.random(n) < np.where(n_cond > 0, 0.5, 0.0)
    return pd.DataFrame(
        {"imd_quintile": imd, "n_cond": n_cond, "age_idx": age_idx, "sex": sex, "frailty": frailty, "mh": mh}
    )


def _registration(rng: np.random.Generator, n: int, n_months: int) -> tuple[np.ndarray, np.ndarray]:
    """Registered months [start, end] as column indices: most people throughout, some partly."""
    start = np.full(n, -10_000)
    end = np.full(n, 10_000)
    u = rng.random(n)
    late = u < 0.08
    start[late] = rng.integers(-24, n_months, size=late.sum())
    leaves = (u >= 0.08) & (u < 0.14)
    end[leaves] = rng.integers(0, n_months + 24, size=leaves.sum())
    return start, end


def _shock(months: np.ndarray, common_shock: tuple[int, int, float] | None) -> np.ndarray:
    if common_shock is None:
        return np.ones(months.shape)
    first, end, factor = common_shock
    return np.where((months >= first) & (months < end), factor, 1.0)


def _rates(people: pd.DataFrame, months: np.ndarray, measure: str) -> np.ndarray:
    """Expected counts for people (rows) at calendar columns ``months`` (same shape, broadcast)."""
    log_person = (
        np.log(BASE_RATES[measure])
        + 0.12 * (3 - people["imd_quintile"].to_numpy()) / 2
        + 0.25 * people["n_cond"].to_numpy()
        + 0.15 * (people["sex"].to_numpy() == "F")
        + 0.06 * people["age_idx"].to_numpy()
        + (0.4 * people["mh"].to_numpy() if measure == "antidepressant_items" else 0.0)
        + np.log(people["frailty"].to_numpy())
    )
    season = 0.12 * np.cos(2 * np.pi * (months % 12) / 12)
    trend = 0.003 * months
    return np.exp(log_person[:, None] + season + trend)


def _covariates(people: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    labels = np.array([b[0] for b in AGE_BANDS])
    return pd.DataFrame(
        {
            "person": ids,
            "age_band": labels[people["age_idx"].to_numpy()],
            "sex": people["sex"].to_numpy(),
            "imd_quintile": people["imd_quintile"].to_numpy(),
            "n_baseline_conditions": people["n_cond"].to_numpy(),
            "gp_depression": people["mh"].to_numpy(),
        }
    )


def simulate_region(
    n_clients: int = 2_000,
    n_pool: int = 4_000,
    seed: int = 0,
    effects: dict[str, float] | None = None,
    n_months: int = 84,
    start: str = "2019-01-01",
    months_before: int = 24,
    months_after: int = 24,
    measures: tuple[str, ...] = MEASURES,
    full_windows: bool = False,
    enrolment_range: tuple[int, int] | None = None,
    common_shock: tuple[int, int, float] | None = None,
) -> SimulatedRegion:
    """Simulate clients' panel and a never-enrolled pool with ``effects`` (relative, e.g. -0.08).

    ``full_windows`` draws enrolment months so that every client's whole window lies inside the
    study period (and everyone is registered throughout): exactly ``months_before + months_after + 1``
    months per client, as for timing the estimators on a fixed panel size. ``enrolment_range``
    (first, last+1 month index) concentrates enrolment; ``common_shock`` (first, last+1 month,
    rate multiplier) is a fall or rise in use shared by everyone, such as the spring-2020 dip.
    """
    rng = np.random.default_rng(seed)
    effects = {m: 0.0 for m in measures} | dict(effects or {})
    t0 = int(pd.Timestamp(start).year * 12 + pd.Timestamp(start).month - 1)
    k = np.arange(-months_before, months_after + 1)

    clients = _people(rng, n_clients, deprived=True)
    if enrolment_range is not None:
        cohort = rng.integers(enrolment_range[0], enrolment_range[1], size=n_clients)
        reg_start, reg_end = _registration(rng, n_clients, n_months)
    elif full_windows:
        cohort = rng.integers(months_before, n_months - months_after, size=n_clients)
        reg_start, reg_end = np.full(n_clients, -10_000), np.full(n_clients, 10_000)
    else:
        cohort = rng.integers(0, n_months, size=n_clients)
        reg_start, reg_end = _registration(rng, n_clients, n_months)
    cols = cohort[:, None] + k[None, :]
    keep = (cols >= 0) & (cols < n_months) & (cols >= reg_start[:, None]) & (cols <= reg_end[:, None])
    who, _ = np.nonzero(keep)
    ids = np.array([f"C{i:07d}" for i in range(n_clients)], dtype=object)
    panel = pd.DataFrame(
        {
            "client_pseudonym": ids[who],
            "enrolment_month": index_to_month(t0 + cohort[who]),
            "month": index_to_month(t0 + cols[keep]),
            "event_time": np.broadcast_to(k, cols.shape)[keep].astype(np.int16),
        }
    )
    for m in measures:
        lam = _rates(clients, cols, m) * np.where(cols >= cohort[:, None], 1.0 + effects[m], 1.0)
        lam = lam * _shock(cols, common_shock)
        panel[m] = rng.poisson(lam[keep]).astype(np.int32)
    cov = _covariates(clients, ids)
    for col in cov.columns.drop("person"):
        panel[col] = cov[col].to_numpy()[who]

    pool = _people(rng, n_pool, deprived=False)
    p_start, p_end = _registration(rng, n_pool, n_months)
    months = np.arange(n_months)
    p_keep = (months[None, :] >= p_start[:, None]) & (months[None, :] <= p_end[:, None])
    p_who, p_col = np.nonzero(p_keep)
    p_ids = np.array([f"P{i:07d}" for i in range(n_pool)], dtype=object)
    pool_panel = pd.DataFrame({"patient_pseudonym": p_ids[p_who], "month": index_to_month(t0 + p_col)})
    for m in measures:
        grid = np.broadcast_to(months, p_keep.shape)
        lam = _rates(pool, grid, m) * _shock(grid, common_shock)
        pool_panel[m] = rng.poisson(lam[p_keep]).astype(np.int32)

    cal = pd.Timestamp(start).year
    lower = np.array([max(AGE_BANDS[i][1], 16) for i in pool["age_idx"]])
    reg_end = pd.Series(index_to_month(t0 + np.clip(p_end, 0, n_months + 24)))
    reg_end[p_end >= 10_000] = pd.NaT
    people = pd.DataFrame(
        {
            "patient_pseudonym": p_ids,
            # born so that the age band at any enrolment in the window is the drawn band
            "year_of_birth": cal + 3 - (lower + 4),
            "sex": pool["sex"].to_numpy(),
            "ethnicity": "White",
            "imd_quintile": pool["imd_quintile"].to_numpy(),
            "reg_start": index_to_month(t0 + np.clip(p_start, -24, n_months)),
            "reg_end": reg_end.to_numpy(),
            "death": pd.NaT,
        }
    )
    # Conditions diagnosed long before the window: n_cond distinct codes, depression first when mh.
    old = pd.Timestamp("2010-01-01")
    for c in CONDITIONS:
        people[f"dx_{c}"] = pd.NaT
    people["dx_depression"] = people["dx_depression"].where(~pool["mh"].to_numpy(), old)
    others = [c for c in CONDITIONS if c not in ("depression", "smi")]
    counts = pool["n_cond"].to_numpy() - pool["mh"].to_numpy().astype(int)
    for j, c in enumerate(others):
        people[f"dx_{c}"] = people[f"dx_{c}"].where(~(counts > j), old)
    return SimulatedRegion(panel=panel, comparison_people=people, comparison_pool=pool_panel, effects=effects)
