"""The equity audit: each programme's clients against the census population, characteristic by characteristic.

Each programme serves an out-of-work population: its comparison population (``population``), by
default residents aged 16-64 who are unemployed or economically inactive for a reason other than
retirement or study, set per programme in configuration. The census tells us who is in that
population in the same local authorities; the programme's clients tell us who was reached.
A group whose share of clients is well below its share of the population is under-represented.
Counts are always counts of *people*: duplicate enrolments of one person in one programme (same
``client_cluster``) count once. The audit also tests whether the linked subset is skewed, since
the analyses of GP-recorded data use linked clients only.

Disability is compared when the census table has it ("Disabled under the Equality Act" or not):
clients count as disabled or with a long-term health condition when any self-reported condition
is flagged (a proxy, see ``with_disability``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from analysis.clients import condition_columns, one_row_per_person
from analysis.equity.population import ComparisonPopulation, ComparisonPopulations
from analysis.equity.statistics import (
    FitTest,
    age_sex_standardised_ratios,
    band_limits,
    format_p,
    goodness_of_fit,
    harmonise_age_bands,
    ratio_p_value,
    representation_ratios,
)
from analysis.vocabulary import CHARACTERISTICS, POPULATION_BASES

#: Which census population a programme is compared with (the keys of ``vocabulary.POPULATION_BASES``).
PopulationBasis = Literal["out_of_work", "inactive_sick"]


def with_disability(clients: pd.DataFrame) -> pd.DataFrame:
    """Add ``disability``: "Yes" for clients "disabled or with a long-term health condition".

    The census counts people "disabled under the Equality Act": a long-term physical or mental
    health condition that limits day-to-day activities. The programmes do not ask that question;
    they record self-reported conditions (``sr_<condition>``). So the audit uses a proxy: a client
    is "disabled or with a long-term health condition" when *any* self-reported condition is
    flagged, "No" when every recorded flag is no, and unknown (left out of the comparison) when
    no flag was recorded at all. The proxy is wider than the census definition (a condition need
    not limit daily activities), so it can put a ratio somewhat above 1 without any selection;
    read this characteristic for large departures and for differences between programmes.
    """
    df = clients.copy()
    sr = condition_columns(df, "sr_")
    if sr:
        flags = df[sr].astype("boolean")
        any_condition = flags.fillna(False).astype(bool).any(axis=1).to_numpy()
        recorded = flags.notna().any(axis=1).to_numpy()
        df["disability"] = pd.array(
            np.where(any_condition, "Yes", np.where(recorded, "No", None)), dtype="string"
        )
    return df


def programme_label(programme: str) -> str:
    """A programme's name as sentences say it: "health_into_work" -> "Health into work"."""
    text = str(programme).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def category_label(characteristic: str, category: str) -> str:
    """A category as tables and charts say it: "aged 16–24", "women", "IMD quintile 1 (most deprived)"."""
    label = str(category).replace("-", "–")
    if characteristic == "age_band":
        return f"aged {label}"
    if characteristic == "sex":
        return {"F": "women", "M": "men", "Female": "women", "Male": "men"}.get(str(category), f"sex {label}")
    if characteristic == "ethnicity":
        return f"{label} ethnic group"
    if characteristic == "imd_quintile":
        extreme = {"1": " (most deprived)", "5": " (least deprived)"}.get(str(category), "")
        return f"IMD quintile {label}{extreme}"
    if characteristic == "disability":
        return (
            "disabled or with a long-term condition"
            if str(category) in ("Yes", "True", "1")
            else "not disabled, no long-term condition"
        )
    return f"{CHARACTERISTICS.get(characteristic, characteristic)} {label}"


def population_name(basis: str) -> str:
    """The population phrase of a named basis ("out_of_work", "inactive_sick"), else ``basis`` itself."""
    return POPULATION_BASES.get(basis, basis)


