"""Does health-service use change after people enrol in employment support? Three designs.

1. ``interrupted_time_series`` — the aggregate series around enrolment (no comparison group);
2. ``event_study`` — staggered-adoption DiD with not-yet-enrolled clients as the comparison
   (Callaway–Sant'Anna group-time effects), with a pre-trend test and a placebo enrolment date;
3. ``matched_comparison`` — never-enrolled registered patients matched on age band, sex, IMD,
   conditions and prior use, then DiD.

Each gives the effect, its 95% CI, the relative change, and the people and person-months behind
it. ``run_natural_experiment`` is the stage: it runs all three on every measure under the policy
engine and hands the results to disclosure control, which alone writes ``outputs/pending/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import ItsResult, interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.outputs import (
    estimates_output,
    event_study_figure,
    event_study_output,
    its_output,
)
from analysis.natural_experiment.panel import DensePanel
from analysis.natural_experiment.results import Estimate, EventStudy
from analysis.stage import AnalysisOutputs, read_research_table, request_outputs
from analysis.vocabulary import MEASURES
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

__all__ = [
    "DensePanel",
    "Estimate",
    "EventStudy",
    "ItsResult",
    "NaturalExperimentResults",
    "NaturalExperimentRun",
    "estimate_all",
    "event_study",
    "interrupted_time_series",
    "matched_comparison",
    "run_natural_experiment",
]

JUSTIFICATION = (
    "Programme evaluation: change in health-service use after enrolment in employment support "
    "(natural-experiment analysis permitted by the policy)."
)


@dataclass(frozen=True)
class NaturalExperimentResults:
    """Everything estimated, before disclosure control (stays inside the TRE)."""

    estimates: tuple[Estimate, ...]
    event_studies: tuple[EventStudy, ...]
    its: tuple[ItsResult, ...]

    def table(self) -> pd.DataFrame:
        rows = [e.as_row() for e in self.estimates]
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class NaturalExperimentRun(AnalysisOutputs):
    """What every analysis stage returns, plus the estimates themselves (which stay inside the TRE)."""

    results: NaturalExperimentResults = field(kw_only=True)


def estimate_all(
    panel: pd.DataFrame,
    comparison_people: pd.DataFrame | None,
    comparison_pool: pd.DataFrame | None,
    outcomes: Sequence[str] = MEASURES,
    months_before: int = 24,
    months_after: int = 24,
    anticipation: int = 0,
    placebo_shift: int | None = 12,
    its_family: str = "poisson",
) -> NaturalExperimentResults:
    """Run the three designs on each outcome (the matched design only when a pool is given)."""
    estimates: list[Estimate] = []
    studies: list[EventStudy] = []
    its_results: list[ItsResult] = []
    for outcome in outcomes:
        if outcome not in panel.columns:
            raise InputError("analysis/panel.parquet", f"there is no measure '{outcome}'", column=outcome)
        its = interrupted_time_series(
            panel,
            outcome,
            family=its_family,  # type: ignore[arg-type]
            calendar_rate=_calendar_rate(comparison_pool, outcome),
        )
        its_results.append(its)
        estimates.append(its.estimate)
        dense = DensePanel.from_long(panel, outcome)
        study = event_study(
            dense, outcome, months_before, months_after, anticipation, placebo_shift=placebo_shift
        )
        studies.append(study)
        estimates.append(study.overall)
        if study.placebo is not None:
            estimates.append(study.placebo)
        if comparison_people is not None and comparison_pool is not None and len(comparison_pool):
            estimates.append(
                matched_comparison(
                    panel, comparison_people, comparison_pool, outcome, months_before, months_after
                )
            )
    return NaturalExperimentResults(tuple(estimates), tuple(studies), tuple(its_results))


def _calendar_rate(pool: pd.DataFrame | None, outcome: str) -> pd.Series | None:
    """Never-enrolled patients' mean count per person-month, by calendar month (ITS reference)."""
    if pool is None or len(pool) == 0 or outcome not in pool.columns:
        return None
    return pool.groupby("month")[outcome].mean()


def run_natural_experiment(
    workspace: Workspace,
    engine: Any,
    actor: str,
    *,
    outcomes: Sequence[str] = MEASURES,
    months_before: int = 24,
    months_after: int = 24,
    anticipation: int = 0,
    placebo_shift: int | None = 12,
    its_family: str = "poisson",
    justification: str = JUSTIFICATION,
    spark: Any = None,  # accepted for the common stage signature; not needed
) -> NaturalExperimentRun:
    """The natural-experiment stage: estimate, then request the outputs through disclosure control.

    Runs as the ``researcher`` role and only if the policy permits the ``natural_experiment``
    analysis; the audit entry records the input hashes, the requests made and the people counted.
    """
    inputs = [
        workspace.analysis / "panel.parquet",
        workspace.analysis / "comparison_people.parquet",
        workspace.analysis / "comparison_pool.parquet",
    ]
    with engine.step(
        actor,
        Role.RESEARCHER,
        "natural_experiment",
        analysis=Analysis.NATURAL_EXPERIMENT,
        reads_linked_data=True,
    ) as step:
        panel = read_research_table(workspace, "panel", ("client_pseudonym",))
        people = pd.read_parquet(inputs[1]) if inputs[1].exists() else None
        pool = pd.read_parquet(inputs[2]) if inputs[2].exists() else None
        step.inputs(*[p for p in inputs if p.exists()])
        results = estimate_all(
            panel,
            people,
            pool,
            outcomes,
            months_before,
            months_after,
            anticipation,
            placebo_shift,
            its_family,
        )
        es_table = event_study_output(results.event_studies)
        outputs = [
            (
                "natural-experiment-estimates",
                estimates_output(results.estimates, results.event_studies),
            ),
            ("natural-experiment-event-study", es_table),
            ("natural-experiment-event-study-plot", event_study_figure(es_table)),
            ("natural-experiment-time-series", its_output(results.its)),
        ]
        requests, folders = request_outputs(workspace, engine, actor, outputs, justification)
        step.outputs(*folders)
        step.counts(
            people=int(panel["client_pseudonym"].nunique()),
            person_months=len(panel),
            outputs_requested=len(requests),
        )
        step.detail(outcomes=list(outcomes), requests=[r[1] for r in requests])
    return NaturalExperimentRun("natural_experiment", requests, folders, results=results)
