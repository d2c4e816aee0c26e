"""What a processor reads after validation: counts, the first quarantined rows, where the rest are.

The CLI and the pipeline print the same lines (``console_lines``), so a processor phoning the
provider has the first few (row, column, reason) to hand whichever way the stage ran. Nothing here
carries a value from the extract: rows are named by number, columns by the provider's heading,
faults by reason code, so these lines may go to a console, a log or a Prefect result.

The full list goes to ``quarantine/<dataset>.csv`` for a person to open in a spreadsheet; it holds
the same four things per row, with any text that a spreadsheet would run as a formula neutralised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ig_policies.formulas import neutralise_formulas
from ig_policies.workspace import write_csv
from linkage.identifiable.ingest import SOURCE_ROW
from linkage.identifiable.validation.row_checks import REASON_CODE, REASON_FIELD, REASONS

if TYPE_CHECKING:
    from linkage.identifiable.validation.stage import DatasetValidation, ValidationResult

#: how many quarantined rows the console shows per extract
FIRST_ROWS_SHOWN = 5
REPORT_COLUMNS = ("row", "column", "reason_code", "reason")


@dataclass(frozen=True)
class QuarantinedRow:
    """One quarantined row as the provider is asked about it: no value, only where and why."""

    file: str
    row: int
    column: str  # the provider's heading(s); "" when the whole row is at fault
    reason_code: str
    reason: str

    def line(self) -> str:
        where = f"row {self.row}" + (f", column '{self.column}'" if self.column else " (whole row)")
        return f"{where}: {self.reason_code} ({self.reason})"


def _heading(fields: str | None, headings: Mapping[str, str]) -> str:
    if not fields:
        return ""
    return ", ".join(headings.get(f, f) for f in fields.split(","))


def write_quarantine_report(
    quarantine_table: Path, report: Path, source: Path, headings: Mapping[str, str]
) -> tuple[QuarantinedRow, ...]:
    """Write the full quarantine list as CSV (row, column, reason code, reason); return the first rows.

    Read back from the written quarantine table with Arrow (no Spark job), so the report and the
    console show exactly what was written.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(quarantine_table, columns=[SOURCE_ROW, REASON_FIELD, REASON_CODE])
    frame = table.sort_by(SOURCE_ROW).to_pandas()
    out = pd.DataFrame(
        {
            "row": frame[SOURCE_ROW].astype("int64"),
            "column": [_heading(f, headings) for f in frame[REASON_FIELD]],
            "reason_code": frame[REASON_CODE].astype(object),
            "reason": [REASONS.get(c, c) for c in frame[REASON_CODE]],
        },
        columns=list(REPORT_COLUMNS),
    )
    write_csv(neutralise_formulas(out), report)
    first = out.head(FIRST_ROWS_SHOWN)
    return tuple(
        QuarantinedRow(source.name, int(r.row), r.column, r.reason_code, r.reason)
        for r in first.itertuples(index=False)
    )


def quarantine_lines(d: DatasetValidation) -> list[str]:
    """The first quarantined rows of one extract and where the full list is (empty if none)."""
    if not d.rows_quarantined or not d.first_quarantined:
        return []
    shown = len(d.first_quarantined)
    head = "first quarantined row" if shown == 1 else f"first {shown} quarantined rows"
    lines = [f"  {head} of {d.source.name} (row, column, reason; no values shown):"]
    lines.extend(f"    {q.line()}" for q in d.first_quarantined)
    if d.quarantine_report is not None:
        lines.append(f"  full list ({d.rows_quarantined:,} rows): {d.quarantine_report}")
    return lines


def dataset_lines(d: DatasetValidation) -> list[str]:
    """Counts of one extract, then the worksheet note and the first quarantined rows."""
    counts = f"{d.dataset}: {d.rows_in:,} rows in, {d.rows_accepted:,} accepted, {d.rows_quarantined:,} quarantined"
    if d.reason_counts:
        counts += f" ({', '.join(f'{k} {v:,}' for k, v in sorted(d.reason_counts.items()))})"
    if d.dropped_columns:
        counts += f"; columns dropped: {', '.join(d.dropped_columns)}"
    if d.invalid_nhs_numbers:
        counts += f"; NHS numbers invalid {d.invalid_nhs_numbers:,}"
    if d.unreadable_dates_of_birth:
        counts += f"; dates of birth unreadable {d.unreadable_dates_of_birth:,}"
    lines = [counts]
    if d.sheet_note:
        lines.append(f"  {d.sheet_note}")
    return lines + quarantine_lines(d)


def console_lines(result: ValidationResult | Sequence[DatasetValidation]) -> list[str]:
    """Every line the validate command (or the pipeline's log) shows about a validation result."""
    datasets = result if isinstance(result, Sequence) else result.datasets
    return [line for d in datasets for line in dataset_lines(d)]
