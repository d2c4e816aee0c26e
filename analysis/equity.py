"""Equity audit: are the programmes reaching the people they are meant to serve?

Each programme serves an out-of-work population (the unemployed plus the economically inactive,
or only those inactive through long-term sickness or disability). The census tells us who is in
that population in the same local authorities; the programme's clients tell us who was reached.
A group whose share of clients is well below its share of the population is under-represented.

The statistical core is plain functions over pandas tables; ``run_equity_audit`` is the stage
function that reads the workspace, goes through the policy engine and hands every table and
chart to disclosure control. Counts are always counts of *people*: duplicate enrolments of one
person in one programme (same ``client_cluster``) count once.

Disability is compared when the census table has it ("Disabled under the Equality Act" or not):
clients count as disabled or with a long-term health condition when any self-reported condition
is flagged (a proxy, see ``with_disability``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ig_policies.errors import InputError
from ig_policies.workspace import Workspace

if TYPE_CHECKING:
    from analysis.disclosure import DisclosureOutput, ModelResult

#: Which census population a programme is compared with.
PopulationBasis = Literal["out_of_work", "inactive_sick"]
POPULATION_BASES: dict[str, str] = {
    "out_of_work": "out-of-work population (unemployed or economically inactive)",
    "inactive_sick": "population economically inactive through long-term sickness or disability",
}

#: Characteristics compared in the audit, in report order, with the words used in sentences.
CHARACTERISTICS: dict[str, str] = {
    "age_band": "age",
    "sex": "sex",
    "ethnicity": "ethnic group",
    "imd_quintile": "area deprivation (IMD quintile)",
    "disability": "disability or long-term health condition",
}

Z95 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------------------------
# People, not enrolments


def one_row_per_person(clients: pd.DataFrame, by: Sequence[str] = ("programme",)) -> pd.DataFrame:
    """Keep each person's earliest enrolment within each ``by`` group.

    Duplicate enrolments of one person share a ``client_cluster``; counting them twice would
    inflate every count and make disclosure thresholds meaningless, because those thresholds are
    about people. Rows without a cluster are their own person.
    """
    df = clients.copy()
    person = df["client_cluster"] if "client_cluster" in df else pd.Series(pd.NA, index=df.index)
    df["_person"] = person.astype("string").fillna(df["client_pseudonym"].astype("string"))
    order = [*by, "_person"] + (["enrolment_date"] if "enrolment_date" in df else [])
    df = df.sort_values(order, kind="stable").drop_duplicates([*by, "_person"], keep="first")
    return df.drop(columns="_person").reset_index(drop=True)


def person_ids(clients: pd.DataFrame) -> pd.Series:
    """The identifier of the person behind each row (cluster, else the client pseudonym)."""
    if "client_cluster" in clients:
        return clients["client_cluster"].astype("string").fillna(clients["client_pseudonym"].astype("string"))
    return clients["client_pseudonym"].astype("string")


def condition_columns(clients: pd.DataFrame, prefix: str) -> list[str]:
    """The ``sr_``/``gp_`` condition flag columns present, in a stable order."""
    return sorted(c for c in clients.columns if c.startswith(prefix))


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


# --------------------------------------------------------------------------------------------
# Age bands: the programme data and the census rarely use the same ones


def _band_limits(label: str) -> tuple[int, int] | None:
    """'25-34' -> (25, 34); '65+' -> (65, 200); 'Aged 16 to 24 years' -> (16, 24); else None."""
    text = str(label).replace("–", "-")
    nums = [int(x) for x in re.findall(r"\d+", text)]
    if len(nums) == 2 and nums[0] <= nums[1]:
        return nums[0], nums[1]
    if len(nums) == 1 and ("+" in text or "over" in text.lower()):
        return nums[0], 200
    return None


def harmonise_age_bands(
    client_bands: Iterable[str], census_bands: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Map both sides' age bands onto the finest bands they share.

    Why: the research dataset may band ages 35-44/45-54/55-64 while a census table uses
    35-49/50-64; comparing "35-44" with "35-49" would be wrong. The common bands are cut only
    at boundaries both sides have (here 16-24, 25-34, 35-64). Returns ``{"clients": {...},
    "census": {...}}`` mapping each original label to its common band; labels that are not age
    ranges (e.g. "unknown") are left out, and census bands outside the clients' age range are
    dropped (a programme for 16-64s is not compared with retired people).
    """
    c_lim = {b: _band_limits(b) for b in set(map(str, client_bands))}
    p_lim = {b: _band_limits(b) for b in set(map(str, census_bands))}
    c_lim = {b: v for b, v in c_lim.items() if v}
    p_lim = {b: v for b, v in p_lim.items() if v}
    if not c_lim or not p_lim:
        return {"clients": {}, "census": {}}
    upper = {v[1] for v in c_lim.values()} & {v[1] for v in p_lim.values()}
    lowest = max(min(v[0] for v in c_lim.values()), min(v[0] for v in p_lim.values()))
    cuts = sorted(upper)

    def common(lo: int, hi: int) -> str | None:
        start = lowest
        for cut in cuts:
            if lo >= start and hi <= cut:
                return f"{start}-{cut}" if cut < 200 else f"{start}+"
            start = cut + 1
        return None

    def mapping(limits: dict[str, tuple[int, int]]) -> dict[str, str]:
        out = {}
        for band, (lo, hi) in limits.items():
            label = common(lo, hi)
            if label is not None:
                out[band] = label
        return out

    return {"clients": mapping(c_lim), "census": mapping(p_lim)}


