"""How are health services used by employment-support clients? Clients before enrolment against
the comparison population, per measure, standardised for age and sex.

Clients differ from other residents in age and sex, and both change how often anyone sees a GP
or attends A&E, so crude rates would mix who the clients are with how they use services. Each
group's rate is therefore *directly* standardised: the rates in each age-sex stratum are weighted
by one standard population, the pooled clients' person-time of every programme (so the
programmes are comparable with each other, and each programme's rate stays close to its crude
rate). The ratio of a programme's standardised rate to the comparison population's says how many
times as often its clients used the service before they enrolled.

Clients' months are those before enrolment (``months_before``, default the 12 months up to the
month before the enrolment month) from ``analysis/panel.parquet``, with the age band at
enrolment. The comparison population is ``analysis/comparison_pool.parquet``: registered
patients never linked to a client, in the calendar months the clients' months cover, aged 16-64
in that month. Rates are events per person-year. Confidence intervals allow for repeated months
of the same person (a ratio-estimator variance over people, not a Poisson variance over months:
service use clusters strongly within people).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.disclosure import ModelResult
from analysis.stage import AnalysisOutputs, estimates_result, read_research_table, request_outputs
from analysis.vocabulary import AGE_BANDS, MEASURE_LABELS, MEASURES, WORKING_AGE_BANDS
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

#: ``source`` of the outputs (the release ledger groups by it): the panel and its comparison pool,
#: as for the natural experiment, so releases from the same person-months are checked together.
SERVICE_USE_SOURCE = "analysis/panel"
#: The comparison group's name in tables and sentences.
COMPARISON = "comparison"
Z95 = 1.959964


@dataclass(frozen=True)
class StandardisedRate:
    """A directly standardised rate per person-year with its 95% CI and the people behind it."""

    rate: float
    ci_low: float
    ci_high: float
    se_log: float
    people: int
    person_years: float


def _person_strata(months: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Events and person-months per person and age-sex stratum."""
    return (
        months.groupby(["person", "age_band", "sex"], observed=True)
        .agg(events=(measure, "sum"), months=(measure, "size"))
        .reset_index()
    )


def standardised_rate(per_person: pd.DataFrame, weights: pd.Series) -> StandardisedRate:
    """Directly standardised rate (events per person-year) of one group.

    ``per_person``: one row per person and stratum (``age_band``, ``sex``, ``events``, ``months``);
    ``weights``: the standard population's share per (``age_band``, ``sex``), summing to 1 over
    the strata used. Within a stratum the rate is total events over total person-time, and its
    variance the ratio-estimator variance over people, ``n/(n-1) * sum (y_i - r t_i)^2 / T^2``,
    which stays honest when one person's months are correlated.
    """
    total, variance = 0.0, 0.0
    for (band, sex), w in weights.items():
        s = per_person[(per_person["age_band"] == band) & (per_person["sex"] == sex)]
        t = s["months"].to_numpy(dtype=float) / 12.0
        y = s["events"].to_numpy(dtype=float)
        if t.sum() <= 0:
            raise ValueError(f"no person-time in stratum {band} {sex}")
        r = y.sum() / t.sum()
        n = len(s)
        var = n / (n - 1) * float(((y - r * t) ** 2).sum()) / t.sum() ** 2 if n > 1 else r**2
        total += w * r
        variance += w**2 * var
    se_log = math.sqrt(variance) / total if total > 0 else float("inf")
    return StandardisedRate(
        rate=total,
        ci_low=total * math.exp(-Z95 * se_log) if total > 0 else 0.0,
        ci_high=total * math.exp(Z95 * se_log) if total > 0 else float("inf"),
        se_log=se_log,
        people=int(per_person["person"].nunique()),
        person_years=float(per_person["months"].sum() / 12.0),
    )


def _age_band_of(age: pd.Series) -> pd.Series:
    out = pd.Series(None, index=age.index, dtype=object)
    for band in AGE_BANDS:
        out[(age >= band.low) & (age <= band.high)] = band.label
    return out


def client_months(panel: pd.DataFrame, months_before: int = 12) -> pd.DataFrame:
    """Clients' person-months before enrolment (event time -months_before .. -1), age at enrolment."""
    need = {"client_pseudonym", "programme", "event_time", "age_band", "sex", "month"}
    missing = sorted(need - set(panel.columns))
    if missing:
        raise InputError(
            "analysis/panel.parquet",
            "a required column is missing",
            column=missing[0],
            hint="rebuild the research dataset.",
        )
    pre = panel[(panel["event_time"] < 0) & (panel["event_time"] >= -months_before)].copy()
    pre = pre[pre["age_band"].isin(WORKING_AGE_BANDS) & pre["sex"].isin(["F", "M"])]
    return pre.rename(columns={"client_pseudonym": "person"})


