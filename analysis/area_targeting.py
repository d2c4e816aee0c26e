"""Area targeting: which areas have a health profile that calls for support the programmes do not yet give?

The toolkit asks "are there specific areas with a health profile that would benefit from
targeted support?". This answers it per LSOA, electoral ward and local authority by setting

* **need**: the census rate of economic inactivity through long-term sickness or disability and
  the prevalence of the conditions the area model (``analysis.area_profile``) finds drive that
  rate, each as a multiple of the region's average (``need_index``: 1 = the region average);
* against **reach**: clients (people, counted once) per 1,000 of the comparison population, the
  working-age out-of-work residents the programmes are for (``reach_index``: 1 = the region).

Areas above the region on need and below it on reach are the "high need, low reach" quadrant,
ranked by ``need_index - reach_index``. Client counts are counts of people, so an area with fewer
clients than the policy's threshold is rolled up: small LSOAs into "the rest of" their ward,
small wards into the rest of their local authority, and a local authority into a combined group,
each pool grown until it too reaches the threshold. The levels nest, so no published figure can
be subtracted from another to recover a rolled-up area. Reach is computed from the rounded count,
so a published rate and the public census denominator cannot give back the exact count.

This is ecological: it describes areas, not the people in them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.area_data import (
    CONDITIONS,
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.area_profile import (
    apportion_prevalence,
    build_area_profile,
    fit_elasticities,
    usable_conditions,
)
from analysis.clients import one_row_per_person, person_ids
from analysis.disclosure import Figure, ModelResult
from analysis.disclosure.suppression import round_to_base
from analysis.equity import ACTIVITY_CATEGORY_LABELS, ComparisonPopulation
from analysis.stage import CLIENTS_SOURCE, AnalysisOutputs, NotEstimable, read_clients, request_outputs
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

Level = Literal["lsoa", "ward", "local_authority"]
LEVELS: tuple[Level, ...] = ("lsoa", "ward", "local_authority")
LEVEL_NAMES: dict[str, str] = {"lsoa": "LSOA", "ward": "electoral ward", "local_authority": "local authority"}

# --------------------------------------------------------------------------------------------
# The comparison population: who reach is measured against

#: The census economic-activity categories (``analysis.equity.ACTIVITY_CATEGORY_LABELS``) and
#: ``employed``, which no out-of-work comparison population includes.
CENSUS_ACTIVITY: tuple[str, ...] = ("employed", *ACTIVITY_CATEGORY_LABELS)

#: The default comparison population: the equity audit's (residents aged 16-64 who are
#: unemployed or economically inactive other than retired or students).
WORKING_AGE_OUT_OF_WORK = ComparisonPopulation()


def census_activity_category(label: object) -> str | None:
    """A census economic-activity label (ONS or project wording) -> a ``CENSUS_ACTIVITY`` key."""
    text = str(label).strip().lower()
    if text in CENSUS_ACTIVITY:
        return text
    if not text or "does not apply" in text or text.startswith("total"):
        return None
    if "unemployed" in text:
        return "unemployed"
    if "long-term sick" in text or "long term sick" in text:
        return "inactive_sick"
    if text.startswith("economically inactive") or text.startswith("inactive"):
        for word, key in (
            ("retired", "inactive_retired"),
            ("student", "inactive_student"),
            ("looking after home", "inactive_home"),
        ):
            if word in text:
                return key
        return "inactive_other"
    if "employ" in text or text.startswith("economically active"):
        return "employed"
    return None


def _column(df: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    norm = {re.sub(r"[^a-z0-9]", "", str(c).lower()): c for c in df.columns}
    for cand in candidates:
        key = re.sub(r"[^a-z0-9]", "", cand.lower())
        if key in norm:
            return norm[key]
    for cand in candidates:  # ONS "Age (6 categories)": match on the start
        key = re.sub(r"[^a-z0-9]", "", cand.lower())
        for k, c in norm.items():
            if k.startswith(key) and not k.endswith("code"):
                return c
    return None


def comparison_population_by_lsoa(
    path: Path, definition: ComparisonPopulation = WORKING_AGE_OUT_OF_WORK
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The comparison population per LSOA from a census table by LSOA, age and economic activity.

    Reads ``census_economic_activity_by_group.csv`` (``lsoa21cd, age_band, economic_activity,
    count``) or an ONS custom-dataset download by LSOA. Returns ``lsoa21cd, comparison_population``
    and notes on how the table's categories met the definition (e.g. when it does not separate
    retired people and students from other inactive residents, who are then included).
    """
    if not path.exists():
        raise InputError(
            str(path),
            "the file does not exist",
            hint="put the census economic activity table by LSOA, age and status in reference/.",
        )
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    lsoa = _column(df, ("lsoa21cd", "Lower layer Super Output Areas Code", "LSOA code", "geography code"))
    age = _column(df, ("age_band", "Age ("))
    status = _column(df, ("economic_activity", "Economic activity status ("))
    count = _column(df, ("count", "Observation", "people"))
    for what, col in (
        ("the LSOA code", lsoa),
        ("the age band", age),
        ("the economic activity status", status),
        ("the count", count),
    ):
        if col is None:
            raise InputError(
                str(path),
                f"no column for {what}",
                hint="use the census table by LSOA, age and economic activity (one count per combination).",
            )
    assert lsoa and age and status and count
    counts = pd.to_numeric(df[count].str.replace(",", "", regex=False), errors="coerce")
    if counts.isna().any():
        row = int(counts.isna().to_numpy().nonzero()[0][0]) + 2
        raise InputError(
            str(path), "a count is not a number", row=row, column=count, hint="check the file is not damaged"
        )
    long = pd.DataFrame(
        {
            "lsoa21cd": df[lsoa].str.strip(),
            "age_band": df[age].str.strip(),
            "status": df[status].map(census_activity_category),
            "people": counts,
        }
    )
    notes: list[str] = []
    present = set(long["status"].dropna())
    lumped = {"inactive_retired", "inactive_student"} - set(definition.activity)
    if (
        lumped
        and "inactive_other" in definition.activity
        and "inactive_other" in present
        and not present & lumped
    ):
        words = {"inactive_retired": "retired people", "inactive_student": "students"}
        notes.append(
            "The census table does not separate "
            + " and ".join(words[s] for s in sorted(lumped))
            + " from other economically inactive residents, so they are included in the "
            "comparison population."
        )
    chosen = definition.select(long, source=str(path))
    everyone = long[["lsoa21cd"]].drop_duplicates()
    out = everyone.merge(
        chosen.groupby("lsoa21cd", as_index=False)["people"].sum(), on="lsoa21cd", how="left"
    ).fillna({"people": 0})
    out = out.rename(columns={"people": "comparison_population"})
    out = out[out["lsoa21cd"].str.match(r"^[EW]01\d{6}$")].reset_index(drop=True)
    if out.empty:
        raise InputError(str(path), "no row has an LSOA code like E01006512", hint="use the table by LSOA")
    return out, tuple(notes)