# --------------------------------------------------------------------------------------------
# Representation ratios


def representation_ratios(client_counts: pd.Series, population_counts: pd.Series) -> pd.DataFrame:
    """Each category's share of clients divided by its share of the population, with a 95% CI.

    The CI is the Katz log interval for a ratio of two independent proportions; the census
    counts are large, so most of the width comes from the (small) number of clients.
    Categories missing on either side count as zero; a category with no clients gets ratio 0
    and no interval.
    """
    cats = population_counts.index.union(client_counts.index)
    x = client_counts.reindex(cats, fill_value=0).astype(float)
    y = population_counts.reindex(cats, fill_value=0).astype(float)
    n, m = x.sum(), y.sum()
    p1, p0 = x / n, y / m
    ratio = p1 / p0.replace(0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt((1 - p1) / x.replace(0, np.nan) + (1 - p0) / y.replace(0, np.nan))
    out = pd.DataFrame(
        {
            "category": cats.astype(str),
            "clients": x.astype(int).to_numpy(),
            "client_share": p1.to_numpy(),
            "population": y.astype(int).to_numpy(),
            "population_share": p0.to_numpy(),
            "ratio": ratio.to_numpy(),
            "ci_low": (ratio * np.exp(-Z95 * se)).to_numpy(),
            "ci_high": (ratio * np.exp(Z95 * se)).to_numpy(),
        }
    )
    return out


@dataclass(frozen=True)
class FitTest:
    """A goodness-of-fit test of the clients' make-up against the population's."""

    chi_square: float
    g_statistic: float
    df: int
    p_chi_square: float
    p_g: float


def goodness_of_fit(client_counts: pd.Series, population_counts: pd.Series) -> FitTest:
    """Pearson chi-square and likelihood-ratio G test of client counts against population shares."""
    cats = population_counts.index.union(client_counts.index)
    obs = client_counts.reindex(cats, fill_value=0).astype(float).to_numpy()
    pop = population_counts.reindex(cats, fill_value=0).astype(float).to_numpy()
    keep = pop > 0
    obs, pop = obs[keep], pop[keep]
    expected = pop / pop.sum() * obs.sum()
    dof = int(keep.sum() - 1)
    if dof < 1 or obs.sum() == 0:
        return FitTest(float("nan"), float("nan"), max(dof, 0), float("nan"), float("nan"))
    chi2, p_chi2 = stats.power_divergence(obs, expected, lambda_="pearson")
    g, p_g = stats.power_divergence(obs, expected, lambda_="log-likelihood")
    return FitTest(float(chi2), float(g), dof, float(p_chi2), float(p_g))


def poisson_ci(observed: float, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson count."""
    low = 0.0 if observed == 0 else stats.chi2.ppf(alpha / 2, 2 * observed) / 2
    high = stats.chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
    return float(low), float(high)


def age_sex_standardised_ratios(
    clients: pd.DataFrame, population: pd.DataFrame, characteristic: str
) -> pd.DataFrame:
    """Indirectly age–sex standardised representation ratios for one characteristic.

    Why: a programme that mostly reaches young men will look as if it under-reaches, say,
    people with a disability simply because disability is commoner at older ages. The expected
    number of clients in a category is what we would see if, *within each age–sex group*, clients
    had the population's make-up: E_c = sum_s clients_s * pop_{s,c} / pop_s. The ratio O_c / E_c
    then compares like with like; its CI is the exact Poisson interval of O_c divided by E_c.

    ``population`` has columns ``age_band``, ``sex``, ``characteristic`` and ``people``.
    """
    need = {"age_band", "sex", characteristic, "people"}
    if not need <= set(population.columns):
        raise ValueError(f"population table needs columns {sorted(need)}")
    pop = population.groupby(["age_band", "sex", characteristic], observed=True)["people"].sum()
    pop_share = pop / pop.groupby(level=["age_band", "sex"]).transform("sum")
    strata = clients.groupby(["age_band", "sex"], observed=True).size().rename("stratum_clients")
    joined = pop_share.rename("share").reset_index().merge(strata.reset_index(), on=["age_band", "sex"])
    expected = (joined["share"] * joined["stratum_clients"]).groupby(joined[characteristic]).sum()
    # clients in age-sex strata absent from the census table cannot be standardised: leave them out
    in_strata = clients.merge(strata.reset_index()[["age_band", "sex"]], on=["age_band", "sex"])
    observed = in_strata.groupby(characteristic, observed=True).size()
    cats = expected.index.union(observed.index)
    rows = []
    for cat in cats:
        o = float(observed.get(cat, 0))
        e = float(expected.get(cat, 0.0))
        lo, hi = poisson_ci(o)
        rows.append(
            {
                "category": str(cat),
                "observed": int(o),
                "expected": e,
                "ratio": o / e if e > 0 else float("nan"),
                "ci_low": lo / e if e > 0 else float("nan"),
                "ci_high": hi / e if e > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def describe_ratio(
    characteristic: str, category: str, ratio: float, low: float, high: float, basis: str
) -> str:
    """A plain-English sentence about one representation ratio.

    "Under"/"over" is said only when the 95% interval excludes 1, so a sentence never claims more
    than the data show.
    """
    who = _people_phrase(characteristic, category)
    population = (
        "out-of-work population" if basis == "out_of_work" else "population out of work through ill health"
    )
    if math.isnan(ratio):
        return f"{who}: no comparison possible (not in the census table)."
    figures = f"{ratio:.2f} of their share of the {population} ({low:.2f}–{high:.2f})"
    if high < 1:
        return f"{who} are under-represented: {figures}."
    if low > 1:
        return f"{who} are over-represented: {figures}."
    return f"{who} are represented in line with the population: {figures}."


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


def audit_characteristic(
    programme: str,
    clients: pd.DataFrame,
    population: pd.DataFrame,
    characteristic: str,
    basis: PopulationBasis,
) -> CharacteristicAudit:
    """Compare one programme's clients (one row per person) with the population on one characteristic.

    ``population`` is the census table of the chosen basis for the programme's local
    authorities, with columns ``characteristic`` value, ``people`` and, when available,
    ``age_band`` and ``sex`` (needed for the standardised comparison).
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
        describe_ratio(characteristic, r.category, r.ratio, r.ci_low, r.ci_high, basis)
        for r in ratios.itertuples()
        if r.clients > 0
    )
    return CharacteristicAudit(programme, characteristic, ratios, standardised, fit, sentences)


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
                    f"{rate.min():.0%} ({lo['level']}) to {rate.max():.0%} ({hi['level']}), p = {p:.3g}."
                ),
            }
        )
    return pd.DataFrame(rows)


