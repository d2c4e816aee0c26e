"""Linkage on tokens (DuckDB backend): known pairs link, non-pairs don't, planted errors still link.

The population is synthetic with planted errors (``test_link_population``); one trained run is
shared by the module's tests. The Spark backend's agreement is tested in ``test_link_spark``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ig_policies.errors import ConfigError, InputError
from ig_policies.workspace import Workspace
from linkage import quality, splink_model
from linkage.identifiable.truth import pseudonymised_truth
from linkage.link import AMBIGUOUS, MATCHED, UNMATCHED, decide, link_tables, write_linked
from linkage.link_backend import choose_backend, db_api_for_run, duckdb_api
from linkage.linkage_config import LinkageConfig, LinkageTable, load_linkage_config
from tests.unit.test_link_population import RESEARCH_KEY, Population, make_population, write_workspace_tables

ERRORS = {"swap_names": 0.04, "dob_transpose": 0.06}
#: u counted on ~200k pairs keeps training to a couple of seconds at this size
CONFIG = LinkageConfig(u_max_pairs=2e5)


@pytest.fixture(scope="module")
def population() -> Population:
    return make_population(2000, 600, seed=11, errors=ERRORS)


@pytest.fixture(scope="module")
def linked_ws(tmp_path_factory: pytest.TempPathFactory, population: Population):
    """A workspace with pseudonymised tables and one trained linkage run (written to linked/)."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    ws = Workspace.open(tmp_path_factory.mktemp("link") / "ws")
    write_workspace_tables(population, ws.root)
    config = CONFIG
    outcome = link_tables(duckdb_api("1GB", threads=2), ws.root, config)
    write_linked(ws, outcome, config)
    return ws, outcome


def _truth(population: Population) -> pd.DataFrame:
    from tests.unit.test_link_population import research_pseudonym

    truth = population.truth
    clients = truth[truth["dataset"] != "health_demographics"].copy()
    patients = truth[truth["dataset"] == "health_demographics"]
    clients["client_pseudonym"] = research_pseudonym(
        clients["dataset"] + ":" + clients["record_id"], RESEARCH_KEY, "C"
    )
    person_patient = patients.set_index("person_id")["record_id"]
    clients["true_patient"] = research_pseudonym(
        clients["person_id"].map(person_patient).dropna(), RESEARCH_KEY, "P"
    )
    return clients[["client_pseudonym", "record_id", "true_patient"]]


def test_known_pairs_link_and_non_pairs_do_not(linked_ws, population) -> None:
    _, outcome = linked_ws
    joined = outcome.links.merge(_truth(population), on="client_pseudonym")
    matched = joined[joined["match_status"] == MATCHED]
    precision = (matched["patient_pseudonym"] == matched["true_patient"]).mean()
    has_record = joined["true_patient"].notna()
    recall = (joined.loc[has_record, "patient_pseudonym"] == joined.loc[has_record, "true_patient"]).mean()
    assert precision >= 0.995
    assert recall >= 0.97
    # clients with no health record at all must stay unlinked
    absent = joined[joined["record_id"].isin(population.planted["no_health_record"])]
    assert len(absent) >= 20
    assert (absent["match_status"] == UNMATCHED).all()
    assert absent["patient_pseudonym"].isna().all()


@pytest.mark.parametrize(
    "kind, level",
    [("swap_names", "forename and surname swapped"), ("dob_transpose", "day and month transposed")],
)
def test_swapped_names_and_transposed_dates_still_link(linked_ws, population, kind: str, level: str) -> None:
    _, outcome = linked_ws
    truth = _truth(population)
    # the planted error alone (a swap on top of a typo is a different, harder case)
    alone = population.planted[kind] - population.planted["name_error"] - population.planted["dob_error"]
    planted = truth[truth["record_id"].isin(alone) & truth["true_patient"].notna()]
    assert len(planted) >= 10
    joined = planted.merge(outcome.links, on="client_pseudonym")
    assert (joined["patient_pseudonym"] == joined["true_patient"]).mean() >= 0.9
    # the model saw the planted error as its own level, not as a disagreement
    labels = splink_model.level_labels(outcome.model)
    comparison = "name" if kind == "swap_names" else "date_of_birth"
    pairs = planted.merge(
        outcome.candidates,
        left_on=["client_pseudonym", "true_patient"],
        right_on=["client_pseudonym", "patient_pseudonym"],
    )
    seen = pairs[f"gamma_{comparison}"].map(labels[comparison])
    assert (seen == level).mean() >= 0.8