def comparison_months(pool: pd.DataFrame, people: pd.DataFrame, months: pd.Series) -> pd.DataFrame:
    """Comparison person-months in the calendar months ``months`` covers, aged 16-64 that month."""
    p = people[["patient_pseudonym", "year_of_birth", "sex"]].drop_duplicates("patient_pseudonym")
    m = pool[pool["month"].between(months.min(), months.max())].merge(p, on="patient_pseudonym")
    age = pd.to_datetime(m["month"]).dt.year - pd.to_numeric(m["year_of_birth"], errors="coerce")
    m["age_band"] = _age_band_of(age)
    m = m[m["age_band"].isin(WORKING_AGE_BANDS) & m["sex"].isin(["F", "M"])]
    return m.rename(columns={"patient_pseudonym": "person"})


def service_use_table(
    clients: pd.DataFrame, comparison: pd.DataFrame, measures: Sequence[str] = MEASURES
) -> pd.DataFrame:
    """Standardised rates per programme and measure, the comparison's, and their rate ratio.

    The standard population is the pooled clients' person-time by age band and sex, restricted to
    strata where every group compared has person-time (so no rate is extrapolated).
    """
    programmes = sorted(clients["programme"].dropna().unique())
    standard = clients.groupby(["age_band", "sex"]).size()
    common = set(standard.index) & set(comparison.groupby(["age_band", "sex"]).size().index)
    for prog in programmes:
        common &= set(clients[clients["programme"] == prog].groupby(["age_band", "sex"]).size().index)
    standard = standard[[k in common for k in standard.index]]
    if standard.empty:
        raise InputError(
            "analysis/panel.parquet",
            "clients and the comparison population share no age-sex group with person-time",
            hint="rebuild the research dataset with a larger comparison pool.",
        )
    weights = standard / standard.sum()
    rows = []
    for measure in [m for m in measures if m in clients.columns and m in comparison.columns]:
        ref = standardised_rate(_person_strata(comparison, measure), weights)
        for prog in programmes:
            mine = standardised_rate(_person_strata(clients[clients["programme"] == prog], measure), weights)
            se = math.sqrt(mine.se_log**2 + ref.se_log**2)
            ratio = mine.rate / ref.rate if ref.rate > 0 else float("nan")
            rows.append(
                {
                    "programme": prog,
                    "measure": measure,
                    "clients_rate": mine.rate,
                    "clients_ci_low": mine.ci_low,
                    "clients_ci_high": mine.ci_high,
                    "clients_people": mine.people,
                    "clients_person_years": mine.person_years,
                    "comparison_rate": ref.rate,
                    "comparison_ci_low": ref.ci_low,
                    "comparison_ci_high": ref.ci_high,
                    "comparison_people": ref.people,
                    "comparison_person_years": ref.person_years,
                    "rate_ratio": ratio,
                    "ratio_ci_low": ratio * math.exp(-Z95 * se),
                    "ratio_ci_high": ratio * math.exp(Z95 * se),
                    "p_value": float(2 * _normal_sf(abs(math.log(ratio)) / se))
                    if ratio > 0
                    else float("nan"),
                    "standard_strata": len(weights),
                }
            )
    return pd.DataFrame(rows)


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def _rate_text(x: float) -> str:
    """A rate for a sentence: one decimal from 1 up, two significant figures below (0.15)."""
    if not math.isfinite(x):
        return "not estimable"
    if x >= 1 or x == 0:
        return f"{x:,.1f}"
    digits = 1 - int(math.floor(math.log10(x)))
    return f"{round(x, digits):.{digits}f}"


def programme_name(programme: str) -> str:
    """``health_into_work`` -> ``Health into work`` (as sentences say a programme)."""
    return programme.replace("_", " ").capitalize()


def _measure_in_sentence(measure: str) -> str:
    """``GP appointments`` stays; ``Emergency admissions`` -> ``emergency admissions``."""
    label = MEASURE_LABELS.get(measure, measure.replace("_", " "))
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


def describe_service_use(row: pd.Series, months_before: int = 12) -> str:
    """One plain sentence per programme and measure, rounded, naming the programme."""
    what = _measure_in_sentence(row["measure"])
    period = "year" if months_before == 12 else f"{months_before} months"
    rates = (
        f"{programme_name(row['programme'])} clients had {_rate_text(row['clients_rate'])} {what} per "
        f"person-year in the {period} before enrolling (95% CI {_rate_text(row['clients_ci_low'])}–"
        f"{_rate_text(row['clients_ci_high'])}), against {_rate_text(row['comparison_rate'])} for "
        "registered patients who never enrolled"
    )
    ratio = f"{row['rate_ratio']:.2f} times the rate (95% CI {row['ratio_ci_low']:.2f}–{row['ratio_ci_high']:.2f})"
    if row["ratio_ci_low"] > 1:
        verdict = f"that is {ratio}, higher"
    elif row["ratio_ci_high"] < 1:
        verdict = f"that is {ratio}, lower"
    else:
        verdict = f"no clear difference: {ratio}"
    return f"{rates}; {verdict} once age and sex are taken into account."