LINKAGE_MODEL_TERMS: tuple[str, ...] = ("age_band", "sex", "ethnicity", "imd_quintile", "programme")


def linkage_weights(clients: pd.DataFrame, terms: Sequence[str] = LINKAGE_MODEL_TERMS) -> pd.Series:
    """Stabilised inverse-probability-of-linkage weights (NaN for unlinked rows).

    A logistic model of ``linked`` on demographics gives each client's probability of being
    linked; weighting linked clients by P(linked) / p_i makes the linked subset resemble all
    clients on those demographics, so analyses of linked data describe the whole caseload.
    Stabilising by the overall linkage rate keeps the weights' mean near 1.
    """
    import statsmodels.formula.api as smf

    used = [t for t in terms if t in clients.columns and clients[t].nunique(dropna=True) > 1]
    df = clients[[*used, "linked"]].copy()
    for t in used:
        df[t] = df[t].astype("string").fillna("Unknown")
    df["linked"] = df["linked"].fillna(False).astype(int)
    rate = df["linked"].mean()
    if rate in (0.0, 1.0) or not used:
        p = pd.Series(rate, index=df.index)
    else:
        formula = "linked ~ " + " + ".join(f"C({t})" for t in used)
        fit = smf.glm(formula, data=df, family=_binomial()).fit()
        p = pd.Series(np.asarray(fit.predict(df)), index=df.index)
    weights = (rate / p).where(df["linked"] == 1)
    return weights.rename("linkage_weight")