def test_model_round_trips_and_reuse_gives_the_same_links(linked_ws, tmp_path: Path) -> None:
    ws, outcome = linked_ws
    saved = ws.linked / "model.json"
    model = splink_model.load_model(saved)
    assert splink_model.model_hash(model) == splink_model.model_hash(outcome.model)
    again = link_tables(duckdb_api("1GB", threads=2), ws.root, CONFIG, model=model)
    assert not again.trained and "training" not in again.timings
    pd.testing.assert_frame_equal(again.links, outcome.links)
    # a model file that is not a trained token model is refused with a reason
    broken = tmp_path / "model.json"
    doc = json.loads(saved.read_text())
    del doc["comparisons"][1]["comparison_levels"][1]["m_probability"]
    broken.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not trained for: name"):
        splink_model.load_model(broken)


def test_training_is_deterministic(linked_ws) -> None:
    ws, outcome = linked_ws
    api = duckdb_api("1GB", threads=2)
    config = CONFIG
    left = splink_model.load_table(api, ws.root, config.left, "left")
    right = splink_model.load_table(api, ws.root, config.right, "right")
    model = splink_model.train_model(api, ws.root, config, left, right, seed=42)
    assert splink_model.model_json(model) == splink_model.model_json(outcome.model)


def test_outputs_hold_no_token_values(linked_ws) -> None:
    ws, _ = linked_ws
    tokens: set[str] = set()
    for name in ("employment_support", "health_demographics"):
        table = pd.read_parquet(ws.pseudonymised / name)
        for column in [c for c in table.columns if c.startswith("t_")]:
            values = table[column].dropna().astype(str)
            tokens.update(values)
            tokens.update(values.str[: splink_model.TOKEN_PREFIX_CHARS])  # what the model compares
    assert len(tokens) > 1000
    for name in (
        "clerical_review.parquet",
        "links.parquet",
        "candidate_pairs.parquet",
        "match_rates.parquet",
    ):
        table = pd.read_parquet(ws.linked / name)
        assert not [c for c in table.columns if c.startswith("t_")], name
        cells = {str(v) for c in table.columns for v in table[c].dropna().unique()}
        assert not cells & tokens, name
    text = (ws.linked / "model.json").read_text() + (ws.linked / "link_summary.json").read_text()
    assert not any(t in text for t in tokens)
    clerical = pd.read_parquet(ws.linked / "clerical_review.parquet")
    assert len(clerical) > 0
    assert set(clerical["name"]) <= set(
        splink_model.level_labels(json.loads((ws.linked / "model.json").read_text()))["name"].values()
    )


def test_blocking_counts_are_reported_per_rule(linked_ws) -> None:
    ws, outcome = linked_ws
    counts = outcome.blocking_counts
    assert [c.rule for c in counts] == list(splink_model.PREDICTION_BLOCKING_RULES)
    assert counts[-1].cumulative == sum(c.comparisons for c in counts)
    summary = json.loads((ws.linked / "link_summary.json").read_text())
    assert summary["comparisons"] == counts[-1].cumulative
    # far fewer comparisons than the full cross product
    assert summary["comparisons"] < 0.01 * 2000 * 618


def test_blocking_counts_equal_splinks_own_blocking_analysis(linked_ws) -> None:
    """Counting the blocked pairs by rule gives Splink's per-rule counts, without a second pass."""
    ws, outcome = linked_ws
    db_api = duckdb_api("1GB", threads=2)
    left = splink_model.load_table(db_api, ws.root, CONFIG.left, splink_model.LEFT_NAME)
    right = splink_model.load_table(db_api, ws.root, CONFIG.right, splink_model.RIGHT_NAME)
    linker = splink_model.new_linker(left, right, outcome.model)
    blocked = linker.inference.compute_blocked_pairs_for_predict()
    assert splink_model.count_blocked_pairs(linker, blocked) == outcome.blocking_counts
    assert splink_model.count_comparisons(linker) == outcome.blocking_counts
    assert sum(c.comparisons > 0 for c in outcome.blocking_counts) >= 3


# --------------------------------------------------------------------------------------------
# Decision rules as small literal tables


def _candidates(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["client_pseudonym", "patient_pseudonym", "match_weight"])
    frame["match_probability"] = 1 / (1 + 2 ** (-frame["match_weight"]))
    frame["gamma_name"] = 3
    return frame


