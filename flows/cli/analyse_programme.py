"""`ehl analyse equity|success|concordance|area-profile`: the programme analyses.

Each command loads the signed policy, calls the analysis stage function (which checks the policy,
requests every table and chart through disclosure control and is audited) and prints the
findings in plain English and where the pending requests are. Exit code 6 if disclosure control
blocked any output (the others are still pending review).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.analyse import app
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
from ig_policies.errors import DisclosureBlocked

if TYPE_CHECKING:
    from analysis.equity import AnalysisOutputs


def _report(result: AnalysisOutputs) -> None:
    """Findings first, then what was requested and where; blocked outputs end with exit code 6."""
    for line in result.sentences:
        console.print(line, soft_wrap=True)
    print_outputs(
        [
            (f"{status} {name}", f"outputs/pending/{request_id}")
            for name, request_id, status in result.requests
        ]
    )
    if result.blocked:
        raise DisclosureBlocked(
            f"Disclosure control blocked {len(result.blocked)} of {len(result.requests)} outputs: "
            + ", ".join(result.blocked)
            + ". The others are pending review by an IG officer.",
            hint="read each blocked request's check_report.txt; coarser groups or more people per cell usually fix it",
        )


@app.command("equity")
@handle_errors
def equity(
    population: Annotated[
        str,
        typer.Option(
            "--population",
            help="Census population to compare with: out_of_work (unemployed + economically inactive) "
            "or inactive_sick (inactive through long-term sickness or disability).",
        ),
    ] = "out_of_work",
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Equity audit: are the programmes reaching the people they serve? (researcher)"""
    from analysis.equity import run_equity_audit

    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress("Equity audit"):
        result = run_equity_audit(ws, engine, actor, basis=population)  # type: ignore[arg-type]
    _report(result)


@app.command("success")
@handle_errors
def success(
    outcome: Annotated[
        str | None,
        typer.Option("--outcome", help="job_start or sustained_26_weeks (overrides the config file)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Success-model YAML (outcome, covariates, reference groups ...)."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Factors associated with success: logistic regression of job outcomes (researcher)."""
    from analysis.success import SuccessConfig, load_success_config, run_success_factors
    from ig_policies.errors import ConfigError

    settings = load_success_config(config)
    if outcome is not None:
        try:
            settings = SuccessConfig.model_validate({**settings.model_dump(), "outcome": outcome})
        except ValueError:
            raise ConfigError(
                f"--outcome: '{outcome}' is not an outcome the model knows.",
                hint="use job_start or sustained_26_weeks",
            ) from None
    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress(f"Success factors ({settings.outcome})"):
        result = run_success_factors(ws, engine, actor, settings)
    _report(result)


@app.command("concordance")
@handle_errors
def concordance(
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Concordance of self-reported and GP-recorded conditions: sensitivity, PPV, kappa (researcher)."""
    from analysis.concordance import run_concordance

    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress("Concordance of conditions"):
        result = run_concordance(ws, engine, actor)
    _report(result)


@app.command("area-profile")
@handle_errors
def area_profile(
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Small-area profiles: condition prevalence vs inactivity and unemployment by LSOA (researcher)."""
    from analysis.area_profile import run_area_profile

    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress("Small-area profiles"):
        result = run_area_profile(ws, engine, actor)
    _report(result)
