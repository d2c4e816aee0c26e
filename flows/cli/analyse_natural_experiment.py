"""`ehl analyse natural-experiment`: how health-service use changes after people enrol.

Runs the interrupted time series, the staggered event study and the matched comparison on each
measure, and requests the estimate tables and the event-study chart through disclosure control
(``outputs/pending/``). Exit code 6 if disclosure control blocked any output.
"""

from __future__ import annotations

from typing import Annotated

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
from ig_policies.errors import ConfigError, DisclosureBlocked

MEASURE_NAMES = (
    "gp_appointments",
    "ae_attendances",
    "emergency_admissions",
    "outpatient_appointments",
    "antidepressant_items",
)


@app.command("natural-experiment")
@handle_errors
def natural_experiment(
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure", "-m", help=f"Measure(s) to analyse (default: all): {', '.join(MEASURE_NAMES)}."
        ),
    ] = None,
    months_before: Annotated[int, typer.Option("--months-before", min=2)] = 24,
    months_after: Annotated[int, typer.Option("--months-after", min=0)] = 24,
    anticipation: Annotated[
        int,
        typer.Option(
            "--anticipation", min=0, help="Months before enrolment in which use may already change."
        ),
    ] = 0,
    placebo_shift: Annotated[
        int,
        typer.Option(
            "--placebo-shift", min=0, help="Months to move enrolment earlier for the placebo (0: none)."
        ),
    ] = 12,
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Natural experiment: change in health-service use after enrolment, three designs (researcher)."""
    from analysis.natural_experiment import run_natural_experiment

    outcomes = tuple(measure) if measure else MEASURE_NAMES
    unknown = [m for m in outcomes if m not in MEASURE_NAMES]
    if unknown:
        raise ConfigError(
            f"--measure: {', '.join(unknown)} is not a measure in the research panel.",
            hint=f"use one of {', '.join(MEASURE_NAMES)}",
        )
    ws = open_workspace(workspace)
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    with progress("Natural experiment (time series, event study, matched comparison)"):
        run = run_natural_experiment(
            ws,
            engine,
            actor,
            outcomes=outcomes,
            months_before=months_before,
            months_after=months_after,
            anticipation=anticipation,
            placebo_shift=placebo_shift or None,
        )
    for est in run.results.estimates:
        if est.estimator == "event_study":
            console.print(
                f"{est.outcome}: {est.relative_change:+.1%} after enrolment "
                f"(95% CI {est.relative_ci_low:+.1%} to {est.relative_ci_high:+.1%}), event study",
                soft_wrap=True,
            )
    console.print("(Figures are for review inside the TRE; only released outputs may leave it.)")
    print_outputs([(f"{status} {name}", f"outputs/pending/{rid}") for name, rid, status in run.requests])
    if run.blocked:
        raise DisclosureBlocked(
            f"Disclosure control blocked {len(run.blocked)} of {len(run.requests)} outputs: "
            + ", ".join(run.blocked)
            + ". The others are pending review by an IG officer.",
            hint="read each blocked request's check_report.txt; more people per event time usually fixes it",
        )
