"""`ehl research-dataset`: build the analysis tables (clients, person-month panel, comparison pool).

A data-processor step: reads the link table and the pseudonymised zone, writes ``analysis/``.
Options are keys of ``research_dataset`` in the settings file; given here, they override it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import acting, console, handle_errors, print_outputs, progress

if TYPE_CHECKING:
    from flows.stages import PipelineContext

app = typer.Typer(
    help="Build the research dataset in analysis/: one row per enrolment, a person-month panel of "
    "health-service use around enrolment, and a pool of never-enrolled patients for comparison.",
)


@app.callback(invoke_without_command=True)
@handle_errors
@acting(settings=True)
def research_dataset(
    context: PipelineContext,
    months_before: Annotated[
        int | None,
        typer.Option("--months-before", min=1, help="Months of the panel before enrolment [default: 24]."),
    ] = None,
    months_after: Annotated[
        int | None,
        typer.Option("--months-after", min=1, help="Months of the panel after enrolment [default: 24]."),
    ] = None,
    pool_size: Annotated[
        int | None,
        typer.Option(
            "--pool-size",
            min=0,
            help="Never-enrolled patients kept for the matched comparison [default: 50000].",
        ),
    ] = None,
    study_start: Annotated[
        str | None,
        typer.Option("--study-start", help="First month of the study, YYYY-MM (default: first in the data)."),
    ] = None,
    study_end: Annotated[
        str | None,
        typer.Option("--study-end", help="Last month of the study, YYYY-MM (default: last in the data)."),
    ] = None,
) -> None:
    """Build analysis/clients.parquet, analysis/panel.parquet and the comparison pool (data processor)."""
    from flows.stages import run_research_dataset

    options = {
        "months_before": months_before,
        "months_after": months_after,
        "pool_size": pool_size,
        "study_start": study_start,
        "study_end": study_end,
    }
    configured = context.with_overrides({"research_dataset": options})
    with progress("Building the research dataset"):
        result = run_research_dataset(configured).result
    console.print(
        f"{result.n_enrolments:,} enrolments ({result.n_linked:,} linked); panel of "
        f"{result.n_panel_people:,} people over {result.n_panel_months:,} person-months; "
        f"comparison pool of {result.n_pool_people:,} never-enrolled patients.",
        soft_wrap=True,
    )
    print_outputs(
        [
            ("clients", result.clients_path),
            ("panel", result.panel_path),
            ("comparison people", result.comparison_people_path),
            ("comparison months", result.comparison_pool_path),
        ]
    )