def describe_ratio(
    characteristic: str,
    category: str,
    ratio: float,
    low: float,
    high: float,
    basis: str,
    programme: str | None = None,
) -> str:
    """A plain-English sentence about one representation ratio of one programme.

    "Under"/"over" is said only when the 95% interval excludes 1, so a sentence never claims more
    than the data show. ``basis`` is a named basis or the comparison population's name (the
    reference: a ratio of 1 means the same share as in that population); ``programme`` names
    whose clients these are, so two programmes' sentences cannot be mistaken for each other.
    """
    who = _people_phrase(characteristic, category)
    population = population_name(basis)
    among = f" among {programme_label(programme)} clients" if programme else ""
    if math.isnan(ratio):
        return f"{who}{among}: no comparison possible (not in the census table)."
    p = format_p(ratio_p_value(ratio, low, high))
    figures = (
        f"their share of clients is {ratio:.2f} times their share of the {population} "
        f"(95% CI {low:.2f} to {high:.2f}{'; ' + p if p else ''})"
    )
    if high < 1:
        return f"{who} are under-represented{among}: {figures}."
    if low > 1:
        return f"{who} are over-represented{among}: {figures}."
    return f"{who} are represented in proportion{among}: {figures}."


def _people_phrase(characteristic: str, category: str) -> str:
    label = category.replace("-", "–")
    if characteristic == "age_band":
        return f"People aged {label}"
    if characteristic == "sex":
        return {"F": "Women", "M": "Men", "Female": "Women", "Male": "Men"}.get(
            category, f"People of sex {label}"
        )
    if characteristic == "ethnicity":
        return f"People of {label} ethnicity"
    if characteristic == "imd_quintile":
        return f"People living in IMD quintile {label} areas"
    if characteristic == "disability":
        return (
            "Disabled people or people with a long-term health condition"
            if category in ("Yes", "True", "1")
            else "People without a disability or long-term health condition"
        )
    return f"People with {characteristic} {label}"


@dataclass(frozen=True)
class CharacteristicAudit:
    """The audit of one characteristic for one programme."""

    programme: str
    characteristic: str
    ratios: pd.DataFrame
    standardised: pd.DataFrame | None
    fit: FitTest
    sentences: tuple[str, ...]
    #: the comparison population's name, as the sentences say it
    population: str = ""


def audit_characteristic(
    programme: str,
    clients: pd.DataFrame,
    population: pd.DataFrame,
    characteristic: str,
    basis: str,
) -> CharacteristicAudit:
    """Compare one programme's clients (one row per person) with the population on one characteristic.

    ``population`` is the census table of the programme's comparison population in its local
    authorities, with columns ``characteristic`` value, ``people`` and, when available,
    ``age_band`` and ``sex`` (needed for the standardised comparison). ``basis`` is a named basis
    or the comparison population's name.
    """
    pop_counts = population.assign(_c=population[characteristic].astype(str)).groupby("_c")["people"].sum()
    client_counts = clients[characteristic].dropna().astype(str).value_counts()
    # categories the census does not have ("unknown") cannot be compared: leave those people out
    client_counts = client_counts[client_counts.index.isin(pop_counts.index)]
    ratios = representation_ratios(client_counts, pop_counts)
    fit = goodness_of_fit(client_counts, pop_counts)
    standardised = None
    if characteristic not in ("age_band", "sex") and {"age_band", "sex"} <= set(population.columns):
        pop = population.assign(**{characteristic: population[characteristic].astype(str)})
        cl = clients.dropna(subset=[characteristic, "age_band", "sex"])
        cl = cl.assign(**{characteristic: cl[characteristic].astype(str)})
        standardised = age_sex_standardised_ratios(cl, pop, characteristic)
    sentences = tuple(
        describe_ratio(characteristic, r.category, r.ratio, r.ci_low, r.ci_high, basis, programme)
        for r in ratios.itertuples()
        if r.clients > 0
    )
    return CharacteristicAudit(
        programme, characteristic, ratios, standardised, fit, sentences, population_name(basis)
    )


# --------------------------------------------------------------------------------------------
# Linkage bias


