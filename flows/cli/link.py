"""`ehl link`: link clients to patients on tokens; `ehl link report`; `ehl link evaluate`.

Options are keys of ``linkage`` in the settings file (``config``, ``model``, ``backend``); given
here, they override it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import (
    acting,
    console,
    handle_errors,
    print_outputs,
    progress,
)

if TYPE_CHECKING:
    from flows.stages import PipelineContext

app = typer.Typer(
    no_args_is_help=False,
    help="Link employment-support clients to health records on matching tokens (Splink), then report.",
)

ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model", help="Re-use this approved model JSON (e.g. a previous linked/model.json): no training."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Linkage config YAML: which tables and token columns to link (default: the demo's)."
    ),
]
BackendOption = Annotated[
    str | None,
    typer.Option("--backend", help="auto, spark or duckdb (overrides linkage.backend in settings)."),
]


def _quiet_libraries() -> None:
    for name in ("splink", "py4j"):
        logging.getLogger(name).setLevel(logging.ERROR)


@app.callback(invoke_without_command=True)
@handle_errors
@acting(settings=True)
def link(
    ctx: typer.Context,
    context: PipelineContext,
    model: ModelOption = None,
    config: ConfigOption = None,
    backend: BackendOption = None,
) -> None:
    """Link pseudonymised clients to patients (audited) and write linked/ and the linkage report."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.stages import run_link

    _quiet_libraries()
    configured = context.with_overrides({"linkage": {"model": model, "config": config, "backend": backend}})
    with progress("Linking the records"):
        outcome = run_link(configured)
    result, chosen, report = outcome.result, outcome.summary["backend"], outcome.outputs[-1]
    console.print(
        f"Linked {result.matched:,} of {result.clients:,} client records "
        f"({result.ambiguous:,} ambiguous, {result.unmatched:,} unmatched) from {result.comparisons:,} comparisons"
        f" on {chosen}; model {'trained' if result.trained else 're-used'} (sha256 {result.model_sha256[:12]})."
    )
    print_outputs(
        [
            ("links", result.links_path),
            ("model", result.model_path),
            ("clerical review", result.clerical_path),
            ("match rates", result.match_rates_path),
            ("report", report),
        ]
    )


@app.command("report")
@handle_errors
@acting
def report(context: PipelineContext) -> None:
    """Write the linkage report (match rates by group, weights, parameters) from linked/ (audited)."""
    from flows.stages import run_link_report

    written = run_link_report(context).result
    for sentence in written.sentences:
        console.print(sentence, soft_wrap=True)
    print_outputs([("report", written.path)])


@app.command("evaluate")
@handle_errors
@acting(settings=True)
def evaluate(context: PipelineContext, config: ConfigOption = None) -> None:
    """Precision, recall and F1 of linked/ against truth/ (synthetic workspaces only)."""
    from flows.stages import run_link_evaluate

    result = run_link_evaluate(context.with_overrides({"linkage": {"config": config}})).result
    console.print(f"Precision: {result.precision:.3f}")
    console.print(f"Recall: {result.recall:.3f}")
    console.print(f"F1: {result.f1:.3f}")
    print_outputs([("evaluation", result.report_path)])