def _binomial() -> Any:
    import statsmodels.api as sm

    return sm.families.Binomial()


# --------------------------------------------------------------------------------------------
# The whole audit


@dataclass(frozen=True)
class EquityAudit:
    """Everything the audit found, before disclosure control."""

    basis: PopulationBasis
    characteristics: tuple[CharacteristicAudit, ...]
    linkage: pd.DataFrame

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
        lines = []
        for a in self.characteristics:
            lines.append(f"[{a.programme}] {CHARACTERISTICS.get(a.characteristic, a.characteristic)}:")
            lines.extend(f"  {s}" for s in a.sentences)
        lines.extend(self.linkage["sentence"].tolist() if len(self.linkage) else [])
        return lines


def audit_programmes(
    clients: pd.DataFrame,
    population: dict[str, pd.DataFrame],
    basis: PopulationBasis = "out_of_work",
    match_rates: pd.DataFrame | None = None,
    lad_of_client: pd.Series | None = None,
    min_people: int = 10,
) -> EquityAudit:
    """Audit every programme on every characteristic that both sides have.

    ``population`` maps each characteristic to the census table of the chosen basis with columns
    ``lad22cd``, the characteristic, ``people`` and optionally ``age_band``/``sex``.
    ``lad_of_client`` gives each client row's local authority code (aligned with ``clients``);
    each programme is compared with the population of the local authorities its clients live in.
    ``min_people``: match-rate levels with fewer clients are left out of the linkage-bias test.
    """
    df = with_disability(clients)
    if lad_of_client is not None:
        df = df.assign(lad22cd=lad_of_client.to_numpy())
    people = one_row_per_person(df)
    census_bands = set().union(
        *(set(p["age_band"].astype(str)) for p in population.values() if "age_band" in p)
    )
    if "age_band" in people and census_bands:
        bands = harmonise_age_bands(people["age_band"].dropna().astype(str).unique(), census_bands)
        people["age_band"] = people["age_band"].astype(str).map(bands["clients"])
        population = {
            k: v.assign(age_band=v["age_band"].astype(str).map(bands["census"])).dropna(subset=["age_band"])
            if "age_band" in v
            else v
            for k, v in population.items()
        }
    audits = []
    for programme, cl in people.groupby("programme", sort=True):
        las = set(cl["lad22cd"].dropna()) if "lad22cd" in cl else set()
        for characteristic in CHARACTERISTICS:
            if characteristic not in cl.columns or characteristic not in population:
                continue
            pop = population[characteristic]
            if las and "lad22cd" in pop.columns:
                pop = pop[pop["lad22cd"].isin(las)]
            if pop["people"].sum() == 0:
                continue
            audits.append(audit_characteristic(str(programme), cl, pop, characteristic, basis))
    skew = (
        linkage_skew(match_rates, min_clients=min_people)
        if match_rates is not None and len(match_rates)
        else pd.DataFrame()
    )
    return EquityAudit(basis, tuple(audits), skew)


