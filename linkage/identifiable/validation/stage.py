"""The validate stage: every extract read, checked, split into accepted and quarantined rows.

The stage runs in three phases so that a bad delivery stops it before anything is written:

1. *ingest* every selected extract (a file that cannot be read raises ``InputError`` here);
2. *judge* each one: row checks on Spark, the Great Expectations suite, the counts;
3. *write* — only if every extract is within its tolerances — ``landing/validated/<dataset>.parquet``
   and ``quarantine/<dataset>.parquet`` (Spark Parquet directories), each atomically, with
   ``quarantine/<dataset>.csv``, the same rows (row, column, reason) for a person to open.

A folder that cannot be written, a full disk or a read-only volume ends the stage with
``EnvironmentProblem`` (exit 4, the path and what to do), never a bare ``OSError``; validated
tables already written by the failing run are removed, so nothing half-done is passed on.

Data Docs are built in phase 2 whatever the verdict, because a failed validation is exactly when
the processor and the IG officer need to read them. When an extract is over its tolerance the
quarantine table (row numbers and reasons only) is written too — it is what the provider is asked
about — but no validated table is, and an older one for that dataset is removed, so
pseudonymisation cannot pick up an extract that no longer passes.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig_policies.errors import ConfigError, EnvironmentProblem, InputError, environment_problem
from ig_policies.workspace import Workspace, atomic_directory, make_zone_folder, staging_folder, write_bytes
from linkage.dataset_config import DatasetConfig, load_dataset_configs
from linkage.identifiable.ingest import PROGRAMME, SOURCE_ROW, IngestedExtract, ingest_extract
from linkage.identifiable.validation.report import QuarantinedRow, quarantine_lines, write_quarantine_report
from linkage.identifiable.validation.row_checks import (
    CHECK_DOB,
    CHECK_NHS_VALID,
    REASON,
    REASON_CODE,
    REASON_FIELD,
    apply_row_checks,
)
from linkage.identifiable.validation.suites import SuiteOutcome, ValidationContext, build_suite

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ig_policies.engine import PolicyEngine

ACTION = "validate"
VALIDATED_DIR = "validated"
RECEIVED_DIR = "received"
DATA_DOCS_DIR = "data_docs"


@dataclass(frozen=True)
class DatasetValidation:
    """What validation made of one extract. Counts and names only: nothing identifying."""

    dataset: str
    source: Path
    content_hash: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    max_quarantine_fraction: float
    dropped_columns: tuple[str, ...]
    reason_counts: Mapping[str, int]
    invalid_nhs_numbers: int
    unreadable_dates_of_birth: int
    suite: SuiteOutcome
    validated_path: Path | None = None
    quarantine_path: Path | None = None
    data_docs_page: Path | None = None
    quarantine_report: Path | None = None
    first_quarantined: tuple[QuarantinedRow, ...] = ()
    sheet_note: str | None = None

    @property
    def quarantine_fraction(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def problems(self) -> tuple[str, ...]:
        """Why this extract may not go on (empty when it may)."""
        found: list[str] = []
        if self.quarantine_fraction > self.max_quarantine_fraction:
            common = ", ".join(
                f"{code} {n}" for code, n in sorted(self.reason_counts.items(), key=lambda kv: -kv[1])[:3]
            )
            found.append(
                f"{self.rows_quarantined} of {self.rows_in} rows ({self.quarantine_fraction:.1%}) failed the row "
                f"checks, more than the {self.max_quarantine_fraction:.1%} tolerated (most common: {common})"
            )
        for e in self.suite.failed:
            count = f" ({e.unexpected_count} rows)" if e.unexpected_count else ""
            found.append(f"expectation not met: {e.description}{count}")
        return tuple(found)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary for the audit entry."""
        return {
            "dataset": self.dataset,
            "file": self.source.name,
            "sha256": self.content_hash,
            "rows_in": self.rows_in,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_fraction": round(self.quarantine_fraction, 6),
            "max_quarantine_fraction": self.max_quarantine_fraction,
            "reason_counts": dict(self.reason_counts),
            "dropped_columns": list(self.dropped_columns),
            "invalid_nhs_numbers": self.invalid_nhs_numbers,
            "unreadable_dates_of_birth": self.unreadable_dates_of_birth,
            "expectations": len(self.suite.expectations),
            "expectations_failed": [e.description for e in self.suite.failed],
            "passed": self.passed,
        }


