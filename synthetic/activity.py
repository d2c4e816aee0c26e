"""Monthly health-service use, 2019-01 .. 2025-12, generated in chunks of patients.

Counts are Poisson given a person-level gamma frailty (so negative binomial overall), with rates
that depend on age, sex, deprivation, conditions from their diagnosis month on, season, a spring
2020 dip common to everyone, and the planted enrolment effect from the enrolment month on.

Only non-zero cells inside the registration period are written. Drawing one uniform per cell and
inverting the Poisson CDF (rather than calling a Poisson sampler) costs one random number per
person-month, which is what lets 5 million people run in minutes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthetic.config import CONDITIONS, MEASURES, SynthConfig
from synthetic.population import N_MONTHS
from synthetic.tables import PARQUET_OPTIONS, ROW_GROUP_ROWS

# log rate ratio of each condition (rows, CONDITIONS order) on each measure (columns, MEASURES order)
CONDITION_LOG_RR = np.array(
    [
        # gp    ae    adm   op    antidep
        [0.35, 0.30, 0.20, 0.10, 5.70],  # depression
        [0.30, 0.60, 0.60, 0.20, 5.00],  # smi
        [0.20, 0.50, 0.50, 0.40, 0.50],  # epilepsy
        [0.45, 0.50, 0.90, 0.40, 0.00],  # copd
        [0.35, 0.20, 0.40, 0.50, 0.00],  # diabetes
        [0.30, 0.30, 0.60, 0.50, 0.00],  # chd
        [0.15, 0.05, 0.10, 0.20, 0.00],  # hypertension
        [0.20, 0.30, 0.40, 0.20, 3.00],  # learning_disability
        [0.15, 0.10, 0.30, 0.40, 0.00],  # osteoporosis
        [0.20, 0.25, 0.30, 0.20, 0.00],  # asthma
    ]
)
AGE_KNOTS = (0, 5, 16, 30, 45, 65, 80, 100)
AGE_LOG_RR = np.array(
    [
        [0.4, -0.5, -0.1, -0.1, 0.2, 0.6, 0.9, 0.9],  # gp
        [0.3, -0.3, 0.2, 0.0, 0.0, 0.2, 0.8, 0.9],  # ae
        [0.3, -0.8, -0.4, -0.3, 0.0, 0.7, 1.4, 1.6],  # admissions
        [0.0, -0.2, -0.3, -0.2, 0.2, 0.6, 0.7, 0.6],  # outpatients
        [-6.0, -6.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # antidepressants
    ]
)
# ceilings of a monthly rate: conditions multiply, but nobody collects more than ~1.5
# antidepressant prescriptions a month however many conditions they have
MAX_MONTHLY_RATE = np.array([15.0, 3.0, 2.0, 5.0, 1.5], dtype=np.float32)
FEMALE_LOG_RR = np.array([0.2, 0.0, 0.0, 0.1, 0.2])
SEASON = np.array(
    [
        [1.12, 1.08, 1.05, 0.97, 0.97, 0.95, 0.92, 0.86, 1.00, 1.05, 1.08, 0.95],
        [1.00, 0.95, 1.00, 1.00, 1.05, 1.05, 1.05, 1.00, 0.98, 0.98, 0.98, 1.00],
        [1.15, 1.10, 1.05, 0.98, 0.95, 0.92, 0.92, 0.92, 0.95, 1.00, 1.05, 1.12],
        [1.00, 1.02, 1.05, 0.98, 1.00, 1.00, 0.98, 0.90, 1.00, 1.05, 1.05, 0.90],
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.02],
    ]
)
COVID_SPRING_2020 = np.array([0.70, 0.55, 0.80, 0.60, 1.00])  # 2020-04 .. 2020-06
COVID_LATE_2020 = np.array([0.92, 0.85, 0.95, 0.85, 1.00])  # 2020-07 .. 2021-03

# Ids and measures are handed to the writer as dictionary arrays (no per-row string building or
# hashing); with ``store_schema=False`` readers still see plain string columns.
SCHEMA = pa.schema(
    [
        ("patient_id", pa.dictionary(pa.int32(), pa.string())),
        ("month", pa.date32()),
        ("measure", pa.dictionary(pa.int32(), pa.string())),
        ("count", pa.int64()),
    ]
)


def month_multipliers(cfg: SynthConfig) -> np.ndarray:
    """(measures, 84) multiplier of each month: season times the 2020 dip."""
    mult = np.tile(SEASON, (1, N_MONTHS // 12))
    if cfg.activity.covid_dip:
        mult[:, 15:18] *= COVID_SPRING_2020[:, None]
        mult[:, 18:27] *= COVID_LATE_2020[:, None]
    return mult


@dataclass(frozen=True)
class ActivityInputs:
    """Per-patient arrays, in the order rows are written (sorted by ``patient_id``)."""

    patient_id: np.ndarray
    age: np.ndarray
    female: np.ndarray
    imd_decile: np.ndarray
    first_month: np.ndarray  # first month index inside registration (may be < 0)
    last_month: np.ndarray  # last month index inside registration (may be >= 84)
    diagnosis_month: np.ndarray  # (patients, conditions) month index of diagnosis, large if never
    enrolment_month: np.ndarray  # month index of first enrolment, large if never


def write_activity(
    inputs: ActivityInputs,
    cfg: SynthConfig,
    seed: int,
    path: str | os.PathLike[str],
    advance: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, int]:
    """Write ``activity.parquet`` chunk by chunk to ``path`` (a temporary path; caller renames).

    Each chunk has its own random stream derived from (seed, chunk number) and chunks are written
    in order, so the file depends only on the seed and the chunk size, never on ``workers`` or
    timing. ``workers`` threads generate chunks side by side (numpy and Arrow release the GIL for
    the heavy loops); at most ``workers + 1`` chunks are held in memory. Returns rows per measure.
    """
    months = month_multipliers(cfg)
    totals = dict.fromkeys(MEASURES, 0)
    n = len(inputs.patient_id)
    chunk = cfg.chunk_people
    bounds = [(k, lo, min(lo + chunk, n)) for k, lo in enumerate(range(0, n, chunk))]

    def make(k: int, lo: int, hi: int) -> tuple[pa.Table, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7, k]))
        counts = _chunk_counts(inputs, slice(lo, hi), cfg, months, rng)
        return _chunk_table(counts, inputs.patient_id[lo:hi]), _measure_totals(counts)

    with (
        pq.ParquetWriter(path, SCHEMA, store_schema=False, **PARQUET_OPTIONS) as writer,
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="synth-activity") as pool,
    ):
        pending: deque[tuple[int, Future[tuple[pa.Table, np.ndarray]]]] = deque()

        def write_next() -> None:
            size, future = pending.popleft()
            table, per_measure = future.result()
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            for j, m in enumerate(MEASURES):
                totals[m] += int(per_measure[j])
            if advance is not None:
                advance(size)

        for k, lo, hi in bounds:
            pending.append((hi - lo, pool.submit(make, k, lo, hi)))
            if len(pending) > max(1, workers):
                write_next()
        while pending:
            write_next()
    return totals


_MONTH_DAYS = (
    (np.arange(N_MONTHS).astype("timedelta64[M]") + np.datetime64("2019-01", "M"))
    .astype("datetime64[D]")
    .astype(np.int64)
    .astype(np.int32)
)
_MEASURE_NAMES = pa.array(list(MEASURES), type=pa.string())


def _measure_totals(counts: np.ndarray) -> np.ndarray:
    return np.count_nonzero(counts, axis=(0, 1))


def _chunk_table(counts: np.ndarray, patient_ids: np.ndarray) -> pa.Table:
    """Non-zero cells of a (people, months, measures) array as rows, in that order."""
    person, month, measure = np.nonzero(counts)
    values = counts[person, month, measure].astype(np.int64)
    ids = pa.array(patient_ids, type=pa.string())
    return pa.table(
        {
            "patient_id": pa.DictionaryArray.from_arrays(pa.array(person.astype(np.int32)), ids),
            "month": pa.array(_MONTH_DAYS[month], type=pa.int32()).cast(pa.date32()),
            "measure": pa.DictionaryArray.from_arrays(pa.array(measure.astype(np.int32)), _MEASURE_NAMES),
            "count": pa.array(values, type=pa.int64()),
        },
        schema=SCHEMA,
    )


def _chunk_counts(
    inputs: ActivityInputs, rows: slice, cfg: SynthConfig, months: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(people, 84, measures) counts for one chunk, zero outside registration.

    Work is proportional to the chunk's person-months only for the two unavoidable steps (the rate
    outer product and one uniform per cell); everything that concerns a minority of people
    (diagnoses during the window, enrolment, partial registration) touches only their rows.
    """
    age = inputs.age[rows]
    n = len(age)
    m_idx = np.arange(N_MONTHS)
    first = inputs.first_month[rows]
    last = inputs.last_month[rows]
    partial = np.flatnonzero((first > 0) | (last < N_MONTHS - 1))
    outside = (m_idx[None, :] < first[partial, None]) | (m_idx[None, :] > last[partial, None])
    diag = inputs.diagnosis_month[rows]
    enrol = inputs.enrolment_month[rows]
    enrolled = np.flatnonzero(enrol < N_MONTHS)
    enrolled_from = m_idx[None, :] >= enrol[enrolled, None]
    dep_steps = 5.5 - inputs.imd_decile[rows]
    phi = cfg.activity.frailty_dispersion
    effect = cfg.health_effect
    out = np.zeros((n, N_MONTHS, len(MEASURES)), dtype=np.int16)
    for j, measure in enumerate(MEASURES):
        log_base = (
            np.log(cfg.activity.base_monthly_rate[measure])
            + np.interp(age, AGE_KNOTS, AGE_LOG_RR[j])
            + FEMALE_LOG_RR[j] * inputs.female[rows]
            + cfg.activity.deprivation_log_rr_per_decile[measure] * dep_steps
        )
        # conditions diagnosed before the window raise the whole series; later ones from diagnosis on
        for c in range(len(CONDITIONS)):
            log_base = log_base + CONDITION_LOG_RR[c, j] * (diag[:, c] <= 0)
        frailty = rng.gamma(1 / phi, phi, n) if phi > 0 else np.ones(n)
        lam = (np.exp(log_base) * frailty).astype(np.float32)[:, None] * months[j].astype(np.float32)[None, :]
        for c in range(len(CONDITIONS)):
            rr = CONDITION_LOG_RR[c, j]
            later = np.flatnonzero((diag[:, c] > 0) & (diag[:, c] < N_MONTHS))
            if rr != 0.0 and len(later):
                lam[later] *= np.where(
                    m_idx[None, :] >= diag[later, c, None], np.float32(np.exp(rr)), np.float32(1)
                )
        change = effect.relative_change[measure] if effect.enabled else 0.0
        if change != 0.0 and len(enrolled):
            lam[enrolled] *= np.where(enrolled_from, np.float32(1.0 + change), np.float32(1))
        np.minimum(lam, MAX_MONTHLY_RATE[j], out=lam)
        if len(partial):
            lam[partial] = np.where(outside, np.float32(0), lam[partial])
        out[:, :, j] = _poisson_inverse_cdf(lam, rng.random(lam.shape, dtype=np.float32))
    return out


def _poisson_inverse_cdf(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Exact Poisson draws by inverting the CDF at ``u``; only non-zero cells are iterated."""
    p0 = np.exp(-lam)
    counts = np.zeros(lam.shape, dtype=np.int16)
    idx = np.flatnonzero(u > p0)  # u <= exp(-lam) is a zero count
    if len(idx) == 0:
        return counts
    # the tail is summed in double precision so the CDF can always climb past u
    lam_nz = lam.ravel()[idx].astype(np.float64)
    u_nz = u.ravel()[idx].astype(np.float64)
    p0_nz = np.exp(-lam_nz)
    pmf = p0_nz * lam_nz
    cdf = p0_nz + pmf
    k = np.ones(len(idx), dtype=np.int16)
    todo = np.flatnonzero(u_nz > cdf)
    step = 1
    while len(todo) and step < 200:
        step += 1
        pmf[todo] *= lam_nz[todo] / step
        cdf[todo] += pmf[todo]
        k[todo] += 1
        todo = todo[u_nz[todo] > cdf[todo]]
    flat = counts.ravel()
    flat[idx] = k
    return counts
