"""The link stage through the real policy engine and the ``ehl link`` commands (DuckDB backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from ig_policies.audit import AuditLog
from ig_policies.engine import PolicyEngine
from ig_policies.errors import PolicyRefused
from ig_policies.master_secret import MasterSecret
from ig_policies.workspace import Workspace, content_hash
from linkage.link import link_records
from linkage.link_backend import duckdb_api
from linkage.linkage_config import LinkageConfig
from tests.conftest import TEST_MASTER_SECRET
from tests.unit.test_link_population import make_population, write_workspace_tables

DEMO = Path(__file__).resolve().parents[2] / "ig_policies" / "configs" / "demo"
POLICY = DEMO / "policy.yaml"
TRUST_STORE = DEMO / "trust_store.yaml"
PROJECT, KEY_VERSION = "ehl-lcr-demo", 1


def _workspace(root: Path) -> Workspace:
    """A synthetic workspace pseudonymised under the test master secret, as the pipeline would."""
    ws = Workspace.open(root)
    key = MasterSecret(bytes.fromhex(TEST_MASTER_SECRET)).derive("research-pseudonym", PROJECT, KEY_VERSION)
    write_workspace_tables(make_population(500, 160, seed=4), ws.root, research_key=key)
    return ws


def test_link_records_is_audited_and_refuses_the_wrong_role(tmp_path: Path, master_secret_env: str) -> None:
    logging.getLogger("splink").setLevel(logging.ERROR)
    ws = _workspace(tmp_path / "ws")
    engine = PolicyEngine.load(POLICY, ws, trust_store=TRUST_STORE)
    config = LinkageConfig(u_max_pairs=2e4)

    with pytest.raises(PolicyRefused) as refused:
        link_records(ws, engine, "demo-researcher", duckdb_api("1GB", threads=2), config=config)
    assert refused.value.rule == "user_not_in_role"
    assert not (ws.linked / "links.parquet").exists()

    result = link_records(ws, engine, "demo-processor", duckdb_api("1GB", threads=2), config=config)
    assert result.trained and result.matched > 0.85 * result.clients
    entries = AuditLog.for_workspace(ws).entries()
    assert [(e["action"], e["decision"]) for e in entries[-2:]] == [("link", "refused"), ("link", "allowed")]
    last = entries[-1]
    assert last["details"]["model_sha256"] == result.model_sha256
    assert last["details"]["model_trained"] is True
    outputs = {o["path"]: o["sha256"] for o in last["outputs"]}
    assert outputs[next(p for p in outputs if p.endswith("links.parquet"))] == content_hash(result.links_path)

    # re-using the approved model: no training, the same hash in the audit entry
    approved = tmp_path / "approved_model.json"
    approved.write_bytes(result.model_path.read_bytes())
    again = link_records(
        ws, engine, "demo-processor", duckdb_api("1GB", threads=2), config=config, model_path=approved
    )
    assert not again.trained and again.model_sha256 == result.model_sha256
    assert (again.matched, again.ambiguous) == (result.matched, result.ambiguous)
    assert AuditLog.for_workspace(ws).entries()[-1]["details"]["model_trained"] is False


def test_cli_link_report_and_evaluate(
    tmp_path: Path, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(tmp_path / "ws")
    monkeypatch.setenv("EHL_TRUST_STORE", str(TRUST_STORE))
    config = tmp_path / "link.yaml"
    config.write_text("u_max_pairs: 20000\n")
    runner = CliRunner()
    common = ["--workspace", str(ws.root), "--policy", str(POLICY)]

    linked = runner.invoke(app, ["link", *common, "--backend", "duckdb", "--config", str(config)])
    assert linked.exit_code == 0, linked.output
    assert "links: " in linked.output and (ws.reports / "linkage" / "report.md").exists()

    report = runner.invoke(app, ["link", "report", "--workspace", str(ws.root)])
    assert report.exit_code == 0, report.output
    assert "client records" in report.output

    evaluated = runner.invoke(app, ["link", "evaluate", *common, "--config", str(config)])
    assert evaluated.exit_code == 0, evaluated.output
    f1 = float(next(line for line in evaluated.output.splitlines() if line.startswith("F1: ")).split()[1])
    assert f1 >= 0.97

    # a workspace without truth: refused with a plain message and the bad-input exit code
    (ws.truth / "record_links.parquet").unlink()
    refused = runner.invoke(app, ["link", "evaluate", *common])
    assert refused.exit_code == 4
    assert "synthetic" in refused.output and "Traceback" not in refused.output

    # a bad linkage config names the key
    config.write_text("u_max_pairs: -1\n")
    bad = runner.invoke(app, ["link", *common, "--backend", "duckdb", "--config", str(config)])
    assert bad.exit_code == 4 and "u_max_pairs" in bad.output