def service_use_outputs(
    table: pd.DataFrame, min_people: int, months_before: int = 12
) -> list[tuple[str, ModelResult]]:
    """The released estimates: each programme's and the comparison's standardised rates and ratios."""
    rows = []
    for r in table.itertuples(index=False):
        label = MEASURE_LABELS.get(r.measure, r.measure)
        prog = programme_name(r.programme)
        people = min(r.clients_people, r.comparison_people)
        for term, est, lo, hi, n, p in (
            (f"{prog}: {label} per person-year before enrolment", r.clients_rate, r.clients_ci_low,
             r.clients_ci_high, r.clients_people, np.nan),
            (f"Comparison population: {label} per person-year", r.comparison_rate, r.comparison_ci_low,
             r.comparison_ci_high, r.comparison_people, np.nan),
            (f"{prog}: {label}, rate ratio against the comparison population", r.rate_ratio,
             r.ratio_ci_low, r.ratio_ci_high, people, r.p_value),
        ):  # fmt: skip
            rows.append(
                {
                    "term": term,
                    "estimate": round(float(est), 3),
                    "ci_lower": round(float(lo), 3),
                    "ci_upper": round(float(hi), 3),
                    "p_value": p if not np.isfinite(p) else max(round(float(p), 4), 0.0001),
                    "n_people": int(n),
                }
            )
    estimates = pd.DataFrame(rows).drop_duplicates("term")
    sentences = [
        describe_service_use(pd.Series(r._asdict()), months_before)
        for r in table.itertuples(index=False)
        if min(r.clients_people, r.comparison_people) >= min_people
    ]
    people = (
        int(table.groupby("programme")["clients_people"].max().sum() + table["comparison_people"].max())
        if len(table)
        else 0
    )
    result = estimates_result(
        estimates,
        "Health-service use before enrolment against the comparison population, standardised for age and sex",
        SERVICE_USE_SOURCE,
        "Directly standardised rates per person-year (standard: all programmes' clients by age band "
        f"and sex); clients' {months_before} months before the enrolment month; comparison: registered patients "
        "aged 16-64 never linked to a client, same calendar months; 95% CIs allow for repeated "
        "months of the same person. p-values below 0.0001 are shown as 0.0001.\n" + "\n".join(sentences),
        people,
    )
    return [("service-use-standardised-rates", result)]


def run_service_use(
    workspace: Workspace,
    engine: Any,
    actor: str,
    months_before: int = 12,
    justification: str = "How employment-support clients used health services before enrolling, "
    "against residents of the same age and sex.",
) -> AnalysisOutputs:
    """The service-use stage (researcher): standardised rates before enrolment and rate ratios."""
    paths = [workspace.analysis / f"{n}.parquet" for n in ("panel", "comparison_pool", "comparison_people")]
    with engine.step(
        actor, Role.RESEARCHER, "service_use", analysis=Analysis.SERVICE_USE, reads_linked_data=True
    ) as step:
        panel = read_research_table(workspace, "panel", ("client_pseudonym", "programme", "event_time"))
        pool = read_research_table(workspace, "comparison_pool", ("patient_pseudonym", "month"))
        people = read_research_table(
            workspace, "comparison_people", ("patient_pseudonym", "year_of_birth", "sex")
        )
        clients = client_months(panel, months_before)
        if clients.empty:
            raise InputError(
                str(paths[0]),
                f"no linked client has a registered month in the {months_before} months before enrolment",
                hint="rebuild the research dataset after linkage, with months_before of at least 1.",
            )
        comparison = comparison_months(pool, people, clients["month"])
        table = service_use_table(clients, comparison)
        min_people = engine.policy.outputs.min_cell_count
        requests, folders = request_outputs(
            workspace, engine, actor, service_use_outputs(table, min_people, months_before), justification
        )
        step.inputs(*paths)
        step.outputs(*folders)
        step.counts(
            client_people=int(clients["person"].nunique()),
            comparison_people=int(comparison["person"].nunique()),
            outputs_requested=len(requests),
        )
        step.detail(measures=sorted(table["measure"].unique().tolist()))
    sentences = tuple(
        describe_service_use(pd.Series(r._asdict()), months_before)
        for r in table.itertuples(index=False)
        if min(r.clients_people, r.comparison_people) >= min_people
    )
    return AnalysisOutputs("service_use", requests, folders, sentences)


__all__ = [
    "StandardisedRate",
    "client_months",
    "comparison_months",
    "describe_service_use",
    "run_service_use",
    "service_use_outputs",
    "service_use_table",
    "standardised_rate",
]
