"""All three designs on every outcome: the estimates the stage hands to disclosure control.

Kept apart from the stage function so benchmarks and tests run the estimators on simulated
panels without a workspace or a policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import ItsResult, interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.panel import (
    DensePanel,
    PanelColumns,
    check_clients_panel,
    check_never_enrolled,
    checked_outcome,
)
from analysis.natural_experiment.results import COMPARISON_WORDS, Comparison, Estimate, EventStudy
from analysis.vocabulary import MEASURES
from ig_policies.errors import InputError


@dataclass(frozen=True)
class NaturalExperimentResults:
    """Everything estimated, before disclosure control (stays inside the TRE)."""

    estimates: tuple[Estimate, ...]
    event_studies: tuple[EventStudy, ...]
    its: tuple[ItsResult, ...]

    def table(self) -> pd.DataFrame:
        """One row per estimate (design, outcome), for review inside the TRE."""
        rows = [e.as_row() for e in self.estimates]
        return pd.DataFrame(rows)


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
    *,
    event_study_comparison: Comparison = "not_yet_enrolled",
    columns: PanelColumns | None = None,
    source: str = "panel",
) -> NaturalExperimentResults:
    """Run the three designs on each outcome (the matched design only when a pool is given).

    The clients' panel (and the never-enrolled pool, when given) is checked against ``columns``
    for every outcome before anything is estimated, so a bad column stops the run at once with
    its name. The pool serves the matched comparison and the time series' calendar reference;
    the event study compares with clients not yet enrolled, and with the pool as well when
    ``event_study_comparison="not_yet_or_never_enrolled"``.
    """
    columns = columns or PanelColumns()
    pool_source = f"{source} (never-enrolled months)"
    check_clients_panel(panel, columns, source)
    has_pool = comparison_people is not None and comparison_pool is not None and len(comparison_pool) > 0
    if has_pool:
        check_never_enrolled(comparison_pool, columns, pool_source)
    if event_study_comparison not in COMPARISON_WORDS:
        raise InputError(
            source,
            f"event_study_comparison '{event_study_comparison}' is not one of {', '.join(COMPARISON_WORDS)}",
        )
    with_never = event_study_comparison == "not_yet_or_never_enrolled"
    if with_never and comparison_pool is None:
        raise InputError(
            pool_source,
            "the event study was asked to compare with never-enrolled people, but there are none",
            hint="build the research dataset with a comparison pool, or compare with not-yet-enrolled people only",
        )
    for outcome in outcomes:
        checked_outcome(panel, outcome, source, counts=True)
        if has_pool:
            checked_outcome(comparison_pool, outcome, pool_source, counts=True)
    estimates: list[Estimate] = []
    studies: list[EventStudy] = []
    its_results: list[ItsResult] = []
    for outcome in outcomes:
        its = interrupted_time_series(
            panel,
            outcome,
            family=its_family,  # type: ignore[arg-type]
            calendar_rate=_calendar_rate(comparison_pool if has_pool else None, outcome, columns),
            columns=columns,
            source=source,
        )
        its_results.append(its)
        estimates.append(its.estimate)
        dense = DensePanel.from_long(
            panel, outcome, columns, never_enrolled=comparison_pool if with_never else None, source=source
        )
        study = event_study(
            dense,
            outcome,
            months_before,
            months_after,
            anticipation,
            placebo_shift=placebo_shift,
            source=source,
        )
        studies.append(study)
        estimates.append(study.overall)
        if study.placebo is not None:
            estimates.append(study.placebo)
        if has_pool:
            assert comparison_people is not None and comparison_pool is not None
            estimates.append(
                matched_comparison(
                    panel,
                    comparison_people,
                    comparison_pool,
                    outcome,
                    months_before,
                    months_after,
                    columns=columns,
                    source=source,
                )
            )
    return NaturalExperimentResults(tuple(estimates), tuple(studies), tuple(its_results))


def _calendar_rate(pool: pd.DataFrame | None, outcome: str, columns: PanelColumns) -> pd.Series | None:
    """Never-enrolled patients' mean count per person-month, by calendar month (ITS reference)."""
    if pool is None or len(pool) == 0 or outcome not in pool.columns:
        return None
    return pool.groupby(pd.to_datetime(pool[columns.month]))[outcome].mean()


__all__ = ["NaturalExperimentResults", "estimate_all"]
