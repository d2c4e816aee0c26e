"""The estimators on a researcher's own panel: their column names, plain errors, never-enrolled people,
and effects by event time on the count and the relative scale."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis.natural_experiment import PanelColumns, estimate_all, event_study
from analysis.natural_experiment.its import interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.outputs import event_study_output
from analysis.natural_experiment.panel import DensePanel
from analysis.natural_experiment.simulation import simulate_region
from ig_policies.errors import EXIT_BAD_INPUT, ConfigError, InputError

PLANTED = -0.15
OUTCOME = "gp_appointments"

#: A researcher's names for what the research dataset calls client_pseudonym, enrolment_month, ...
THEIRS = PanelColumns(
    person="person_id",
    enrolment_month="start_month",
    month="calendar_month",
    age_band="ageband",
    sex="gender",
    imd_quintile="imd",
    n_conditions="conditions",
    condition_flag_prefix="has_",
    never_enrolled_person="nhs_pid",
    year_of_birth="birth_year",
    diagnosis_prefix="diag_",
)
CLIENT_NAMES = {
    "client_pseudonym": "person_id",
    "enrolment_month": "start_month",
    "month": "calendar_month",
    "age_band": "ageband",
    "sex": "gender",
    "imd_quintile": "imd",
    "n_baseline_conditions": "conditions",
    "gp_depression": "has_depression",
    "gp_appointments": "gp_visits",
}
POOL_NAMES = {"patient_pseudonym": "nhs_pid", "month": "calendar_month", "gp_appointments": "gp_visits"}


@pytest.fixture(scope="module")
def region():
    return simulate_region(
        n_clients=1500, n_pool=3000, seed=31, effects={OUTCOME: PLANTED}, measures=(OUTCOME, "ae_attendances")
    )


@pytest.fixture(scope="module")
def theirs(region):
    """The same region in the researcher's own column names, with no event-time column."""
    panel = region.panel.rename(columns=CLIENT_NAMES).drop(columns="event_time")
    people = region.comparison_people.rename(
        columns={"patient_pseudonym": "nhs_pid", "year_of_birth": "birth_year"}
    )
    people = people.rename(columns={"sex": "gender", "imd_quintile": "imd"})
    people = people.rename(columns={c: "diag_" + c[3:] for c in people.columns if c.startswith("dx_")})
    pool = region.comparison_pool.rename(columns=POOL_NAMES)
    return panel, people, pool


# ---- the same answers under the researcher's column names -------------------------------------


def _same(a, b) -> None:
    fields = ("effect", "ci_low", "ci_high", "relative_change", "relative_ci_low", "relative_ci_high")
    for f in fields:
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-12, abs=1e-12), f
    assert (a.n_people, a.n_comparison_people, a.n_person_months) == (
        b.n_people,
        b.n_comparison_people,
        b.n_person_months,
    )


def test_time_series_on_own_column_names_equals_the_default(region, theirs) -> None:
    panel, _, pool = theirs
    default = interrupted_time_series(region.panel, OUTCOME)
    own = interrupted_time_series(panel, "gp_visits", columns=THEIRS)
    _same(own.estimate, dataclasses.replace(default.estimate, outcome="gp_visits"))
    reference = pool.groupby("calendar_month")["gp_visits"].mean()
    controlled = interrupted_time_series(panel, "gp_visits", calendar_rate=reference, columns=THEIRS)
    assert controlled.estimate.details["calendar_reference"]


def test_time_series_works_out_event_time_instead_of_a_key_error(region) -> None:
    """It used to fail with a bare KeyError: 'event_time' on a panel without that column."""
    without = interrupted_time_series(region.panel.drop(columns="event_time"), OUTCOME)
    _same(without.estimate, interrupted_time_series(region.panel, OUTCOME).estimate)


def test_event_study_on_own_column_names_equals_the_default(region, theirs) -> None:
    panel, _, _ = theirs
    default = event_study(region.panel, OUTCOME, placebo_shift=6)
    own = event_study(panel, "gp_visits", placebo_shift=6, columns=THEIRS)
    _same(own.overall, dataclasses.replace(default.overall, outcome="gp_visits"))
    pd.testing.assert_frame_equal(own.table, default.table)
    pd.testing.assert_frame_equal(own.group_time, default.group_time)
    assert own.pretrend_p == pytest.approx(default.pretrend_p)


