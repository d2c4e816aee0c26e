"""The representation ratios that programme selection implies, against the audit's comparison population.

Selection into the programmes is planted as odds ratios over everyone eligible (``selection``
in the configuration). What the equity audit estimates is different: each group's share of a
programme's clients over its share of the census comparison population. This module turns the
selection probabilities into those ratios exactly (expected clients per group, no sampling), so
the truth says what a correct audit should find and a test can recover it within its CIs.

The comparison population is the audit's default (``analysis.equity.ComparisonPopulation()``):
residents aged 16-64 on census day who are unemployed, or economically inactive because long-term
sick or disabled, looking after home or family, or for another reason (not retired, not students).
A test checks that these constants and the audit's default agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthetic.config import PROGRAMMES

#: the comparison population's ages on census day
COMPARISON_AGES: tuple[int, int] = (16, 64)
#: its economic statuses on census day; ``inactive_other`` residents count when their reason is one of
COMPARISON_STATUSES: tuple[str, ...] = ("unemployed", "inactive_sick")
COMPARISON_INACTIVE_REASONS: tuple[str, ...] = ("looking_after_home", "other")
COMPARISON_POPULATION = (
    "census-day residents aged 16-64 who are unemployed or economically inactive because long-term "
    "sick or disabled, looking after home or family, or for another reason (not retired, not students)"
)


def in_comparison_population(persons: pd.DataFrame) -> np.ndarray:
    """Which residents are in the audit's default comparison population on census day."""
    age = persons["age_at_census"].to_numpy()
    status = persons["economic_status"].to_numpy()
    reason = persons["inactive_reason"].to_numpy()
    return (
        (age >= COMPARISON_AGES[0])
        & (age <= COMPARISON_AGES[1])
        & (
            np.isin(status, COMPARISON_STATUSES)
            | ((status == "inactive_other") & np.isin(reason, COMPARISON_INACTIVE_REASONS))
        )
    )


def planted_representation_ratios(
    persons: pd.DataFrame,
    groups_at_enrolment: dict[str, np.ndarray],
    groups_at_census: dict[str, np.ndarray],
    p_enrol: np.ndarray,
    p_health_into_work: np.ndarray,
    duplicate_rate: float,
) -> dict[str, dict[str, dict[str, float]]]:
    """Expected representation ratio per programme, characteristic and category.

    ``p_enrol`` is each resident's probability of enrolling (0 if ineligible) and
    ``p_health_into_work`` the chance that an enrolment is on Health into Work. A duplicate
    enrolment (rate ``duplicate_rate``) is on the other programme half the time, which puts the
    person among that programme's clients too; people count once per programme, as in the audit.
    ``groups_at_enrolment`` holds the clients' categories (age band at the enrolment date),
    ``groups_at_census`` the population's (age band on census day).
    """
    q = p_health_into_work
    expected = {
        PROGRAMMES[1]: p_enrol * (q + (1 - q) * duplicate_rate / 2),
        PROGRAMMES[0]: p_enrol * ((1 - q) + q * duplicate_rate / 2),
    }
    population = in_comparison_population(persons)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for programme in PROGRAMMES:
        weight = expected[programme]
        out[programme] = {}
        for characteristic, client_values in groups_at_enrolment.items():
            census_values = groups_at_census[characteristic]
            pop = pd.Series(population.astype(float)).groupby(census_values).sum()
            pop = pop[pop > 0]
            clients = pd.Series(weight).groupby(client_values).sum().reindex(pop.index, fill_value=0.0)
            ratio = (clients / clients.sum()) / (pop / pop.sum())
            out[programme][characteristic] = {str(k): round(float(v), 6) for k, v in ratio.items()}
    return out


__all__ = [
    "COMPARISON_AGES",
    "COMPARISON_INACTIVE_REASONS",
    "COMPARISON_POPULATION",
    "COMPARISON_STATUSES",
    "in_comparison_population",
    "planted_representation_ratios",
]
