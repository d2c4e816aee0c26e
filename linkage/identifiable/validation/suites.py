"""Great Expectations suites built from the dataset configs, run on Spark, with Data Docs.

GE is the validation engine of record: each extract as received (canonical columns plus the check
columns of ``row_checks``) is validated against a suite derived from its dataset config, and the
results are rendered as Data Docs for the processor and the IG officer. Row-level expectations
carry ``mostly = 1 - tolerated fraction``, so the suite fails exactly when a kind of fault is more
common than the policy tolerates; dataset-level expectations (columns, types, row count) must hold
outright.

Nothing identifying may reach the Data Docs: results are requested without example values
(``partial_unexpected_count = 0``) and NHS-number and date-of-birth checks run on derived
true/false columns, so an unexpected value is never a number or a date of birth.

The context is ephemeral (in memory, analytics disabled) and Data Docs are written as local files:
GE needs no network and gets none. ``data_docs.make_site_offline`` then points every page at the
stylesheets and scripts vendored at install time, so a reader's browser needs none either.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linkage.dataset_config import DatasetConfig
from linkage.identifiable.ingest import MALFORMED, SOURCE_ROW
from linkage.identifiable.validation.row_checks import CHECK_DOB, CHECK_DOB_PLAUSIBLE, CHECK_NHS_VALID

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: no example values in results or Data Docs (they would be identifiers)
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
SITE_NAME = "ehl"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict in plain words (no values): for messages and the audit entry."""

    expectation: str
    column: str | None
    description: str
    success: bool
    unexpected_count: int | None


@dataclass(frozen=True)
class SuiteOutcome:
    dataset: str
    success: bool
    expectations: tuple[ExpectationOutcome, ...]

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if not e.success)


def _mostly(tolerated_fraction: float) -> float:
    return max(0.0, min(1.0, 1.0 - tolerated_fraction))


def _allowing(fraction: float, allowance: int, among: int) -> float:
    """A tolerated fraction that always lets ``allowance`` rows through (small extracts)."""
    return max(fraction, allowance / among) if among else fraction