def test_matched_comparison_on_own_column_names_equals_the_default(region, theirs) -> None:
    panel, people, pool = theirs
    default = matched_comparison(region.panel, region.comparison_people, region.comparison_pool, OUTCOME)
    own = matched_comparison(panel, people, pool, "gp_visits", columns=THEIRS)
    assert own.n_people > 1000
    _same(own, dataclasses.replace(default, outcome="gp_visits"))


def test_estimate_all_on_own_column_names(region, theirs) -> None:
    panel, people, pool = theirs
    own = estimate_all(
        panel, people, pool, outcomes=("gp_visits",), placebo_shift=None, columns=THEIRS
    ).table()
    default = estimate_all(
        region.panel,
        region.comparison_people,
        region.comparison_pool,
        outcomes=(OUTCOME,),
        placebo_shift=None,
    ).table()
    assert list(own["estimator"]) == ["interrupted_time_series", "event_study", "matched_comparison"]
    np.testing.assert_allclose(own["relative_change"], default["relative_change"], rtol=1e-12)
    assert (own["relative_ci_high"] < 0).all()


# ---- plain errors naming the column (and row), exit code 4 -----------------------------------


def _small() -> pd.DataFrame:
    months = pd.date_range("2020-01-01", periods=8, freq="MS")
    rows = [
        {"person_id": p, "calendar_month": m, "start_month": months[k], "gp_visits": (i + k) % 3}
        for k, p in enumerate(["A", "B", "C", "D"], start=2)
        for i, m in enumerate(months)
    ]
    return pd.DataFrame(rows)


def _set(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    if isinstance(value, str):
        frame[column] = frame[column].astype(object)
    elif column == "gp_visits":
        frame[column] = frame[column].astype(float)
    frame.loc[row, column] = value
    return frame


CASES = [
    # (what is wrong, change to the small panel, column named, row named, words in the message)
    ("no person column", lambda f: f.rename(columns={"person_id": "id"}), "person_id", None, "there is no column"),
    ("no outcome column", lambda f: f.drop(columns="gp_visits"), "gp_visits", None, "the outcome"),
    ("outcome is text", lambda f: _set(f, 5, "gp_visits", "three"), "gp_visits", 6, "is not a number"),
    ("outcome is missing", lambda f: _set(f, 9, "gp_visits", np.nan), "gp_visits", 10, "missing"),
    ("outcome is infinite", lambda f: _set(f, 0, "gp_visits", np.inf), "gp_visits", 1, "infinite"),
    ("outcome is boolean", lambda f: f.assign(gp_visits=f["gp_visits"] > 0), "gp_visits", None, "bool"),
    ("month is not a date", lambda f: _set(f, 3, "calendar_month", "spring"), "calendar_month", 4, "not a date"),
    ("month repeated", lambda f: _set(f, 1, "calendar_month", f.loc[0, "calendar_month"]), "calendar_month", 2, "twice"),
    ("two enrolment months", lambda f: _set(f, 12, "start_month", pd.Timestamp("2020-06-01")), "start_month", 13, "more than one"),
    ("enrolment missing", lambda f: _set(f, 17, "start_month", pd.NaT), "start_month", 18, "never_enrolled="),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "column", "row", "words"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("design", ["event_study", "time_series"])
def test_bad_panels_get_a_plain_error_naming_column_and_row(case, change, column, row, words, design) -> None:
    bad = change(_small())
    with pytest.raises(InputError) as caught:
        if design == "event_study":
            event_study(bad, "gp_visits", months_before=3, months_after=3, placebo_shift=None, columns=THEIRS)
        else:
            interrupted_time_series(bad, "gp_visits", columns=THEIRS)
    err = caught.value
    assert err.exit_code == EXIT_BAD_INPUT
    assert err.column == column and err.row == row, str(err)
    assert words in str(err) and str(err).startswith("panel")


def test_the_time_series_refuses_negative_counts_the_event_study_does_not() -> None:
    bad = _set(_small(), 2, "gp_visits", -1)
    with pytest.raises(InputError, match="negative") as caught:
        interrupted_time_series(bad, "gp_visits", columns=THEIRS)
    assert caught.value.row == 3
    event_study(bad, "gp_visits", months_before=3, months_after=3, placebo_shift=None, columns=THEIRS)


def test_the_default_names_are_named_when_a_researcher_forgets_the_mapping(theirs) -> None:
    panel, people, pool = theirs
    with pytest.raises(InputError, match="(?s)there is no column 'client_pseudonym'.*PanelColumns"):
        interrupted_time_series(panel, "gp_visits")
    with pytest.raises(InputError, match=r"never-enrolled people.*no column 'patient_pseudonym'"):
        matched_comparison(
            panel,
            people,
            pool,
            "gp_visits",
            columns=dataclasses.replace(THEIRS, never_enrolled_person="patient_pseudonym"),
        )
    with pytest.raises(InputError, match="no column 'ageband'"):
        matched_comparison(panel.drop(columns="ageband"), people, pool, "gp_visits", columns=THEIRS)
    with pytest.raises(InputError, match="never-enrolled months.*'gp_visits'"):
        matched_comparison(panel, people, pool.drop(columns="gp_visits"), "gp_visits", columns=THEIRS)


def test_estimate_all_checks_every_outcome_before_estimating(theirs) -> None:
    panel, people, pool = theirs
    with pytest.raises(InputError, match="'steps'") as caught:
        estimate_all(
            panel, people, pool, outcomes=("gp_visits", "steps"), columns=THEIRS, source="my_panel.csv"
        )
    assert str(caught.value).startswith("my_panel.csv")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"person": ""}, "PanelColumns.person"), ({"person": 3}, "PanelColumns.person"), ({"month": "start_month", "enrolment_month": "start_month"}, "must be different")],
)  # fmt: skip
def test_a_bad_column_mapping_is_refused_where_it_is_made(kwargs, words) -> None:
    with pytest.raises(ConfigError, match=words):
        PanelColumns(**kwargs)


