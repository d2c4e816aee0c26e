"""Adversarial outputs: each must be blocked (refused, or the offending item withheld) with its reason."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.disclosure import (
    Figure,
    FrequencyTable,
    MagnitudeTable,
    ModelResult,
    Outcome,
    check_output,
)
from analysis.disclosure.ledger import ledger_entry_for
from analysis.disclosure.outputs import kind_of
from analysis.disclosure.suppression import build_grid, feasible_interval
from ig_policies.errors import DisclosureBlocked
from ig_policies.policy import OutputRules

RULES = OutputRules()  # the demo rules: 10, base 5, (2, 0.9), 10%, df 10, zeros disclosive


def freq(rows: list[tuple], dims: tuple[str, ...], title: str = "t", source: str = "analysis/clients", **kw):
    return FrequencyTable(pd.DataFrame(rows, columns=[*dims, "count"]), dims, source, title, **kw)


def test_a_cell_of_3_is_suppressed_with_its_reason() -> None:
    report = check_output(freq([("a", 3), ("b", 40), ("c", 50)], ("group",), margins=False), RULES)
    [finding] = [f for f in report.withheld if f.rule == "threshold"]
    assert finding.item == "group=a"
    assert "fewer than 10 people" in finding.reason
    assert "3" not in finding.reason  # the report never quotes a suppressed value
    assert pd.isna(report.protected.set_index("group").loc["a", "count_people_rounded"])


def test_a_suppressed_cell_derivable_from_margins_is_protected() -> None:
    exact = OutputRules(rounding_base=1)  # no rounding, so the attack would be exact
    table = freq(
        [("F", "young", 3), ("F", "old", 40), ("M", "young", 60), ("M", "old", 70)],
        ("sex", "age"),
    )
    grid = build_grid(table)
    small = ("F", "young")
    # Primary suppression alone: the attacker subtracts the rest of the row from its total.
    assert feasible_interval(grid, {small}, small) == pytest.approx((3.0, 3.0))
    report = check_output(table, exact)
    hidden = {f.key for f in report.withheld}
    assert small in hidden and len(hidden) > 1
    low, high = feasible_interval(grid, hidden, small)
    assert high - low >= 1  # every published number together no longer pins it down
    assert any(
        f.rule == "secondary_suppression" and "worked out from the totals" in f.reason
        for f in report.withheld
    )


def test_two_overlapping_tables_that_difference_to_a_small_cell_are_blocked() -> None:
    first = freq([("16-24", 120), ("25-49", 300), ("50-64", 200)], ("age_band",), "all clients")
    # The same table with one small group (3 people, e.g. one local authority) left out.
    second = freq([("16-24", 117), ("25-49", 300), ("50-64", 200)], ("age_band",), "clients outside LA X")
    earlier = [ledger_entry_for(first, "r1")]
    report = check_output(second, RULES, earlier)
    assert report.outcome is Outcome.FAIL
    reasons = [f for f in report.blocking if f.rule == "differencing"]
    assert {f.item for f in reasons} >= {"table total", "age_band=16-24"}
    assert all("fewer than 10" in f.reason and "r1" in f.reason for f in reasons)
    # From a different source, or when the difference is large, nothing is flagged.
    assert (
        check_output(
            second, RULES, [ledger_entry_for(freq([("16-24", 120)], ("age_band",), source="x"), "r")]
        ).outcome
        is Outcome.PASS
    )
    bigger = freq([("16-24", 100), ("25-49", 300), ("50-64", 200)], ("age_band",))
    assert check_output(bigger, RULES, earlier).outcome is Outcome.PASS


def test_a_total_released_twice_with_one_category_moved_is_flagged() -> None:
    first = freq([("16-24", 120), ("25-49", 300), ("50-64", 200)], ("age_band",))
    moved = freq([("16-25", 124), ("26-49", 296), ("50-64", 200)], ("age_band",))  # 4 people aged 25 moved
    report = check_output(moved, RULES, [ledger_entry_for(first, "r1")])
    flagged = {f.item for f in report.blocking if f.rule == "differencing"}
    assert "age_band=16-25 against age_band=16-24" in flagged
    assert "age_band=26-49 against age_band=25-49" in flagged
    assert report.outcome is Outcome.REVIEW  # regrouping is judged by the officer; it cannot pass silently


def test_a_regression_with_too_few_residual_df_is_refused() -> None:
    coefs = pd.DataFrame(
        {"term": ["a", "b"], "estimate": [1.0, 2.0], "ci_lower": [0.0, 1.0], "ci_upper": [2.0, 3.0],
         "p_value": [0.1, 0.2], "n_people": [200, 200]}
    )  # fmt: skip
    report = check_output(
        ModelResult(coefs, n_obs=14, n_people=14, source="s", title="m", residual_df=4), RULES
    )
    assert report.outcome is Outcome.FAIL
    assert any(
        f.rule == "residual_df" and "fewer than 10 residual degrees of freedom" in f.reason
        for f in report.blocking
    )


def test_a_dominated_magnitude_cell_is_suppressed() -> None:
    values = [1000, 50] + [1] * 10
    t = MagnitudeTable(
        pd.DataFrame({"area": ["x"] * 12, "cost": values}), ("area",), "cost", "s", "cost by area"
    )
    report = check_output(t, RULES)
    assert any(f.rule == "dominance" and "largest 2" in f.reason for f in report.withheld)
    assert report.protected["sum_cost"].isna().all()


def test_a_person_level_table_of_500_rows_is_refused() -> None:
    people = pd.DataFrame({"client_pseudonym": [f"C{i:020x}" for i in range(500)], "count": 1})
    report = check_output(FrequencyTable(people, ("client_pseudonym",), "analysis/clients", "list"), RULES)
    assert report.outcome is Outcome.FAIL
    reasons = " ".join(f.reason for f in report.blocking if f.rule == "row_level")
    assert "pseudonyms" in reasons and "at most one person" in reasons
    # Without any identifier column: 500 rows of one person each is still a list of people.
    anonymous = pd.DataFrame({"year_month_day": [f"d{i}" for i in range(500)], "count": 1})
    report = check_output(FrequencyTable(anonymous, ("year_month_day",), "analysis/clients", "list"), RULES)
    assert any(f.rule == "row_level" for f in report.blocking)
    # And a raw DataFrame is not an output at all.
    with pytest.raises(DisclosureBlocked, match="only frequency tables"):
        kind_of(people)


def test_a_figure_whose_table_fails_is_refused() -> None:
    coefs = pd.DataFrame(
        {
            "term": ["a"],
            "estimate": [1.0],
            "ci_lower": [0.0],
            "ci_upper": [2.0],
            "p_value": [0.1],
            "n_people": [200],
        }
    )
    bad_model = ModelResult(coefs, n_obs=12, n_people=12, source="s", title="m", residual_df=3)
    figure = Figure(bad_model, "coefficient plot", render=lambda table: b"\x89PNG\r\n\x1a\n")
    report = check_output(figure, RULES)
    assert report.outcome is Outcome.FAIL
    assert {f.rule for f in report.blocking} >= {"residual_df"}
    # A picture of a table that protection had to change cannot be released either.
    table = freq([("a", 3), ("b", 40), ("c", 50)], ("group",))
    report = check_output(Figure(table, "bar chart", png=b"\x89PNG\r\n\x1a\n"), RULES)
    assert any(f.rule == "figure" and f.outcome is Outcome.FAIL for f in report.blocking)


def test_a_figure_is_drawn_from_the_protected_table() -> None:
    seen: list[pd.DataFrame] = []

    def render(table: pd.DataFrame) -> bytes:
        seen.append(table)
        return b"\x89PNG\r\n\x1a\n"

    table = freq([("a", 3), ("b", 40), ("c", 50)], ("group",))
    report = check_output(Figure(table, "bar chart", render=render), RULES)
    assert report.outcome is Outcome.PASS
    [drawn] = seen
    assert drawn["count_people_rounded"].isna().sum() == 2  # the chart never sees the small cell


def test_min_max_and_percentiles_are_refused() -> None:
    t = MagnitudeTable(
        pd.DataFrame({"g": ["x"] * 20, "v": range(20)}), ("g",), "v", "s", "max", statistic="max"
    )
    assert any(f.rule == "individual_values" for f in check_output(t, RULES).blocking)
    coefs = pd.DataFrame(
        {
            "term": ["a"],
            "estimate": [1.0],
            "ci_lower": [0.0],
            "ci_upper": [2.0],
            "p_value": [0.1],
            "n_people": [200],
        }
    )
    m = ModelResult(coefs, 200, 200, "s", "m", residual_df=198, statistics={"max_age": 97.0, "aic": 10.0})
    assert any(
        f.rule == "individual_values" and "max_age" in f.reason for f in check_output(m, RULES).blocking
    )


def test_ordinary_statistics_columns_are_not_mistaken_for_identifiers() -> None:
    coefs = pd.DataFrame(
        {"term": ["age_band[50-64]"], "estimate": [1.2], "ci_lower": [1.0], "ci_upper": [1.4], "p_value": [0.01],
         "n_people": [300], "t_stat": [2.5], "std_error": [0.1]}
    )  # fmt: skip
    m = ModelResult(coefs, n_obs=900, n_people=900, source="s", title="m", residual_df=880)
    assert check_output(m, RULES).outcome is Outcome.PASS
    # ... while token columns are.
    coefs["t_nhs_number"] = ["ab" * 32]
    m = ModelResult(coefs, n_obs=900, n_people=900, source="s", title="m", residual_df=880)
    assert any(f.rule == "row_level" for f in check_output(m, RULES).blocking)


def test_a_suppressed_cell_derivable_from_an_earlier_release_is_protected() -> None:
    by_age = freq([("16-24", 120), ("25-49", 300), ("50-64", 200)], ("age_band",), "by age")
    earlier = ledger_entry_for(by_age, "r1", report=check_output(by_age, RULES))
    # Without totals, but the earlier table already published the age-band totals of the same people.
    by_sex_age = freq(
        [("F", "16-24", 3), ("M", "16-24", 117), ("F", "25-49", 150), ("M", "25-49", 150),
         ("F", "50-64", 100), ("M", "50-64", 100)],
        ("sex", "age_band"),
        "by sex and age",
        margins=False,
    )  # fmt: skip
    alone = check_output(by_sex_age, RULES)
    assert {f.key for f in alone.withheld} == {("F", "16-24")}  # nothing to work it out from
    report = check_output(by_sex_age, RULES, [earlier])
    assert {f.key for f in report.withheld} >= {("F", "16-24"), ("M", "16-24")}  # 120 - 117 would give 3
    assert any("earlier releases" in f.reason for f in report.withheld if f.rule == "secondary_suppression")
    assert report.outcome is Outcome.PASS