# --------------------------------------------------------------------------------------------
# Geography: LSOA -> ward -> local authority


def load_ward_lookup(path: Path, lsoa_lookup: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``lsoa21cd, lsoa_name, ward_code, ward_name, lad22cd, lad22nm`` per LSOA.

    Reads the ONS "LSOA (2021) to electoral ward to LAD" lookup (``LSOA21CD, LSOA21NM, WD22CD,
    WD22NM, LAD22CD, LAD22NM``; later ward vintages ``WD23CD``... too). Without one, every LSOA
    is its own ward's only member and the notes say that there is no ward level.
    """
    base = lsoa_lookup[["lsoa21cd", "lad22cd", "lad22nm"]].copy()
    if not path.exists():
        base["lsoa_name"] = base["lsoa21cd"]
        base["ward_code"] = base["lad22cd"]
        base["ward_name"] = base["lad22nm"]
        return base, (
            f"No ward lookup ({path.name}) is in reference/, so areas roll up from LSOAs straight to local authorities.",
        )
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    lsoa = _column(df, ("LSOA21CD", "lsoa21cd"))
    ward = next((c for c in df.columns if re.fullmatch(r"WD\d\dCD", str(c).upper())), None)
    ward_name = next((c for c in df.columns if re.fullmatch(r"WD\d\dNM", str(c).upper())), None)
    if lsoa is None or ward is None:
        raise InputError(
            str(path),
            "no LSOA21CD or ward code (WD22CD, WD23CD...) column",
            hint="use the ONS LSOA (2021) to electoral ward to LAD lookup as downloaded.",
        )
    name = _column(df, ("LSOA21NM", "lsoa21nm"))
    wards = pd.DataFrame(
        {
            "lsoa21cd": df[lsoa].str.strip(),
            "lsoa_name": (df[name] if name else df[lsoa]).str.strip(),
            "ward_code": df[ward].str.strip(),
            "ward_name": (df[ward_name] if ward_name else df[ward]).str.strip(),
        }
    ).drop_duplicates("lsoa21cd")
    out = base.merge(wards, on="lsoa21cd", how="left")
    missing = out["ward_code"].isna()
    notes: tuple[str, ...] = ()
    if missing.any():
        notes = (
            f"{int(missing.sum())} LSOA(s) are not in the ward lookup; each counts as a ward of its own.",
        )
        out.loc[missing, "ward_code"] = out.loc[missing, "lsoa21cd"]
        out.loc[missing, "ward_name"] = out.loc[missing, "lsoa21cd"]
        out.loc[missing, "lsoa_name"] = out.loc[missing, "lsoa21cd"]
    return out, notes


# --------------------------------------------------------------------------------------------
# Need and reach per LSOA


@dataclass(frozen=True)
class NeedConditions:
    """The conditions that make up need, and why those."""

    conditions: tuple[str, ...]
    reason: str


def important_conditions(profile: pd.DataFrame, candidates: Sequence[str] = CONDITIONS) -> NeedConditions:
    """Conditions the area model finds significantly raise inactivity through long-term sickness.

    When the model cannot be estimated on this many LSOAs, or finds no such condition, need uses
    every condition with data, and says so.
    """
    present = tuple(usable_conditions(profile, list(candidates), min_lsoas=1))
    if not present:
        return NeedConditions((), "no condition has prevalence data, so need is the inactivity rate alone")
    usable = usable_conditions(profile, list(candidates))
    if not usable or len(profile) < len(usable) + 10:
        return NeedConditions(
            present,
            f"the area model cannot be estimated on {len(profile)} LSOAs, so need uses every condition",
        )
    try:
        model = fit_elasticities(profile, "inactive_sick_rate", usable)
    except (InputError, NotEstimable) as exc:
        why = exc.reason if isinstance(exc, NotEstimable) else exc.problem
        return NeedConditions(
            present, f"the area model could not be estimated ({why}), so need uses every condition"
        )
    t = model.elasticities
    chosen = t.loc[t["significant"] & (t["elasticity"] > 0), "condition"].tolist()
    if not chosen:
        return NeedConditions(
            present, "the area model finds no condition significant, so need uses every condition"
        )
    return NeedConditions(
        tuple(chosen),
        "the conditions the area model finds significantly raise inactivity through long-term sickness",
    )


def client_counts_by_lsoa(clients: pd.DataFrame) -> tuple[pd.Series, int]:
    """People enrolled (either programme, each person once) per LSOA, and how many have no LSOA."""
    people = one_row_per_person(clients, by=())
    lsoa = (
        people["lsoa21cd"].astype("string") if "lsoa21cd" in people else pd.Series(pd.NA, index=people.index)
    )
    known = lsoa.notna() & lsoa.str.match(r"^[EW]01\d{6}$").fillna(False)
    counts = person_ids(people[known.to_numpy()]).groupby(lsoa[known].to_numpy()).nunique()
    return counts, int((~known).sum())


def lsoa_table(
    census: pd.DataFrame,
    profile: pd.DataFrame,
    comparison: pd.DataFrame,
    geography: pd.DataFrame,
    clients_by_lsoa: pd.Series,
) -> pd.DataFrame:
    """One row per LSOA with census, QOF and comparison data: counts that can be summed over areas."""
    prevalence = [c for c in profile.columns if c in CONDITIONS]
    t = (
        census[["lsoa21cd", "residents_16_plus", "inactive_sick"]]
        .merge(profile[["lsoa21cd", "registered_patients", *prevalence]], on="lsoa21cd", how="inner")
        .merge(comparison, on="lsoa21cd", how="inner")
        .merge(geography, on="lsoa21cd", how="inner")
    )
    t["clients"] = t["lsoa21cd"].map(clients_by_lsoa).fillna(0).astype(int)
    # per-condition patient counts so prevalence of a combined area is weighted by its patients
    for c in prevalence:
        t[f"cases_{c}"] = t[c].fillna(0) * t["registered_patients"]
        t[f"patients_{c}"] = t["registered_patients"].where(t[c].notna(), 0)
    return t.sort_values(["lad22cd", "ward_code", "lsoa21cd"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Rolling small areas up


def pooled(clients: pd.Series, min_count: int) -> list[Any]:
    """Which of a parent's child areas are rolled up together, smallest first.

    Every child with fewer than ``min_count`` clients is pooled; while the pool holds fewer than
    ``min_count`` clients, the next-smallest child joins it, so a pool can always be published
    and the parent minus its published children never reveals a small area.
    """
    order = clients.sort_values(kind="stable")
    members = [k for k, v in order.items() if v < min_count]
    rest = [k for k in order.index if k not in members]
    while members and order[members].sum() < min_count and rest:
        members.append(rest.pop(0))
    return members


@dataclass(frozen=True)
class ReportingUnits:
    """For each level, the unit (code, name) each LSOA is reported in, and what was rolled up."""

    units: dict[str, pd.DataFrame]  # level -> lsoa21cd, unit_code, unit_name, unit_level
    rolled_up: dict[str, tuple[str, ...]] = field(default_factory=dict)


def reporting_units(table: pd.DataFrame, min_count: int) -> ReportingUnits:
    """Nested reporting units: local authorities, wards within them, LSOAs within wards."""
    la_clients = table.groupby("lad22cd")["clients"].sum()
    la_names = table.drop_duplicates("lad22cd").set_index("lad22cd")["lad22nm"]
    ward_names = table.drop_duplicates("ward_code").set_index("ward_code")["ward_name"]
    la_pool = set(pooled(la_clients, min_count))
    la_unit: dict[str, tuple[str, str, str]] = {}
    for la in la_clients.index:
        if la in la_pool:
            la_unit[la] = ("pooled-las", f"{len(la_pool)} local authorities combined", "local_authority")
        else:
            la_unit[la] = (la, str(la_names[la]), "local_authority")
    rolled: dict[str, list[str]] = {level: [] for level in LEVELS}
    rolled["local_authority"] = [str(la_names[la]) for la in sorted(la_pool)]

    ward_unit: dict[str, tuple[str, str, str]] = {}
    for la, group in table.groupby("lad22cd", sort=False):
        ward_clients = group.groupby("ward_code")["clients"].sum()
        if la in la_pool:
            for w in ward_clients.index:
                ward_unit[w] = la_unit[la]
            continue
        pool = set(pooled(ward_clients, min_count))
        for w in ward_clients.index:
            if w not in pool:
                ward_unit[w] = (w, f"{ward_names[w]} ({la_names[la]})", "ward")
            elif len(pool) == len(ward_clients):
                ward_unit[w] = la_unit[la]
            else:
                ward_unit[w] = (f"{la}-rest", f"{la_names[la]}: {len(pool)} wards combined", "ward")
        rolled["ward"] += [f"{ward_names[w]} ({la_names[la]})" for w in sorted(pool)]

    lsoa_unit: dict[str, tuple[str, str, str]] = {}
    for w, group in table.groupby("ward_code", sort=False):
        own = ward_unit[w][2] == "ward" and ward_unit[w][0] == w
        clients = group.set_index("lsoa21cd")["clients"]
        if not own:
            for lsoa in clients.index:
                lsoa_unit[lsoa] = ward_unit[w]
            rolled["lsoa"] += [str(n) for n in group["lsoa_name"]]
            continue
        pool = set(pooled(clients, min_count))
        names = group.set_index("lsoa21cd")["lsoa_name"]
        for lsoa in clients.index:
            if lsoa not in pool:
                lsoa_unit[lsoa] = (lsoa, f"{names[lsoa]} ({ward_names[w]})", "lsoa")
            elif len(pool) == len(clients):
                lsoa_unit[lsoa] = ward_unit[w]
            else:
                lsoa_unit[lsoa] = (f"{w}-rest", f"{ward_unit[w][1]}: {len(pool)} LSOAs combined", "lsoa")
        rolled["lsoa"] += [str(names[lsoa]) for lsoa in sorted(pool)]

    def frame(mapping: dict[str, tuple[str, str, str]], key: str) -> pd.DataFrame:
        codes = table[key].map(lambda k: mapping[k][0])
        return pd.DataFrame(
            {
                "lsoa21cd": table["lsoa21cd"],
                "unit_code": codes,
                "unit_name": table[key].map(lambda k: mapping[k][1]),
                "unit_level": table[key].map(lambda k: mapping[k][2]),
            }
        )

    return ReportingUnits(
        units={
            "lsoa": frame(lsoa_unit, "lsoa21cd"),
            "ward": frame(ward_unit, "ward_code"),
            "local_authority": frame(la_unit, "lad22cd"),
        },
        rolled_up={k: tuple(v) for k, v in rolled.items()},
    )


# --------------------------------------------------------------------------------------------
# Need against reach per unit


def _poisson_interval(k: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval for a Poisson count."""
    from scipy.stats import chi2

    k = np.asarray(k, dtype=float)
    low = np.where(k > 0, chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    high = chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return low, high


def _poisson_p(k: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Two-sided exact p-value that a Poisson count ``k`` has mean ``mu``."""
    from scipy.stats import poisson

    lower = poisson.cdf(k, mu)
    upper = poisson.sf(k - 1, mu)
    return np.minimum(1.0, 2 * np.minimum(lower, upper))


def targeting_table(
    table: pd.DataFrame, units: pd.DataFrame, conditions: Sequence[str], rounding_base: int
) -> pd.DataFrame:
    """Need and reach per reporting unit, ranked: the high-need, low-reach quadrant first.

    Reach uses the client count rounded to ``rounding_base`` (as it will be published); the
    region's averages (index 1) are over every LSOA of the table.
    """
    t = table.merge(units, on="lsoa21cd")
    sums = ["clients", "comparison_population", "residents_16_plus", "inactive_sick"]
    for c in conditions:
        sums += [f"cases_{c}", f"patients_{c}"]
    g = t.groupby(["unit_code", "unit_name", "unit_level"], as_index=False, sort=False)
    out = g[sums].sum().merge(g.size().rename(columns={"size": "lsoas"}))
    region = t[sums].sum()
    out["inactive_sick_rate"] = out["inactive_sick"] / out["residents_16_plus"].where(
        out["residents_16_plus"] > 0
    )
    region_sick = region["inactive_sick"] / region["residents_16_plus"]
    ratios = [out["inactive_sick_rate"] / region_sick]
    condition_ratios = []
    for c in conditions:
        out[f"prevalence_{c}"] = out[f"cases_{c}"] / out[f"patients_{c}"].where(out[f"patients_{c}"] > 0)
        condition_ratios.append(out[f"prevalence_{c}"] / (region[f"cases_{c}"] / region[f"patients_{c}"]))
    if condition_ratios:
        ratios.append(pd.concat(condition_ratios, axis=1).mean(axis=1))
    out["need_index"] = pd.concat(ratios, axis=1).mean(axis=1)
    out["clients_rounded"] = [round_to_base(int(n), rounding_base) for n in out["clients"]]
    pop = out["comparison_population"].astype(float).where(out["comparison_population"] > 0)
    # from the rounded total too: an exact region rate would give back the exact number of clients
    region_reach = (
        round_to_base(int(region["clients"]), rounding_base) / region["comparison_population"] * 1000
    )
    out["reach_per_1000"] = out["clients_rounded"] / pop * 1000
    low, high = _poisson_interval(out["clients_rounded"].to_numpy())
    out["reach_ci_lower"] = low / pop * 1000
    out["reach_ci_upper"] = high / pop * 1000
    out["reach_p_value"] = _poisson_p(
        out["clients_rounded"].to_numpy(), (pop * region_reach / 1000).to_numpy()
    )
    out["reach_index"] = out["reach_per_1000"] / region_reach
    out["high_need_low_reach"] = (out["need_index"] > 1) & (out["reach_index"] < 1)
    out["priority"] = out["need_index"] - out["reach_index"]
    out = out.sort_values(["high_need_low_reach", "priority"], ascending=[False, False], kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    out.attrs["region_reach_per_1000"] = float(region_reach)
    out.attrs["region_inactive_sick_rate"] = float(region_sick)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Charts


def _matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


QUADRANT_COLOURS = {
    "high need, low reach": "#c0392b",
    "high need, higher reach": "#e59866",
    "lower need, low reach": "#85c1e9",
    "lower need, higher reach": "#d5dbdb",
}


def _quadrant(need: float, reach: float) -> str:
    if pd.isna(need) or pd.isna(reach):
        return "suppressed"
    return ("high need" if need > 1 else "lower need") + (", low reach" if reach < 1 else ", higher reach")


def _short(name: str, width: int = 38) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def quadrant_figure(protected: pd.DataFrame, title: str, labelled: int = 8) -> Any:
    """Need index against reach index, one point per unit, the targeted quadrant shaded.

    The highest-priority units of the quadrant are numbered by rank and listed beside the plot.
    """
    plt = _matplotlib()
    rows = protected.dropna(subset=["need_index", "reach_index"])
    fig = plt.figure(figsize=(10, 6), dpi=100)
    ax = fig.add_axes((0.08, 0.11, 0.55, 0.78))
    x, y = rows["reach_index"].astype(float), rows["need_index"].astype(float)
    xmax = max(2.0, float(x.max()) * 1.1) if len(rows) else 2.0
    ymin = min(0.5, float(y.min()) * 0.9) if len(rows) else 0.5
    ymax = max(1.5, float(y.max()) * 1.1) if len(rows) else 1.5
    ax.axvspan(0, 1, ymin=(1 - ymin) / (ymax - ymin), ymax=1, color="#fadbd8", zorder=0)
    ax.axvline(1, color="grey", linestyle="--", linewidth=1)
    ax.axhline(1, color="grey", linestyle="--", linewidth=1)
    colours = [QUADRANT_COLOURS[_quadrant(n, r)] for n, r in zip(y, x, strict=True)]
    ax.scatter(x, y, c=colours, edgecolors="#34495e", linewidths=0.5, s=36, zorder=3)
    ax.set_xlim(0, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_xlabel("Reach: clients per 1,000 of the comparison population (region = 1)")
    ax.set_ylabel("Need index (region = 1)")
    ax.text(
        0.02, 0.98, "high need,\nlow reach", transform=ax.transAxes, va="top", fontsize=9, color="#922b21"
    )
    ax.grid(alpha=0.3)
    top = rows[(rows["need_index"] > 1) & (rows["reach_index"] < 1)].sort_values("rank").head(labelled)
    listing = []
    for r in top.itertuples():
        ax.annotate(
            str(int(r.rank)),
            (float(r.reach_index), float(r.need_index)),
            xytext=(5, 2) if int(r.rank) % 2 else (5, -9),  # neighbours' numbers apart
            textcoords="offset points",
            fontsize=8,
            zorder=4,
        )
        listing.append(f"{int(r.rank):>2}  {_short(str(r.term))}")
    side = "Highest priority (rank, area):\n" + ("\n".join(listing) if listing else "none")
    withheld = len(protected) - len(rows)
    if withheld:
        side += f"\n\n{withheld} area(s) withheld by\ndisclosure control"
    fig.text(0.66, 0.89, side, va="top", fontsize=8, family="monospace")
    fig.suptitle(title, fontsize=11, x=0.02, ha="left")
    return fig


def quadrant_chart(protected: pd.DataFrame, title: str) -> bytes:
    fig = quadrant_figure(protected, title)
    try:
        return _png(fig)
    finally:
        _matplotlib().close(fig)


def grid_layout(geography: pd.DataFrame, blocks_per_row: int = 3) -> pd.DataFrame:
    """Tile positions for a grid cartogram: one square per LSOA, one column per ward.

    Without boundaries or coordinates in the reference data, the geography's hierarchy is what
    is known: each ward's LSOAs are stacked in a column (in code order), a local authority's
    wards stand side by side as one block, and blocks are laid out in rows. Returns
    ``lsoa21cd, x, y`` with the blocks' name positions in ``attrs["labels"]``.
    """
    g = geography.sort_values(["lad22cd", "ward_code", "lsoa21cd"], kind="stable")
    blocks = []
    for _, block in g.groupby("lad22cd", sort=False):
        wards = list(dict.fromkeys(block["ward_code"]))
        height = int(block.groupby("ward_code").size().max())
        blocks.append((block, wards, height))
    rows, labels = [], []
    x0, y0, row_height = 0, 0, 0
    for i, (block, wards, height) in enumerate(blocks):
        if i and i % blocks_per_row == 0:
            x0, y0, row_height = 0, y0 - row_height - 2, 0
        for col, ward in enumerate(wards):
            for k, lsoa in enumerate(block.loc[block["ward_code"] == ward, "lsoa21cd"]):
                rows.append({"lsoa21cd": lsoa, "x": x0 + col, "y": y0 - k})
        labels.append((x0 - 0.45, y0 + 0.6, str(block["lad22nm"].iloc[0])))
        x0 += max(len(wards), 3) + 1
        row_height = max(row_height, height)
    out = pd.DataFrame(rows)
    out.attrs["labels"] = labels
    return out


def _geojson_polygons(path: Path, code_property: str = "LSOA21CD") -> dict[str, list[np.ndarray]]:
    """LSOA code -> its polygons' outer rings from a GeoJSON boundary file (Polygon/MultiPolygon)."""
    doc = json.loads(path.read_text())
    out: dict[str, list[np.ndarray]] = {}
    for feature in doc.get("features", []):
        props = {str(k).upper(): v for k, v in (feature.get("properties") or {}).items()}
        code = props.get(code_property.upper())
        geom = feature.get("geometry") or {}
        if code is None:
            continue
        if geom.get("type") == "Polygon":
            polys = [geom["coordinates"]]
        elif geom.get("type") == "MultiPolygon":
            polys = geom["coordinates"]
        else:
            continue
        out.setdefault(str(code), []).extend(np.asarray(p[0], dtype=float) for p in polys)
    return out


def map_figure(
    protected: pd.DataFrame,
    lsoa_terms: pd.DataFrame,
    title: str,
    layout: pd.DataFrame | None = None,
    boundaries: dict[str, list[np.ndarray]] | None = None,
) -> Any:
    """A map of each unit's quadrant: a choropleth from ``boundaries``, else a grid cartogram.

    ``lsoa_terms`` says which published row (``term``) each LSOA is reported in, so a rolled-up
    LSOA takes its combined area's colour; the highest-priority units carry their rank.
    """
    from matplotlib.patches import Patch, Polygon, Rectangle

    plt = _matplotlib()
    values = lsoa_terms.merge(protected[["term", "need_index", "reach_index", "rank"]], on="term", how="left")
    values["quadrant"] = [
        _quadrant(n, r) for n, r in zip(values["need_index"], values["reach_index"], strict=True)
    ]
    colour = {**QUADRANT_COLOURS, "suppressed": "#ffffff"}
    fig = plt.figure(figsize=(10, 7.5), dpi=100)
    ax = fig.add_axes((0.02, 0.16, 0.96, 0.74))
    ax.set_axis_off()
    ax.set_aspect("equal")
    quadrant = protected[(protected["need_index"] > 1) & (protected["reach_index"] < 1)]
    top = quadrant.dropna(subset=["rank"]).sort_values("rank").head(5)
    anchors: dict[str, tuple[float, float]] = {}  # where each top unit's rank is written
    if boundaries:
        for r in values.itertuples():
            for ring in boundaries.get(str(r.lsoa21cd), []):
                ax.add_patch(
                    Polygon(
                        ring,
                        closed=True,
                        facecolor=colour[r.quadrant],
                        edgecolor="#7f8c8d",
                        linewidth=0.3,
                        hatch="//" if r.quadrant == "suppressed" else None,
                    )
                )
                anchors.setdefault(str(r.term), (float(ring[:, 0].mean()), float(ring[:, 1].mean())))
        ax.autoscale_view()
    else:
        assert layout is not None
        tiles = values.merge(layout, on="lsoa21cd")
        for r in tiles.itertuples():
            ax.add_patch(
                Rectangle(
                    (r.x - 0.45, r.y - 0.45),
                    0.9,
                    0.9,
                    facecolor=colour[r.quadrant],
                    edgecolor="#7f8c8d",
                    linewidth=0.5,
                    hatch="//" if r.quadrant == "suppressed" else None,
                )
            )
            anchors.setdefault(str(r.term), (float(r.x), float(r.y)))
        for lx, ly, text in layout.attrs.get("labels", []):
            ax.text(lx, ly, text, fontsize=9, va="bottom")
        ax.set_xlim(float(layout["x"].min()) - 1, float(layout["x"].max()) + 1)
        ax.set_ylim(float(layout["y"].min()) - 1, float(layout["y"].max()) + 2)
    listing = []
    for r in top.itertuples():
        if str(r.term) in anchors:
            ax.text(
                *anchors[str(r.term)],
                str(int(r.rank)),
                ha="center",
                va="center",
                fontsize=8,
                color="white",
                fontweight="bold",
            )
        listing.append(f"{int(r.rank):>2}  {_short(str(r.term), 48)}")
    handles = [Patch(facecolor=c, edgecolor="#7f8c8d", label=q) for q, c in QUADRANT_COLOURS.items()]
    handles.append(Patch(facecolor="white", edgecolor="#7f8c8d", hatch="//", label="withheld"))
    fig.legend(
        handles=handles, loc="lower left", bbox_to_anchor=(0.02, 0.01), ncol=2, fontsize=8, frameon=False
    )
    fig.text(
        0.52,
        0.115,
        "Highest priority (rank, area):\n" + ("\n".join(listing) if listing else "none"),
        va="top",
        fontsize=8,
        family="monospace",
    )
    subtitle = (
        "Choropleth of LSOA boundaries"
        if boundaries
        else "Grid cartogram (not to scale): one square per LSOA, one column per ward, one block per local authority"
    )
    fig.text(0.02, 0.92, subtitle, fontsize=8, color="#555555")
    fig.suptitle(title, fontsize=11, x=0.02, ha="left")
    return fig


# --------------------------------------------------------------------------------------------
# Outputs


def _released_rows(t: pd.DataFrame, conditions: Sequence[str]) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "term": t["unit_name"],
            "estimate": t["reach_per_1000"],
            "ci_lower": t["reach_ci_lower"],
            "ci_upper": t["reach_ci_upper"],
            "p_value": t["reach_p_value"],
            "n_people": t["clients"].astype(int),
            "rank": t["rank"].astype(float),
            "need_index": t["need_index"],
            "reach_index": t["reach_index"],
            "priority": t["priority"],
            "high_need_low_reach": t["high_need_low_reach"].astype(float),
            "inactive_sick_rate_pct": t["inactive_sick_rate"] * 100,
            "comparison_population": t["comparison_population"].astype(float),
            "lsoas": t["lsoas"].astype(float),
        }
    )
    for c in conditions:
        rows[f"prevalence_{c}_pct"] = t[f"prevalence_{c}"] * 100
    return rows


@dataclass(frozen=True)
class TargetingResult:
    """Need against reach at each level, with what was rolled up and how need was defined."""

    tables: dict[str, pd.DataFrame]
    units: ReportingUnits
    need: NeedConditions
    comparison: ComparisonPopulation
    notes: tuple[str, ...]
    unassigned_clients: int
    geography: pd.DataFrame

    def quadrant(self, level: Level) -> pd.DataFrame:
        t = self.tables[level]
        return t[t["high_need_low_reach"]]


def describe_level(result: TargetingResult, level: Level, min_count: int, top: int = 5) -> list[str]:
    """Plain sentences: how many units are in the quadrant, the top ones, what was rolled up."""
    t = result.tables[level]
    name = LEVEL_NAMES[level]
    q = result.quadrant(level)
    out = [
        f"By {name}: {len(q)} of {len(t)} areas have above-average need and below-average reach "
        f"(region: {t.attrs['region_reach_per_1000']:.1f} clients per 1,000 of the comparison population)."
    ]
    for r in q.head(top).itertuples():
        out.append(
            f"  {int(r.rank)}. {r.unit_name}: need {r.need_index:.2f} times the region average, "
            f"reach {r.reach_per_1000:.1f} per 1,000 ({r.reach_index:.2f} times the region)."
        )
    rolled = result.units.rolled_up.get(level, ())
    if rolled:
        coarser = {
            "lsoa": "their ward (or further)",
            "ward": "their local authority (or further)",
            "local_authority": "a combined group",
        }[level]
        out.append(
            f"  {len(rolled)} {name}(s) with fewer than {min_count} clients (or needed to protect one) were rolled up "
            f"into {coarser}: {', '.join(rolled[:12])}{' ...' if len(rolled) > 12 else ''}."
        )
    return out


def targeting_outputs(
    result: TargetingResult, min_count: int, boundaries: dict[str, list[np.ndarray]] | None = None
) -> list[tuple[str, Any]]:
    """A ranked table per level, quadrant charts (LSOA and ward levels) and a map (LSOA level)."""
    need_words = (
        "need index = mean of (the rate of inactivity through long-term sickness or disability / the region's) and "
        "(the mean over conditions of prevalence / the region's), conditions: "
        + ", ".join(result.need.conditions)
        + f" ({result.need.reason})"
    )
    base_description = (
        "estimate = clients (people enrolled in either programme, counted once) per 1,000 of the comparison population "
        f"({result.comparison.definition()}), from the client count rounded as published; CI exact Poisson; "
        "p_value: exact test that the area's reach equals the region's; reach_index = estimate / the region's; "
        + need_words
        + "; high_need_low_reach = 1 when need_index > 1 and reach_index < 1; rank: that quadrant first, "
        "by priority = need_index - reach_index." + ("\n" + "\n".join(result.notes) if result.notes else "")
    )
    outputs: list[tuple[str, Any]] = []
    lsoa_result: ModelResult | None = None
    for level in LEVELS:
        t = result.tables[level]
        rows = _released_rows(t, result.need.conditions)
        what = LEVEL_NAMES[level]
        model = ModelResult(
            coefficients=rows,
            n_obs=int(t["clients"].sum()),
            n_people=int(t["clients"].sum()),
            source=CLIENTS_SOURCE,
            title=f"Area targeting by {what}: need against reach",
            kind="estimates",
            statistics={"region_reach_per_1000": t.attrs["region_reach_per_1000"]},
            population=f"clients of the employment-support programmes living in the region's LSOAs; {result.comparison.definition()}",
            description=base_description + "\n" + "\n".join(describe_level(result, level, min_count)),
        )
        name = f"area-targeting-{level.replace('_', '-')}"
        outputs.append((name, model))
        if level == "lsoa":
            lsoa_result = model
        if level in ("lsoa", "ward"):
            title = f"Need against reach by {what} (combined areas where small)"

            def render(protected: pd.DataFrame, title: str = title) -> bytes:
                return quadrant_chart(protected, title)

            outputs.append((f"{name}-quadrant", Figure(table=model, title=title, render=render)))
    assert lsoa_result is not None
    t = result.tables["lsoa"]
    units = (
        result.units.units["lsoa"][["lsoa21cd", "unit_code"]]
        .merge(t[["unit_code", "unit_name"]], on="unit_code")
        .rename(columns={"unit_name": "term"})[["lsoa21cd", "term"]]
    )
    layout = None if boundaries else grid_layout(result.geography)
    map_title = "Where need is high and reach is low, by LSOA (combined areas where small)"

    def render_map(protected: pd.DataFrame) -> bytes:
        fig = map_figure(protected, units, map_title, layout=layout, boundaries=boundaries)
        try:
            return _png(fig)
        finally:
            _matplotlib().close(fig)

    outputs.append(("area-targeting-map", Figure(table=lsoa_result, title=map_title, render=render_map)))
    return outputs


def area_targeting(
    census: pd.DataFrame,
    profile: pd.DataFrame,
    comparison: pd.DataFrame,
    geography: pd.DataFrame,
    clients: pd.DataFrame,
    min_count: int,
    rounding_base: int,
    definition: ComparisonPopulation = WORKING_AGE_OUT_OF_WORK,
    conditions: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> TargetingResult:
    """Need against reach at every level, small areas rolled up (the statistics, no I/O)."""
    need = important_conditions(profile, conditions or CONDITIONS)
    by_lsoa, unassigned = client_counts_by_lsoa(clients)
    table = lsoa_table(census, profile, comparison, geography, by_lsoa)
    if table.empty:
        raise InputError(
            "reference/",
            "no LSOA has census, QOF, registration and ward data together",
            hint="check that the reference files cover the same LSOA codes.",
        )
    outside = int(by_lsoa[~by_lsoa.index.isin(table["lsoa21cd"])].sum())
    units = reporting_units(table, min_count)
    tables = {
        level: targeting_table(table, units.units[level], need.conditions, rounding_base) for level in LEVELS
    }
    geo = table[["lsoa21cd", "lsoa_name", "ward_code", "ward_name", "lad22cd", "lad22nm"]]
    return TargetingResult(tables, units, need, definition, tuple(notes), unassigned + outside, geo)


BOUNDARY_FILE = "lsoa_boundaries.geojson"


def run_area_targeting(
    workspace: Workspace,
    engine: Any,
    actor: str,
    comparison: ComparisonPopulation = WORKING_AGE_OUT_OF_WORK,
    conditions: Sequence[str] | None = None,
    justification: str = "Area targeting: high-need areas the employment-support programmes reach least.",
) -> AnalysisOutputs:
    """The area-targeting stage (researcher): need from the area data, reach from the clients table."""
    ref = workspace.reference
    paths = {
        "clients": workspace.analysis / "clients.parquet",
        "census": ref / "census_economic_activity.csv",
        "census_by_group": ref / "census_economic_activity_by_group.csv",
        "qof": ref / "qof_prevalence.csv",
        "registrations": ref / "gp_registrations_lsoa.csv",
        "lookup": ref / "lsoa_lookup.csv",
        "wards": ref / "lsoa_ward_lookup.csv",
        "boundaries": ref / BOUNDARY_FILE,
    }
    rules = engine.policy.outputs
    with engine.step(
        actor, Role.RESEARCHER, "area_targeting", analysis=Analysis.AREA_TARGETING, reads_linked_data=True
    ) as step:
        clients = read_clients(workspace)
        census = load_census_economic_activity(paths["census"])
        lookup = load_lsoa_lookup(paths["lookup"])
        prevalence = apportion_prevalence(
            load_qof_prevalence(paths["qof"]), load_gp_registrations(paths["registrations"])
        )
        profile = build_area_profile(census, prevalence, lookup)
        comparison_table, comparison_notes = comparison_population_by_lsoa(
            paths["census_by_group"], comparison
        )
        geography, ward_notes = load_ward_lookup(paths["wards"], lookup)
        result = area_targeting(
            census,
            profile,
            comparison_table,
            geography,
            clients,
            rules.min_cell_count,
            rules.rounding_base,
            comparison,
            conditions,
            (*comparison_notes, *ward_notes),
        )
        boundaries = _geojson_polygons(paths["boundaries"]) if paths["boundaries"].exists() else None
        outputs = targeting_outputs(result, rules.min_cell_count, boundaries or None)
        requests, folders = request_outputs(workspace, engine, actor, outputs, justification)
        step.inputs(*(p for p in paths.values() if p.exists()))
        step.outputs(*folders)
        step.counts(
            lsoas=len(result.geography),
            clients_in_areas=int(result.tables["lsoa"]["clients"].sum()),
            clients_without_area=result.unassigned_clients,
            outputs_requested=len(requests),
        )
        step.detail(
            need_conditions=list(result.need.conditions),
            comparison_population=comparison.definition(),
            rolled_up={k: len(v) for k, v in result.units.rolled_up.items()},
            map="choropleth" if boundaries else "grid cartogram",
        )
    sentences: list[str] = [f"Comparison population: {comparison.definition()}.", *result.notes]
    sentences.append(f"Need: {', '.join(result.need.conditions)} ({result.need.reason}).")
    for level in LEVELS:
        sentences.extend(describe_level(result, level, rules.min_cell_count))
    if result.unassigned_clients >= rules.min_cell_count:
        sentences.append(
            f"{result.unassigned_clients} clients have no LSOA in the area data and are not counted."
        )
    elif result.unassigned_clients:
        sentences.append(
            f"Fewer than {rules.min_cell_count} clients have no LSOA in the area data and are not counted."
        )
    return AnalysisOutputs("area_targeting", requests, folders, tuple(sentences))


__all__ = [
    "CENSUS_ACTIVITY",
    "LEVELS",
    "WORKING_AGE_OUT_OF_WORK",
    "NeedConditions",
    "ReportingUnits",
    "TargetingResult",
    "area_targeting",
    "census_activity_category",
    "client_counts_by_lsoa",
    "comparison_population_by_lsoa",
    "grid_layout",
    "important_conditions",
    "load_ward_lookup",
    "map_figure",
    "pooled",
    "quadrant_chart",
    "quadrant_figure",
    "reporting_units",
    "run_area_targeting",
    "targeting_table",
]
