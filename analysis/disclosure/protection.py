"""Running the checks on one output and building its protected version: what would be released.

The checks decide what is withheld; this module applies it. Frequency tables get suppressed and
rounded cells, magnitude tables rounded contributor counts and the statistic of cells that
pass, model results their withheld rows blanked and counts rounded, and a chart is redrawn from
the protected table, so a picture can never show a number the table does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from analysis.disclosure.checks import INDIVIDUAL_STATISTIC, REGISTRY, model_count_columns
from analysis.disclosure.ledger import LedgerEntry
from analysis.disclosure.outputs import (
    DisclosureOutput,
    Figure,
    FrequencyTable,
    MagnitudeTable,
    ModelResult,
    Note,
    kind_of,
)
from analysis.disclosure.registry import CheckContext
from analysis.disclosure.report import CheckReport, Finding, Outcome
from analysis.disclosure.suppression import build_grid, released_frequency_table, round_to_base
from ig_policies.policy import OutputRules


def run_checks(
    output: DisclosureOutput, kind: str, rules: OutputRules, context: CheckContext
) -> list[Finding]:
    """Every registered check that applies to ``kind``, in registry order."""
    findings: list[Finding] = []
    for check in REGISTRY.values():
        if kind in check.kinds:
            findings.extend(check.run(output, rules, context))
    return findings


def _protect_magnitude(
    output: MagnitudeTable, withheld: dict[tuple[Any, ...], str], base: int
) -> pd.DataFrame:
    value_name = f"{output.statistic}_{output.value_column}"
    rows = []
    for key, values in output.cells().items():
        row: dict[str, Any] = dict(zip(output.dimensions, key, strict=True))
        if key in withheld or output.statistic not in ("sum", "mean"):
            row.update({"count_contributors_rounded": pd.NA, value_name: np.nan, "note": "suppressed"})
        else:
            stat = values.sum() if output.statistic == "sum" else values.mean()
            row.update(
                {
                    "count_contributors_rounded": round_to_base(len(values), base),
                    value_name: round(float(stat), 2),
                    "note": "",
                }
            )
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*output.dimensions, "count_contributors_rounded", value_name, "note"])
    out["count_contributors_rounded"] = out["count_contributors_rounded"].astype("Int64")
    return out


_LABEL_COLUMNS = ("term", "event_time", "month")


def _protect_model(output: ModelResult, withheld: dict[tuple[Any, ...], str], base: int) -> pd.DataFrame:
    out = output.coefficients.copy().reset_index(drop=True)
    for column in model_count_columns(out):
        out[f"{column}_rounded"] = [pd.NA if pd.isna(n) else round_to_base(int(n), base) for n in out[column]]
        out = out.drop(columns=[column])
    out["note"] = ""
    value_columns = [c for c in out.columns if c not in (*_LABEL_COLUMNS, "note")]
    for column in value_columns:
        rounded_count = column.endswith("_rounded")
        out[column] = out[column].astype("Int64" if rounded_count else "Float64")
    for (i,) in (k for k in withheld if len(k) == 1 and isinstance(k[0], int)):
        out.loc[i, value_columns] = pd.NA
        out.loc[i, "note"] = "suppressed"
    return out


def _model_summary(output: ModelResult, base: int) -> dict[str, Any]:
    def finite(v: Any) -> float | None:
        return float(v) if v is not None and np.isfinite(float(v)) else None

    stats = {k: finite(v) for k, v in output.statistics.items() if not INDIVIDUAL_STATISTIC.search(k)}
    return {
        "model_kind": output.kind,
        "n_obs_rounded": round_to_base(int(output.n_obs), base),
        "n_people_rounded": round_to_base(int(output.n_people), base),
        "residual_df": finite(output.residual_df),
        "statistics": stats,
    }


def check_output(
    output: DisclosureOutput, rules: OutputRules, earlier_releases: Iterable[LedgerEntry] = ()
) -> CheckReport:
    """Check ``output`` against ``rules`` (and earlier releases from the same data) and protect it.

    The report holds one finding per rule and item, the overall outcome (worst finding that is not
    resolved by withholding the item) and the protected table: what would be released.
    """
    kind = kind_of(output)
    context = CheckContext(earlier_releases=tuple(earlier_releases))
    table = output.table if isinstance(output, Figure) else output
    table_kind = kind_of(table)
    findings = run_checks(table, table_kind, rules, context)
    if any(f.rule == "row_level" and f.blocks for f in findings):
        # Row-level data is refused outright; protecting it cell by cell would be meaningless.
        return CheckReport(
            kind=kind,
            title=output.title,
            source=output.source,
            findings=tuple(f for f in findings if f.rule == "row_level"),
        )
    base = rules.rounding_base
    protected: pd.DataFrame
    summary: dict[str, Any] = {}
    if isinstance(table, Note):
        protected = table.reasons.copy()
        changed = False
    elif isinstance(table, FrequencyTable):
        grid = context.grid or build_grid(table)
        protected = released_frequency_table(table, grid, set(context.withheld), base)
        column = f"count_{table.unit}_rounded"
        changed = any(
            pd.isna(v) or v != grid.counts[k] for k, v in zip(grid.keys, protected[column], strict=True)
        )
    elif isinstance(table, MagnitudeTable):
        protected = _protect_magnitude(table, context.withheld, base)
        changed = bool(context.withheld)
    else:
        assert isinstance(table, ModelResult)
        protected = _protect_model(table, context.withheld, base)
        summary = _model_summary(table, base)
        changed = bool(context.withheld)
    png: bytes | None = None
    if isinstance(output, Figure):
        context.protected, context.table_changed = protected, changed
        findings.extend(run_checks(output, kind, rules, context))
        if output.render is not None:
            try:
                png = output.render(protected.copy())
            except Exception as exc:  # a chart that cannot be drawn cannot be released
                findings.append(
                    Finding(
                        rule="figure",
                        item="whole output",
                        outcome=Outcome.FAIL,
                        reason=f"drawing the chart from the protected table failed ({type(exc).__name__})",
                    )
                )
        else:
            png = output.png
    return CheckReport(
        kind=kind,
        title=output.title,
        source=output.source,
        findings=tuple(findings),
        protected=protected,
        png=png,
        model_summary=summary,
    )


__all__ = ["check_output", "run_checks"]
