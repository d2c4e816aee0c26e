"""`ehl research-dataset`: build the analysis tables (clients, person-month panel, comparison pool).

A data-processor step: reads the link table and the pseudonymised zone, writes ``analysis/``.
"""

from __future__ import annotations

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
    open_workspace,
    print_outputs,
    progress,
)
from flows.cli.policy import TrustStoreOption

app = typer.Typer(
    help="Build the research dataset in analysis/: one row per enrolment, a person-month panel of "
    "health-service use around enrolment, and a pool of never-enrolled patients for comparison.",
)


@app.callback(invoke_without_command=True)
@handle_errors
def research_dataset(
    months_before: Annotated[
        int, typer.Option("--months-before", min=1, help="Months of the panel before enrolment.")
    ] = 24,
    months_after: Annotated[
        int, typer.Option("--months-after", min=1, help="Months of the panel after enrolment.")
    ] = 24,
    pool_size: Annotated[
        int,
        typer.Option("--pool-size", min=0, help="Never-enrolled patients kept for the matched comparison."),
    ] = 50_000,
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Build analysis/clients.parquet, analysis/panel.parquet and the comparison pool (data processor)."""
    from analysis.research_dataset import build_research_dataset

    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress("Building the research dataset"):
        result = build_research_dataset(
            ws,
            engine,
            actor,
            months_before=months_before,
            months_after=months_after,
            pool_size=pool_size,
        )
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
