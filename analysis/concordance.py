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
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.charts import estimate_chart
from analysis.clients import one_row_per_person
from analysis.disclosure import Figure, FrequencyTable
from analysis.stage import CLIENTS_SOURCE, AnalysisOutputs, estimates_result, read_clients, request_outputs
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

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


def concordance_outputs(table: pd.DataFrame, min_people: int) -> list[tuple[str, Any]]:
    """The 2x2 counts (people) as a frequency table; sensitivity, PPV and kappa as estimates; a chart.

    Each estimate row carries the people it rests on (``n_people``) and the smallest cell of the
    2x2 table it uses (``n_smallest_cell``), so a sensitivity of, say, 3 out of 40 is withheld just as
    the cell of 3 is withheld from the frequency table.
    """
    cells = []
    for r in table.itertuples():
        for sr, gp, n in (
            ("yes", "yes", r.both),
            ("yes", "no", r.self_report_only),
            ("no", "yes", r.gp_record_only),
            ("no", "no", r.neither),
        ):
            cells.append({"condition": r.condition, "self_reported": sr, "gp_recorded": gp, "count": int(n)})
    frequency = FrequencyTable(
        table=pd.DataFrame(cells),
        dimensions=("condition", "self_reported", "gp_recorded"),
        source=CLIENTS_SOURCE,
        title="Linked clients by condition: self-reported to the programme vs recorded by the GP",
        population="linked clients, one row per person (earliest enrolment)",
    )
    rows = []
    for r in table.itertuples():
        for measure, est, lo, hi, people, used in (
            (
                "sensitivity",
                r.sensitivity,
                r.sensitivity_ci_low,
                r.sensitivity_ci_high,
                r.both + r.gp_record_only,
                (r.both, r.gp_record_only),
            ),
            (
                "ppv",
                r.ppv,
                r.ppv_ci_low,
                r.ppv_ci_high,
                r.both + r.self_report_only,
                (r.both, r.self_report_only),
            ),
            (
                "kappa",
                r.kappa,
                r.kappa_ci_low,
                r.kappa_ci_high,
                r.people,
                (r.both, r.self_report_only, r.gp_record_only, r.neither),
            ),
        ):
            rows.append(
                {
                    "term": f"{r.condition} | {measure}",
                    "estimate": est,
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "p_value": np.nan,
                    "n_people": int(people),
                    "n_smallest_cell": int(min(used)),
                }
            )
    estimates = pd.DataFrame(rows)
    sentences = [
        describe_concordance(pd.Series(r._asdict()))
        for r in table.itertuples(index=False)
        if min(r.both, r.self_report_only, r.gp_record_only, r.neither) >= min_people
    ]
    people = int(table["people"].max()) if len(table) else 0
    result = estimates_result(
        estimates,
        "Agreement of self-reported and GP-recorded conditions: sensitivity, PPV and kappa",
        CLIENTS_SOURCE,
        "GP record (before enrolment) as reference; Wilson 95% CIs for sensitivity and PPV, "
        "asymptotic CI for Cohen's kappa.\n" + "\n".join(sentences),
        people,
    )
    chart_rows = estimates[estimates["term"].str.endswith("| sensitivity")]
    chart = estimates_result(chart_rows, "Sensitivity of self-report", CLIENTS_SOURCE, "", people)

    def render(protected: pd.DataFrame) -> bytes:
        return estimate_chart(
            protected,
            "Share of clients on a GP register who told the programme (sensitivity)",
            "sensitivity",
            None,
        )

    return [
        ("concordance-counts", frequency),
        ("concordance-estimates", result),
        (
            "concordance-chart",
            Figure(table=chart, title="Sensitivity of self-reported conditions", render=render),
        ),
    ]


def run_concordance(
    workspace: Workspace,
    engine: Any,
    actor: str,
    justification: str = "How well programme records of health conditions match GP records.",
) -> AnalysisOutputs:
    """The concordance stage (researcher): compare self-reported and GP-recorded conditions."""
    path = workspace.analysis / "clients.parquet"
    with engine.step(
        actor, Role.RESEARCHER, "concordance", analysis=Analysis.CONCORDANCE, reads_linked_data=True
    ) as step:
        clients = read_clients(workspace)
        if "linked" not in clients.columns or not condition_names(clients):
            raise InputError(
                str(path),
                "the research dataset has no linked clients' self-reported and GP-recorded conditions",
                hint="rebuild the research dataset after linkage ('ehl research-dataset').",
            )
        table = concordance_table(clients)
        min_people = engine.policy.outputs.min_cell_count
        requests, folders = request_outputs(
            workspace, engine, actor, concordance_outputs(table, min_people), justification
        )
        step.inputs(path)
        step.outputs(*folders)
        step.counts(
            linked_people=int(table["people"].max()) if len(table) else 0, outputs_requested=len(requests)
        )
        step.detail(conditions=table["condition"].tolist())
    sentences = tuple(
        describe_concordance(pd.Series(r._asdict()))
        for r in table.itertuples(index=False)
        if min(r.both, r.self_report_only, r.gp_record_only, r.neither) >= min_people
    )
    return AnalysisOutputs("concordance", requests, folders, sentences)


__all__ = [
    "cohen_kappa",
    "concordance_outputs",
    "concordance_table",
    "condition_names",
    "describe_concordance",
    "run_concordance",
    "wilson_interval",
]