def test_a_column_mapping_from_configuration_names_an_unknown_key() -> None:
    assert PanelColumns.from_mapping({"person": "person_id"}) == PanelColumns(person="person_id")
    with pytest.raises(ConfigError, match=r"(?s)study.columns.persn: not a panel column role.*person"):
        PanelColumns.from_mapping({"persn": "person_id"}, where="study.columns")


def test_a_dense_panel_must_hold_the_outcome_asked_for(region) -> None:
    dense = DensePanel.from_long(region.panel, "ae_attendances")
    with pytest.raises(InputError, match="holds 'ae_attendances', not 'gp_appointments'"):
        event_study(dense, OUTCOME)
    assert event_study(dense, "ae_attendances", placebo_shift=None).overall.outcome == "ae_attendances"


# ---- never-enrolled people, explicitly -------------------------------------------------------


def test_never_enrolled_people_are_a_comparison_when_nobody_is_left_to_enrol_later() -> None:
    """Everyone enrols in the same month: without never-enrolled people there is no comparison."""
    region = simulate_region(
        n_clients=1500,
        n_pool=3000,
        seed=41,
        effects={OUTCOME: PLANTED},
        measures=(OUTCOME,),
        enrolment_range=(30, 31),
    )
    panel = region.panel.rename(columns=CLIENT_NAMES)
    pool = region.comparison_pool.rename(columns=POOL_NAMES)
    alone = event_study(panel, "gp_visits", placebo_shift=None, columns=THEIRS)
    assert (
        np.isnan(alone.overall.effect)
        and alone.table["effect"].drop(alone.table.index[alone.table["event_time"] == -1]).isna().all()
    )
    both = event_study(panel, "gp_visits", placebo_shift=None, columns=THEIRS, never_enrolled=pool)
    est = both.overall
    assert est.n_comparison_people > 0.9 * pool["nhs_pid"].nunique()
    assert est.relative_ci_low <= PLANTED <= est.relative_ci_high < 0
    # (the pool is less deprived than the clients, so its seasonal swings are smaller in counts: with one
    # enrolment month the pre-enrolment months are not a clean placebo here, and none is asserted)
    assert set(both.group_time["cohort_month"]) == {panel["start_month"].iloc[0]}


def test_never_enrolled_people_must_not_be_clients_or_have_an_enrolment_month(theirs) -> None:
    panel, _, pool = theirs
    overlap = pd.concat(
        [
            pool,
            panel.loc[:3, ["person_id", "calendar_month", "gp_visits"]].rename(
                columns={"person_id": "nhs_pid"}
            ),
        ]
    )
    with pytest.raises(InputError, match="both clients and never enrolled"):
        event_study(panel, "gp_visits", columns=THEIRS, never_enrolled=overlap)
    with pytest.raises(InputError, match="have an enrolment month") as caught:
        event_study(
            panel,
            "gp_visits",
            columns=THEIRS,
            never_enrolled=pool.assign(start_month=pd.Timestamp("2020-01-01")),
        )
    assert caught.value.column == "start_month"
    with pytest.raises(InputError, match="never-enrolled people.*no column 'nhs_pid'"):
        event_study(panel, "gp_visits", columns=THEIRS, never_enrolled=pool.rename(columns={"nhs_pid": "id"}))


