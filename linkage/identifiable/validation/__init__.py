"""Validation of provider extracts before anything else may read them.

``validate_extracts`` is the stage function: it ingests each extract named by a dataset config,
quarantines rows that fail the row checks (with a reason code per row), validates each extract with
Great Expectations (the engine of record, whose Data Docs land in ``reports/data_docs/``) and writes
the accepted rows to ``landing/validated/<dataset>.parquet`` when every extract is within its
tolerances. ``console_lines`` renders a result (counts, the first quarantined rows, where the full
list is) for the CLI and the pipeline alike.
"""

from linkage.identifiable.validation.report import QuarantinedRow, console_lines
from linkage.identifiable.validation.row_checks import REASONS, nhs_number_is_valid
from linkage.identifiable.validation.stage import (
    DatasetValidation,
    ValidationResult,
    check_extracts,
    quarantine_path,
    quarantine_report_path,
    raise_for_problems,
    validate_extracts,
    validated_path,
)

__all__ = [
    "REASONS",
    "DatasetValidation",
    "QuarantinedRow",
    "ValidationResult",
    "check_extracts",
    "console_lines",
    "nhs_number_is_valid",
    "quarantine_path",
    "quarantine_report_path",
    "raise_for_problems",
    "validate_extracts",
    "validated_path",
]