def test_decision_statuses_ties_and_clusters() -> None:
    clients = pd.DataFrame({"client_pseudonym": ["Ca", "Cb", "Cc", "Cd", "Ce", "Cf"], "programme": "p"})
    candidates = _candidates(
        [
            ("Ca", "P1", 20.0),  # clear match
            ("Ca", "P9", 2.0),
            ("Cb", "P2", 12.0),  # near tie with P3 (0.5 bit apart): ambiguous
            ("Cb", "P3", 11.5),
            ("Cc", "P1", 15.0),  # the same person as Ca, enrolled again: same cluster
            ("Cd", "P4", 1.0),  # grey zone: probability 2/3
            ("Ce", "P5", -8.0),  # below everything
        ]
    )
    links, clerical = decide(
        clients, candidates, match_threshold=0.9, clerical_band=(0.5, 0.9), ambiguity_margin_bits=1.0
    )
    got = links.set_index("client_pseudonym")
    assert got["match_status"].to_dict() == {
        "Ca": MATCHED, "Cb": AMBIGUOUS, "Cc": MATCHED, "Cd": UNMATCHED, "Ce": UNMATCHED, "Cf": UNMATCHED,
    }  # fmt: skip
    assert got.loc["Ca", "patient_pseudonym"] == "P1" and got.loc["Cb", "patient_pseudonym"] == "P2"
    assert pd.isna(got.loc["Cd", "patient_pseudonym"]) and pd.isna(got.loc["Cf", "match_probability"])
    assert got.loc["Ca", "client_cluster"] == got.loc["Cc", "client_cluster"] == "Ka"
    assert got.loc["Cb", "client_cluster"] == "Kb"
    assert set(clerical["client_pseudonym"]) == {"Cb", "Cd"}
    assert set(clerical.loc[clerical["client_pseudonym"] == "Cb", "patient_pseudonym"]) == {"P2", "P3"}
    assert list(links.columns[:7]) == [
        "client_pseudonym", "programme", "patient_pseudonym", "match_probability", "match_weight", "match_status", "client_cluster",
    ]  # fmt: skip


@pytest.mark.parametrize("weight, status", [(np.log2(9) - 1e-9, UNMATCHED), (np.log2(9) + 1e-9, MATCHED)])
def test_threshold_boundary(weight: float, status: str) -> None:
    # probability 0.9 corresponds to a match weight of log2(9) (prior folded into the weight)
    links, _ = decide(
        pd.DataFrame({"client_pseudonym": ["Ca"]}),
        _candidates([("Ca", "P1", weight)]),
        match_threshold=0.9,
        clerical_band=(0.5, 0.9),
    )
    assert links.loc[0, "match_status"] == status


# --------------------------------------------------------------------------------------------
# Config: a new provider's column names are a config change


def test_provider_with_other_column_names_links_the_same(linked_ws, tmp_path: Path) -> None:
    ws, outcome = linked_ws
    root = tmp_path / "ws2"
    (root / "pseudonymised" / "other_clients").mkdir(parents=True)
    left = pd.read_parquet(ws.pseudonymised / "employment_support")
    renamed = {c: f"tok_{c[2:]}" for c in left.columns if c.startswith("t_")} | {
        "client_pseudonym": "id",
        "sex": "gender",
    }
    left.rename(columns=renamed).to_parquet(root / "pseudonymised" / "other_clients" / "part-0.parquet")
    yaml_path = tmp_path / "link.yaml"
    columns = "\n".join(f"    {k}: {v}" for k, v in renamed.items() if k != "client_pseudonym")
    yaml_path.write_text(
        "left:\n  path: pseudonymised/other_clients\n  id_column: id\n  carry: [programme]\n  columns:\n"
        f"{columns}\nright:\n  path: {ws.root / 'pseudonymised' / 'health_demographics'}\n  id_column: patient_pseudonym\n"
    )
    config = load_linkage_config(yaml_path)
    again = link_tables(duckdb_api("1GB", threads=2), root, config, model=outcome.model)
    pd.testing.assert_frame_equal(again.links, outcome.links)


def test_config_errors_name_the_file_key_and_column(tmp_path: Path, linked_ws) -> None:
    ws, _ = linked_ws
    bad = tmp_path / "bad.yaml"
    bad.write_text("left:\n  path: x\n  id_column: id\n  columns: {t_shoe_size: shoe}\n")
    with pytest.raises(ConfigError) as info:
        load_linkage_config(bad)
    assert (
        "bad.yaml" in str(info.value)
        and "left.columns" in str(info.value)
        and "t_shoe_size" in str(info.value)
    )
    config = LinkageConfig(
        u_max_pairs=2e5,
        left=LinkageTable(
            path="pseudonymised/employment_support",
            id_column="client_pseudonym",
            columns={"t_dob": "dob_token"},
        ),
    )
    with pytest.raises(InputError, match="dob_token"):
        link_tables(duckdb_api("1GB", threads=1), ws.root, config, model=None)
    with pytest.raises(InputError, match="run 'ehl pseudonymise' first"):
        link_tables(duckdb_api("1GB", threads=1), tmp_path, CONFIG)


