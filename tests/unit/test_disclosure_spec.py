"""Disclosure-control rules as literal tables: input, policy rules, the table that is released.

Read these as the specification. Policy rules are the demo's (threshold 10, rounding base 5,
dominance n=2 k=0.9, p=10%, residual df 10, zeros disclosive) unless a test says otherwise.
In the expected tables ``-`` is a suppressed cell.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.disclosure import FrequencyTable, MagnitudeTable, ModelResult, Outcome, check_output
from analysis.disclosure.suppression import round_to_base
from ig_policies.policy import Dominance, OutputRules

RULES = OutputRules(
    min_cell_count=10,
    rounding_base=5,
    dominance=Dominance(n=2, k=0.9),
    p_percent=0.10,
    min_residual_df=10,
    zeros_disclosive=True,
)


def literal(text: str) -> pd.DataFrame:
    """A table written as ``| a | b |`` rows; the first row is the header, numbers become ints."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.strip().splitlines()]
    df = pd.DataFrame(rows[1:], columns=rows[0])
    for column in df.columns:
        if df[column].str.fullmatch(r"-?\d+").all():
            df[column] = df[column].astype(int)
    return df


def released(table: FrequencyTable, rules: OutputRules = RULES) -> list[tuple]:
    report = check_output(table, rules)
    column = f"count_{table.unit}_rounded"
    out = report.protected
    return [
        (*row[: len(table.dimensions)], "-" if pd.isna(row[-2]) else int(row[-2]))
        for row in out[[*table.dimensions, column, "note"]].itertuples(index=False)
    ]


# --------------------------------------------------------------------------------------------
# Threshold and rounding, no margins: each cell on its own


def test_threshold_boundary_cells_of_9_10_11() -> None:
    table = literal(
        """
        | age_band | count |
        | 16-24    | 9     |
        | 25-34    | 10    |
        | 35-49    | 11    |
        | 50-64    | 12    |
        | 65+      | 13    |
        """
    )
    t = FrequencyTable(table, ("age_band",), "analysis/clients", "boundary", margins=False)
    assert released(t) == [
        ("16-24", "-"),  # 9 < 10: suppressed
        ("25-34", 10),  # 10 is allowed
        ("35-49", 10),  # 11 rounds to 10
        ("50-64", 10),  # 12 rounds down
        ("65+", 15),  # 13 rounds up
    ]


def test_rounding_to_base_5_half_up() -> None:
    spec = literal(
        """
        | count | rounded |
        | 10    | 10      |
        | 12    | 10      |
        | 13    | 15      |
        | 15    | 15      |
        | 17    | 15      |
        | 18    | 20      |
        | 102   | 100     |
        | 103   | 105     |
        | 1000  | 1000    |
        """
    )
    for count, rounded in spec.itertuples(index=False):
        assert round_to_base(count, 5) == rounded
    assert round_to_base(15, 10) == 20  # half up with an even base
    assert round_to_base(14, 1) == 14  # base 1: no rounding


def test_zeros_suppressed_only_when_the_policy_says_they_are_disclosive() -> None:
    table = literal(
        """
        | condition | count |
        | asthma    | 0     |
        | copd      | 40    |
        """
    )
    t = FrequencyTable(table, ("condition",), "analysis/clients", "zeros", margins=False)
    assert released(t) == [("asthma", "-"), ("copd", 40)]
    permissive = RULES.model_copy(update={"zeros_disclosive": False})
    assert released(t, permissive) == [("asthma", 0), ("copd", 40)]


# --------------------------------------------------------------------------------------------
# Secondary suppression with margins


def test_one_way_table_with_total_suppresses_a_second_cell() -> None:
    table = literal(
        """
        | programme        | count |
        | ways_to_work     | 3     |
        | health_into_work | 40    |
        | other            | 50    |
        """
    )
    t = FrequencyTable(table, ("programme",), "analysis/clients", "one way")
    assert released(t) == [
        ("ways_to_work", "-"),  # primary: fewer than 10
        ("health_into_work", "-"),  # secondary: the smallest other cell
        ("other", 50),
        ("Total", 95),  # 93, rounded
    ]


def test_two_way_table_with_margins_hides_a_rectangle() -> None:
    table = literal(
        """
        | sex | age_band | count |
        | F   | 16-24    | 3     |
        | F   | 25-49    | 40    |
        | F   | 50-64    | 50    |
        | M   | 16-24    | 60    |
        | M   | 25-49    | 70    |
        | M   | 50-64    | 80    |
        """
    )
    t = FrequencyTable(table, ("sex", "age_band"), "analysis/clients", "two way")
    assert released(t) == [
        ("F", "16-24", "-"),  # primary
        ("F", "25-49", "-"),  # secondary: the cheapest rectangle through the small cell
        ("F", "50-64", 50),
        ("M", "16-24", "-"),
        ("M", "25-49", "-"),
        ("M", "50-64", 80),
        ("F", "Total", 95),
        ("M", "Total", 210),
        ("Total", "16-24", 65),
        ("Total", "25-49", 110),
        ("Total", "50-64", 130),
        ("Total", "Total", 305),
    ]


