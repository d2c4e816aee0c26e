"""The research dataset: one row per enrolment, and a person-month panel of health-service use.

Every analysis reads these tables instead of the pseudonymised zone, so the choices that shape all
results are made once, here, and are visible: one enrolment per person (each ``client_cluster``'s
first), event time counted in calendar months from the enrolment month, and months in which a
person was not registered with a GP (or had died) left *out* of the panel. A missing month is
unknown, not a month without appointments; filling it with zeros would fake a fall in use around
registration changes and deaths.

Tables written to ``analysis/`` (see ARCHITECTURE.md, "Analysis zone"):

* ``clients.parquet`` — one row per enrolment, with covariates and baseline GP-recorded conditions;
* ``panel.parquet`` — linked clients' person-months from ``months_before`` before to
  ``months_after`` after their first enrolment, registered months only, zero-filled counts;
* ``comparison_people.parquet`` and ``comparison_pool.parquet`` — a deterministic sample of
  registered patients never linked to any client (people and calendar person-months), the pool from
  which the matched comparison group is drawn.

The panel is built in DuckDB: a 100k x 49 person-month grid joined to sparse activity takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from analysis.linkage_weights import linkage_weights
from analysis.vocabulary import AGE_BANDS, CONDITIONS, MEASURES, UNKNOWN
from ig_policies.errors import InputError
from ig_policies.policy import Role
from ig_policies.workspace import Workspace, content_hash, write_parquet

CLIENT_COLUMNS: tuple[str, ...] = (
    "client_pseudonym",
    "client_cluster",
    "programme",
    "patient_pseudonym",
    "linked",
    "enrolment_date",
    "age_band",
    "sex",
    "ethnicity",
    "imd_quintile",
    "lsoa21cd",
    "local_authority",
    *(f"sr_{c}" for c in CONDITIONS),
    *(f"gp_{c}" for c in CONDITIONS),
    "job_start",
    "sustained_26_weeks",
    "linkage_weight",
    "first_enrolment",
    "n_baseline_conditions",
)


@dataclass(frozen=True)
class PanelSpec:
    """How the panel is cut. The study window bounds the months for which activity data exist."""

    months_before: int = 24
    months_after: int = 24
    study_start: pd.Timestamp | None = None  # default: first month present in the activity data
    study_end: pd.Timestamp | None = None  # default: last month present in the activity data
    pool_size: int = 50_000

    def __post_init__(self) -> None:
        if self.months_before < 1 or self.months_after < 1:
            raise ValueError("the panel needs at least one month before and one month after enrolment")


@dataclass(frozen=True)
class ResearchDatasetInputs:
    """Where the research dataset is read from (all inside one workspace)."""

    links: Path
    employment_support: Path
    health_demographics: Path
    health_conditions: Path
    health_activity: Path
    lsoa_lookup: Path

    @classmethod
    def of(cls, ws: Workspace) -> ResearchDatasetInputs:
        return cls(
            links=ws.linked / "links.parquet",
            employment_support=ws.pseudonymised / "employment_support",
            health_demographics=ws.pseudonymised / "health_demographics",
            health_conditions=ws.pseudonymised / "health_conditions",
            health_activity=ws.pseudonymised / "health_activity",
            lsoa_lookup=ws.reference / "lsoa_lookup.csv",
        )

    def all(self) -> list[Path]:
        return [
            self.links,
            self.employment_support,
            self.health_demographics,
            self.health_conditions,
            self.health_activity,
            self.lsoa_lookup,
        ]


@dataclass(frozen=True)
class ResearchTables:
    clients: pd.DataFrame
    panel: pd.DataFrame
    comparison_people: pd.DataFrame
    comparison_pool: pd.DataFrame


@dataclass(frozen=True)
class ResearchDatasetResult:
    """What ``build_research_dataset`` wrote: paths and counts (no row-level content)."""

    clients_path: Path
    panel_path: Path
    comparison_people_path: Path
    comparison_pool_path: Path
    n_enrolments: int
    n_linked: int
    n_panel_people: int
    n_panel_months: int
    n_pool_people: int
    n_pool_months: int
    #: the linkage's match rates by group, copied from ``linked/`` (None if the link wrote none)
    match_rates_path: Path | None = None


# --------------------------------------------------------------------------------------------
# Reading


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a Parquet file or a Spark Parquet directory and check it has the columns we rely on."""
    if not path.exists():
        raise InputError(
            str(path),
            "this input does not exist",
            hint="run the earlier pipeline stages first (pseudonymise, then link).",
        )
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's messages name the broken file; keep them
        raise InputError(str(path), f"cannot be read as Parquet ({type(exc).__name__})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            str(path),
            f"missing column(s) {', '.join(missing)}",
            hint="the file does not follow the contract in docs/ARCHITECTURE.md; rebuild it with this version.",
            column=missing[0],
        )
    return df


