"""Area targeting: the comparison population, rolling small areas up, and the planted under-served wards."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.area_data import (
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.area_profile import apportion_prevalence, build_area_profile
from analysis.area_targeting import (
    LEVELS,
    WORKING_AGE_OUT_OF_WORK,
    _geojson_polygons,
    area_targeting,
    census_activity_category,
    comparison_population_by_lsoa,
    grid_layout,
    important_conditions,
    load_ward_lookup,
    map_figure,
    pooled,
    quadrant_figure,
    reporting_units,
    run_area_targeting,
    targeting_outputs,
)
from analysis.disclosure import check_output
from analysis.disclosure.report import Outcome
from analysis.equity import ComparisonPopulation
from ig_policies.errors import InputError
from ig_policies.policy import OutputRules
from ig_policies.workspace import Workspace

matplotlib.use("Agg")

PEOPLE = 40_000
RULES = OutputRules()


# ---- the comparison population --------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("Economically active: In employment", "employed"),
        ("Economically active: Unemployed", "unemployed"),
        ("Economically active and a full-time student: Unemployed", "unemployed"),
        ("Economically inactive: Long-term sick or disabled", "inactive_sick"),
        ("Economically inactive: Retired", "inactive_retired"),
        ("Economically inactive: Student", "inactive_student"),
        ("Economically inactive: Looking after home or family", "inactive_home"),
        ("Economically inactive: Other", "inactive_other"),
        ("Does not apply", None),
        ("inactive_sick", "inactive_sick"),
    ],
)
def test_census_labels_map_to_the_comparison_categories(label, category):
    assert census_activity_category(label) == category


def _census_by_group(path: Path, statuses: dict[str, int]) -> Path:
    rows = []
    for lsoa in ("E01000001", "E01000002"):
        for band in ("16-24", "25-34", "35-49", "50-64", "65+"):
            for status, n in statuses.items():
                rows.append({"lsoa21cd": lsoa, "age_band": band, "economic_activity": status, "count": n})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_default_comparison_population_is_working_age_out_of_work_without_retired_or_students(tmp_path):
    path = _census_by_group(
        tmp_path / "census.csv",
        {
            "Economically active: In employment": 100,
            "Economically active: Unemployed": 7,
            "Economically inactive: Long-term sick or disabled": 5,
            "Economically inactive: Looking after home or family": 3,
            "Economically inactive: Retired": 50,
            "Economically inactive: Student": 20,
            "Economically inactive: Other": 1,
        },
    )
    table, notes = comparison_population_by_lsoa(path)
    # four working-age bands of (7 + 5 + 3 + 1); the 65+ band, employed, retired, students left out
    assert table.set_index("lsoa21cd")["comparison_population"].to_dict() == {
        "E01000001": 64,
        "E01000002": 64,
    }
    assert notes == ()
    only_sick = ComparisonPopulation(min_age=50, max_age=64, activity=("inactive_sick",))
    assert comparison_population_by_lsoa(path, only_sick)[0]["comparison_population"].tolist() == [5, 5]


def test_a_census_table_that_lumps_inactive_groups_is_included_and_said(tmp_path):
    path = _census_by_group(
        tmp_path / "census.csv",
        {"Economically inactive: Other": 10, "Economically active: Unemployed": 2},
    )
    table, notes = comparison_population_by_lsoa(path)
    assert table["comparison_population"].tolist() == [48, 48]
    assert len(notes) == 1 and "retired people and students" in notes[0]


def test_an_age_range_that_cuts_a_census_band_is_refused(tmp_path):
    path = _census_by_group(tmp_path / "census.csv", {"Economically active: Unemployed": 2})
    with pytest.raises(InputError, match="cuts the census age band 50-64") as err:
        comparison_population_by_lsoa(path, ComparisonPopulation(min_age=16, max_age=59))
    assert err.value.hint and str(path) in str(err.value)


# ---- geography ------------------------------------------------------------------------------


def test_ward_lookup_reads_any_ward_vintage_and_says_when_there_is_none(tmp_path):
    lookup = pd.DataFrame(
        {"lsoa21cd": ["E01000001", "E01000002"], "lad22cd": ["E08000012"] * 2, "lad22nm": ["Liverpool"] * 2}
    )
    pd.DataFrame(
        {
            "LSOA21CD": ["E01000001"],
            "LSOA21NM": ["Liverpool 001A"],
            "WD23CD": ["E05000001"],
            "WD23NM": ["Anfield"],
        }
    ).to_csv(tmp_path / "wards.csv", index=False)
    wards, notes = load_ward_lookup(tmp_path / "wards.csv", lookup)
    assert wards.set_index("lsoa21cd")["ward_name"].to_dict() == {
        "E01000001": "Anfield",
        "E01000002": "E01000002",
    }
    assert "not in the ward lookup" in notes[0]
    wards, notes = load_ward_lookup(tmp_path / "missing.csv", lookup)
    assert (wards["ward_code"] == "E08000012").all() and "straight to local authorities" in notes[0]


# ---- rolling up small areas -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "rolled"),
    [
        ({"a": 15, "b": 20}, []),  # nothing small
        ({"a": 3, "b": 12, "c": 40}, ["a", "b"]),  # 3 alone would be revealed: the next-smallest joins
        ({"a": 4, "b": 7, "c": 40}, ["a", "b"]),  # two small ones together reach 10
        ({"a": 0, "b": 50, "c": 60}, ["a", "b"]),  # an empty area is rolled up too
        ({"a": 2, "b": 3}, ["a", "b"]),  # everything: the parent is not broken down
        ({"a": 10, "b": 9, "c": 30}, ["b", "a"]),  # a cell of 9 is small, 10 is not
    ],
)
def test_pooling_spec(clients, rolled):
    assert pooled(pd.Series(clients), 10) == rolled


def _area_table(counts: list[list[list[int]]]) -> pd.DataFrame:
    """counts[la][ward][lsoa] -> a table with the columns reporting_units reads."""
    rows = []
    for i, la in enumerate(counts):
        for j, ward in enumerate(la):
            for k, n in enumerate(ward):
                rows.append(
                    {
                        "lsoa21cd": f"E01{i:02d}{j:02d}{k:02d}",
                        "lsoa_name": f"L{i}-{j}-{k}",
                        "ward_code": f"E05{i:02d}{j:02d}",
                        "ward_name": f"W{i}-{j}",
                        "lad22cd": f"E08{i:06d}",
                        "lad22nm": f"LA{i}",
                        "clients": n,
                    }
                )
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=5), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
    )
)
def test_reporting_units_nest_and_every_published_unit_has_enough_clients(counts):
    table = _area_table(counts)
    units = reporting_units(table, 10).units
    total = table["clients"].sum()
    for level in LEVELS:
        per_unit = table.merge(units[level], on="lsoa21cd").groupby("unit_code")["clients"].sum()
        if total >= 10:  # only a region with fewer clients than the threshold has a small unit
            assert (per_unit >= 10).all(), level
    # each finer unit lies inside one coarser unit, so a coarser figure minus the finer ones
    # inside it is a sum of published units, never a hidden small area
    for finer, coarser in (("lsoa", "ward"), ("ward", "local_authority")):
        pair = units[finer][["lsoa21cd", "unit_code"]].merge(
            units[coarser][["lsoa21cd", "unit_code"]], on="lsoa21cd", suffixes=("_f", "_c")
        )
        assert (pair.groupby("unit_code_f")["unit_code_c"].nunique() == 1).all()


# ---- need -----------------------------------------------------------------------------------


def test_need_uses_every_condition_when_the_area_model_cannot_be_estimated():
    profile = pd.DataFrame(
        {
            "lsoa21cd": [f"E0100000{i}" for i in range(6)],
            "inactive_sick_rate": [0.05, 0.06, 0.07, 0.05, 0.08, 0.06],
            "lad22cd": ["E08000012"] * 6,
            "depression": [0.1, 0.12, 0.15, 0.11, 0.2, 0.13],
            "smi": [0.01, 0.012, 0.015, 0.011, 0.02, 0.013],
        }
    )
    need = important_conditions(profile, ["depression", "smi"])
    assert need.conditions == ("depression", "smi") and "cannot be estimated on 6 LSOAs" in need.reason


# ---- the planted region ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    from synthetic.region import generate_region

    ws = Workspace.open(tmp_path_factory.mktemp("targeting") / "ws")
    generate_region(ws, PEOPLE, seed=3)
    enrolments = pd.read_parquet(ws.truth / "enrolments.parquet")
    persons = pd.read_parquet(ws.truth / "persons.parquet")[["person_id", "lsoa21cd"]]
    e = enrolments.merge(persons, on="person_id", how="left")
    clients = pd.DataFrame(
        {
            "client_pseudonym": "C" + e["client_ref"].astype(str),
            "client_cluster": e["person_id"],
            "programme": e["programme"],
            "enrolment_date": pd.to_datetime(e["enrolment_date"]),
            "lsoa21cd": e["lsoa21cd"],
        }
    )
    planted = json.loads((ws.truth / "planted.json").read_text())["under_served_areas"]
    return ws, clients, planted


def _targeting(ws: Workspace, clients: pd.DataFrame):
    ref = ws.reference
    census = load_census_economic_activity(ref / "census_economic_activity.csv")
    lookup = load_lsoa_lookup(ref / "lsoa_lookup.csv")
    prevalence = apportion_prevalence(
        load_qof_prevalence(ref / "qof_prevalence.csv"),
        load_gp_registrations(ref / "gp_registrations_lsoa.csv"),
    )
    profile = build_area_profile(census, prevalence, lookup)
    comparison, notes = comparison_population_by_lsoa(ref / "census_economic_activity_by_group.csv")
    geography, ward_notes = load_ward_lookup(ref / "lsoa_ward_lookup.csv", lookup)
    return area_targeting(
        census, profile, comparison, geography, clients, RULES.min_cell_count, RULES.rounding_base,
        notes=(*notes, *ward_notes),
    )  # fmt: skip


def test_the_planted_truth_names_the_under_served_wards(region):
    ws, _, planted = region
    wards = pd.read_csv(ws.reference / "lsoa_ward_lookup.csv")
    assert list(wards.columns) == ["LSOA21CD", "LSOA21NM", "WD22CD", "WD22NM", "LAD22CD", "LAD22NM"]
    assert len(planted["wards"]) == 3 and planted["enrolment_odds_ratio"] < 1
    assert len({w["lad22cd"] for w in planted["wards"]}) == 3  # in different local authorities
    persons = pd.read_parquet(ws.truth / "persons.parquet", columns=["lsoa21cd", "under_served_area"])
    flagged = set(persons.loc[persons["under_served_area"], "lsoa21cd"])
    assert flagged == {lsoa for w in planted["wards"] for lsoa in w["lsoas"]}


def test_area_targeting_finds_the_planted_under_served_wards(region):
    ws, clients, planted = region
    result = _targeting(ws, clients)
    planted_wards = {w["wd22cd"] for w in planted["wards"]}
    wards = result.tables["ward"]
    quadrant = set(result.quadrant("ward")["unit_code"])
    assert planted_wards <= quadrant
    # and they head the ranked list
    top = wards.sort_values("rank").head(len(planted_wards))
    assert set(top["unit_code"]) == planted_wards
    # by LSOA, every planted LSOA is reported in a high-need, low-reach area
    lsoas = result.tables["lsoa"].merge(
        result.units.units["lsoa"], on=["unit_code", "unit_name", "unit_level"]
    )
    planted_lsoas = {lsoa for w in planted["wards"] for lsoa in w["lsoas"]}
    assert lsoas.loc[lsoas["lsoa21cd"].isin(planted_lsoas), "high_need_low_reach"].all()
    # reach is published from the rounded count
    lsoa = result.tables["lsoa"]
    counts = lsoa["reach_per_1000"] * lsoa["comparison_population"] / 1000
    steps = counts / RULES.rounding_base
    assert np.allclose(steps, np.round(steps)) and not np.allclose(lsoa["clients"], counts)
    # the synthetic census gives the reasons for inactivity, so retired people and students are left out
    assert not any("retired" in note for note in result.notes)


def _assert_legible(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    for text in fig.findobj(matplotlib.text.Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_text()]
            for a, b in zip(labels, labels[1:], strict=False):
                assert not a.overlaps(b)


def test_outputs_pass_disclosure_control_and_charts_are_legible(region, tmp_path):
    ws, clients, _ = region
    result = _targeting(ws, clients)
    outputs = targeting_outputs(result, RULES.min_cell_count)
    assert [name for name, _ in outputs] == [
        "area-targeting-lsoa",
        "area-targeting-lsoa-quadrant",
        "area-targeting-ward",
        "area-targeting-ward-quadrant",
        "area-targeting-local-authority",
        "area-targeting-map",
    ]
    for name, output in outputs:
        report = check_output(output, RULES)
        assert report.outcome == Outcome.PASS, name
        if name.endswith(("quadrant", "map")):
            assert report.png and report.png.startswith(b"\x89PNG")
        else:
            assert (report.protected["n_people_rounded"] >= RULES.min_cell_count).all()
            assert report.protected["note"].eq("").all()
    protected = check_output(outputs[0][1], RULES).protected
    import matplotlib.pyplot as plt

    fig = quadrant_figure(protected, "Need against reach by LSOA (combined areas where small)")
    _assert_legible(fig)
    plt.close(fig)
    units = result.units.units["lsoa"][["lsoa21cd", "unit_name"]].rename(columns={"unit_name": "term"})
    fig = map_figure(
        protected, units, "Where need is high and reach is low", layout=grid_layout(result.geography)
    )
    _assert_legible(fig)
    plt.close(fig)


def test_a_boundary_file_gives_a_choropleth(tmp_path):
    features = []
    for i, code in enumerate(("E01000001", "E01000002")):
        square = [[i, 0], [i + 1, 0], [i + 1, 1], [i, 1], [i, 0]]
        geometry = (
            {"type": "Polygon", "coordinates": [square]}
            if i == 0
            else {"type": "MultiPolygon", "coordinates": [[square]]}
        )
        features.append({"type": "Feature", "properties": {"LSOA21CD": code}, "geometry": geometry})
    path = tmp_path / "lsoa_boundaries.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    polygons = _geojson_polygons(path)
    assert set(polygons) == {"E01000001", "E01000002"}
    protected = pd.DataFrame(
        {"term": ["A", "B"], "need_index": [1.4, 0.8], "reach_index": [0.5, 1.2], "rank": [1.0, 2.0]}
    )
    units = pd.DataFrame({"lsoa21cd": ["E01000001", "E01000002"], "term": ["A", "B"]})
    fig = map_figure(protected, units, "Choropleth", boundaries=polygons)
    assert len(fig.axes[0].patches) == 2
    _assert_legible(fig)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_stage_requests_every_output_through_the_policy_engine(region, tmp_path, master_secret_env):
    import shutil

    from ig_policies.demo import demo_engine
    from ig_policies.policy import read_policy_document

    source, clients, _ = region
    ws = Workspace.open(tmp_path / "ws")
    shutil.copytree(source.reference, ws.reference, dirs_exist_ok=True)
    ws.analysis.mkdir(parents=True, exist_ok=True)
    clients.to_parquet(ws.analysis / "clients.parquet", index=False)
    doc = read_policy_document(Path(__file__).parents[2] / "ig_policies" / "configs" / "demo" / "policy.yaml")
    assert "area_targeting" in doc["analyses"]  # the demo policy permits it
    engine = demo_engine(ws)
    out = run_area_targeting(ws, engine, "demo-researcher")
    assert out.analysis == "area_targeting"
    assert len(out.requests) == 6 and not out.blocked
    assert any("high-need" in s or "above-average need" in s for s in out.sentences)
    entries = [
        json.loads(line) for f in sorted(ws.audit.glob("*.jsonl")) for line in f.read_text().splitlines()
    ]
    step = [e for e in entries if e.get("action") == "area_targeting"]
    assert step and step[-1]["decision"] == "allowed"


def test_the_stage_is_refused_when_the_policy_does_not_permit_it(region, tmp_path, master_secret_env):
    from ig_policies.demo import demo_engine, write_demo_policy
    from ig_policies.errors import PolicyRefused
    from ig_policies.policy import read_policy_document

    ws = Workspace.open(tmp_path / "ws")
    doc = read_policy_document(Path(__file__).parents[2] / "ig_policies" / "configs" / "demo" / "policy.yaml")
    without = [a for a in doc["analyses"] if a != "area_targeting"]
    policy = write_demo_policy(tmp_path / "policy.yaml", {"analyses": without})
    with pytest.raises(PolicyRefused) as err:
        run_area_targeting(ws, demo_engine(ws, policy), "demo-researcher")
    assert err.value.hint


def test_working_age_default_matches_the_issue():
    assert ComparisonPopulation() == WORKING_AGE_OUT_OF_WORK  # the equity audit's default
    assert (WORKING_AGE_OUT_OF_WORK.min_age, WORKING_AGE_OUT_OF_WORK.max_age) == (16, 64)
    assert "inactive_retired" not in WORKING_AGE_OUT_OF_WORK.activity
    assert "inactive_student" not in WORKING_AGE_OUT_OF_WORK.activity