def test_suppressed_cells_share_one_note_so_primary_and_secondary_cannot_be_told_apart() -> None:
    table = literal(
        """
        | programme | count |
        | a         | 3     |
        | b         | 40    |
        | c         | 50    |
        """
    )
    out = check_output(FrequencyTable(table, ("programme",), "analysis/clients", "notes"), RULES).protected
    assert set(out.loc[out["count_people_rounded"].isna(), "note"]) == {"suppressed"}
    assert list(out.columns) == ["programme", "count_people_rounded", "note"]


# --------------------------------------------------------------------------------------------
# Magnitude tables


def test_magnitude_cells_threshold_dominance_and_p_percent() -> None:
    contributions = literal(
        """
        | area | appointments |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | even | 10           |
        | dom  | 500          |
        | dom  | 400          |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | dom  | 5            |
        | few  | 10           |
        | few  | 10           |
        """
    )
    t = MagnitudeTable(contributions, ("area",), "appointments", "analysis/panel", "GP appointments by area")
    report = check_output(t, RULES)
    out = report.protected.set_index("area")
    assert out.loc["even", "sum_appointments"] == 100
    assert out.loc["even", "count_contributors_rounded"] == 10
    assert pd.isna(out.loc["dom", "sum_appointments"])  # top 2 = 900 of 940 > 90%
    assert pd.isna(out.loc["few", "sum_appointments"])  # 2 contributors < 10
    rules = {(f.rule, f.item) for f in report.withheld}
    assert ("dominance", "area=dom") in rules
    assert ("p_percent", "area=dom") in rules  # 940 - 500 - 400 = 40 < 10% of 500
    assert ("contributor_threshold", "area=few") in rules
    assert report.outcome is Outcome.PASS  # every failure is resolved by suppression


def test_p_percent_rule_alone() -> None:
    # top two are 100 and 60 of 200 (80% < 90%: not dominant); remainder 40 >= 10% of 100: safe.
    safe = pd.DataFrame({"g": ["x"] * 10, "v": [100, 60] + [5] * 8})
    # remainder 8 < 10% of 100: the second-largest could estimate the largest within 10%.
    unsafe = pd.DataFrame({"g": ["y"] * 10, "v": [100, 100] + [1] * 8})
    report = check_output(MagnitudeTable(pd.concat([safe, unsafe]), ("g",), "v", "s", "p%"), RULES)
    assert {f.item for f in report.withheld if f.rule == "p_percent"} == {"g=y"}


# --------------------------------------------------------------------------------------------
# Model results


def coefficients(n_people: list[int]) -> pd.DataFrame:
    k = len(n_people)
    return pd.DataFrame(
        {
            "term": [f"x{i}" for i in range(k)],
            "estimate": [0.5] * k,
            "ci_lower": [0.1] * k,
            "ci_upper": [0.9] * k,
            "p_value": [0.01] * k,
            "n_people": n_people,
        }
    )


@pytest.mark.parametrize(
    ("df", "outcome"),
    [
        (9, Outcome.FAIL),
        (10, Outcome.PASS),
        (11, Outcome.PASS),
        (None, Outcome.FAIL),
        (float("nan"), Outcome.FAIL),
    ],
)
def test_residual_df_boundary(df: float | None, outcome: Outcome) -> None:
    m = ModelResult(coefficients([500, 500]), n_obs=500, n_people=500, source="s", title="m", residual_df=df)
    assert check_output(m, RULES).outcome is outcome


def test_coefficients_on_9_10_11_people() -> None:
    m = ModelResult(
        coefficients([9, 10, 11, 500]), n_obs=500, n_people=500, source="s", title="m", residual_df=496
    )
    report = check_output(m, RULES)
    out = report.protected
    assert out["estimate"].isna().tolist() == [True, False, False, False]
    assert out["n_people_rounded"].isna().tolist() == [True, False, False, False]
    assert out["n_people_rounded"].tolist()[1:] == [10, 10, 500]  # counts rounded
    assert out["note"].tolist() == ["suppressed", "", "", ""]
    assert report.outcome is Outcome.PASS


def test_event_study_times_with_too_few_people_are_suppressed() -> None:
    c = coefficients([40, 8, 120, 5])
    c["event_time"] = [-2, -1, 0, 1]
    m = ModelResult(c, n_obs=5000, n_people=200, source="analysis/panel", title="es", kind="event_study")
    report = check_output(m, RULES)
    assert report.protected["estimate"].isna().tolist() == [False, True, False, True]
    assert report.protected["event_time"].tolist() == [-2, -1, 0, 1]
    assert all("event time rests on fewer than 10 people" in f.reason for f in report.withheld)


def test_from_records_counts_distinct_people_and_keeps_empty_cells() -> None:
    records = literal(
        """
        | person | sex | programme |
        | p1     | F   | wtw       |
        | p1     | F   | wtw       |
        | p2     | F   | hiw       |
        | p3     | M   | wtw       |
        """
    )
    t = FrequencyTable.from_records(records, ["sex", "programme"], "person", "analysis/clients", "people")
    counts = {(r.sex, r.programme): r.count for r in t.table.itertuples()}
    assert counts == {("F", "hiw"): 1, ("F", "wtw"): 1, ("M", "hiw"): 0, ("M", "wtw"): 1}
