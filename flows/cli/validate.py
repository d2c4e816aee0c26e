"""`ehl validate`: check every provider extract before anything else may read it.

A data-processor step. Reads each extract named by a dataset config (``linkage/datasets/``, or
``--datasets-dir``), quarantines rows that fail the row checks, validates each extract with Great
Expectations and writes ``landing/validated/``, ``quarantine/`` and ``reports/data_docs/``. A file
that cannot be read, or an extract over its tolerances, stops with exit code 4 and the file named.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import acting, console, handle_errors, print_outputs, progress

if TYPE_CHECKING:
    from flows.stages import PipelineContext

app = typer.Typer(
    help="Validate the provider extracts with Great Expectations; quarantine bad rows "
    "(reads landing/, writes landing/validated/, quarantine/ and reports/data_docs/).",
)


@app.callback(invoke_without_command=True)
@handle_errors
@acting(settings=True)
def validate(
    context: PipelineContext,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset name or kind to validate (repeatable; default: every dataset the policy permits).",
        ),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Validate this file as the one --dataset (copied into landing/received/ first) instead of "
            "the file named in its dataset config.",
        ),
    ] = None,
    datasets_dir: Annotated[
        Path | None,
        typer.Option(
            "--datasets-dir", help="Folder of dataset configs (default: the shipped linkage/datasets/)."
        ),
    ] = None,
) -> None:
    """Validate extracts (data processor); audited with rows in, accepted and quarantined."""
    from flows.stages import run_validate
    from ig_policies.errors import ConfigError

    if input_file is not None and (not dataset or len(dataset) != 1):
        from linkage.dataset_config import load_dataset_configs

        known = load_dataset_configs(datasets_dir or context.settings.validation.datasets_dir)
        raise ConfigError(
            "--input needs exactly one --dataset naming the dataset the file belongs to.",
            hint=f"for example: ehl validate --input FILE --dataset ways_to_work (datasets: {', '.join(known)})",
        )
    options = {
        "datasets": dataset or None,
        "inputs": {dataset[0]: input_file} if input_file is not None and dataset else None,
        "datasets_dir": datasets_dir,
    }
    configured = context.with_overrides({"validation": options})
    with progress("Validating the extracts"):
        outcome = run_validate(configured)
    ws, result = configured.workspace, outcome.result
    for d in result.datasets:
        console.print(
            f"{d.dataset}: {d.rows_in:,} rows in, {d.rows_accepted:,} accepted, {d.rows_quarantined:,} quarantined"
            + (
                f" ({', '.join(f'{k} {v:,}' for k, v in sorted(d.reason_counts.items()))})"
                if d.reason_counts
                else ""
            )
            + (f"; columns dropped: {', '.join(d.dropped_columns)}" if d.dropped_columns else "")
            + (f"; NHS numbers invalid {d.invalid_nhs_numbers:,}" if d.invalid_nhs_numbers else "")
            + (
                f"; dates of birth unreadable {d.unreadable_dates_of_birth:,}"
                if d.unreadable_dates_of_birth
                else ""
            ),
            soft_wrap=True,
        )
    outputs: list[tuple[str, Path | str]] = []
    for d in result.datasets:
        if d.validated_path is not None:
            outputs.append((f"Validated {d.dataset}", d.validated_path))
    outputs.append(("Quarantine (row numbers and reasons)", ws.quarantine))
    outputs.append(("Data Docs", result.data_docs_index))
    print_outputs(outputs)