def linkage_skew(match_rates: pd.DataFrame, alpha: float = 0.05, min_clients: int = 10) -> pd.DataFrame:
    """For each grouping in the linkage report, test whether match rates differ between levels.

    Why: analyses of GP-recorded conditions use only linked clients; if, say, younger clients
    link less often, those analyses over-represent older clients. A chi-square test of the
    matched/unmatched counts across levels says whether the difference is more than chance.
    Levels that are unknown or have fewer than ``min_clients`` clients are left out, so no
    statement quotes the match rate of a handful of people.
    """
    rows = []
    known = match_rates[match_rates["group"] != "overall"]
    for group, g in known.groupby("group", sort=True):
        g = g[(g["clients"] >= max(min_clients, 1)) & (g["level"].astype(str).str.lower() != "unknown")]
        if len(g) < 2:
            continue
        matched = g["matched"].to_numpy(dtype=float)
        unmatched = g["clients"].to_numpy(dtype=float) - matched
        table = np.vstack([matched, unmatched])
        if (table.sum(axis=1) == 0).any():
            chi2, p, dof = 0.0, 1.0, len(g) - 1
        else:
            chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        rate = g["matched"] / g["clients"]
        lo, hi = g.loc[rate.idxmin()], g.loc[rate.idxmax()]
        skewed = bool(p < alpha)
        verdict = "is skewed" if skewed else "is not detectably skewed"
        rows.append(
            {
                "group": str(group),
                "levels": len(g),
                "clients": int(g["clients"].sum()),
                "lowest_level": str(lo["level"]),
                "lowest_match_rate": float(rate.min()),
                "highest_level": str(hi["level"]),
                "highest_match_rate": float(rate.max()),
                "chi_square": float(chi2),
                "df": int(dof),
                "p_value": float(p),
                "skewed": skewed,
                "sentence": (
                    f"The linked subset {verdict} by {group}: match rates range from "
                    f"{rate.min():.0%} ({lo['level']}) to {rate.max():.0%} ({hi['level']}), {format_p(p)}."
                ),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The whole audit


@dataclass(frozen=True)
class EquityAudit:
    """Everything the audit found, before disclosure control."""

    basis: PopulationBasis
    characteristics: tuple[CharacteristicAudit, ...]
    linkage: pd.DataFrame
    #: each programme's comparison population (empty when the caller passed ready-made tables)
    populations: dict[str, ComparisonPopulation] = field(default_factory=dict)
    #: caveats about the census table that every output must carry
    notes: tuple[str, ...] = ()

    def ratios_table(self) -> pd.DataFrame:
        """All representation ratios, one row per programme, characteristic and category."""
        frames = [
            a.ratios.assign(programme=a.programme, characteristic=a.characteristic)
            for a in self.characteristics
        ]
        cols = ["programme", "characteristic", "category"]
        out = pd.concat(frames, ignore_index=True)
        return out[cols + [c for c in out.columns if c not in cols]]

    def standardised_table(self) -> pd.DataFrame:
        """All age-sex standardised ratios (empty when the census table has no age and sex)."""
        frames = [
            a.standardised.assign(programme=a.programme, characteristic=a.characteristic)
            for a in self.characteristics
            if a.standardised is not None and len(a.standardised)
        ]
        if not frames:
            return pd.DataFrame()
        cols = ["programme", "characteristic", "category"]
        out = pd.concat(frames, ignore_index=True)
        return out[cols + [c for c in out.columns if c not in cols]]

    def tests_table(self) -> pd.DataFrame:
        """One goodness-of-fit test per programme and characteristic."""
        return pd.DataFrame(
            [
                {
                    "programme": a.programme,
                    "characteristic": a.characteristic,
                    "clients": int(a.ratios["clients"].sum()),
                    "chi_square": a.fit.chi_square,
                    "g_statistic": a.fit.g_statistic,
                    "df": a.fit.df,
                    "p_chi_square": a.fit.p_chi_square,
                    "p_g": a.fit.p_g,
                }
                for a in self.characteristics
            ]
        )

    def sentences(self) -> list[str]:
        """Every finding in plain English, before disclosure control (for review inside the TRE)."""
        lines = []
        for a in self.characteristics:
            label = CHARACTERISTICS.get(a.characteristic, a.characteristic)
            lines.append(f"{programme_label(a.programme)}, by {label} (compared with the {a.population}):")
            lines.extend(f"  {s}" for s in a.sentences)
        lines.extend(self.linkage["sentence"].tolist() if len(self.linkage) else [])
        return lines


def _harmonised(
    people: pd.DataFrame, population: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Both sides' age bands mapped onto the bands they share (see ``harmonise_age_bands``)."""
    census_bands = set().union(
        *(set(p["age_band"].astype(str)) for p in population.values() if "age_band" in p)
    )
    if "age_band" not in people or not census_bands:
        return people, population
    bands = harmonise_age_bands(people["age_band"].dropna().astype(str).unique(), census_bands)
    people = people.assign(age_band=people["age_band"].astype(str).map(bands["clients"]))
    population = {
        k: v.assign(age_band=v["age_band"].astype(str).map(bands["census"])).dropna(subset=["age_band"])
        if "age_band" in v
        else v
        for k, v in population.items()
    }
    return people, population


def _in_age_range(people: pd.DataFrame, comparison: ComparisonPopulation) -> pd.DataFrame:
    """Clients whose age band lies outside the comparison population's ages are left out."""
    if "age_band" not in people:
        return people
    upper = 200 if comparison.max_age >= 120 else comparison.max_age

    def outside(band: object) -> bool:
        limits = band_limits(str(band)) if pd.notna(band) else None
        return limits is not None and (limits[1] < comparison.min_age or limits[0] > upper)

    return people[~people["age_band"].map(outside).astype(bool)]


def audit_programmes(
    clients: pd.DataFrame,
    population: dict[str, pd.DataFrame] | pd.DataFrame,
    basis: PopulationBasis = "out_of_work",
    match_rates: pd.DataFrame | None = None,
    lad_of_client: pd.Series | None = None,
    min_people: int = 10,
    comparison: ComparisonPopulations | None = None,
    census_source: str = "census table",
) -> EquityAudit:
    """Audit every programme on every characteristic that both sides have.

    ``population`` is either the whole census table by group (``load_census_population_by_group``:
    ``lad22cd``, ``status``, ``people``, characteristics), from which each programme's comparison
    population is taken (``comparison``, default: aged 16-64, unemployed or inactive other than
    retired and students; ``basis="inactive_sick"`` narrows it to the long-term sick), or a ready
    map of each characteristic to one census table used for every programme.
    ``lad_of_client`` gives each client row's local authority code (aligned with ``clients``);
    each programme is compared with the population of the local authorities its clients live in.
    ``min_people``: match-rate levels with fewer clients are left out of the linkage-bias test.
    ``census_source`` names the census file in errors.
    """
    df = with_disability(clients)
    if lad_of_client is not None:
        df = df.assign(lad22cd=lad_of_client.to_numpy())
    people = one_row_per_person(df)
    comparison = comparison or ComparisonPopulations()
    audits = []
    used: dict[str, ComparisonPopulation] = {}
    for programme, cl in people.groupby("programme", sort=True):
        if isinstance(population, pd.DataFrame):
            chosen = comparison.for_programme(str(programme))
            if basis == "inactive_sick":
                chosen = chosen.narrowed_to_sick()
            used[str(programme)] = chosen
            selected = chosen.select(population, census_source, str(programme))
            tables = {c: selected for c in CHARACTERISTICS if c in selected.columns}
            cl = _in_age_range(cl, chosen)
            name = chosen.name()
        else:
            tables, name = population, basis
        cl, tables = _harmonised(cl, tables)
        las = set(cl["lad22cd"].dropna()) if "lad22cd" in cl else set()
        for characteristic in CHARACTERISTICS:
            if characteristic not in cl.columns or characteristic not in tables:
                continue
            pop = tables[characteristic]
            if las and "lad22cd" in pop.columns:
                pop = pop[pop["lad22cd"].isin(las)]
            if pop["people"].sum() == 0:
                continue
            audits.append(audit_characteristic(str(programme), cl, pop, characteristic, name))
    skew = (
        linkage_skew(match_rates, min_clients=min_people)
        if match_rates is not None and len(match_rates)
        else pd.DataFrame()
    )
    return EquityAudit(basis, tuple(audits), skew, used, _census_notes(population, used))


def _census_notes(population: object, used: dict[str, ComparisonPopulation]) -> tuple[str, ...]:
    """A caveat when the census table cannot tell retired people and students from other inactive people."""
    if not isinstance(population, pd.DataFrame) or "status" not in population:
        return ()
    statuses = set(population["status"])
    unsplit = "inactive_other" in statuses and not statuses & {"inactive_retired", "inactive_student"}
    excluded = any({"inactive_retired", "inactive_student"} - set(c.activity) for c in used.values())
    if unsplit and excluded:
        return (
            "Caution: the census table does not give the reason for economic inactivity, so inactive "
            "retired people and students are counted under 'another reason' and so in the comparison "
            "population; use the census table by economic activity status with its 20 categories.",
        )
    return ()


__all__ = [
    "CharacteristicAudit",
    "EquityAudit",
    "PopulationBasis",
    "audit_characteristic",
    "audit_programmes",
    "category_label",
    "describe_ratio",
    "linkage_skew",
    "population_name",
    "programme_label",
    "with_disability",
]
