"""Research dataset: clients table and person-month panel built from tiny literal inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.research_dataset import (
    CLIENT_COLUMNS,
    PanelSpec,
    ResearchDatasetInputs,
    age_band,
    build_tables,
    imd_quintile,
    write_tables,
)
from analysis.vocabulary import MEASURES
from ig_policies.errors import InputError
from ig_policies.workspace import Workspace

CONTRACT_CLIENT_COLUMNS = [
    "client_pseudonym",
    "client_cluster",
    "programme",
    "patient_pseudonym",
    "linked",
    "enrolment_date",
    "age_band",
    "sex",
    "ethnicity",
    "imd_quintile",
    "lsoa21cd",
    "local_authority",
    "job_start",
    "sustained_26_weeks",
    "linkage_weight",
]


def _write_inputs(ws: Workspace) -> ResearchDatasetInputs:
    """Three clients (two enrolments of one person, one unlinked), three patients (one never enrolled)."""
    links = pd.DataFrame(
        {
            "client_pseudonym": ["C1", "C1b", "C2", "C3"],
            "programme": ["ways_to_work", "health_into_work", "ways_to_work", "ways_to_work"],
            "patient_pseudonym": ["P1", "P1", "P2", None],
            "match_probability": [0.99, 0.98, 0.97, 0.1],
            "match_weight": [20.0, 19.0, 18.0, -3.0],
            "match_status": ["matched", "matched", "matched", "unmatched"],
            "client_cluster": ["K1", "K1", "K2", "K3"],
        }
    )
    links.to_parquet(ws.linked / "links.parquet")
    es = pd.DataFrame(
        {
            "client_pseudonym": ["C1", "C1b", "C2", "C3"],
            "programme": ["ways_to_work", "health_into_work", "ways_to_work", "ways_to_work"],
            "t_forename": ["aa", "bb", "cc", "dd"],
            "sex": ["F", "F", "M", None],
            "year_of_birth": [1990, 1990, 1960, 2001],
            "ethnicity": ["White", "White", "Black", "Asian"],
            "lsoa21cd": ["E1", "E1", "E2", "E3"],
            "local_authority": ["Liverpool", "Liverpool", "Wirral", "Sefton"],
            "enrolment_date": pd.to_datetime(["2021-03-15", "2022-06-01", "2020-01-10", "2021-01-01"]),
            **{f"sr_{c}": [False, True, False, False] for c in ("depression", "diabetes")},
            "job_start": [True, False, False, True],
            "sustained_26_weeks": [True, False, False, False],
        }
    )
    (ws.pseudonymised / "employment_support").mkdir(parents=True, exist_ok=True)
    es.to_parquet(ws.pseudonymised / "employment_support" / "part-00000.parquet")
    demo = pd.DataFrame(
        {
            "patient_pseudonym": ["P1", "P2", "P9"],
            "t_nhs_number": ["x", "y", "z"],
            "sex": ["F", "M", "M"],
            "year_of_birth": [1990, 1960, 1970],
            "ethnicity": ["White", "Black", "White"],
            "lsoa21cd": ["E1", "E2", "E2"],
            "practice_code": ["N1", "N1", "N2"],
            # P1 registers mid-window (2020-06) and leaves 2022-05; P2 dies in 2020-08.
            "registration_start": pd.to_datetime(["2020-06-20", "2010-01-01", "2015-01-01"]),
            "registration_end": pd.to_datetime(["2022-05-03", None, None]),
            "date_of_death": pd.to_datetime([None, "2020-08-15", None]),
        }
    )
    (ws.pseudonymised / "health_demographics").mkdir(parents=True, exist_ok=True)
    demo.to_parquet(ws.pseudonymised / "health_demographics" / "part-00000.parquet")
    cond = pd.DataFrame(
        {
            "patient_pseudonym": ["P1", "P1", "P2", "P9"],
            "condition": ["depression", "asthma", "diabetes", "copd"],
            "diagnosis_date": pd.to_datetime(["2019-05-01", "2023-01-01", "2005-01-01", "2016-01-01"]),
        }
    )
    (ws.pseudonymised / "health_conditions").mkdir(parents=True, exist_ok=True)
    cond.to_parquet(ws.pseudonymised / "health_conditions" / "part-00000.parquet")
    act = pd.DataFrame(
        {
            "patient_pseudonym": ["P1", "P1", "P1", "P2", "P9", "P9"],
            "month": pd.to_datetime(
                ["2021-03-01", "2021-03-01", "2021-04-01", "2019-06-01", "2019-01-01", "2025-12-01"]
            ),
            "measure": ["gp_appointments", "ae_attendances", "gp_appointments", "gp_appointments"]
            + ["gp_appointments"] * 2,
            "count": [2, 1, 3, 5, 1, 4],
        }
    )
    (ws.pseudonymised / "health_activity").mkdir(parents=True, exist_ok=True)
    act.to_parquet(ws.pseudonymised / "health_activity" / "part-00000.parquet")
    pd.DataFrame(
        {
            "lsoa21cd": ["E1", "E2", "E3"],
            "lsoa21nm": ["a", "b", "c"],
            "lad22cd": ["L", "L", "L"],
            "lad22nm": ["x", "x", "x"],
            "imd_decile": [1, 4, 10],
        }
    ).to_csv(ws.reference / "lsoa_lookup.csv", index=False)
    return ResearchDatasetInputs.of(ws)


@pytest.fixture
def tables(workspace: Workspace):
    return build_tables(_write_inputs(workspace), PanelSpec())


def test_clients_table_keeps_the_contract_columns_one_row_per_enrolment(tables) -> None:
    clients = tables.clients
    assert list(clients.columns) == list(CLIENT_COLUMNS)
    assert set(CONTRACT_CLIENT_COLUMNS) <= set(clients.columns)
    assert len(clients) == 4
    c = clients.set_index("client_pseudonym")
    assert c.loc["C1", "age_band"] == "25-34" and c.loc["C2", "age_band"] == "50-64"
    assert c.loc["C1", "imd_quintile"] == 1 and c.loc["C3", "imd_quintile"] == 5
    assert c.loc["C3", "sex"] == "unknown"
    assert not c.loc["C3", "linked"] and pd.isna(c.loc["C3", "patient_pseudonym"])
    # Baseline GP conditions: diagnosed before enrolment only, and only for linked clients.
    assert c.loc["C1", "gp_depression"] and not c.loc["C1", "gp_asthma"]
    assert c.loc["C2", "gp_diabetes"]
    assert pd.isna(c.loc["C3", "gp_depression"])
    assert c.loc["C1", "first_enrolment"] and not c.loc["C1b", "first_enrolment"]
    # four clients are too few for a linkage model: every linked client has the stabilised weight 1
    assert c.loc["C1", "linkage_weight"] == pytest.approx(1.0) and pd.isna(c.loc["C3", "linkage_weight"])
    assert "t_forename" not in clients.columns


def test_panel_has_registered_living_months_only_with_zero_filled_counts(tables) -> None:
    panel = tables.panel
    assert set(panel["client_pseudonym"]) == {"C1", "C2"}  # first enrolment of K1; C3 unlinked
    p1 = panel[panel["client_pseudonym"] == "C1"].set_index("month")
    # Registered 2020-06 .. 2022-05; enrolled 2021-03: event time -9 .. +14.
    assert p1.index.min() == pd.Timestamp("2020-06-01") and p1.index.max() == pd.Timestamp("2022-05-01")
    assert p1["event_time"].min() == -9 and p1["event_time"].max() == 14
    assert len(p1) == 24
    assert p1.loc["2021-03-01", "gp_appointments"] == 2 and p1.loc["2021-03-01", "ae_attendances"] == 1
    assert p1.loc["2021-04-01", "gp_appointments"] == 3
    assert p1.loc["2021-05-01", list(MEASURES)].sum() == 0  # registered, no activity: a true zero
    assert (p1["enrolment_month"] == pd.Timestamp("2021-03-01")).all()
    # P2 enrolled 2020-01, died 2020-08: months from 2019-01 (study start) to the death month only.
    p2 = panel[panel["client_pseudonym"] == "C2"]
    assert p2["month"].min() == pd.Timestamp("2019-01-01")  # study window starts at first activity month
    assert p2["month"].max() == pd.Timestamp("2020-08-01")
    assert p2["event_time"].tolist() == list(range(-12, 8))
    assert p2.loc[p2["month"] == "2019-06-01", "gp_appointments"].item() == 5
    assert {"age_band", "sex", "imd_quintile", "gp_depression", "n_baseline_conditions"} <= set(panel.columns)


def test_panel_window_is_configurable(workspace: Workspace) -> None:
    t = build_tables(_write_inputs(workspace), PanelSpec(months_before=3, months_after=2))
    assert t.panel["event_time"].between(-3, 2).all()
    assert len(t.panel[t.panel["client_pseudonym"] == "C1"]) == 6


def test_comparison_pool_is_never_linked_patients_with_calendar_months(tables) -> None:
    assert tables.comparison_people["patient_pseudonym"].tolist() == ["P9"]
    assert tables.comparison_people.loc[0, "dx_copd"] == pd.Timestamp("2016-01-01")
    pool = tables.comparison_pool
    assert len(pool) == 84  # 2019-01 .. 2025-12, registered throughout
    assert pool["gp_appointments"].sum() == 5


def test_write_tables_writes_atomically_to_analysis(tables, workspace: Workspace) -> None:
    paths = write_tables(tables, workspace.analysis)
    for p in paths.values():
        assert p.exists() and p.parent == workspace.analysis
    back = pd.read_parquet(paths["panel"])
    assert len(back) == len(tables.panel)
    assert not [p for p in workspace.analysis.iterdir() if p.name.startswith(".")]


def test_missing_input_is_a_plain_input_error(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        build_tables(ResearchDatasetInputs.of(ws))


def test_banding_helpers() -> None:
    ages = pd.Series([15, 16, 24, 25, 64, 65, None], dtype="Float64")
    assert age_band(ages).tolist() == ["unknown", "16-24", "16-24", "25-34", "50-64", "65+", "unknown"]
    assert imd_quintile(pd.Series([1, 2, 3, 10, None])).tolist()[:4] == [1, 1, 2, 5]


@pytest.mark.usefixtures("master_secret_env")
def test_stage_writes_analysis_tables_under_the_policy_engine_and_is_audited(workspace: Workspace) -> None:
    import json

    from analysis.research_dataset import build_research_dataset
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_USERS, demo_engine
    from ig_policies.errors import PolicyRefused

    _write_inputs(workspace)
    engine = demo_engine(workspace)
    result = build_research_dataset(workspace, engine, DEMO_USERS["data_processor"])
    assert result.clients_path == workspace.analysis / "clients.parquet" and result.clients_path.exists()
    assert result.panel_path.exists() and result.comparison_pool_path.exists()
    assert (result.n_enrolments, result.n_linked, result.n_panel_people) == (4, 3, 2)
    entries = AuditLog.for_workspace(workspace).entries()
    stage = [e for e in entries if e["action"] == "build_research_dataset"]
    assert stage and stage[-1]["decision"] == "allowed"
    text = json.dumps(entries)
    assert "C1b" not in text and "P9" not in text  # counts and hashes only, no pseudonyms
    with pytest.raises(PolicyRefused):
        build_research_dataset(workspace, engine, DEMO_USERS["researcher"])


@pytest.mark.usefixtures("master_secret_env")
def test_cli_builds_the_research_dataset_and_refuses_a_researcher(workspace: Workspace) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS, write_demo_policy
    from ig_policies.errors import EXIT_REFUSED

    _write_inputs(workspace)
    common = [
        "--workspace",
        str(workspace.root),
        "--policy",
        str(DEMO_POLICY),
        "--trust-store",
        str(DEMO_TRUST_STORE),
    ]
    runner = CliRunner()
    ok = runner.invoke(app, ["research-dataset", *common, "--months-before", "6"])
    assert ok.exit_code == 0, ok.output
    assert "4 enrolments (3 linked)" in ok.output and "analysis/panel.parquet" in ok.output
    assert pd.read_parquet(workspace.analysis / "panel.parquet")["event_time"].min() >= -6
    no_processor = write_demo_policy(
        workspace.root.parent / "no-processor.yaml",
        {"users": [{"name": DEMO_USERS["researcher"], "role": "researcher"}]},
    )
    refused = runner.invoke(
        app, ["research-dataset", *[str(no_processor) if c == str(DEMO_POLICY) else c for c in common]]
    )
    assert refused.exit_code == EXIT_REFUSED and "Traceback" not in refused.output


def test_duplicate_enrolment_rows_are_a_plain_input_error(workspace: Workspace) -> None:
    inputs = _write_inputs(workspace)
    part = inputs.employment_support / "part-00000.parquet"
    es = pd.read_parquet(part)
    pd.concat([es, es.head(1)]).to_parquet(part)
    with pytest.raises(InputError, match="more than once"):
        build_tables(inputs)
