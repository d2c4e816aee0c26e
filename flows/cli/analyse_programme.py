"""`ehl analyse equity|success|concordance|area-profile|service-use|area-targeting`: the programme analyses.

Each command runs the analysis stage (which checks the policy, requests every table and chart
through disclosure control and is audited) and prints the findings in plain English and where the
pending requests are. Exit code 6 if disclosure control blocked any output (the others are still
pending review). Options are keys of ``analyses.<name>`` in the settings file; given here, they
override it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import acting, console, handle_errors, report_requests, run_analysis_command

if TYPE_CHECKING:
    from flows.stages import PipelineContext

BLOCKED_HINT = (
    "read each blocked request's check_report.txt; coarser groups or more people per cell usually fix it"
)


def _run_and_report(
    context: PipelineContext, analysis: str, options: dict[str, Any], description: str
) -> None:
    """Findings first, then what was requested and where; blocked outputs end with exit code 6."""
    result = run_analysis_command(context, analysis, options, description)
    for line in result.sentences:
        console.print(line, soft_wrap=True)
    report_requests(result, BLOCKED_HINT)


@handle_errors
@acting(settings=True)
def equity(
    context: PipelineContext,
    population: Annotated[
        str | None,
        typer.Option(
            "--population",
            help="Census population to compare with: out_of_work (unemployed + economically inactive) "
            "or inactive_sick (inactive through long-term sickness or disability) [default: out_of_work].",
        ),
    ] = None,
) -> None:
    """Equity audit: are the programmes reaching the people they serve? (researcher)"""
    _run_and_report(context, "equity_audit", {"population": population}, "Equity audit")


@handle_errors
@acting(settings=True)
def success(
    context: PipelineContext,
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
) -> None:
    """Factors associated with success: logistic regression of job outcomes (researcher)."""
    _run_and_report(context, "success_factors", {"outcome": outcome, "config": config}, "Success factors")


@handle_errors
@acting(settings=True)
def concordance(context: PipelineContext) -> None:
    """Concordance of self-reported and GP-recorded conditions: sensitivity, PPV, kappa (researcher)."""
    _run_and_report(context, "concordance", {}, "Concordance of conditions")


@handle_errors
@acting(settings=True)
def area_profile(context: PipelineContext) -> None:
    """Small-area profiles: condition prevalence vs inactivity and unemployment by LSOA (researcher)."""
    _run_and_report(context, "area_profile", {}, "Small-area profiles")


@handle_errors
@acting(settings=True)
def service_use(
    context: PipelineContext,
    months_before: Annotated[
        int | None,
        typer.Option(
            "--months-before",
            min=1,
            help="Months before enrolment whose service use is compared [default: 12].",
        ),
    ] = None,
) -> None:
    """Health-service use before enrolment against residents of the same age and sex (researcher)."""
    _run_and_report(context, "service_use", {"months_before": months_before}, "Service use before enrolment")


@handle_errors
@acting(settings=True)
def area_targeting(context: PipelineContext) -> None:
    """Area targeting: high-need areas (long-term sickness, conditions) the programmes reach least (researcher)."""
    _run_and_report(context, "area_targeting", {}, "Area targeting")
