"""The staggered DiD against a reference implementation (``differences``) on the same panel.

Callaway and Sant'Anna's ATT(g, t) depends on three choices, set the same way on both sides here:

* comparison group: people not yet enrolled *and* never enrolled (``control_group="not_yet_treated"``
  in ``differences``, which always includes the never-treated; our ``never_enrolled=``), i.e. for
  ATT(g, t) everyone whose enrolment month is later than ``max(t, g - 1 - anticipation) +
  anticipation``, other than cohort ``g``;
* base period: universal, ``g - 1 - anticipation`` for every ``t`` before and after enrolment
  (``base_period="universal"``; our event study always compares with that month);
* no covariates, so the outcome-regression estimator (``est_method="reg"``, formula ``"y"``) is the
  difference of mean changes.

On a balanced panel (every person observed every month) the two must agree to rounding error: the
ATT(g, t), their analytic standard errors, and the cohort-size weighted event-time averages. On an
unbalanced panel they differ by design (``differences`` drops or re-weights people with missing
months; we use everyone observed in both months of each comparison), so the panel is balanced.
Clients enrolled in the first month (no month before enrolment) are left out of both.
"""

from __future__ import annotations

import differences
import numpy as np
import pandas as pd
import pytest

from analysis.natural_experiment import PanelColumns, event_study
from analysis.natural_experiment.panel import month_index
from analysis.natural_experiment.simulation import simulate_region

N_MONTHS = 8
#: Both compute the same sums in a different order: agreement to this is agreement.
TOLERANCE = 1e-9
COLUMNS = PanelColumns(
    person="person_id",
    enrolment_month="start_month",
    month="calendar_month",
    never_enrolled_person="never_id",
)


@pytest.fixture(scope="module")
def balanced() -> tuple[pd.DataFrame, pd.DataFrame]:
    region = simulate_region(
        n_clients=500,
        n_pool=250,
        seed=3,
        effects={"gp_appointments": -0.2},
        n_months=N_MONTHS,
        months_before=N_MONTHS,
        months_after=N_MONTHS,
        measures=("gp_appointments",),
    )
    panel = region.panel
    first = panel["month"].min()
    panel = panel[
        (panel.groupby("client_pseudonym")["month"].transform("size") == N_MONTHS)
        & (panel["enrolment_month"] > first)
    ]
    pool = region.comparison_pool
    pool = pool[pool.groupby("patient_pseudonym")["month"].transform("size") == N_MONTHS]
    clients = panel.rename(
        columns={"client_pseudonym": "person_id", "enrolment_month": "start_month", "month": "calendar_month"}
    ).drop(columns="event_time")
    never = pool.rename(columns={"patient_pseudonym": "never_id", "month": "calendar_month"})
    return clients, never


def _reference(clients: pd.DataFrame, never: pd.DataFrame, anticipation: int):
    t0 = int(month_index(clients["calendar_month"]).min())
    data = pd.concat(
        [
            pd.DataFrame(
                {
                    "id": clients["person_id"],
                    "t": month_index(clients["calendar_month"]) - t0,
                    "cohort": (month_index(clients["start_month"]) - t0).astype(float),
                    "y": clients["gp_appointments"].astype(float),
                }
            ),
            pd.DataFrame(
                {
                    "id": never["never_id"],
                    "t": month_index(never["calendar_month"]) - t0,
                    "cohort": np.nan,
                    "y": never["gp_appointments"].astype(float),
                }
            ),
        ]
    ).set_index(["id", "t"])
    att = differences.ATTgt(
        data=data, cohort_column="cohort", base_period="universal", anticipation=anticipation
    )
    group_time = att.fit(formula="y", est_method="reg", control_group="not_yet_treated", progress_bar=False)
    gt = group_time.to_pandas()
    gt.columns = ["att", "se", "ci_lower", "ci_upper", "excludes_zero"]
    gt = gt.reset_index()
    gt = gt[gt["time"] != gt["base_period"]]  # the base month itself is 0 by construction
    event = att.aggregate("event")
    event.columns = ["att", "se", "ci_lower", "ci_upper", "excludes_zero"]
    return t0, gt, event


@pytest.mark.parametrize("anticipation", [0, 1])
def test_group_time_effects_match_the_differences_package(balanced, anticipation: int) -> None:
    clients, never = balanced
    ours = event_study(
        clients,
        "gp_appointments",
        months_before=N_MONTHS,
        months_after=N_MONTHS,
        anticipation=anticipation,
        placebo_shift=None,
        columns=COLUMNS,
        never_enrolled=never,
    )
    t0, ref_gt, ref_event = _reference(clients, never, anticipation)

    gt = ours.group_time.assign(
        cohort=month_index(ours.group_time["cohort_month"]) - t0,
        time=month_index(ours.group_time["month"]) - t0,
    )
    both = ref_gt.merge(gt, on=["cohort", "time"], how="outer", suffixes=("_ref", ""), indicator=True)
    assert (both["_merge"] == "both").all(), both.loc[both["_merge"] != "both", ["cohort", "time"]]
    assert len(both) > 40
    np.testing.assert_allclose(both["att"], both["att_ref"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(both["se"], both["se_ref"], rtol=TOLERANCE, atol=0)

    table = ours.table.set_index("event_time")
    ref_event = ref_event.dropna(subset=["se"])  # the reference month
    shared = ref_event.index.intersection(table.index)
    assert len(shared) == len(ref_event) >= 2 * N_MONTHS - 4
    np.testing.assert_allclose(
        table.loc[shared, "effect"], ref_event.loc[shared, "att"], rtol=0, atol=TOLERANCE
    )
