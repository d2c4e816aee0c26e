"""`ehl validate`: check every provider extract before anything else may read it.

A data-processor step. Reads each extract named by a dataset config (``linkage/datasets/``, or
``--datasets-dir``), quarantines rows that fail the row checks, validates each extract with Great
Expectations and writes ``landing/validated/``, ``quarantine/`` and ``reports/data_docs/``. A file
that cannot be read, or an extract over its tolerances, stops with exit code 4 and the file named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    PolicyOption,
    UserOption,
    WorkspaceOption,
    console,
    current_user,
    handle_errors,
    load_engine,
    load_run_settings,
    open_workspace,
    print_outputs,
    progress,
    require_master_secret,
    start_spark,
)
from flows.cli.policy import TrustStoreOption

app = typer.Typer(
    help="Validate the provider extracts with Great Expectations; quarantine bad rows "
    "(reads landing/, writes landing/validated/, quarantine/ and reports/data_docs/).",
)


@app.callback(invoke_without_command=True)
@handle_errors
def validate(
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
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Validate extracts (data processor); audited with rows in, accepted and quarantined."""
    from ig_policies.errors import ConfigError
    from linkage.dataset_config import load_dataset_configs
    from linkage.identifiable.validation import console_lines, validate_extracts

    configs = load_dataset_configs(datasets_dir)
    inputs = None
    if input_file is not None:
        if not dataset or len(dataset) != 1 or dataset[0] not in configs:
            raise ConfigError(
                "--input needs exactly one --dataset naming the dataset the file belongs to.",
                hint=f"for example: ehl validate --input FILE --dataset ways_to_work (datasets: {', '.join(configs)})",
            )
        inputs = {dataset[0]: input_file}
    ws = open_workspace(workspace)
    actor = current_user(user)
    secret = require_master_secret()
    engine = load_engine(ws, policy, trust_store, actor, master_secret=secret)
    settings = load_run_settings()
    spark = start_spark(settings)
    with progress("Validating the extracts"):
        result = validate_extracts(ws, engine, actor, spark, dataset or None, inputs=inputs, configs=configs)
    for line in console_lines(result):
        console.print(line, soft_wrap=True, markup=False)
    outputs: list[tuple[str, Path | str]] = []
    for d in result.datasets:
        if d.validated_path is not None:
            outputs.append((f"Validated {d.dataset}", d.validated_path))
    outputs.append(("Quarantine (row numbers and reasons)", ws.quarantine))
    outputs.append(("Data Docs", result.data_docs_index))
    print_outputs(outputs)
