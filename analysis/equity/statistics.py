"""The equity audit's statistics: representation ratios, goodness of fit, standardisation.

Plain functions over pandas tables of counts, with no knowledge of files, policies or disclosure
control, so each is tested against a hand calculation. The ratios compare a group's share of a
programme's clients with its share of the census population; the tests say whether the clients'
make-up differs from the population's at all; age-sex standardisation stops a programme that
mostly reaches young people from looking as if it under-reaches groups that are commoner at
older ages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

Z95 = stats.norm.ppf(0.975)


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


def band_limits(label: str) -> tuple[int, int] | None:
    """The whole years an age band covers: '25-34' -> (25, 34), '65+' -> (65, 200); else None."""
    return _band_limits(label)


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


def ratio_p_value(ratio: float, low: float, high: float) -> float:
    """Two-sided p for ratio = 1 from a log-symmetric 95% interval (nan when it cannot be had)."""
    if not all(np.isfinite(v) and v > 0 for v in (ratio, low, high)):
        return float("nan")
    se = (np.log(high) - np.log(low)) / (2 * Z95)
    return float(2 * stats.norm.sf(abs(np.log(ratio)) / se)) if se > 0 else float("nan")


def format_p(p: float) -> str:
    """A p-value as a reader wants it: "p < 0.001", "p = 0.004", "p = 0.27" ("" when missing).

    Why: a p of 1e-191 says no more than "below 0.001", and sixteen digits say nothing at all.
    """
    if p is None or not np.isfinite(p):
        return ""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


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


__all__ = [
    "Z95",
    "band_limits",
    "format_p",
    "ratio_p_value",
    "FitTest",
    "age_sex_standardised_ratios",
    "goodness_of_fit",
    "harmonise_age_bands",
    "poisson_ci",
    "representation_ratios",
]