# fmt: skip


def test_never_enrolled_people_add_comparisons_without_moving_the_estimate_far(region, theirs) -> None:
    panel, _, pool = theirs
    alone = event_study(panel, "gp_visits", placebo_shift=None, columns=THEIRS)
    both = event_study(panel, "gp_visits", placebo_shift=None, columns=THEIRS, never_enrolled=pool)
    assert both.overall.n_comparison_people > alone.overall.n_comparison_people + 2000
    assert both.overall.covers(PLANTED) and alone.overall.covers(PLANTED)
    width = lambda e: e.relative_ci_high - e.relative_ci_low  # noqa: E731
    assert width(both.overall) < width(alone.overall)


# ---- effects by event time on both scales ---------------------------------------------------


def test_effects_by_event_time_come_on_the_count_and_the_relative_scale(region) -> None:
    table = event_study(region.panel, OUTCOME, placebo_shift=None).table
    shown = table[table["event_time"] != -1].dropna(subset=["effect"])
    assert len(shown) >= 40  # the last months have nobody left to enrol later
    # relative = effect / counterfactual mean, and every CI contains its estimate
    np.testing.assert_allclose(
        shown["relative_change"] * shown["counterfactual_mean"], shown["effect"], rtol=1e-10
    )
    for lo, est, hi in (
        ("ci_low", "effect", "ci_high"),
        ("relative_ci_low", "relative_change", "relative_ci_high"),
    ):
        assert (shown[lo] < shown[est]).all() and (shown[est] < shown[hi]).all()
    post, pre = shown[shown["event_time"] >= 0], shown[shown["event_time"] < -1]
    # a multiplicative planted effect: the same relative change every month after enrolment
    covered = (post["relative_ci_low"] <= PLANTED) & (post["relative_ci_high"] >= PLANTED)
    assert covered.mean() >= 0.85
    assert post["relative_change"].mean() == pytest.approx(PLANTED, abs=0.05)
    assert ((pre["relative_ci_low"] <= 0) & (pre["relative_ci_high"] >= 0)).mean() >= 0.85
    ref = table[table["event_time"] == -1].iloc[0]
    assert ref["relative_change"] == 0 and ref["effect"] == 0


def test_the_released_event_study_table_carries_both_scales(region) -> None:
    studies = [event_study(region.panel, OUTCOME, placebo_shift=None)]
    out = event_study_output(studies).coefficients
    assert {
        "estimate",
        "ci_lower",
        "ci_upper",
        "relative_change",
        "relative_ci_lower",
        "relative_ci_upper",
    } <= set(out.columns)
    row = out[out["event_time"] == 3].iloc[0]
    source = studies[0].table.set_index("event_time").loc[3]
    assert (
        row["relative_change"] == source["relative_change"]
        and row["relative_ci_upper"] == source["relative_ci_high"]
    )


def test_estimate_all_can_add_the_never_enrolled_pool_to_the_event_study(theirs) -> None:
    from analysis.natural_experiment.outputs import estimates_output, event_study_figure

    panel, people, pool = theirs
    runs = {
        comparison: estimate_all(
            panel,
            people,
            pool,
            outcomes=("gp_visits",),
            placebo_shift=None,
            columns=THEIRS,
            event_study_comparison=comparison,
        )
        for comparison in ("not_yet_enrolled", "not_yet_or_never_enrolled")
    }
    plain, wide = (r.event_studies[0] for r in runs.values())
    assert (plain.comparison, wide.comparison) == ("not_yet_enrolled", "not_yet_or_never_enrolled")
    assert wide.overall.n_comparison_people > plain.overall.n_comparison_people + 2000
    for run in runs.values():
        assert run.event_studies[0].overall.covers(PLANTED)
    said = estimates_output(runs["not_yet_or_never_enrolled"].estimates, [wide]).description
    assert "never-enrolled registered patients" in said
    assert "never-enrolled" not in event_study_output([plain]).description
    figure = event_study_figure(event_study_output([wide]), [wide])
    assert figure.render is not None and figure.render(figure.table.coefficients)[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="never-enrolled people, but there are none"):
        estimate_all(
            panel,
            None,
            None,
            outcomes=("gp_visits",),
            columns=THEIRS,
            event_study_comparison="not_yet_or_never_enrolled",
        )
    with pytest.raises(InputError, match="is not one of"):
        estimate_all(
            panel, None, None, outcomes=("gp_visits",), columns=THEIRS, event_study_comparison="everyone"
        )  # type: ignore[arg-type]