@dataclass(frozen=True)
class ValidationResult:
    """The validate stage's result: one entry per extract, and the Data Docs site."""

    datasets: tuple[DatasetValidation, ...]
    data_docs_index: Path
    as_of: dt.date = field(default_factory=dt.date.today)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.datasets)

    def get(self, dataset: str) -> DatasetValidation:
        for d in self.datasets:
            if d.dataset == dataset:
                return d
        raise KeyError(dataset)

    @property
    def rows_in(self) -> int:
        return sum(d.rows_in for d in self.datasets)

    @property
    def rows_accepted(self) -> int:
        return sum(d.rows_accepted for d in self.datasets)

    @property
    def rows_quarantined(self) -> int:
        return sum(d.rows_quarantined for d in self.datasets)


# --------------------------------------------------------------------------------------------
# Paths


def validated_path(workspace: Workspace, dataset: str) -> Path:
    return workspace.landing / VALIDATED_DIR / f"{dataset}.parquet"


def quarantine_path(workspace: Workspace, dataset: str) -> Path:
    return workspace.quarantine / f"{dataset}.parquet"


def quarantine_report_path(workspace: Workspace, dataset: str) -> Path:
    """The quarantine list as CSV (row, column, reason code, reason) for a person to open."""
    return workspace.quarantine / f"{dataset}.csv"


def data_docs_dir(workspace: Workspace) -> Path:
    return workspace.reports / DATA_DOCS_DIR


def receive_file(workspace: Workspace, dataset: str, path: str | Path) -> Path:
    """Copy a file handed in from outside the workspace into ``landing/received/<dataset>/``.

    Identifiable extracts live in the landing zone only; a file passed with ``--input`` is taken in
    (atomically) and validated from there, so the audit's content hash refers to the landing copy.
    """
    source = Path(path).resolve()
    if not source.is_file():
        raise InputError(str(source), "the file does not exist.", hint="check the path given with --input.")
    if source.is_relative_to(workspace.landing):
        return source
    destination = workspace.landing / RECEIVED_DIR / dataset / source.name
    try:
        with source.open("rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise environment_problem(exc, str(source), "read") from None
    try:
        make_zone_folder(destination.parent)
        write_bytes(destination, data)
    except OSError as exc:
        raise environment_problem(exc, str(destination.parent), "write") from None
    return destination


def select_configs(
    configs: Mapping[str, DatasetConfig], datasets: Iterable[str] | None
) -> list[DatasetConfig]:
    """Configs meant by dataset names or kinds (``employment_support``); all when ``datasets`` is None."""
    if datasets is None:
        return list(configs.values())
    chosen: dict[str, DatasetConfig] = {}
    for wanted in datasets:
        matches = [c for c in configs.values() if wanted in (c.name, c.kind)]
        if not matches:
            raise ConfigError(
                f"no dataset config for '{wanted}' (known datasets: {', '.join(sorted(configs))})",
                hint="name a dataset or kind that has a config in linkage/datasets/.",
            )
        chosen.update((c.name, c) for c in matches)
    return list(chosen.values())


# --------------------------------------------------------------------------------------------
# Judging one extract


def _judge(
    extract: IngestedExtract,
    config: DatasetConfig,
    tolerance: float,
    gx_context: ValidationContext,
    as_of: dt.date,
) -> tuple[DatasetValidation, DataFrame]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    checked = apply_row_checks(extract.frame, config, as_of).persist(StorageLevel.MEMORY_AND_DISK)
    dob_field = config.date_of_birth.field if config.date_of_birth else None
    unreadable_dob = (
        F.col(dob_field).isNotNull() & F.col(CHECK_DOB).isNull()
        if CHECK_DOB in checked.columns
        else F.lit(False)
    )
    has_nhs = CHECK_NHS_VALID in checked.columns
    invalid_nhs = F.col(CHECK_NHS_VALID) == F.lit(False) if has_nhs else F.lit(False)
    given_nhs = F.col(CHECK_NHS_VALID).isNotNull() if has_nhs else F.lit(False)
    tallies = (
        checked.groupBy(REASON_CODE)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(invalid_nhs.cast("long")).alias("invalid_nhs"),
            F.sum(given_nhs.cast("long")).alias("given_nhs"),
            F.sum(unreadable_dob.cast("long")).alias("unreadable_dob"),
        )
        .collect()
    )
    reason_counts = {r[REASON_CODE]: int(r["rows"]) for r in tallies if r[REASON_CODE] is not None}
    accepted = sum(int(r["rows"]) for r in tallies if r[REASON_CODE] is None)
    quarantined = sum(reason_counts.values())
    if accepted + quarantined != extract.rows_in:
        raise RuntimeError(
            f"{extract.dataset}: row accounting broken: {extract.rows_in} rows read but {accepted} accepted "
            f"+ {quarantined} quarantined; nothing was written"
        )
    nhs_given = sum(int(r["given_nhs"] or 0) for r in tallies)
    suite = build_suite(
        config, checked.columns, tolerance, as_of, rows=extract.rows_in, nhs_numbers_given=nhs_given
    )
    outcome = gx_context.validate(config.name, checked.drop(REASON_CODE, REASON, REASON_FIELD), suite)
    result = DatasetValidation(
        dataset=config.name,
        source=extract.received.path,
        content_hash=extract.received.content_hash,
        rows_in=extract.rows_in,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        max_quarantine_fraction=tolerance,
        dropped_columns=extract.dropped_columns,
        reason_counts=reason_counts,
        invalid_nhs_numbers=sum(int(r["invalid_nhs"] or 0) for r in tallies),
        unreadable_dates_of_birth=sum(int(r["unreadable_dob"] or 0) for r in tallies),
        suite=outcome,
        sheet_note=extract.received.sheet_note,
    )
    return result, checked