def test_backend_choice(linked_ws) -> None:
    ws, _ = linked_ws

    def no_spark():
        raise AssertionError("a DuckDB-sized run must not start Spark")

    backend, api = db_api_for_run(ws.root, CONFIG, "auto", 3_000_000, spark_factory=no_spark)
    assert backend == "duckdb" and api.sql_dialect.sql_dialect_str == "duckdb"
    with pytest.raises(ConfigError, match="no Spark session"):
        db_api_for_run(ws.root, CONFIG, "auto", 10)
    assert choose_backend("auto", 1_000, 3_000_000) == "duckdb"
    assert choose_backend("auto", 3_000_001, 3_000_000) == "spark"
    assert choose_backend("spark", 10, 3_000_000) == "spark"
    with pytest.raises(ConfigError):
        choose_backend("postgres", 10, 10)


# --------------------------------------------------------------------------------------------
# Quality: report and evaluation


def test_report_and_evaluation(linked_ws) -> None:
    ws, _ = linked_ws
    report = quality.write_report(ws)
    text = report.read_text()
    assert "## Verdict" in text and "| blocking rule |" in text
    for png in ("match_weight_histogram.png", "m_u_parameters.png", "match_rates_by_group.png"):
        assert (report.parent / png).stat().st_size > 1000
    rates = pd.read_parquet(ws.linked / "match_rates.parquet")
    assert list(rates.columns) == list(quality.MATCH_RATE_COLUMNS)
    assert set(rates["group"]) == {"overall", *quality.GROUPS}
    # only an age can be unknown: a date-of-birth typo that makes a client younger than 16 (the
    # research dataset's rule), and then only a few clients
    unknown = rates[rates["level"] == "unknown"]
    assert set(unknown["group"]) <= {"age_band"}
    overall = int(rates.loc[rates["group"] == "overall", "clients"].iloc[0])
    assert unknown["clients"].sum() < 0.02 * overall
    truth = pseudonymised_truth(ws, RESEARCH_KEY, quality.linked_programmes(ws))
    assert list(truth.columns) == ["client_pseudonym", "true_patient"]
    assert truth["client_pseudonym"].str.match(r"^C[0-9a-f]{20}$").all()
    result = quality.evaluate(ws, truth)
    assert set(result.by_group["group"]) == set(quality.GROUPS) and result.excluded_true_pairs == 0
    assert result.f1 >= 0.98 and result.precision >= 0.995
    assert result.threshold_curve["recall"].is_monotonic_decreasing
    assert "F1: " in result.report_path.read_text()


def test_evaluation_refuses_without_truth(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "real")
    (ws.linked / "links.parquet").parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "client_pseudonym": ["Ca"],
            "programme": ["p"],
            "match_status": ["matched"],
            "patient_pseudonym": ["P1"],
        }
    ).to_parquet(ws.linked / "links.parquet")
    pd.DataFrame(
        columns=["client_pseudonym", "patient_pseudonym", "match_weight", "match_probability"]
    ).to_parquet(ws.linked / "candidate_pairs.parquet")
    with pytest.raises(InputError, match="synthetic"):
        pseudonymised_truth(ws, RESEARCH_KEY, quality.linked_programmes(ws))


def test_match_rate_differences_are_called_out() -> None:
    links = pd.DataFrame(
        {
            "client_pseudonym": [f"C{i}" for i in range(400)],
            "match_status": [MATCHED] * 190 + [UNMATCHED] * 10 + [MATCHED] * 150 + [UNMATCHED] * 50,
        }
    )
    groups = pd.DataFrame({"client_pseudonym": links["client_pseudonym"], "sex": ["F"] * 200 + ["M"] * 200})
    rates = quality.match_rates(links, groups)
    sex = rates[rates["group"] == "sex"].set_index("level")["match_rate"]
    assert sex["F"] == pytest.approx(0.95) and sex["M"] == pytest.approx(0.75)
    text = " ".join(quality.verdict({"clients": 400, "matched": 340}, rates))
    assert "Match rates differ by sex: 75.0% for M against 95.0% for F" in text
    even = quality.match_rates(links.assign(match_status=MATCHED), groups)
    assert "No group's match rate differs" in " ".join(
        quality.verdict({"clients": 400, "matched": 400}, even)
    )