# --------------------------------------------------------------------------------------------
# Reading the research dataset and handing outputs to disclosure control (shared by the
# programme analyses: equity, success, concordance, area profiles)

CLIENTS_SOURCE = "analysis/clients"


def read_clients(workspace: Workspace) -> pd.DataFrame:
    """``analysis/clients.parquet``, or a plain error saying which stage writes it."""
    path = workspace.analysis / "clients.parquet"
    if not path.exists():
        raise InputError(
            str(path),
            "the research dataset has not been built yet",
            hint="a data processor runs 'ehl research-dataset' first.",
        )
    clients = pd.read_parquet(path)
    for column in ("client_pseudonym", "programme"):
        if column not in clients.columns:
            raise InputError(
                str(path), "a required column is missing", column=column, hint="rebuild the research dataset."
            )
    return clients


@dataclass(frozen=True)
class AnalysisOutputs:
    """What an analysis stage requested: (name, request id, status) per output, and its findings."""

    analysis: str
    requests: tuple[tuple[str, str, str], ...]
    pending: tuple[Path, ...]
    sentences: tuple[str, ...] = ()

    @property
    def blocked(self) -> tuple[str, ...]:
        return tuple(name for name, _, status in self.requests if status == "blocked")


def request_outputs(
    workspace: Workspace,
    engine: Any,
    actor: str,
    outputs: Sequence[tuple[str, DisclosureOutput]],
    justification: str,
) -> tuple[tuple[tuple[str, str, str], ...], tuple[Path, ...]]:
    """Request each output through disclosure control; return (name, id, status) and folders."""
    import json

    from analysis.disclosure import request_output

    done, folders = [], []
    for name, output in outputs:
        request_id = request_output(workspace, engine, actor, output, name, justification)
        folder = workspace.pending / request_id
        status = json.loads((folder / "request.json").read_text()).get("status", "pending")
        done.append((name, request_id, str(status)))
        folders.append(folder)
    return tuple(done), tuple(folders)


def estimates_result(
    rows: pd.DataFrame, title: str, source: str, description: str, n_people: int
) -> ModelResult:
    """A table of estimates (ratios, kappas, test statistics) as a disclosure-control model result."""
    from analysis.disclosure import ModelResult

    return ModelResult(
        coefficients=rows.reset_index(drop=True),
        n_obs=int(n_people),
        n_people=int(n_people),
        source=source,
        title=title,
        kind="estimates",
        description=description,
    )


def _ratio_p_value(ratio: float, low: float, high: float) -> float:
    """Two-sided p for ratio = 1 from a log-symmetric 95% interval."""
    if not all(math.isfinite(v) and v > 0 for v in (ratio, low, high)):
        return float("nan")
    se = (math.log(high) - math.log(low)) / (2 * Z95)
    return float(2 * stats.norm.sf(abs(math.log(ratio)) / se)) if se > 0 else float("nan")