def _month(s: pd.Series) -> pd.Series:
    """First day of the month, as datetime64 (missing stays missing)."""
    d = pd.to_datetime(s, errors="coerce")
    values = d.to_numpy(dtype="datetime64[ns]").astype("datetime64[M]").astype("datetime64[ns]")
    return pd.Series(values, index=s.index, name=s.name)


def _as_bool(s: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s
    mapped = s.map(
        lambda v: v if isinstance(v, bool | np.bool_) or v is None else str(v).upper() in {"Y", "TRUE", "1"}
    )
    return mapped.astype("boolean")


def age_band(age: pd.Series) -> pd.Series:
    """Age in whole years -> band label; missing or implausible ages are ``unknown``."""
    out = pd.Series(UNKNOWN, index=age.index, dtype=object)
    for band in AGE_BANDS:
        out[(age >= band.low) & (age <= band.high)] = band.label
    return out


def imd_quintile(decile: pd.Series) -> pd.Series:
    """IMD decile (1 = most deprived) -> quintile 1..5, nullable integer."""
    d = pd.to_numeric(decile, errors="coerce")
    return np.ceil(d / 2).astype("Int64")


# --------------------------------------------------------------------------------------------
# Clients


def build_clients(
    links: pd.DataFrame,
    employment: pd.DataFrame,
    conditions: pd.DataFrame,
    lsoa_lookup: pd.DataFrame,
) -> pd.DataFrame:
    """One row per enrolment with covariates; ``gp_<condition>`` = diagnosed before enrolment (linked only)."""
    es = employment.drop(columns=[c for c in employment.columns if c.startswith("t_")], errors="ignore")
    lk = links[["client_pseudonym", "patient_pseudonym", "match_status", "client_cluster"]]
    df = es.merge(lk, on="client_pseudonym", how="left", validate="one_to_one")
    df["client_cluster"] = df["client_cluster"].fillna(df["client_pseudonym"])
    df["linked"] = (df["match_status"] == "matched") & df["patient_pseudonym"].notna()
    df.loc[~df["linked"], "patient_pseudonym"] = None
    df["enrolment_date"] = pd.to_datetime(df["enrolment_date"], errors="coerce")
    age = df["enrolment_date"].dt.year - pd.to_numeric(df["year_of_birth"], errors="coerce")
    df["age_band"] = age_band(age)
    lookup = lsoa_lookup[["lsoa21cd", "imd_decile"]].drop_duplicates("lsoa21cd")
    df = df.merge(lookup, on="lsoa21cd", how="left")
    df["imd_quintile"] = imd_quintile(df["imd_decile"])
    for col in ("sex", "ethnicity", "local_authority", "lsoa21cd"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["sex"] = df["sex"].fillna(UNKNOWN)
    df["ethnicity"] = df["ethnicity"].fillna(UNKNOWN)
    for c in CONDITIONS:
        col = f"sr_{c}"
        df[col] = (
            _as_bool(df[col]) if col in df.columns else pd.Series(pd.NA, index=df.index, dtype="boolean")
        )
    for col in ("job_start", "sustained_26_weeks"):
        df[col] = (
            _as_bool(df[col]) if col in df.columns else pd.Series(pd.NA, index=df.index, dtype="boolean")
        )

    # Conditions recorded by the GP before the enrolment date (linked clients only).
    dx = conditions[["patient_pseudonym", "condition", "diagnosis_date"]].copy()
    dx["diagnosis_date"] = pd.to_datetime(dx["diagnosis_date"], errors="coerce")
    first_dx = dx.groupby(["patient_pseudonym", "condition"], as_index=False)["diagnosis_date"].min()
    pairs = df.loc[df["linked"], ["client_pseudonym", "patient_pseudonym", "enrolment_date"]].merge(
        first_dx, on="patient_pseudonym"
    )
    pairs = pairs[pairs["diagnosis_date"] < pairs["enrolment_date"]]
    flags = pd.crosstab(pairs["client_pseudonym"], pairs["condition"]).gt(0)
    n_conditions = pd.Series(0, index=df.index, dtype="Int64")
    for c in CONDITIONS:
        has = (
            df["client_pseudonym"].map(flags[c]) if c in flags.columns else pd.Series(np.nan, index=df.index)
        )
        col = has.fillna(False).astype(bool)
        df[f"gp_{c}"] = pd.Series(col, dtype="boolean").where(df["linked"], pd.NA)
        n_conditions = n_conditions + col.astype(int)
    df["n_baseline_conditions"] = n_conditions.where(df["linked"], pd.NA)

    # One enrolment per person for the panel: the cluster's first (ties: smallest pseudonym).
    order = df.sort_values(["client_cluster", "enrolment_date", "client_pseudonym"], na_position="last")
    first = order.drop_duplicates("client_cluster")["client_pseudonym"]
    df["first_enrolment"] = df["client_pseudonym"].isin(first)
    df["linkage_weight"] = linkage_weights(df)
    return df[list(CLIENT_COLUMNS)].sort_values("client_pseudonym").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Panels


def _study_window(activity: pd.DataFrame, spec: PanelSpec) -> tuple[pd.Timestamp, pd.Timestamp]:
    months = activity["month"]
    start = spec.study_start if spec.study_start is not None else pd.to_datetime(months.min())
    end = spec.study_end if spec.study_end is not None else pd.to_datetime(months.max())
    if pd.isna(start) or pd.isna(end):
        raise InputError(
            "pseudonymised/health_activity",
            "there are no activity rows, so the months covered by the health data are unknown",
            hint="check the health activity extract, or give the study window explicitly.",
        )
    return pd.Timestamp(start).to_period("M").to_timestamp(), pd.Timestamp(end).to_period("M").to_timestamp()


def _registration(demographics: pd.DataFrame) -> pd.DataFrame:
    reg = demographics[
        ["patient_pseudonym", "registration_start", "registration_end", "date_of_death"]
    ].copy()
    reg["reg_start"] = _month(reg["registration_start"])
    reg["reg_end"] = _month(reg["registration_end"])
    reg["death"] = _month(reg["date_of_death"])
    # A patient may appear more than once (re-registration): keep the widest span.
    reg = reg.groupby("patient_pseudonym", as_index=False).agg(
        reg_start=("reg_start", "min"), reg_end=("reg_end", "max"), death=("death", "min")
    )
    return reg


def _pivot_activity_sql(people_table: str) -> str:
    """Sparse (patient, month, measure, count) rows -> one row per patient-month with a column per
    measure, for the people in ``people_table`` only (months truncated to their first day)."""
    cols = ",\n".join(
        f"  CAST(SUM(CASE WHEN measure = '{m}' THEN \"count\" ELSE 0 END) AS INTEGER) AS {m}"
        for m in MEASURES
    )
    return (
        f"SELECT patient_pseudonym, CAST(date_trunc('month', CAST(month AS DATE)) AS DATE) AS month,\n{cols}\n"
        f"FROM activity WHERE patient_pseudonym IN (SELECT patient_pseudonym FROM {people_table}) GROUP BY 1, 2"
    )


def build_panel(
    clients: pd.DataFrame,
    demographics: pd.DataFrame,
    activity: pd.DataFrame,
    spec: PanelSpec = PanelSpec(),
) -> pd.DataFrame:
    """Linked clients' person-months around their first enrolment; registered, living months only."""
    start, end = _study_window(activity, spec)
    people = clients[clients["linked"] & clients["first_enrolment"]].copy()
    people["enrolment_month"] = _month(people["enrolment_date"])
    people = people.dropna(subset=["enrolment_month"])
    # The same patient reached through two clusters (a missed duplicate): keep the earliest enrolment.
    people = people.sort_values(["enrolment_month", "client_pseudonym"]).drop_duplicates("patient_pseudonym")
    people = people.merge(_registration(demographics), on="patient_pseudonym", how="inner")
    covariates = [
        "client_pseudonym",
        "age_band",
        "sex",
        "ethnicity",
        "imd_quintile",
        "n_baseline_conditions",
        *(f"gp_{c}" for c in CONDITIONS),
    ]
    keep = people[
        [
            "client_pseudonym",
            "client_cluster",
            "programme",
            "patient_pseudonym",
            "enrolment_month",
            "reg_start",
            "reg_end",
            "death",
        ]
    ]
    act = activity[["patient_pseudonym", "month", "measure", "count"]]
    con = duckdb.connect()
    try:
        con.register("people", keep)
        con.register("activity", act)
        sql = f"""
        WITH grid AS (
          SELECT p.*, CAST(k AS INTEGER) AS event_time,
                 CAST(p.enrolment_month + to_months(CAST(k AS INTEGER)) AS DATE) AS month
          FROM people p, range({-spec.months_before}, {spec.months_after + 1}) r(k)
        ), registered AS (
          SELECT * FROM grid
          WHERE month BETWEEN DATE '{start.date()}' AND DATE '{end.date()}'
            AND reg_start IS NOT NULL AND month >= CAST(reg_start AS DATE)
            AND (reg_end IS NULL OR month <= CAST(reg_end AS DATE))
            AND (death IS NULL OR month <= CAST(death AS DATE))
        ), act AS ({_pivot_activity_sql("people")})
        SELECT g.client_pseudonym, g.client_cluster, g.programme, g.patient_pseudonym,
               CAST(g.enrolment_month AS DATE) AS enrolment_month, g.month, g.event_time,
               {", ".join(f"COALESCE(a.{m}, 0) AS {m}" for m in MEASURES)}
        FROM registered g LEFT JOIN act a
          ON a.patient_pseudonym = g.patient_pseudonym AND a.month = g.month
        ORDER BY g.client_pseudonym, g.event_time
        """
        panel = con.execute(sql).df()
    finally:
        con.close()
    panel = panel.merge(people[covariates], on="client_pseudonym", how="left")
    for col in ("enrolment_month", "month"):
        panel[col] = pd.to_datetime(panel[col])
    for m in MEASURES:
        panel[m] = panel[m].astype("int32")
    panel["event_time"] = panel["event_time"].astype("int16")
    return panel.reset_index(drop=True)


def build_comparison_pool(
    links: pd.DataFrame,
    demographics: pd.DataFrame,
    conditions: pd.DataFrame,
    activity: pd.DataFrame,
    lsoa_lookup: pd.DataFrame,
    spec: PanelSpec = PanelSpec(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Registered patients never linked to a client: people (with first diagnosis months) and months.

    The sample is deterministic (ordered by a hash of the pseudonym), so rebuilding gives the same
    pool. Covariates that depend on a date (age band, baseline conditions, prior use) are computed at
    matching time against each client's enrolment month, so the people table keeps the raw dates.
    """
    start, end = _study_window(activity, spec)
    ever_linked = set(links.loc[links["patient_pseudonym"].notna(), "patient_pseudonym"])
    demo = demographics.drop(columns=[c for c in demographics.columns if c.startswith("t_")], errors="ignore")
    demo = demo.drop_duplicates("patient_pseudonym")
    demo = demo[~demo["patient_pseudonym"].isin(ever_linked)]
    reg = _registration(demo)
    con = duckdb.connect()
    try:
        con.register("pool", demo[["patient_pseudonym"]])
        sampled = con.execute(
            f"SELECT patient_pseudonym FROM pool ORDER BY hash(patient_pseudonym), patient_pseudonym "
            f"LIMIT {int(spec.pool_size)}"
        ).df()["patient_pseudonym"]
    finally:
        con.close()
    people = demo[demo["patient_pseudonym"].isin(sampled)].merge(reg, on="patient_pseudonym")
    lookup = lsoa_lookup[["lsoa21cd", "imd_decile"]].drop_duplicates("lsoa21cd")
    people = people.merge(lookup, on="lsoa21cd", how="left")
    people["imd_quintile"] = imd_quintile(people["imd_decile"])
    dx = conditions[conditions["patient_pseudonym"].isin(sampled)].copy()
    dx["diagnosis_month"] = _month(dx["diagnosis_date"])
    first = dx.pivot_table(
        index="patient_pseudonym", columns="condition", values="diagnosis_month", aggfunc="min"
    )
    for c in CONDITIONS:
        people[f"dx_{c}"] = people["patient_pseudonym"].map(first[c]) if c in first.columns else pd.NaT
        people[f"dx_{c}"] = pd.to_datetime(people[f"dx_{c}"])
    people_out = people[
        [
            "patient_pseudonym",
            "year_of_birth",
            "sex",
            "ethnicity",
            "imd_quintile",
            "reg_start",
            "reg_end",
            "death",
            *(f"dx_{c}" for c in CONDITIONS),
        ]
    ].reset_index(drop=True)

    act = activity[["patient_pseudonym", "month", "measure", "count"]]
    con = duckdb.connect()
    try:
        con.register("people", people_out[["patient_pseudonym", "reg_start", "reg_end", "death"]])
        con.register("activity", act)
        sql = f"""
        WITH months AS (
          SELECT CAST(m AS DATE) AS month
          FROM range(DATE '{start.date()}', DATE '{end.date()}' + INTERVAL 1 DAY, INTERVAL 1 MONTH) r(m)
        ), grid AS (
          SELECT p.patient_pseudonym, m.month FROM people p, months m
          WHERE p.reg_start IS NOT NULL AND m.month >= CAST(p.reg_start AS DATE)
            AND (p.reg_end IS NULL OR m.month <= CAST(p.reg_end AS DATE))
            AND (p.death IS NULL OR m.month <= CAST(p.death AS DATE))
        ), act AS ({_pivot_activity_sql("people")})
        SELECT g.patient_pseudonym, g.month, {", ".join(f"COALESCE(a.{m}, 0) AS {m}" for m in MEASURES)}
        FROM grid g LEFT JOIN act a ON a.patient_pseudonym = g.patient_pseudonym AND a.month = g.month
        ORDER BY 1, 2
        """
        pool = con.execute(sql).df()
    finally:
        con.close()
    pool["month"] = pd.to_datetime(pool["month"])
    for m in MEASURES:
        pool[m] = pool[m].astype("int32")
    return people_out, pool


def build_tables(inputs: ResearchDatasetInputs, spec: PanelSpec = PanelSpec()) -> ResearchTables:
    """Read the inputs and build all four tables in memory (no writes; the stage function writes)."""
    links = _read_table(
        inputs.links, ("client_pseudonym", "patient_pseudonym", "match_status", "client_cluster")
    )
    employment = _read_table(
        inputs.employment_support,
        ("client_pseudonym", "programme", "sex", "year_of_birth", "ethnicity", "lsoa21cd", "enrolment_date"),
    )
    if "local_authority" not in employment.columns:
        employment["local_authority"] = None
    demographics = _read_table(
        inputs.health_demographics,
        (
            "patient_pseudonym",
            "registration_start",
            "registration_end",
            "date_of_death",
            "year_of_birth",
            "sex",
        ),
    )
    conditions = _read_table(inputs.health_conditions, ("patient_pseudonym", "condition", "diagnosis_date"))
    activity = _read_table(inputs.health_activity, ("patient_pseudonym", "month", "measure", "count"))
    if not inputs.lsoa_lookup.exists():
        raise InputError(
            str(inputs.lsoa_lookup), "the LSOA lookup is missing", hint="run `ehl synth` or copy it in."
        )
    lsoa = pd.read_csv(inputs.lsoa_lookup, dtype={"lsoa21cd": str})
    if "imd_decile" not in lsoa.columns:
        raise InputError(str(inputs.lsoa_lookup), "has no imd_decile column", column="imd_decile")
    if employment["client_pseudonym"].duplicated().any():
        raise InputError(
            str(inputs.employment_support),
            "an enrolment (client pseudonym) appears more than once",
            hint="re-run pseudonymisation; each programme's client reference must be unique.",
            column="client_pseudonym",
        )
    if links["client_pseudonym"].duplicated().any():
        raise InputError(
            str(inputs.links), "a client appears more than once in the link table", column="client_pseudonym"
        )
    clients = build_clients(links, employment, conditions, lsoa)
    panel = build_panel(clients, demographics, activity, spec)
    people, pool = build_comparison_pool(links, demographics, conditions, activity, lsoa, spec)
    return ResearchTables(clients=clients, panel=panel, comparison_people=people, comparison_pool=pool)


def write_tables(
    tables: ResearchTables, analysis_dir: Path, place: Callable[[Path], Path] = lambda final: final
) -> dict[str, Path]:
    """Write the four analysis tables; ``place(final)`` says where (an audited step's ``stage``).

    Returns the final paths.
    """
    paths = {
        "clients": analysis_dir / "clients.parquet",
        "panel": analysis_dir / "panel.parquet",
        "comparison_people": analysis_dir / "comparison_people.parquet",
        "comparison_pool": analysis_dir / "comparison_pool.parquet",
    }
    write_parquet(tables.clients, place(paths["clients"]))
    write_parquet(tables.panel, place(paths["panel"]))
    write_parquet(tables.comparison_people, place(paths["comparison_people"]))
    write_parquet(tables.comparison_pool, place(paths["comparison_pool"]))
    return paths


#: The linkage's match rates by group: written by the link stage to ``linked/``, and copied to
#: ``analysis/`` for the equity audit's linkage-skew check (researchers cannot read ``linked/``).
MATCH_RATES = "match_rates.parquet"


def copy_match_rates(
    workspace: Workspace, place: Callable[[Path], Path] = lambda final: final
) -> Path | None:
    """Copy ``linked/match_rates.parquet`` (rates and counts by group, no people) into ``analysis/``.

    The equity audit needs them, and it runs as a researcher, who may read ``analysis/`` but not
    ``linked/``. A stale copy is removed when the linkage wrote none, so no analysis reads old rates.
    """
    source, copy = workspace.linked / MATCH_RATES, workspace.analysis / MATCH_RATES
    if not source.exists():
        copy.unlink(missing_ok=True)
        return None
    write_parquet(pd.read_parquet(source), place(copy))
    return copy


def build_research_dataset(
    workspace: Workspace,
    engine: Any,
    actor: str,
    *,
    months_before: int = 24,
    months_after: int = 24,
    pool_size: int = 50_000,
    study_start: str | None = None,
    study_end: str | None = None,
    spark: Any = None,  # accepted for the common stage signature; the panel is built in DuckDB
) -> ResearchDatasetResult:
    """The research-dataset stage: read linked + pseudonymised data, write the ``analysis/`` tables.

    Runs as the ``data_processor`` role under the policy engine, which audits inputs and outputs by
    content hash and the row counts (never row content).
    """
    spec = PanelSpec(
        months_before=months_before,
        months_after=months_after,
        pool_size=pool_size,
        study_start=pd.Timestamp(study_start) if study_start else None,
        study_end=pd.Timestamp(study_end) if study_end else None,
    )
    inputs = ResearchDatasetInputs.of(workspace)
    datasets = ["employment_support", "health_demographics", "health_conditions", "health_activity"]
    with engine.step(actor, Role.DATA_PROCESSOR, "build_research_dataset", datasets=datasets) as step:
        present = [p for p in inputs.all() if p.exists()]
        step.inputs(*present)
        tables = build_tables(inputs, spec)
        paths = write_tables(tables, workspace.analysis, place=step.stage)
        rates = copy_match_rates(workspace, place=step.stage)
        if rates is not None:
            step.inputs(workspace.linked / MATCH_RATES)
            paths["match_rates"] = rates
        panel = tables.panel
        n_linked = int(tables.clients["linked"].sum())
        step.counts(
            rows_in=len(tables.clients),
            rows_accepted=len(panel),
            rows_quarantined=0,
        )
        step.detail(
            enrolments=len(tables.clients),
            linked_enrolments=n_linked,
            panel_people=int(panel["client_pseudonym"].nunique()),
            panel_person_months=len(panel),
            pool_people=len(tables.comparison_people),
            months_before=months_before,
            months_after=months_after,
            panel_hash=content_hash(step.staged(paths["panel"])),
        )
    return ResearchDatasetResult(
        clients_path=paths["clients"],
        panel_path=paths["panel"],
        comparison_people_path=paths["comparison_people"],
        comparison_pool_path=paths["comparison_pool"],
        match_rates_path=paths.get("match_rates"),
        n_enrolments=len(tables.clients),
        n_linked=n_linked,
        n_panel_people=int(panel["client_pseudonym"].nunique()),
        n_panel_months=len(panel),
        n_pool_people=len(tables.comparison_people),
        n_pool_months=len(tables.comparison_pool),
    )
