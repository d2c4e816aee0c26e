"""The equity audit as disclosure-control outputs: estimate tables and one chart per characteristic.

Every figure the audit found leaves the TRE only through these outputs, and only after
disclosure control and an IG officer; each row carries the people it rests on (``n_people``), so
a ratio for a handful of clients is withheld like a small cell of a table. The outputs are read
by commissioners: rows are labelled in words ("Health into work: aged 16–24"), numbers are
rounded, every output says which comparison population (the reference) each programme's clients
were compared with, and sentences name the programme.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from analysis.charts import estimate_chart
from analysis.disclosure import DisclosureOutput, Figure, ModelResult
from analysis.equity.audit import (
    EquityAudit,
    category_label,
    describe_ratio,
    population_name,
    programme_label,
)
from analysis.equity.statistics import ratio_p_value
from analysis.stage import CLIENTS_SOURCE, estimates_result
from analysis.vocabulary import CHARACTERISTICS

#: decimal places of the released estimates, shares and p-values
ESTIMATE_DECIMALS = 3
SHARE_DECIMALS = 4
P_DECIMALS = 4
ROUNDING_NOTE = (
    f"Estimates are rounded to {ESTIMATE_DECIMALS} decimal places, shares and p-values to {P_DECIMALS} "
    f"(a p-value of 0 means below 0.0001)."
)


def _round(values: pd.Series | np.ndarray, decimals: int) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float), decimals)


def _ratio_columns(table: pd.DataFrame) -> dict[str, Any]:
    """Term, rounded ratio, its CI and p-value: the columns every equity estimates table shares."""
    return {
        "term": _terms(table),
        "estimate": _round(table["ratio"], ESTIMATE_DECIMALS),
        "ci_lower": _round(table["ci_low"], ESTIMATE_DECIMALS),
        "ci_upper": _round(table["ci_high"], ESTIMATE_DECIMALS),
        "p_value": _round(
            [
                ratio_p_value(r, lo, hi)
                for r, lo, hi in zip(table["ratio"], table["ci_low"], table["ci_high"], strict=True)
            ],
            P_DECIMALS,
        ),
    }


def _terms(table: pd.DataFrame) -> pd.Series:
    """Readable row labels: "Health into work: aged 16–24"."""
    return pd.Series(
        [
            f"{programme_label(p)}: {category_label(c, k)}"
            for p, c, k in zip(table["programme"], table["characteristic"], table["category"], strict=True)
        ],
        index=table.index,
        dtype=object,
    )


def population_statement(audit: EquityAudit) -> str:
    """Which comparison population (the reference) each programme was compared with, in words."""
    if not audit.populations:
        return f"Comparison population (the reference): the census {population_name(audit.basis)}."
    lines = [
        f"Comparison population (the reference) for {programme_label(p)}: {c.definition()}, in the "
        f"local authorities where its clients live (left out: {c.left_out()})."
        for p, c in sorted(audit.populations.items())
    ]
    return "\n".join([*lines, *audit.notes])


def _population_title(audit: EquityAudit) -> str:
    names = {c.name() for c in audit.populations.values()} or {population_name(audit.basis)}
    return names.pop() if len(names) == 1 else "each programme's comparison population"


def equity_outputs(audit: EquityAudit, min_people: int) -> list[tuple[str, DisclosureOutput]]:
    """The audit as typed outputs: ratios, standardised ratios, tests, linkage bias, one chart per characteristic.

    Sentences go into the descriptions only for categories with at least ``min_people`` clients,
    so a description never quotes a figure that disclosure control withholds from the table.
    """
    population = _population_title(audit)
    statement = population_statement(audit)
    names = {p: c.name() for p, c in audit.populations.items()}
    ratios = audit.ratios_table()
    rows = pd.DataFrame(
        {
            **_ratio_columns(ratios),
            "n_people": ratios["clients"].astype(int),
            "population_share": _round(ratios["population_share"], SHARE_DECIMALS),
        }
    )
    kept_sentences = [
        describe_ratio(
            r.characteristic,
            r.category,
            r.ratio,
            r.ci_low,
            r.ci_high,
            names.get(r.programme, audit.basis),
            r.programme,
        )
        for r in ratios.itertuples()
        if r.clients >= min_people
    ]
    total_people = int(
        ratios.groupby(["programme", "characteristic"])["clients"].sum().groupby("programme").max().sum()
    )
    ratio_text = (
        "Ratio of each group's share of a programme's clients (one count per person) to its share of "
        "the programme's comparison population in the same local authorities (census 2021). The "
        "reference is that population: 1 means the same share, above 1 over-represented, below 1 "
        "under-represented; 95% CIs (Katz), p for a ratio of 1. " + ROUNDING_NOTE
    )
    out: list[tuple[str, DisclosureOutput]] = [
        (
            "equity-representation-ratios",
            _with_population(
                estimates_result(
                    rows,
                    f"Representation of groups among clients relative to the {population}",
                    CLIENTS_SOURCE,
                    "\n".join([ratio_text, statement, *kept_sentences]),
                    total_people,
                ),
                statement,
            ),
        )
    ]
    std = audit.standardised_table()
    if len(std):
        std_rows = pd.DataFrame(
            {
                **_ratio_columns(std),
                "n_people": std["observed"].astype(int),
                "expected_people": _round(std["expected"], 1),
            }
        )
        out.append(
            (
                "equity-age-sex-standardised",
                _with_population(
                    estimates_result(
                        std_rows,
                        "Age-sex standardised representation ratios (observed / expected clients)",
                        CLIENTS_SOURCE,
                        "Indirect standardisation: expected clients if, within each age-sex group, clients had "
                        "the make-up of the programme's comparison population (the reference: 1 means as "
                        "expected); exact Poisson 95% CIs. " + ROUNDING_NOTE + "\n" + statement,
                        total_people,
                    ),
                    statement,
                ),
            )
        )
    tests = audit.tests_table()
    out.append(
        (
            "equity-tests",
            _with_population(
                estimates_result(
                    pd.DataFrame(
                        {
                            "term": [
                                f"{programme_label(p)}: by {CHARACTERISTICS.get(c, c)}"
                                for p, c in zip(tests["programme"], tests["characteristic"], strict=True)
                            ],
                            "estimate": _round(tests["g_statistic"], 2),
                            "ci_lower": np.nan,
                            "ci_upper": np.nan,
                            "p_value": _round(tests["p_g"], P_DECIMALS),
                            "n_people": tests["clients"].astype(int),
                            "chi_square": _round(tests["chi_square"], 2),
                            "p_chi_square": _round(tests["p_chi_square"], P_DECIMALS),
                            "degrees_of_freedom": tests["df"].astype(float),
                        }
                    ),
                    "Does the clients' make-up differ from the comparison population's? G and chi-square tests",
                    CLIENTS_SOURCE,
                    "estimate = likelihood-ratio G statistic (p_value its p); chi_square = Pearson statistic; "
                    "both test the clients' make-up against the comparison population's (the reference). "
                    + ROUNDING_NOTE
                    + "\n"
                    + statement,
                    total_people,
                ),
                statement,
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
                            "term": [f"match rate by {g}" for g in link["group"]],
                            "estimate": _round(link["chi_square"], 2),
                            "ci_lower": np.nan,
                            "ci_upper": np.nan,
                            "p_value": _round(link["p_value"], P_DECIMALS),
                            "n_people": link["clients"].astype(int),
                            "lowest_match_rate": _round(link["lowest_match_rate"], 3),
                            "highest_match_rate": _round(link["highest_match_rate"], 3),
                            "degrees_of_freedom": link["df"].astype(float),
                        }
                    ),
                    "Is the linked subset skewed? Match rates by group (chi-square test)",
                    "linked/match_rates",
                    "estimate = chi-square statistic of matched and unmatched clients across the group's "
                    "levels (the reference: every level matching at the same rate). "
                    + ROUNDING_NOTE
                    + "\n"
                    + "\n".join(link["sentence"]),
                    int(link["clients"].max()),
                ),
            )
        )
    for characteristic in ratios["characteristic"].unique():
        mask = (ratios["characteristic"] == characteristic).to_numpy()
        label = CHARACTERISTICS.get(characteristic, characteristic)
        table = _with_population(
            estimates_result(
                rows[mask],
                f"Representation by {label}",
                CLIENTS_SOURCE,
                statement,
                int(ratios.loc[mask].groupby("programme")["clients"].sum().sum()),
            ),
            statement,
        )
        title = f"Who the programmes reach: {label}"
        xlabel = "ratio to the comparison population (1 = in proportion)"

        def render(protected: pd.DataFrame, title: str = title, xlabel: str = xlabel) -> bytes:
            return estimate_chart(protected, title, xlabel, 1.0, log_scale=True)

        out.append(
            (
                f"equity-chart-{characteristic.replace('_', '-')}",
                Figure(table=table, title=title, render=render, description=statement),
            )
        )
    return out


def _with_population(result: ModelResult, statement: str) -> ModelResult:
    """The estimates with ``population`` (who was compared with whom) recorded in their metadata."""
    return dataclasses.replace(result, population=statement)


__all__ = ["ESTIMATE_DECIMALS", "equity_outputs", "population_statement"]
