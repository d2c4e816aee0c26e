"""Concordance of health conditions: does what clients tell the programme match the GP record?

For each condition, among linked clients, the GP record (QOF register, recorded before
enrolment) is the reference: *sensitivity* is the share of people on the GP register who also
reported the condition to the programme, *positive predictive value* (PPV) the share of people
who reported it who are on the register, and Cohen's *kappa* the agreement beyond chance. Low
sensitivity means programmes do not know about many of their clients' conditions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.equity import one_row_per_person

Z95 = float(stats.norm.ppf(0.975))


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion (well behaved near 0 and 1, unlike Wald)."""
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + Z95**2 / trials
    centre = (p + Z95**2 / (2 * trials)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)  # exact ends, not 0.999...
    return low, high


def cohen_kappa(both: int, sr_only: int, gp_only: int, neither: int) -> tuple[float, float, float]:
    """Cohen's kappa with its large-sample 95% interval (Fleiss, Cohen and Everitt 1969 SE).

    Returns ``(kappa, low, high)``; NaN when kappa is undefined (both sources constant).
    """
    n = both + sr_only + gp_only + neither
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    table = np.array([[both, sr_only], [gp_only, neither]], dtype=float) / n
    po = table[0, 0] + table[1, 1]
    row, col = table.sum(axis=1), table.sum(axis=0)
    pe = float((row * col).sum())
    if pe >= 1:
        return float("nan"), float("nan"), float("nan")
    kappa = (po - pe) / (1 - pe)
    # asymptotic variance of kappa (Fleiss, Cohen & Everitt 1969)
    a = sum(table[i, i] * (1 - (row[i] + col[i]) * (1 - kappa)) ** 2 for i in range(2))
    b = (1 - kappa) ** 2 * sum(
        table[i, j] * (col[i] + row[j]) ** 2 for i in range(2) for j in range(2) if i != j
    )
    c = (kappa - pe * (1 - kappa)) ** 2
    var = max((a + b - c) / (n * (1 - pe) ** 2), 0.0)
    se = math.sqrt(var)
    return float(kappa), float(kappa - Z95 * se), float(kappa + Z95 * se)


def condition_names(clients: pd.DataFrame) -> list[str]:
    """Conditions with both a self-reported and a GP-recorded column."""
    sr = {c[3:] for c in clients.columns if c.startswith("sr_")}
    gp = {c[3:] for c in clients.columns if c.startswith("gp_")}
    return sorted(sr & gp)


def concordance_table(clients: pd.DataFrame, conditions: Sequence[str] | None = None) -> pd.DataFrame:
    """Per condition: the 2x2 counts of people and sensitivity, PPV and kappa with 95% CIs.

    Uses linked clients only (unlinked clients have no GP record) and one row per person (their
    earliest enrolment across programmes), so each count is a count of people.
    """
    linked = clients[clients["linked"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    people = one_row_per_person(linked, by=())
    rows = []
    for cond in conditions if conditions is not None else condition_names(clients):
        sr = people[f"sr_{cond}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        gp = people[f"gp_{cond}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        both, sr_only = int((sr & gp).sum()), int((sr & ~gp).sum())
        gp_only, neither = int((~sr & gp).sum()), int((~sr & ~gp).sum())
        sens_lo, sens_hi = wilson_interval(both, both + gp_only)
        ppv_lo, ppv_hi = wilson_interval(both, both + sr_only)
        kappa, k_lo, k_hi = cohen_kappa(both, sr_only, gp_only, neither)
        rows.append(
            {
                "condition": cond,
                "people": both + sr_only + gp_only + neither,
                "both": both,
                "self_report_only": sr_only,
                "gp_record_only": gp_only,
                "neither": neither,
                "sensitivity": both / (both + gp_only) if both + gp_only else float("nan"),
                "sensitivity_ci_low": sens_lo,
                "sensitivity_ci_high": sens_hi,
                "ppv": both / (both + sr_only) if both + sr_only else float("nan"),
                "ppv_ci_low": ppv_lo,
                "ppv_ci_high": ppv_hi,
                "kappa": kappa,
                "kappa_ci_low": k_lo,
                "kappa_ci_high": k_hi,
            }
        )
    return pd.DataFrame(rows)


def describe_concordance(row: pd.Series) -> str:
    """A plain-English line for one condition."""
    name = str(row["condition"]).replace("_", " ")
    if math.isnan(row["sensitivity"]):
        return f"{name}: no linked clients have it on their GP record, so sensitivity cannot be estimated."
    agreement = _kappa_words(row["kappa"])
    return (
        f"{name}: of clients on the GP register, {row['sensitivity']:.0%} told the programme "
        f"({row['sensitivity_ci_low']:.0%}–{row['sensitivity_ci_high']:.0%}); of those who told the programme, "
        f"{row['ppv']:.0%} are on the register; agreement is {agreement} (kappa {row['kappa']:.2f})."
    )


def _kappa_words(kappa: float) -> str:
    """Landis and Koch's labels, the ones readers of health research expect."""
    if math.isnan(kappa):
        return "undefined"
    for upper, words in (
        (0.0, "poor"),
        (0.2, "slight"),
        (0.4, "fair"),
        (0.6, "moderate"),
        (0.8, "substantial"),
    ):
        if kappa <= upper:
            return words
    return "almost perfect"


__all__ = ["cohen_kappa", "concordance_table", "condition_names", "describe_concordance", "wilson_interval"]
