"""The natural-experiment stage: estimate on the research panel, then request every output.

Runs as the researcher and only if the policy permits the ``natural_experiment`` analysis;
reading the panel and requesting outputs go the way every analysis goes (``analysis.stage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.natural_experiment.designs import NaturalExperimentResults, estimate_all
from analysis.natural_experiment.outputs import (
    estimates_output,
    event_study_figure,
    event_study_output,
    its_output,
)
from analysis.natural_experiment.results import Comparison
from analysis.stage import AnalysisOutputs, read_research_table, request_outputs
from analysis.vocabulary import MEASURES
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

JUSTIFICATION = (
    "Programme evaluation: change in health-service use after enrolment in employment support "
    "(natural-experiment analysis permitted by the policy)."
)


@dataclass(frozen=True)
class NaturalExperimentRun(AnalysisOutputs):
    """What every analysis stage returns, plus the estimates themselves (which stay inside the TRE)."""

    results: NaturalExperimentResults = field(kw_only=True)


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
    event_study_comparison: Comparison = "not_yet_enrolled",
    justification: str = JUSTIFICATION,
    spark: Any = None,  # accepted for the common stage signature; not needed
) -> NaturalExperimentRun:
    """The natural-experiment stage: estimate, then request the outputs through disclosure control.

    Runs as the ``researcher`` role and only if the policy permits the ``natural_experiment``
    analysis; the audit entry records the input hashes, the requests made and the people counted.
    ``event_study_comparison="not_yet_or_never_enrolled"`` adds the never-enrolled comparison pool
    to the event study's comparison (see ``event_study``).
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
            event_study_comparison=event_study_comparison,
            source=str(inputs[0]),
        )
        es_table = event_study_output(results.event_studies)
        outputs = [
            (
                "natural-experiment-estimates",
                estimates_output(results.estimates, results.event_studies),
            ),
            ("natural-experiment-event-study", es_table),
            ("natural-experiment-event-study-plot", event_study_figure(es_table, results.event_studies)),
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


__all__ = ["JUSTIFICATION", "NaturalExperimentRun", "run_natural_experiment"]