def equity_outputs(audit: EquityAudit, min_people: int) -> list[tuple[str, DisclosureOutput]]:
    """The audit as typed outputs: ratios, standardised ratios, tests, linkage bias, one chart per characteristic.

    Sentences go into the descriptions only for categories with at least ``min_people`` clients,
    so a description never quotes a figure that disclosure control withholds from the table.
    """
    from analysis.charts import estimate_chart
    from analysis.disclosure import Figure

    population = POPULATION_BASES[audit.basis]
    ratios = audit.ratios_table()
    rows = pd.DataFrame(
        {
            "term": ratios["programme"] + " | " + ratios["characteristic"] + " | " + ratios["category"],
            "estimate": ratios["ratio"],
            "ci_lower": ratios["ci_low"],
            "ci_upper": ratios["ci_high"],
            "p_value": [
                _ratio_p_value(r, lo, hi)
                for r, lo, hi in zip(ratios["ratio"], ratios["ci_low"], ratios["ci_high"], strict=True)
            ],
            "n_people": ratios["clients"].astype(int),
            "population_share": ratios["population_share"],
        }
    )
    kept_sentences = [
        describe_ratio(r.characteristic, r.category, r.ratio, r.ci_low, r.ci_high, audit.basis)
        for r in ratios.itertuples()
        if r.clients >= min_people
    ]
    total_people = int(
        ratios.groupby(["programme", "characteristic"])["clients"].sum().groupby("programme").max().sum()
    )
    out: list[tuple[str, DisclosureOutput]] = [
        (
            "equity-representation-ratios",
            estimates_result(
                rows,
                f"Representation of groups among clients relative to the {population}",
                CLIENTS_SOURCE,
                "Ratio of each group's share of clients (one count per person) to its share of the census "
                f"{population} in the same local authorities; 95% CIs (Katz).\n" + "\n".join(kept_sentences),
                total_people,
            ),
        )
    ]
    std = audit.standardised_table()
    if len(std):
        std_rows = pd.DataFrame(
            {
                "term": std["programme"] + " | " + std["characteristic"] + " | " + std["category"],
                "estimate": std["ratio"],
                "ci_lower": std["ci_low"],
                "ci_upper": std["ci_high"],
                "p_value": [
                    _ratio_p_value(r, lo, hi)
                    for r, lo, hi in zip(std["ratio"], std["ci_low"], std["ci_high"], strict=True)
                ],
                "n_people": std["observed"].astype(int),
                "expected_people": std["expected"],
            }
        )
        out.append(
            (
                "equity-age-sex-standardised",
                estimates_result(
                    std_rows,
                    "Age-sex standardised representation ratios (observed / expected clients)",
                    CLIENTS_SOURCE,
                    "Indirect standardisation: expected clients if, within each age-sex group, clients had the "
                    f"make-up of the {population}; exact Poisson 95% CIs.",
                    total_people,
                ),
            )
        )
    tests = audit.tests_table()
    out.append(
        (
            "equity-tests",
            estimates_result(
                pd.DataFrame(
                    {
                        "term": tests["programme"] + " | " + tests["characteristic"],
                        "estimate": tests["g_statistic"],
                        "ci_lower": np.nan,
                        "ci_upper": np.nan,
                        "p_value": tests["p_g"],
                        "n_people": tests["clients"].astype(int),
                        "chi_square": tests["chi_square"],
                        "p_chi_square": tests["p_chi_square"],
                        "degrees_of_freedom": tests["df"].astype(float),
                    }
                ),
                "Does the clients' make-up differ from the population's? G and chi-square tests",
                CLIENTS_SOURCE,
                "estimate = likelihood-ratio G statistic (p_value its p); chi_square = Pearson statistic.",
                total_people,
            ),
        )
    )
    if len(audit.linkage):
        link = audit.linkage
        out.append(
            (
                "equity-linkage-bias",
                estimates_result(
                    pd.DataFrame(
                        {
                            "term": link["group"],
                            "estimate": link["chi_square"],
                            "ci_lower": np.nan,
                            "ci_upper": np.nan,
                            "p_value": link["p_value"],
                            "n_people": link["clients"].astype(int),
                            "lowest_match_rate": link["lowest_match_rate"],
                            "highest_match_rate": link["highest_match_rate"],
                            "degrees_of_freedom": link["df"].astype(float),
                        }
                    ),
                    "Is the linked subset skewed? Match rates by group (chi-square test)",
                    "linked/match_rates",
                    "\n".join(link["sentence"]),
                    int(link["clients"].max()),
                ),
            )
        )
    for characteristic in ratios["characteristic"].unique():
        mask = (ratios["characteristic"] == characteristic).to_numpy()
        label = CHARACTERISTICS.get(characteristic, characteristic)
        table = estimates_result(
            rows[mask],
            f"Representation by {label}",
            CLIENTS_SOURCE,
            "",
            int(ratios.loc[mask].groupby("programme")["clients"].sum().sum()),
        )
        title = f"Clients' share relative to the {population}: {label}"

        def render(protected: pd.DataFrame, title: str = title) -> bytes:
            return estimate_chart(
                protected, title, "representation ratio (1 = in proportion)", 1.0, log_scale=True
            )

        out.append(
            (
                f"equity-chart-{characteristic.replace('_', '-')}",
                Figure(table=table, title=title, render=render),
            )
        )
    return out


