"""The disclosure checks, in the order they run: row-level data, thresholds, dominance, models, charts.

Each is registered (``analysis.disclosure.registry``) under the rule name that appears in check
reports, so an IG officer reading "threshold" or "dominance" in a report finds the rule here by
that name. The checks only decide; ``analysis.disclosure.protection`` runs them and builds what
would be released.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from analysis.disclosure.ledger import known_from_earlier, ledger_entry_for, small_differences
from analysis.disclosure.outputs import (
    DisclosureOutput,
    Figure,
    FrequencyTable,
    MagnitudeTable,
    ModelResult,
    Note,
)
from analysis.disclosure.registry import ALL_KINDS, REGISTRY, CheckContext, register
from analysis.disclosure.report import Finding, Outcome
from analysis.disclosure.suppression import build_grid, primary_suppression, secondary_suppression
from ig_policies.policy import OutputRules

#: column names that mean a table holds identifiers or pseudonyms, i.e. rows about individuals
IDENTIFIER_COLUMN = re.compile(
    r"pseudonym|patient_id|person_id|client_ref|record_id|nhs_number|client_cluster|date_of_birth|forename"
    r"|surname|^t_(?:nhs|forename|surname|dob|postcode)|token",
    re.IGNORECASE,
)
#: values that look like research pseudonyms or HMAC tokens
IDENTIFIER_VALUE = re.compile(r"^(?:[CP][0-9a-f]{20}|[0-9a-f]{64})$")
#: statistics that are one person's value (an extreme or an exact order statistic)
INDIVIDUAL_STATISTIC = re.compile(
    r"(?:^|_)(?:min|max|minimum|maximum|median|percentile|quantile|p\d{1,2}|q[1-3])(?:$|_)", re.IGNORECASE
)


# --------------------------------------------------------------------------------------------
# Helpers shared by checks


def _table_of(output: DisclosureOutput) -> pd.DataFrame:
    if isinstance(output, FrequencyTable):
        return output.table
    if isinstance(output, MagnitudeTable):
        return output.contributions[list(output.dimensions)]
    if isinstance(output, ModelResult):
        return output.coefficients
    if isinstance(output, Note):
        return output.reasons
    return _table_of(output.table)


def _whole(rule: str, outcome: Outcome, reason: str) -> Finding:
    return Finding(rule=rule, item="whole output", outcome=outcome, reason=reason)


def model_count_columns(coefficients: pd.DataFrame) -> list[str]:
    """``n_people`` and any other count column of a coefficient table (``n_events``, ``count_...``)."""
    return [c for c in coefficients.columns if c == "n_people" or str(c).startswith(("n_", "count_"))]


def _label(dimensions: tuple[str, ...], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{d}={v}" for d, v in zip(dimensions, key, strict=True))


def _coefficient_label(output: ModelResult, i: int) -> str:
    row = output.coefficients.iloc[i]
    extra = [f"{c}={row[c]}" for c in ("event_time", "month") if c in output.coefficients.columns]
    return f"{row['term']}" + (f" ({', '.join(extra)})" if extra else "")


# --------------------------------------------------------------------------------------------
# The checks, in the order they run


@register("row_level", ALL_KINDS, "Row-level data (one row per person, identifiers) can never be released.")
def check_row_level(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    findings: list[Finding] = []
    table = _table_of(output)
    for column in table.columns:
        if IDENTIFIER_COLUMN.search(str(column)):
            findings.append(
                _whole(
                    "row_level",
                    Outcome.FAIL,
                    f"column '{column}' holds identifiers or pseudonyms of individuals; row-level data can never leave the TRE",
                )
            )
    for column in table.columns:
        values = table[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            sample = values.dropna().astype(str).head(1000)
            if len(sample) and sample.str.match(IDENTIFIER_VALUE).mean() > 0.5:
                findings.append(
                    _whole(
                        "row_level",
                        Outcome.FAIL,
                        f"column '{column}' holds values that look like pseudonyms or tokens; this is data about individuals",
                    )
                )
    if isinstance(output, FrequencyTable):
        counts = output.table[output.count_column]
        if len(counts) >= rules.min_cell_count and counts.max() <= 1 and counts.sum() >= rules.min_cell_count:
            findings.append(
                _whole(
                    "row_level",
                    Outcome.FAIL,
                    f"every one of its {len(counts)} rows describes at most one person: it is a list of people, not a table",
                )
            )
    if isinstance(output, MagnitudeTable):
        sizes = [len(v) for v in output.cells().values()]
        if len(sizes) >= rules.min_cell_count and max(sizes) <= 1:
            findings.append(
                _whole(
                    "row_level",
                    Outcome.FAIL,
                    "every cell has a single contributor: it lists individual values, not aggregates",
                )
            )
    if (
        isinstance(output, ModelResult)
        and output.kind == "regression"
        and len(output.coefficients) > max(output.n_people // 2, rules.min_cell_count)
    ):
        findings.append(
            _whole(
                "row_level",
                Outcome.FAIL,
                "the model has about as many coefficients as people (e.g. one per person): its coefficients describe individuals",
            )
        )
    if not findings:
        findings.append(
            _whole("row_level", Outcome.PASS, "aggregate output with no identifiers or pseudonyms")
        )
    return findings


@register(
    "threshold",
    ["frequency_table"],
    "Cells with fewer people than the minimum (and zeros, if disclosive) are suppressed.",
)
def check_threshold(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, FrequencyTable)
    grid = context.grid or build_grid(output)
    context.grid = grid
    primary = primary_suppression(grid, rules.min_cell_count, rules.zeros_disclosive)
    findings = []
    for key in grid.keys:
        if key in primary:
            context.withheld[key] = primary[key]
            findings.append(
                Finding("threshold", grid.label(key), Outcome.FAIL, primary[key], withheld=True, key=key)
            )
    if not primary:
        findings.append(
            _whole("threshold", Outcome.PASS, f"every cell has at least {rules.min_cell_count} {output.unit}")
        )
    return findings


@register(
    "secondary_suppression",
    ["frequency_table"],
    "Further cells are suppressed so that no suppressed cell can be worked out from the totals.",
)
def check_secondary(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, FrequencyTable)
    grid = context.grid or build_grid(output)
    context.grid = grid
    primary = {k for k in context.withheld if k in grid.counts}
    if not primary or not grid.equations:
        return []
    known = known_from_earlier(grid, output.source, output.unit, context.earlier_releases)
    hidden = set() if output.margins else grid.margin_keys
    added, protected = secondary_suppression(grid, primary, hidden, known)
    findings = []
    for key, protects in added.items():
        reason = (
            f"suppressed so that the suppressed cell ({grid.label(protects)}) cannot be worked out "
            "from the totals (including those in earlier releases)"
        )
        context.withheld[key] = reason
        findings.append(
            Finding("secondary_suppression", grid.label(key), Outcome.FAIL, reason, withheld=True, key=key)
        )
    if not protected:
        findings.append(
            _whole(
                "secondary_suppression",
                Outcome.FAIL,
                "a suppressed cell could still be worked out from the totals; "
                "release the table without totals or with coarser categories",
            )
        )
    else:
        findings.append(
            _whole(
                "secondary_suppression",
                Outcome.PASS,
                "no suppressed cell can be worked out exactly from the published cells and totals",
            )
        )
    return findings


@register("rounding", ["frequency_table"], "Published counts are rounded to the policy's base.")
def check_rounding(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    if rules.rounding_base <= 1:
        return [_whole("rounding", Outcome.PASS, "the policy does not require rounding")]
    return [
        _whole(
            "rounding",
            Outcome.PASS,
            f"published counts are rounded to the nearest {rules.rounding_base} (totals are rounded separately, "
            "so cells may not add up exactly to them)",
        )
    ]


@register(
    "contributor_threshold",
    ["magnitude_table"],
    "Cells of a sum or mean need at least the minimum number of contributors.",
)
def check_contributors(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, MagnitudeTable)
    findings = []
    for key, values in output.cells().items():
        if len(values) < rules.min_cell_count:
            reason = f"fewer than {rules.min_cell_count} contributors (threshold rule)"
            context.withheld[key] = reason
            findings.append(
                Finding(
                    "contributor_threshold", _label(output.dimensions, key), Outcome.FAIL, reason, True, key
                )
            )
    if not findings:
        findings.append(
            _whole(
                "contributor_threshold",
                Outcome.PASS,
                f"every cell has at least {rules.min_cell_count} contributors",
            )
        )
    return findings


@register(
    "dominance", ["magnitude_table"], "No cell may be dominated by its few largest contributors (n, k rule)."
)
def check_dominance(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, MagnitudeTable)
    n, k = rules.dominance.n, rules.dominance.k
    findings = []
    for key, values in output.cells().items():
        magnitudes = np.sort(np.abs(values))[::-1]
        total = magnitudes.sum()
        if total > 0 and magnitudes[:n].sum() > k * total:
            reason = (
                f"the largest {n} contributor(s) make up more than {k:.0%} of the cell's total, "
                "so the total would reveal their values (dominance rule)"
            )
            context.withheld[key] = reason
            findings.append(
                Finding("dominance", _label(output.dimensions, key), Outcome.FAIL, reason, True, key)
            )
    if not findings:
        findings.append(
            _whole("dominance", Outcome.PASS, f"no cell is dominated by its largest {n} contributor(s)")
        )
    return findings


@register(
    "p_percent",
    ["magnitude_table"],
    "The second-largest contributor must not be able to estimate the largest within p%.",
)
def check_p_percent(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, MagnitudeTable)
    p = rules.p_percent
    findings = []
    for key, values in output.cells().items():
        magnitudes = np.sort(np.abs(values))[::-1]
        if len(magnitudes) < 2 or magnitudes[0] == 0:
            continue
        remainder = magnitudes.sum() - magnitudes[0] - magnitudes[1]
        if remainder < p * magnitudes[0]:
            reason = (
                f"the second-largest contributor could estimate the largest contributor's value to within "
                f"{p:.0%} by subtracting their own (p% rule)"
            )
            context.withheld.setdefault(key, reason)
            findings.append(
                Finding("p_percent", _label(output.dimensions, key), Outcome.FAIL, reason, True, key)
            )
    if not findings:
        findings.append(
            _whole("p_percent", Outcome.PASS, f"no contributor can be estimated to within {p:.0%}")
        )
    return findings


@register(
    "individual_values",
    ["magnitude_table", "model_result"],
    "Minima, maxima and exact percentiles are one person's value and are never released.",
)
def check_individual_values(
    output: DisclosureOutput, rules: OutputRules, context: CheckContext
) -> list[Finding]:
    findings = []
    if isinstance(output, MagnitudeTable) and output.statistic not in ("sum", "mean"):
        findings.append(
            _whole(
                "individual_values",
                Outcome.FAIL,
                f"a {output.statistic} is the value of one individual; release a sum or mean, or banded counts instead",
            )
        )
    if isinstance(output, ModelResult):
        names = [*output.statistics, *output.coefficients.columns]
        for name in names:
            if INDIVIDUAL_STATISTIC.search(str(name)):
                findings.append(
                    _whole(
                        "individual_values",
                        Outcome.FAIL,
                        f"'{name}' looks like a minimum, maximum or exact percentile, which is one individual's value",
                    )
                )
    if not findings:
        findings.append(_whole("individual_values", Outcome.PASS, "no minimum, maximum or exact percentile"))
    return findings


@register("residual_df", ["model_result"], "Models need enough residual degrees of freedom.")
def check_residual_df(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, ModelResult)
    df = output.residual_df
    if df is not None and not np.isfinite(float(df)):
        df = None  # a NaN residual df is no evidence at all
    if df is None:
        if output.kind == "regression":
            return [
                _whole(
                    "residual_df",
                    Outcome.FAIL,
                    "the residual degrees of freedom are not given, so the model cannot be checked",
                )
            ]
        return [_whole("residual_df", Outcome.PASS, f"not a fitted regression ({output.kind})")]
    if df < rules.min_residual_df:
        return [
            _whole(
                "residual_df",
                Outcome.FAIL,
                f"the model has fewer than {rules.min_residual_df} residual degrees of freedom: "
                "with so few, its fitted values come close to revealing individual observations",
            )
        ]
    return [
        _whole("residual_df", Outcome.PASS, f"at least {rules.min_residual_df} residual degrees of freedom")
    ]


@register(
    "coefficient_people",
    ["model_result"],
    "Every coefficient, event time or month must rest on at least the minimum number of people.",
)
def check_coefficient_people(
    output: DisclosureOutput, rules: OutputRules, context: CheckContext
) -> list[Finding]:
    assert isinstance(output, ModelResult)
    findings = []
    for people, what in ((output.n_people, "people"), (output.n_obs, "observations")):
        if people < rules.min_cell_count:
            findings.append(
                _whole(
                    "coefficient_people",
                    Outcome.FAIL,
                    f"the whole model rests on fewer than {rules.min_cell_count} {what}",
                )
            )
    noun = {"event_study": "event time", "time_series": "month"}.get(output.kind, "coefficient")
    count_columns = model_count_columns(output.coefficients)
    for i in range(len(output.coefficients)):
        row = output.coefficients.iloc[i]
        small = [c for c in count_columns if row[c] < rules.min_cell_count]
        if small:
            what = "people" if small == ["n_people"] else f"people or events ({', '.join(small)})"
            reason = f"this {noun} rests on fewer than {rules.min_cell_count} {what}"
            context.withheld[(i,)] = reason
            findings.append(
                Finding("coefficient_people", _coefficient_label(output, i), Outcome.FAIL, reason, True, (i,))
            )
    if not findings:
        findings.append(
            _whole(
                "coefficient_people",
                Outcome.PASS,
                f"every {noun} rests on at least {rules.min_cell_count} people",
            )
        )
    return findings


@register(
    "differencing",
    ["frequency_table", "magnitude_table"],
    "Tables from the same data must not differ from earlier releases by a small group of people.",
)
def check_differencing(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    entry = ledger_entry_for(output)
    if entry is None:
        return []
    earlier = [e for e in context.earlier_releases if e.source == entry.source]
    findings = []
    for e in earlier:
        for diff in small_differences(entry, e, rules.min_cell_count):
            findings.append(
                Finding(
                    "differencing",
                    diff.item,
                    Outcome.FAIL if diff.certain else Outcome.REVIEW,
                    diff.description,
                )
            )
    if not findings:
        reason = (
            f"compared with {len(earlier)} earlier release(s) from {entry.source}: none differs by a small group"
            if earlier
            else f"nothing has been released from {entry.source} before"
        )
        findings.append(_whole("differencing", Outcome.PASS, reason))
    return findings


@register("figure", ["figure"], "A chart is released only if drawn from the protected table.")
def check_figure(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, Figure)
    if output.render is not None or output.drawn_from_protected_table:
        return [_whole("figure", Outcome.PASS, "the chart is drawn from the protected table")]
    if context.table_changed:
        return [
            _whole(
                "figure",
                Outcome.FAIL,
                "the chart was supplied as a picture of the unprotected table, and protection changed that table; "
                "give a render function so it can be redrawn from the protected numbers",
            )
        ]
    return [
        _whole(
            "figure",
            Outcome.REVIEW,
            "the chart was supplied as a picture; its table passes unchanged, but an officer should confirm "
            "the picture shows nothing beyond that table",
        )
    ]


#: whole numbers written in a note's text
_NUMBER = re.compile(r"(?<![\w.])\d+(?!\w|\.\d)")


@register(
    "note", ["note"], "A note is plain text: no identifiers, and no number that could count a few people."
)
def check_note(output: DisclosureOutput, rules: OutputRules, context: CheckContext) -> list[Finding]:
    assert isinstance(output, Note)
    findings: list[Finding] = []
    text = [output.title, output.description, *output.reasons["part"], *output.reasons["reason"]]
    words = " ".join(text).split()
    if any(IDENTIFIER_VALUE.match(w.strip(".,;:()'\"")) for w in words):
        findings.append(
            _whole("note", Outcome.FAIL, "the note contains a value that looks like a pseudonym or token")
        )
    small = sorted({int(n) for t in text for n in _NUMBER.findall(t) if 0 < int(n) < rules.min_cell_count})
    if small:
        findings.append(
            _whole(
                "note",
                Outcome.REVIEW,
                f"the note quotes numbers below the minimum cell count ({', '.join(map(str, small))}); "
                "an officer should confirm none of them counts people",
            )
        )
    if not findings:
        findings.append(
            _whole("note", Outcome.PASS, "plain-English note with no identifiers and no small numbers")
        )
    return findings


__all__ = ["IDENTIFIER_COLUMN", "IDENTIFIER_VALUE", "INDIVIDUAL_STATISTIC", "REGISTRY", "model_count_columns"]
