"""Properties of frequency-table protection, on random small tables (few examples in the suite)."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.disclosure import FrequencyTable, check_output
from analysis.disclosure.suppression import build_grid, feasible_interval
from ig_policies.policy import OutputRules

# Small counts on purpose: most tables then need primary and secondary suppression.
counts = st.integers(min_value=0, max_value=40)


@st.composite
def tables(draw: st.DrawFn) -> tuple[FrequencyTable, OutputRules]:
    rows = draw(st.integers(1, 4))
    cols = draw(st.integers(1, 4))
    two_way = draw(st.booleans()) and cols > 1
    if two_way:
        data = [(f"r{i}", f"c{j}", draw(counts)) for i in range(rows) for j in range(cols)]
        df = pd.DataFrame(data, columns=["row", "col", "count"])
        dims: tuple[str, ...] = ("row", "col")
    else:
        data = [(f"c{j}", draw(counts)) for j in range(rows * cols)]
        df = pd.DataFrame(data, columns=["col", "count"])
        dims = ("col",)
    rules = OutputRules(
        min_cell_count=draw(st.sampled_from([5, 10])),
        rounding_base=draw(st.sampled_from([1, 5])),
        zeros_disclosive=draw(st.booleans()),
    )
    return FrequencyTable(df, dims, "analysis/clients", "random"), rules


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_no_released_cell_rests_on_fewer_people_than_the_threshold(
    case: tuple[FrequencyTable, OutputRules],
) -> None:
    table, rules = case
    report = check_output(table, rules)
    grid = build_grid(table)
    out = report.protected
    for key, shown in zip(grid.keys, out["count_people_rounded"], strict=True):
        if pd.isna(shown):
            continue
        true = grid.counts[key]
        assert true >= rules.min_cell_count or (true == 0 and not rules.zeros_disclosive), (key, true)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_no_small_cell_can_be_worked_out_from_what_is_published(
    case: tuple[FrequencyTable, OutputRules],
) -> None:
    table, rules = case
    report = check_output(table, rules)
    grid = build_grid(table)
    hidden = set(grid.keys[i] for i, v in enumerate(report.protected["count_people_rounded"]) if pd.isna(v))
    small = {k for k in hidden if grid.counts[k] < rules.min_cell_count}
    for key in small:
        low, high = feasible_interval(grid, hidden, key)
        assert high - low >= 1.0 - 1e-9, (key, low, high)