def client_local_authorities(clients: pd.DataFrame, lookup: pd.DataFrame) -> pd.Series:
    """Each client's local authority code: from their LSOA, else their recorded local authority."""
    by_lsoa = (
        clients["lsoa21cd"].map(lookup.set_index("lsoa21cd")["lad22cd"]) if "lsoa21cd" in clients else None
    )
    names = {str(n).strip().lower(): c for n, c in zip(lookup["lad22nm"], lookup["lad22cd"], strict=True)}
    names.update({str(c).strip().lower(): c for c in lookup["lad22cd"]})
    recorded = (
        clients["local_authority"].astype("string").str.strip().str.lower().map(names)
        if "local_authority" in clients
        else pd.Series(pd.NA, index=clients.index)
    )
    return (by_lsoa if by_lsoa is not None else recorded).fillna(recorded)


def run_equity_audit(
    workspace: Workspace,
    engine: Any,
    actor: str,
    basis: PopulationBasis = "out_of_work",
    justification: str = "Equity audit of the employment-support programmes for the programme board.",
) -> AnalysisOutputs:
    """The equity-audit stage: read clients and census, audit, request every output (researcher)."""
    from analysis.area_data import BASIS_STATUSES, load_census_population_by_group, load_lsoa_lookup
    from ig_policies.policy import Analysis, Role

    if basis not in POPULATION_BASES:
        raise InputError(
            "--population",
            f"unknown population basis '{basis}'",
            hint=f"use one of {', '.join(POPULATION_BASES)}",
        )
    ref = workspace.reference
    paths = {
        "clients": workspace.analysis / "clients.parquet",
        "census": ref / "census_economic_activity_by_group.csv",
        "lookup": ref / "lsoa_lookup.csv",
        "match_rates": workspace.linked / "match_rates.parquet",
    }
    with engine.step(
        actor, Role.RESEARCHER, "equity_audit", analysis=Analysis.EQUITY_AUDIT, reads_linked_data=True
    ) as step:
        clients = read_clients(workspace)
        lookup = load_lsoa_lookup(paths["lookup"])
        census = load_census_population_by_group(paths["census"], lookup)
        pop = census[census["status"].isin(BASIS_STATUSES[basis])]
        population = {c: pop for c in CHARACTERISTICS if c in pop.columns}
        match_rates = pd.read_parquet(paths["match_rates"]) if paths["match_rates"].exists() else None
        audit = audit_programmes(
            clients,
            population,
            basis,
            match_rates,
            client_local_authorities(clients, lookup),
            min_people=engine.policy.outputs.min_cell_count,
        )
        outputs = equity_outputs(audit, engine.policy.outputs.min_cell_count)
        requests, folders = request_outputs(workspace, engine, actor, outputs, justification)
        step.inputs(*(p for p in paths.values() if p.exists()))
        step.outputs(*folders)
        step.counts(clients=len(clients), outputs_requested=len(requests))
        step.detail(basis=basis, characteristics=sorted({a.characteristic for a in audit.characteristics}))
    min_people = engine.policy.outputs.min_cell_count
    sentences = []
    for a in audit.characteristics:
        sentences.append(f"{a.programme}, by {CHARACTERISTICS.get(a.characteristic, a.characteristic)}:")
        sentences.extend(
            "  " + describe_ratio(a.characteristic, r.category, r.ratio, r.ci_low, r.ci_high, basis)
            for r in a.ratios.itertuples()
            if r.clients >= min_people
        )
    if len(audit.linkage):
        sentences.extend(audit.linkage["sentence"])
    return AnalysisOutputs("equity_audit", requests, folders, tuple(sentences))


__all__ = [
    "CHARACTERISTICS",
    "AnalysisOutputs",
    "POPULATION_BASES",
    "CharacteristicAudit",
    "EquityAudit",
    "FitTest",
    "age_sex_standardised_ratios",
    "audit_characteristic",
    "audit_programmes",
    "describe_ratio",
    "goodness_of_fit",
    "harmonise_age_bands",
    "linkage_skew",
    "linkage_weights",
    "one_row_per_person",
    "person_ids",
    "representation_ratios",
    "read_clients",
    "request_outputs",
    "run_equity_audit",
]
