"""The equity audit as disclosure-control outputs: estimate tables and one chart per characteristic.

Every figure the audit found leaves the TRE only through these outputs, and only after
disclosure control and an IG officer; each row carries the people it rests on (``n_people``), so
a ratio for a handful of clients is withheld like a small cell of a table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.charts import estimate_chart
from analysis.disclosure import DisclosureOutput, Figure
from analysis.equity.audit import EquityAudit, describe_ratio
from analysis.equity.statistics import Z95
from analysis.stage import CLIENTS_SOURCE, estimates_result
from analysis.vocabulary import CHARACTERISTICS, POPULATION_BASES


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


__all__ = ["equity_outputs"]