def in_place(final: Path, keep_on_failure: bool = False) -> Path:
    """Write an output straight to its final path (atomically): validation without the engine."""
    return final


def _write_outputs(
    workspace: Workspace,
    result: DatasetValidation,
    checked: DataFrame,
    extract: IngestedExtract,
    write_validated: bool,
    place: Callable[..., Path] = in_place,
) -> DatasetValidation:
    """Write quarantine (always) and validated rows (when allowed); re-count what was written.

    ``place(final, keep_on_failure=...)`` says where each output is written (the audited step's
    staging, see ``Step.stage``); the result names the final paths.
    """
    from pyspark.sql import functions as F

    q_final = quarantine_path(workspace, result.dataset)
    q_path = place(q_final, keep_on_failure=True)  # the rows and reasons a person needs to read
    quarantined = checked.where(F.col(REASON_CODE).isNotNull()).select(
        SOURCE_ROW, REASON_FIELD, REASON_CODE, REASON
    )
    with _writing(q_path), atomic_directory(q_path) as tmp:
        quarantined.coalesce(1).write.parquet(str(tmp))
    written_q = _parquet_rows(q_path)
    report_final = quarantine_report_path(workspace, result.dataset)
    report = place(report_final, keep_on_failure=True)
    with _writing(report):
        first = write_quarantine_report(q_path, report, extract.received.path, extract.headings)
    v_final = validated_path(workspace, result.dataset)
    written_v = 0
    if write_validated:
        v_path = place(v_final)
        keep = [*extract.fields, *([PROGRAMME] if PROGRAMME in checked.columns else []), SOURCE_ROW]
        accepted = checked.where(F.col(REASON_CODE).isNull()).select(*keep)
        with _writing(v_path), atomic_directory(v_path) as tmp:
            accepted.write.parquet(str(tmp))
        written_v = _parquet_rows(v_path)
        if written_v + written_q != result.rows_in:
            shutil.rmtree(v_path, ignore_errors=True)
            raise RuntimeError(
                f"{result.dataset}: row accounting broken after writing: {result.rows_in} rows in, "
                f"{written_v} validated + {written_q} quarantined written; the validated table was removed"
            )
    elif v_final.exists():  # a stale table must never be passed on: removed at once
        shutil.rmtree(v_final)
    return DatasetValidation(
        **{
            **result.__dict__,
            "quarantine_path": q_final,
            "validated_path": v_final if write_validated else None,
            "quarantine_report": report_final,
            "first_quarantined": first,
        }
    )


