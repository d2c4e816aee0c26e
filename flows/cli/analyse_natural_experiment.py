"""`ehl analyse natural-experiment`: how health-service use changes after people enrol.

Runs the interrupted time series, the staggered event study and the matched comparison on each
measure, and requests the estimate tables and the event-study chart through disclosure control
(``outputs/pending/``). Exit code 6 if disclosure control blocked any output. Every option is a key
of ``analyses.natural_experiment`` in the settings file; an option given here overrides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import acting, console, handle_errors, report_requests, run_analysis_command

if TYPE_CHECKING:
    from flows.stages import PipelineContext


@handle_errors
@acting(settings=True)
def natural_experiment(
    context: PipelineContext,
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure",
            "-m",
            help="Measure(s) to analyse (default: all the research panel has: gp_appointments, "
            "ae_attendances, emergency_admissions, outpatient_appointments, antidepressant_items).",
        ),
    ] = None,
    months_before: Annotated[
        int | None, typer.Option("--months-before", min=2, help="Months before enrolment [default: 24].")
    ] = None,
    months_after: Annotated[
        int | None, typer.Option("--months-after", min=0, help="Months after enrolment [default: 24].")
    ] = None,
    anticipation: Annotated[
        int | None,
        typer.Option(
            "--anticipation",
            min=0,
            help="Months before enrolment in which use may already change [default: 0].",
        ),
    ] = None,
    placebo_shift: Annotated[
        int | None,
        typer.Option(
            "--placebo-shift",
            min=0,
            help="Months to move enrolment earlier for the placebo (0: none) [default: 12].",
        ),
    ] = None,
) -> None:
    """Natural experiment: change in health-service use after enrolment, three designs (researcher)."""
    options = {
        "measures": measure or None,
        "months_before": months_before,
        "months_after": months_after,
        "anticipation": anticipation,
        "placebo_shift": placebo_shift,
    }
    run = run_analysis_command(
        context,
        "natural_experiment",
        options,
        "Natural experiment (time series, event study, matched comparison)",
    )
    for est in run.results.estimates:
        if est.estimator == "event_study":
            console.print(
                f"{est.outcome}: {est.relative_change:+.1%} after enrolment "
                f"(95% CI {est.relative_ci_low:+.1%} to {est.relative_ci_high:+.1%}), event study",
                soft_wrap=True,
            )
    console.print("(Figures are for review inside the TRE; only released outputs may leave it.)")
    report_requests(
        run, "read each blocked request's check_report.txt; more people per event time usually fixes it"
    )
