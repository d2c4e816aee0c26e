"""What each estimator returns: an effect with its uncertainty and the numbers of people behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Z95 = float(stats.norm.ppf(0.975))

#: Who an event study compares each enrolment cohort with.
Comparison = Literal["not_yet_enrolled", "not_yet_or_never_enrolled"]
COMPARISON_WORDS: dict[str, str] = {
    "not_yet_enrolled": "people not yet enrolled",
    "not_yet_or_never_enrolled": "people not yet enrolled and never-enrolled registered patients",
}


@dataclass(frozen=True)
class Estimate:
    """One effect estimate on one outcome.

    ``effect`` is the change in the mean monthly count per person attributable to enrolment (the
    average over the post-enrolment months); ``relative_change`` is that change as a fraction of
    the counterfactual mean (``-0.08`` = 8% fewer). ``n_people`` counts treated people contributing;
    ``n_comparison_people`` the distinct people in the comparison group; ``n_person_months`` all
    person-months used.
    """

    estimator: str
    outcome: str
    effect: float
    ci_low: float
    ci_high: float
    relative_change: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    n_people: int
    n_comparison_people: int
    n_person_months: int
    details: dict[str, Any] = field(default_factory=dict)

    def covers(self, relative_truth: float) -> bool:
        return self.relative_ci_low <= relative_truth <= self.relative_ci_high

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("details")
        return row


@dataclass(frozen=True)
class EventStudy:
    """Aggregated event-time effects (``e = -1`` is the reference month and is fixed at zero).

    ``table``: one row per event time with the effect on the count scale (``effect``, ``se``,
    ``ci_low``, ``ci_high``: change in mean count per person-month), the treated and
    counterfactual means, the effect on the relative scale (``relative_change``,
    ``relative_ci_low``, ``relative_ci_high``: the change as a fraction of the counterfactual
    mean), and ``n_people``/``n_comparison_people``. ``group_time``: the group-time effects
    ATT(g, t) it averages, one row per enrolment cohort (``cohort_month``) and calendar ``month``
    with ``event_time``, ``att``, ``se``, ``n_treated`` and ``n_comparison``. Both stay inside the
    TRE; the released event-study table is built from ``table`` by disclosure control.
    ``comparison``: whether never-enrolled people were in the comparison as well as clients who
    enrolled later.
    """

    outcome: str
    table: pd.DataFrame
    overall: Estimate
    pretrend_chi2: float
    pretrend_df: int
    pretrend_p: float
    placebo: Estimate | None = None
    group_time: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: Comparison = "not_yet_enrolled"


def normal_ci(est: float, se: float) -> tuple[float, float, float]:
    """95% CI and two-sided p-value under a normal approximation."""
    if not np.isfinite(se) or se <= 0:
        return float("nan"), float("nan"), float("nan")
    p = float(2 * stats.norm.sf(abs(est) / se))
    return est - Z95 * se, est + Z95 * se, p


def relative_from_influence(
    theta: float, level: float, if_theta: np.ndarray, if_level: np.ndarray
) -> tuple[float, float, float]:
    """Relative change ``theta / (level - theta)`` and its 95% CI by the delta method.

    ``level`` is the treated group's observed post-enrolment mean, so ``level - theta`` is the
    counterfactual mean; both are estimated from the same people, hence the joint influence
    functions rather than dividing the CI by a fixed denominator.
    """
    cf = level - theta
    if not np.isfinite(cf) or cf <= 0:
        return float("nan"), float("nan"), float("nan")
    r = theta / cf
    if_r = (if_theta * level - theta * if_level) / cf**2
    se = float(np.sqrt(np.sum(if_r**2)))
    lo, hi, _ = normal_ci(r, se)
    return float(r), lo, hi