def build_suite(
    config: DatasetConfig,
    columns: Sequence[str],
    tolerated_fraction: float,
    as_of: dt.date,
    rows: int = 0,
    nhs_numbers_given: int = 0,
) -> Any:
    """The expectation suite for one extract, from its config and the columns actually kept.

    ``rows`` and ``nhs_numbers_given`` size the small-extract allowance of the kept-but-counted
    checks (NHS numbers, missing dates of birth); quarantine tolerances are the policy's, unchanged.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    present = set(columns)
    mostly = _mostly(tolerated_fraction)
    suite = gx.ExpectationSuite(name=config.name)

    def add(expectation: Any, description: str) -> None:
        expectation.meta = {"ehl": description}
        suite.add_expectation(expectation)

    expected = config.expected_rows
    add(
        gxe.ExpectTableRowCountToBeBetween(min_value=expected.min, max_value=expected.max),
        f"the extract has between {expected.min} and {expected.max or 'any number of'} rows",
    )
    required = [f for f in config.required_fields if f in present]
    add(
        gxe.ExpectTableColumnsToMatchSet(column_set=[*required, SOURCE_ROW], exact_match=False),
        "every required column is present",
    )
    if MALFORMED in present:
        add(
            gxe.ExpectColumnValuesToBeInSet(column=MALFORMED, value_set=[False], mostly=mostly),
            "rows have as many columns as the header",
        )
    for key in (k for k in config.keys if k in present):
        add(gxe.ExpectColumnValuesToNotBeNull(column=key, mostly=mostly), f"key {key} is filled in")
        if key not in config.dates and key not in config.types:
            add(gxe.ExpectColumnValuesToBeOfType(column=key, type_="StringType"), f"key {key} is text")
    keys = [k for k in config.keys if k in present]
    if len(keys) == 1:
        add(gxe.ExpectColumnValuesToBeUnique(column=keys[0], mostly=mostly), f"key {keys[0]} is unique")
    elif len(keys) > 1:
        add(
            gxe.ExpectCompoundColumnsToBeUnique(column_list=keys, mostly=mostly),
            f"keys {', '.join(keys)} are unique together",
        )
    for field in (f for f in config.not_null if f in present and f not in keys):
        add(gxe.ExpectColumnValuesToNotBeNull(column=field, mostly=mostly), f"{field} is filled in")
    for field, types in config.types.items():
        if field in present:
            add(
                gxe.ExpectColumnValuesToBeInTypeList(column=field, type_list=list(types)),
                f"{field} has type {' or '.join(types)}",
            )
    for field, rule in config.dates.items():
        if field not in present:
            continue
        add(gxe.ExpectColumnValuesToBeOfType(column=field, type_="DateType"), f"{field} is a date")
        latest = min(rule.max, as_of) if rule.max is not None else as_of
        add(
            gxe.ExpectColumnValuesToBeBetween(
                column=field, min_value=rule.min, max_value=latest, mostly=mostly
            ),
            f"{field} is between {rule.min or 'any date'} and {latest} (not in the future)",
        )
        if rule.required:
            add(
                gxe.ExpectColumnValuesToNotBeNull(column=field, mostly=mostly),
                f"{field} is filled in and readable as a date",
            )
    for field, allowed in config.value_sets.items():
        if field in present:
            add(
                gxe.ExpectColumnValuesToBeInSet(column=field, value_set=list(allowed), mostly=mostly),
                f"{field} is one of {', '.join(allowed)}",
            )
    if CHECK_DOB in present and config.date_of_birth is not None:
        rule = config.date_of_birth
        missing = _allowing(config.max_missing_dob_fraction, config.small_extract_allowance, rows)
        add(
            gxe.ExpectColumnValuesToNotBeNull(column=CHECK_DOB, mostly=_mostly(missing)),
            f"{rule.field} is present and a real date (tolerated: {missing:.0%} not)",
        )
        add(
            gxe.ExpectColumnValuesToBeInSet(column=CHECK_DOB_PLAUSIBLE, value_set=[True], mostly=mostly),
            f"{rule.field} is a real date, not in the future, giving an age of {rule.min_age} to {rule.max_age}",
        )
    if CHECK_NHS_VALID in present:
        invalid = _allowing(
            config.max_invalid_nhs_fraction, config.small_extract_allowance, nhs_numbers_given
        )
        add(
            gxe.ExpectColumnValuesToBeInSet(
                column=CHECK_NHS_VALID, value_set=[True], mostly=_mostly(invalid)
            ),
            f"NHS numbers given have 10 digits and a valid check digit (tolerated: {invalid:.0%} invalid)",
        )
    return suite


class ValidationContext:
    """One in-memory GE context per validation run; renders all its results as one Data Docs site."""

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            data_docs_sites={},
        )
        self._gx = gx
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.source = self.context.data_sources.add_spark("ehl_extracts")

    def validate(self, dataset: str, frame: DataFrame, suite: Any) -> SuiteOutcome:
        """Run ``suite`` on ``frame`` (kept in the context's store for the Data Docs)."""
        gx = self._gx
        asset = self.source.add_dataframe_asset(dataset)
        batch = asset.add_batch_definition_whole_dataframe("as_received")
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=dataset, data=batch, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        outcomes = []
        for r in result.results:
            cfg = r.expectation_config
            details = r.result or {}
            outcomes.append(
                ExpectationOutcome(
                    expectation=cfg.type,
                    column=cfg.kwargs.get("column"),
                    description=(cfg.meta or {}).get("ehl", cfg.type),
                    success=bool(r.success),
                    unexpected_count=details.get("unexpected_count"),
                )
            )
        return SuiteOutcome(dataset=dataset, success=bool(result.success), expectations=tuple(outcomes))

    def build_data_docs(self, directory: Path) -> dict[str, Path]:
        """Render every result of this run into ``directory``; returns dataset -> its results page.

        The site is self-contained: its pages load only files inside ``directory``.
        """
        self.context.add_data_docs_site(
            SITE_NAME,
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(directory),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.context.build_data_docs(site_names=[SITE_NAME])
        from linkage.identifiable.validation.data_docs import make_site_offline

        make_site_offline(directory)
        pages: dict[str, Path] = {}
        validations = directory / "validations"
        for page in sorted(validations.rglob("*.html")) if validations.is_dir() else []:
            pages[page.relative_to(validations).parts[0]] = page
        return pages