#: what Spark (Java) says when the operating system refuses a write, and the errno it stands for
_JAVA_OS_ERRORS = {
    "Permission denied": errno.EACCES,
    "AccessDeniedException": errno.EACCES,
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
}


class _writing:
    """Turn an operating-system refusal while writing ``path`` (Python's or Spark's) into an
    ``EnvironmentProblem`` naming the folder."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, EnvironmentProblem):
            return False
        folder = str(self.path.parent)
        if isinstance(exc, OSError):
            raise environment_problem(exc, folder, "write") from None
        text = str(exc)
        code = next((c for marker, c in _JAVA_OS_ERRORS.items() if marker in text), None)
        if code is not None:
            raise environment_problem(OSError(code, os.strerror(code)), folder, "write") from None
        return False


def _parquet_rows(directory: Path) -> int:
    """Rows in a written Parquet directory, from the file footers (no Spark job)."""
    import pyarrow.parquet as pq

    return sum(
        pq.read_metadata(f).num_rows for f in directory.glob("*.parquet") if not f.name.startswith((".", "_"))
    )


def _remove_stale(workspace: Workspace, datasets: Iterable[str]) -> None:
    for name in datasets:
        stale = validated_path(workspace, name)
        if stale.exists():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def check_extracts(
    workspace: Workspace,
    spark: SparkSession,
    configs: Sequence[DatasetConfig],
    permitted_fields: Mapping[str, Iterable[str]],
    tolerances: Mapping[str, float],
    inputs: Mapping[str, Path] | None = None,
    as_of: dt.date | None = None,
    place: Callable[..., Path] = in_place,
) -> ValidationResult:
    """Validate extracts without the policy engine (the stage function adds the engine and audit).

    Raises ``InputError`` for an unreadable file before anything is judged or written. Otherwise
    returns the result; extracts over a tolerance have no validated table (see ``DatasetValidation.problems``).
    ``place`` says where each output is written (default: in place; the stage passes ``step.stage``).
    """
    as_of = as_of or dt.date.today()
    inputs = dict(inputs or {})
    staging = staging_folder(workspace.landing / VALIDATED_DIR)  # identifiable rows: landing, 0700
    try:
        return _check_staged(
            workspace, spark, configs, permitted_fields, tolerances, inputs, as_of, staging, place
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_staged(
    workspace: Workspace,
    spark: SparkSession,
    configs: Sequence[DatasetConfig],
    permitted_fields: Mapping[str, Iterable[str]],
    tolerances: Mapping[str, float],
    inputs: Mapping[str, Path],
    as_of: dt.date,
    staging: Path,
    place: Callable[..., Path],
) -> ValidationResult:
    extracts: list[tuple[DatasetConfig, IngestedExtract]] = []
    try:
        for config in configs:
            path = inputs.get(config.name) or workspace.landing / config.file
            extracts.append(
                (config, ingest_extract(spark, path, config, permitted_fields[config.name], staging))
            )
    except (InputError, EnvironmentProblem):
        _remove_stale(workspace, [c.name for c in configs])
        raise

    gx_context = ValidationContext()
    judged: list[tuple[DatasetValidation, DataFrame, IngestedExtract]] = []
    for config, extract in extracts:
        tolerance = tolerances.get(config.name, config.max_quarantine_fraction)
        result, checked = _judge(extract, config, tolerance, gx_context, as_of)
        judged.append((result, checked, extract))

    docs = data_docs_dir(workspace)
    with _writing(docs), atomic_directory(place(docs, keep_on_failure=True)) as tmp:
        pages = gx_context.build_data_docs(tmp)
    pages = {name: docs / page.relative_to(tmp) for name, page in pages.items()}

    all_passed = all(r.passed for r, _, _ in judged)
    final: list[DatasetValidation] = []
    try:
        for result, checked, extract in judged:
            written = _write_outputs(workspace, result, checked, extract, all_passed, place)
            final.append(
                DatasetValidation(**{**written.__dict__, "data_docs_page": pages.get(result.dataset)})
            )
    except BaseException:
        _remove_stale(workspace, [c.name for c in configs])  # nothing half-written is passed on
        raise
    finally:
        for _, checked, _ in judged:
            checked.unpersist()
    return ValidationResult(datasets=tuple(final), data_docs_index=docs / "index.html", as_of=as_of)


def raise_for_problems(result: ValidationResult) -> None:
    """Stop the flow with one plain message covering every extract that may not go on."""
    failing = [d for d in result.datasets if not d.passed]
    if not failing:
        return
    first = failing[0]
    lines = []
    for d in failing:
        lines.append(f"{d.dataset} ({d.source}):" if len(failing) > 1 or d is not first else "")
        lines.extend(f"  - {p}" for p in d.problems)
        lines.extend(quarantine_lines(d))
    detail = "\n".join(line for line in lines if line)
    raise InputError(
        str(first.source),
        f"validation stopped the flow; nothing was passed on to pseudonymisation.\n{detail}",
        hint=(
            f"read the Data Docs ({result.data_docs_index}) and the quarantine tables (row numbers and "
            "reasons) in quarantine/, then ask the provider for a corrected extract."
        ),
    )


# --------------------------------------------------------------------------------------------
# The stage function


def validate_extracts(
    workspace: Workspace,
    engine: PolicyEngine,
    actor: str,
    spark: SparkSession,
    datasets: Iterable[str] | None = None,
    *,
    inputs: Mapping[str, str | Path] | None = None,
    configs: Mapping[str, DatasetConfig] | None = None,
    as_of: dt.date | None = None,
) -> ValidationResult:
    """Validate the extracts (all the policy permits, or ``datasets`` by name or kind), under the policy.

    ``inputs`` maps a dataset to a file handed in from elsewhere (``--input``), which is first copied
    into the landing zone. ``configs`` default to the shipped dataset configs. Raises ``InputError``
    (exit 4) naming the file when an extract is unreadable or over a tolerance; the audit entry
    records the counts either way.
    """
    from ig_policies.engine import Role

    known = configs if configs is not None else load_dataset_configs()
    if datasets is None:
        chosen = [c for c in known.values() if engine.policy.resolve_datasets(c.name)]
    else:
        chosen = select_configs(known, datasets)
    names = [c.name for c in chosen]
    as_of = as_of or engine.today()
    with engine.step(actor, Role.DATA_PROCESSOR, ACTION, datasets=names) as step:
        received = {name: receive_file(workspace, name, path) for name, path in (inputs or {}).items()}
        permitted = {name: engine.permitted_fields(name) for name in names}
        tolerances = {name: engine.dataset(name).max_quarantine_fraction for name in names}
        step.inputs(
            *[
                received.get(c.name, workspace.landing / c.file)
                for c in chosen
                if _exists(received, workspace, c)
            ]
        )
        result = check_extracts(
            workspace, spark, chosen, permitted, tolerances, received, as_of, place=step.stage
        )
        step.counts(
            rows_in=result.rows_in,
            rows_accepted=result.rows_accepted,
            rows_quarantined=result.rows_quarantined,
        )
        step.detail(validation=[d.summary() for d in result.datasets], data_docs=str(result.data_docs_index))
        raise_for_problems(result)
    return result


def _exists(received: Mapping[str, Path], workspace: Workspace, config: DatasetConfig) -> bool:
    return (received.get(config.name) or workspace.landing / config.file).is_file()
