"""Residents: demographics, long-term conditions, registration, deaths and economic status.

Everything is drawn for all people at once with numpy (5 million rows fit easily in memory); only
the monthly activity, which is 84 times larger, is generated in chunks (see ``activity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.vocabulary import CENSUS_AGE_BANDS
from synthetic import names, nhs_number
from synthetic.config import CONDITIONS, ECONOMIC_STATUSES, ETHNICITIES, SynthConfig
from synthetic.geography import Region, ethnicity_probabilities
from synthetic.targeting import boosted_conditions

CENSUS_DAY = np.datetime64("2021-03-21")
QOF_YEAR_END = np.datetime64("2023-03-31")
WINDOW_START = np.datetime64("2019-01-01")
WINDOW_END = np.datetime64("2025-12-31")
N_MONTHS = 84

# share of the population by 5-year age band 0-4 .. 95-99 (England and Wales 2021, roughly)
AGE_BAND_WEIGHTS = np.array(
    [5.4, 6.0, 6.0, 5.6, 6.3, 6.8, 6.9, 6.6, 6.2, 6.6, 7.0, 6.8, 6.0, 5.1, 5.0, 3.6, 2.5, 1.5, 0.6, 0.2]
)

# age-specific prevalence at average deprivation: (age knots, prevalence at knots), interpolated
PREVALENCE_BY_AGE: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "depression": ((0, 15, 18, 30, 50, 70, 100), (0.0, 0.0, 0.08, 0.15, 0.17, 0.13, 0.12)),
    "smi": ((0, 15, 20, 40, 60, 80, 100), (0.0, 0.0, 0.005, 0.012, 0.013, 0.01, 0.008)),
    "epilepsy": ((0, 18, 50, 80, 100), (0.003, 0.007, 0.009, 0.010, 0.010)),
    "copd": ((0, 34, 40, 60, 75, 100), (0.0, 0.0, 0.005, 0.04, 0.09, 0.10)),
    "diabetes": ((0, 17, 30, 50, 70, 100), (0.002, 0.004, 0.015, 0.07, 0.17, 0.16)),
    "chd": ((0, 34, 45, 60, 75, 100), (0.0, 0.0, 0.01, 0.05, 0.14, 0.20)),
    "hypertension": ((0, 25, 40, 60, 75, 100), (0.0, 0.003, 0.06, 0.25, 0.45, 0.55)),
    "learning_disability": ((0, 50, 80, 100), (0.005, 0.005, 0.002, 0.002)),
    "osteoporosis": ((0, 49, 50, 70, 100), (0.0, 0.0, 0.005, 0.03, 0.08)),
    "asthma": ((0, 10, 30, 60, 100), (0.02, 0.07, 0.07, 0.07, 0.06)),
}
# log relative risk per IMD decile step towards the most deprived (decile 1)
DEPRIVATION_LOG_RR = {
    "depression": 0.06,
    "smi": 0.08,
    "epilepsy": 0.05,
    "copd": 0.12,
    "diabetes": 0.06,
    "chd": 0.06,
    "hypertension": 0.03,
    "learning_disability": 0.05,
    "osteoporosis": 0.02,
    "asthma": 0.03,
}
FEMALE_LOG_RR = {
    "depression": 0.5,
    "smi": -0.1,
    "epilepsy": 0.0,
    "copd": 0.0,
    "diabetes": -0.2,
    "chd": -0.6,
    "hypertension": -0.1,
    "learning_disability": -0.4,
    "osteoporosis": 1.2,
    "asthma": 0.15,
}
ONSET_AGE = {
    "depression": 16,
    "smi": 16,
    "epilepsy": 1,
    "copd": 35,
    "diabetes": 10,
    "chd": 35,
    "hypertension": 25,
    "learning_disability": 1,
    "osteoporosis": 50,
    "asthma": 3,
}
DEATH_LOG_RR = {"copd": 0.6, "chd": 0.4, "diabetes": 0.25, "smi": 0.5, "learning_disability": 0.4}

SICK_AGE_LOG_RR = {"16-24": -0.7, "25-34": -0.3, "35-49": 0.0, "50-64": 0.4, "65+": -1.6}
UNEMPLOYED_AGE_LOG_RR = {"16-24": 0.5, "25-34": 0.2, "35-49": 0.0, "50-64": -0.2, "65+": -2.5}
INACTIVE_OTHER_BY_AGE = {"16-24": 0.40, "25-34": 0.12, "35-49": 0.10, "50-64": 0.18, "65+": 0.90}
#: why the inactive people who are not long-term sick are inactive (census 2021 categories), by
#: census age band: students are mostly young, retired people mostly 65+ (shares of each band's
#: ``inactive_other`` residents, roughly England 2021)
INACTIVE_REASONS: tuple[str, ...] = ("retired", "student", "looking_after_home", "other")
INACTIVE_REASON_BY_AGE: dict[str, tuple[float, float, float, float]] = {
    "16-24": (0.00, 0.80, 0.07, 0.13),
    "25-34": (0.01, 0.25, 0.45, 0.29),
    "35-49": (0.04, 0.08, 0.55, 0.33),
    "50-64": (0.55, 0.01, 0.25, 0.19),
    "65+": (0.97, 0.00, 0.02, 0.01),
}


def age_band(age: np.ndarray, bands: tuple[str, ...] = CENSUS_AGE_BANDS) -> np.ndarray:
    """Label ages with bands like ``16-24`` / ``65+``; younger than the first band -> ``''``."""
    lows = np.array([int(b.split("-")[0].rstrip("+")) for b in bands])
    idx = np.searchsorted(lows, age, side="right") - 1
    labels = np.array([""] + list(bands), dtype=object)
    out = labels[np.clip(idx + 1, 0, len(bands))]
    if not bands[-1].endswith("+"):
        top = int(bands[-1].split("-")[1])
        out = np.where(age > top, "", out)
    return out


def month_index(dates: np.ndarray) -> np.ndarray:
    """Months since 2019-01 of datetime64[D] values (NaT -> a large number)."""
    months = dates.astype("datetime64[M]").astype(np.int64) - np.datetime64("2019-01", "M").astype(np.int64)
    return np.where(np.isnat(dates), 10_000, months)


def _random_dates(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """One uniform date in [start, end] per row (datetime64[D])."""
    s = start.astype("datetime64[D]").astype(np.int64)
    e = end.astype("datetime64[D]").astype(np.int64)
    return (s + np.floor(rng.random(len(s)) * (np.maximum(e - s, 0) + 1)).astype(np.int64)).astype(
        "datetime64[D]"
    )


@dataclass(frozen=True)
class Population:
    persons: pd.DataFrame  # one row per resident, truth columns (see README)
    diagnosis: dict[str, np.ndarray]  # condition -> datetime64[D] per person (NaT: never)
    area_truth: pd.DataFrame  # per LSOA: prevalences, planted expected rates


def build_population(people: int, region: Region, cfg: SynthConfig, rng: np.random.Generator) -> Population:
    lsoas = region.lsoas
    lsoa_idx = np.repeat(np.arange(len(lsoas)), lsoas["people"].to_numpy())
    n = len(lsoa_idx)
    la_idx = lsoas["la_idx"].to_numpy()[lsoa_idx]
    decile = lsoas["imd_decile"].to_numpy()[lsoa_idx]

    # --- demographics
    band = rng.choice(len(AGE_BAND_WEIGHTS), size=n, p=AGE_BAND_WEIGHTS / AGE_BAND_WEIGHTS.sum())
    age_days = (band * 5 * 365.25 + rng.random(n) * 5 * 365.25).astype(np.int64)
    dob = CENSUS_DAY - age_days.astype("timedelta64[D]")
    age = (age_days // 365.25).astype(np.int64)  # completed years on census day (close enough)
    female = rng.random(n) < 0.51
    eth_p = ethnicity_probabilities()
    u = rng.random(n)
    cum = np.cumsum(eth_p, axis=1)[la_idx]
    ethnicity = np.array(ETHNICITIES, dtype=object)[
        (u[:, None] > cum).sum(axis=1).clip(0, len(ETHNICITIES) - 1)
    ]
    forename, surname = names.draw_names(rng, female, ethnicity)
    nhs = nhs_number.generate(rng, n)

    # --- postcodes: current one inside the LSOA, previous one anywhere in the same LA
    pcs = region.postcodes
    pc_lsoa = pcs["lsoa_idx"].to_numpy()
    order = np.lexsort((~pcs["current"].to_numpy(), pc_lsoa))  # per LSOA: current postcodes first
    pc_sorted = pcs["pcds"].to_numpy()[order]
    start_of = np.searchsorted(pc_lsoa[order], np.arange(len(lsoas)))
    n_current = np.bincount(pc_lsoa[pcs["current"].to_numpy()], minlength=len(lsoas))
    postcode = pc_sorted[start_of[lsoa_idx] + (rng.random(n) * n_current[lsoa_idx]).astype(np.int64)]
    pc_la = lsoas["la_idx"].to_numpy()[pc_lsoa[order]]
    la_start = np.searchsorted(pc_la, np.arange(len(region.las)))
    la_count = np.bincount(pc_la, minlength=len(region.las))
    # pc_sorted is grouped by LSOA and LSOAs are grouped by LA, so each LA is one contiguous slice
    prev_pos = la_start[la_idx] + (rng.random(n) * la_count[la_idx]).astype(np.int64)
    previous = pc_sorted[prev_pos]
    clash = previous == postcode
    prev_pos[clash] = (
        la_start[la_idx[clash]] + (prev_pos[clash] - la_start[la_idx[clash]] + 1) % la_count[la_idx[clash]]
    )
    previous = pc_sorted[prev_pos]

    # --- practice: mostly the LSOA's nearest, sometimes a neighbouring one in the same LA
    main = lsoas["main_practice"].to_numpy()[lsoa_idx]
    prac_la = region.practices["la_idx"].to_numpy()
    first_prac = np.searchsorted(prac_la, np.arange(len(region.las)))
    last_prac = np.searchsorted(prac_la, np.arange(len(region.las)), side="right") - 1
    step = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.125, 0.75, 0.125])
    practice_idx = np.clip(main + step, first_prac[la_idx], last_prac[la_idx])

    # --- long-term conditions
    lsoa_effects = rng.normal(0.0, cfg.geography.lsoa_condition_sd, size=(len(lsoas), len(CONDITIONS)))
    # under-served wards (synthetic.targeting): more of the conditions behind long-term sickness
    under_served = (
        lsoas["under_served"].to_numpy(bool) if "under_served" in lsoas else np.zeros(len(lsoas), bool)
    )
    for c in boosted_conditions(cfg):
        lsoa_effects[under_served, CONDITIONS.index(c)] += cfg.under_served.condition_log_boost
    has: dict[str, np.ndarray] = {}
    diagnosis: dict[str, np.ndarray] = {}
    deprivation_steps = 5.5 - decile
    for k, c in enumerate(CONDITIONS):
        knots, prev = PREVALENCE_BY_AGE[c]
        p = np.interp(age, knots, prev) * np.exp(
            DEPRIVATION_LOG_RR[c] * deprivation_steps + FEMALE_LOG_RR[c] * female + lsoa_effects[lsoa_idx, k]
        )
        has[c] = rng.random(n) < np.clip(p, 0, 0.95)
        # 75% diagnosed before the study window, the rest during it (never before onset age)
        onset = dob + np.timedelta64(int(ONSET_AGE[c] * 365.25), "D")
        early_start = np.maximum(onset, np.datetime64("1995-01-01"))
        before = rng.random(n) < 0.75
        late_start = np.maximum(onset, WINDOW_START)
        can_early = early_start <= np.datetime64("2018-12-31")
        use_early = before & can_early
        start = np.where(use_early, early_start, late_start)
        end = np.where(use_early, np.datetime64("2018-12-31"), WINDOW_END)
        d = _random_dates(rng, start, end)
        has[c] &= start <= end
        diagnosis[c] = np.where(has[c], d, np.datetime64("NaT"))

    # --- registration and deaths (deaths and departures only after census day, see README)
    reg = cfg.registration
    registered = rng.random(n) >= reg.unregistered
    born_in_window = dob > np.datetime64("2018-12-31")
    late = (rng.random(n) < reg.late_registration) & ~born_in_window
    reg_start = _random_dates(
        rng, np.maximum(dob, np.datetime64("1990-01-01")), np.full(n, np.datetime64("2018-12-31"))
    )
    reg_start = np.where(
        late, _random_dates(rng, np.full(n, WINDOW_START), np.full(n, WINDOW_END)), reg_start
    )
    reg_start = np.where(born_in_window, dob + rng.integers(14, 60, n).astype("timedelta64[D]"), reg_start)
    log_h = np.log(3e-5) + 0.095 * age + np.log(max(reg.mortality_scale, 1e-12))
    for c, lrr in DEATH_LOG_RR.items():
        log_h = log_h + lrr * has[c]
    years_to_death = rng.exponential(1.0, n) / np.exp(log_h)
    death_day = CENSUS_DAY + (years_to_death * 365.25).clip(0, 20 * 365).astype(np.int64).astype(
        "timedelta64[D]"
    )
    dies = (death_day <= WINDOW_END) & (reg.mortality_scale > 0)
    date_of_death = np.where(dies, death_day, np.datetime64("NaT"))
    # someone who dies before their late registration would never have registered: register earlier
    early_death = dies & (death_day <= reg_start)
    reg_start = np.where(
        early_death,
        np.maximum(dob, death_day - rng.integers(30, 400, n).astype("timedelta64[D]")),
        reg_start,
    )
    leaves = (rng.random(n) < reg.left_region) & ~dies
    leave_day = _random_dates(
        rng, np.maximum(reg_start, CENSUS_DAY) + np.timedelta64(1, "D"), np.full(n, WINDOW_END)
    )
    reg_end = np.where(dies, date_of_death, np.where(leaves, leave_day, np.datetime64("NaT")))
    reg_end = np.where(~np.isnat(reg_end) & (reg_end < reg_start), reg_start, reg_end)  # leavers only

    # --- economic status on census day: planted LSOA rates, individually targeted at the ill
    area, status = _economic_status(rng, cfg, region, lsoa_idx, la_idx, age, has, diagnosis)
    # drawn last, so adding it left every earlier draw of this stream (and every file) unchanged
    disabled = census_disability(rng, cfg, age, status, has, diagnosis)
    # from a stream of its own, so adding it left every other draw (and every other file) unchanged
    seq = rng.bit_generator.seed_seq
    reason = inactive_reason(
        np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 21))),
        age,
        status,
    )

    persons = pd.DataFrame(
        {
            "person_id": np.char.add("PER", np.char.zfill(np.arange(1, n + 1).astype(str), 8)).astype(object),
            "nhs_number": nhs,
            "forename": forename,
            "surname": surname,
            "date_of_birth": dob,
            "age_at_census": age,
            "sex": np.where(female, "F", "M").astype(object),
            "ethnicity": ethnicity,
            "lsoa_idx": lsoa_idx,
            "la_idx": la_idx,
            "lsoa21cd": lsoas["lsoa21cd"].to_numpy()[lsoa_idx],
            "lad22cd": lsoas["lad22cd"].to_numpy()[lsoa_idx],
            "lad22nm": lsoas["lad22nm"].to_numpy()[lsoa_idx],
            "imd_decile": decile,
            "postcode": postcode,
            "previous_postcode": previous,
            "practice_idx": practice_idx,
            "practice_code": region.practices["practice_code"].to_numpy()[practice_idx],
            "registered": registered,
            "registration_start": reg_start,
            "registration_end": reg_end,
            "date_of_death": date_of_death,
            "economic_status": status,
            "census_disabled": disabled,
            "inactive_reason": reason,
            "under_served_area": under_served[lsoa_idx],
        }
    )
    for c in CONDITIONS:
        persons[f"has_{c}"] = has[c]
    return Population(persons=persons, diagnosis=diagnosis, area_truth=area)


def inactive_reason(rng: np.random.Generator, age: np.ndarray, status: np.ndarray) -> np.ndarray:
    """The census reason for inactivity of each ``inactive_other`` resident ("" for everyone else).

    Why: the equity audit's comparison population leaves out retired people and students (the
    programmes are not for them), so the census table must say who they are.
    """
    bands = age_band(age)
    out = np.full(len(age), "", dtype=object)
    u = rng.random(len(age))
    for band, shares in INACTIVE_REASON_BY_AGE.items():
        rows = (bands == band) & (status == "inactive_other")
        out[rows] = np.array(INACTIVE_REASONS, dtype=object)[
            np.minimum(np.searchsorted(np.cumsum(shares), u[rows], side="right"), len(INACTIVE_REASONS) - 1)
        ]
    return out


def census_disability(
    rng: np.random.Generator,
    cfg: SynthConfig,
    age: np.ndarray,
    status: np.ndarray,
    has: dict[str, np.ndarray],
    diagnosis: dict[str, np.ndarray],
) -> np.ndarray:
    """Disabled under the Equality Act on census day (the census 2021 question), per resident.

    The planted model is ``SynthConfig.disability`` (see its docstring): a logistic model on age
    band, economic status and the conditions diagnosed by census day. Children are given the
    16-24 odds ratio (the census asks about everyone; the audit's tables cover 16+ only).
    """
    dis = cfg.disability
    bands = age_band(age)
    log_odds = np.full(len(age), dis.intercept)
    for b, v in dis.or_age_band.items():
        log_odds += np.log(v) * (bands == b)
    log_odds += np.log(dis.or_age_band.get(CENSUS_AGE_BANDS[0], 1.0)) * (bands == "")
    for s, v in dis.or_economic_status.items():
        log_odds += np.log(v) * (status == s)
    for c, v in dis.or_condition.items():
        log_odds += np.log(v) * (has[c] & (diagnosis[c] <= CENSUS_DAY))
    return rng.random(len(age)) < 1.0 / (1.0 + np.exp(-log_odds))


def _economic_status(
    rng: np.random.Generator,
    cfg: SynthConfig,
    region: Region,
    lsoa_idx: np.ndarray,
    la_idx: np.ndarray,
    age: np.ndarray,
    has: dict[str, np.ndarray],
    diagnosis: dict[str, np.ndarray],
) -> tuple[pd.DataFrame, np.ndarray]:
    ea = cfg.economic_activity
    n_lsoa = len(region.lsoas)
    residents = np.bincount(lsoa_idx, minlength=n_lsoa).astype(float)
    prevalence = {}
    for c in CONDITIONS:
        cases = np.bincount(lsoa_idx, weights=(diagnosis[c] <= QOF_YEAR_END) & has[c], minlength=n_lsoa)
        prevalence[c] = (cases + 0.5) / (residents + 1.0)
    la_of_lsoa = region.lsoas["la_idx"].to_numpy()
    la_effect = rng.normal(0.0, 0.1, size=len(region.las))
    bands = age_band(age)
    adult = bands != ""
    adults = np.bincount(lsoa_idx, weights=adult, minlength=n_lsoa)

    def planted_rate(elasticities: dict[str, float], mean_rate: float) -> tuple[np.ndarray, float]:
        log_r = la_effect[la_of_lsoa] + rng.normal(0.0, ea.area_noise_sd, n_lsoa)
        for c, beta in elasticities.items():
            log_r = log_r + beta * np.log(prevalence[c])
        # the intercept makes the adult-weighted mean rate equal to the configured one
        w = adults / max(adults.sum(), 1.0)
        intercept = np.log(mean_rate) - np.log(max(float((np.exp(log_r) * w).sum()), 1e-12))
        return np.exp(log_r + intercept), float(intercept)

    r_sick, a_sick = planted_rate(ea.elasticities_inactive_sick, ea.mean_rate_inactive_sick)
    r_unemp, a_unemp = planted_rate(ea.elasticities_unemployed, ea.mean_rate_unemployed)
    r_sick = np.clip(r_sick, 0.0, 0.6)
    r_unemp = np.clip(r_unemp, 0.0, 0.4)

    def individual_probability(area_rate: np.ndarray, age_rr: dict[str, float]) -> np.ndarray:
        log_w = np.zeros(len(age))
        for c, g in ea.individual_log_or.items():
            log_w += g * has[c]
        for b, v in age_rr.items():
            log_w += v * (bands == b)
        w = np.where(adult, np.exp(log_w), 0.0)
        p = np.zeros(len(age))
        for _ in range(4):  # rescale so each LSOA's expected rate is the planted one despite clipping
            mean_w = np.bincount(lsoa_idx, weights=np.where(p < 0.9, w, 0.0), minlength=n_lsoa)
            capped = np.bincount(lsoa_idx, weights=np.where(p >= 0.9, 0.9, 0.0), minlength=n_lsoa)
            scale = np.maximum(area_rate * adults - capped, 0.0) / np.maximum(mean_w, 1e-12)
            p = np.where(p >= 0.9, 0.9, np.minimum(w * scale[lsoa_idx], 0.9))
        return p

    p_sick = individual_probability(r_sick, SICK_AGE_LOG_RR)
    p_unemp = individual_probability(r_unemp, UNEMPLOYED_AGE_LOG_RR)
    over = p_sick + p_unemp > 0.95
    p_unemp = np.where(over, np.maximum(0.95 - p_sick, 0.0), p_unemp)
    p_other = np.zeros(len(age))
    for b, v in INACTIVE_OTHER_BY_AGE.items():
        p_other[bands == b] = v
    u = rng.random(len(age))
    status = np.full(len(age), "under_16", dtype=object)
    rest = 1.0 - p_sick - p_unemp
    status[adult] = "employed"
    status[adult & (u < p_sick + p_unemp + p_other * rest)] = "inactive_other"
    status[adult & (u < p_sick + p_unemp)] = "unemployed"
    status[adult & (u < p_sick)] = "inactive_sick"

    area = pd.DataFrame(
        {
            "lsoa21cd": region.lsoas["lsoa21cd"],
            "lad22cd": region.lsoas["lad22cd"],
            "residents": residents.astype(np.int64),
            "residents_16_plus": adults.astype(np.int64),
            "planted_rate_inactive_sick": r_sick,
            "planted_rate_unemployed": r_unemp,
        }
    )
    for c in CONDITIONS:
        area[f"prevalence_{c}"] = prevalence[c]
    for s in ECONOMIC_STATUSES:
        area[f"count_{s}"] = np.bincount(lsoa_idx, weights=status == s, minlength=n_lsoa).astype(np.int64)
    area.attrs["intercepts"] = {"inactive_sick": a_sick, "unemployed": a_unemp}
    area.attrs["la_effects"] = dict(zip(region.las["lad22cd"], la_effect.tolist(), strict=True))
    return area, status
