"""The IG commands end to end: keys, sign/verify/show/diff, audit show/verify, retention enforce."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS, demo_engine, write_demo_policy
from ig_policies.engine import Role
from ig_policies.errors import EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_TAMPERED, PolicyRefused
from ig_policies.master_secret import read_master_key_file
from ig_policies.workspace import Workspace

pytestmark = pytest.mark.usefixtures("master_secret_env")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OFFICER_PASS", "a-long-passphrase")
    monkeypatch.delenv("EHL_TRUST_STORE", raising=False)
    return CliRunner()


def _ok(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_officer_key_sign_verify_show_diff(runner: CliRunner, tmp_path: Path) -> None:
    out = _ok(
        runner, "keys", "new", "--name", "jo", "--out-dir", tmp_path, "--passphrase-env", "OFFICER_PASS"
    )
    assert "Key id:" in out and (tmp_path / "jo.key.pem").exists()
    store = tmp_path / "trust.yaml"
    _ok(runner, "keys", "trust", tmp_path / "jo.pub.pem", "--officer", "jo", "--trust-store", store)

    policy = write_demo_policy(tmp_path / "policy.yaml", sign=False)
    out = _ok(runner, "policy", "verify", policy, "--trust-store", store, code=EXIT_REFUSED)
    assert "unsigned" in out
    out = _ok(
        runner, "policy", "sign", policy, "--key", tmp_path / "jo.key.pem", "--passphrase-env", "OFFICER_PASS"
    )
    assert "policy.yaml.sig" in out
    out = _ok(runner, "policy", "verify", policy, "--trust-store", store)
    assert "Signature: valid, by jo" in out and "In force" in out

    out = _ok(runner, "policy", "show", policy, "--trust-store", store)
    assert "Who (anyone not listed is refused)" in out and "Signature: valid" in out
    assert "Signature: not checked" in _ok(runner, "policy", "show", policy)

    widened = write_demo_policy(tmp_path / "v2.yaml", {"outputs.min_cell_count": 5}, sign=False)
    out = _ok(runner, "policy", "diff", policy, widened)
    assert "[WIDENS] outputs.min_cell_count: minimum cell count 10 -> 5" in out

    policy.write_text(policy.read_text().replace("min_cell_count: 10", "min_cell_count: 5"))
    out = _ok(runner, "policy", "verify", policy, "--trust-store", store, code=EXIT_REFUSED)
    assert "edited_after_signing" in out and "Traceback" not in out


def test_passphrase_is_asked_for_when_not_in_the_environment(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["keys", "new", "--name", "al", "--out-dir", str(tmp_path)], input="pass-word-1\npass-word-1\n"
    )
    assert result.exit_code == 0, result.output
    assert "pass-word-1" not in result.output  # never echoed
    policy = write_demo_policy(tmp_path / "policy.yaml", sign=False)
    args = ["policy", "sign", str(policy), "--key", str(tmp_path / "al.key.pem")]
    result = runner.invoke(app, args, input="pass-word-1\n")
    assert result.exit_code == 0, result.output
    assert "Signed policy 'ehl-lcr-demo' version 1" in result.output


def test_wrong_passphrase_is_a_plain_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(runner, "keys", "new", "--name", "jo", "--out-dir", tmp_path, "--passphrase-env", "OFFICER_PASS")
    monkeypatch.setenv("OFFICER_PASS", "not-the-passphrase")
    policy = write_demo_policy(tmp_path / "policy.yaml", sign=False)
    out = _ok(
        runner, "policy", "sign", policy, "--key", tmp_path / "jo.key.pem", "--passphrase-env", "OFFICER_PASS",
        code=EXIT_BAD_INPUT,
    )  # fmt: skip
    assert "wrong passphrase" in out


def test_master_key_file(runner: CliRunner, tmp_path: Path) -> None:
    out = _ok(
        runner, "keys", "master-new", "--out", tmp_path / "master.json", "--passphrase-env", "OFFICER_PASS"
    )
    assert "master.json" in out
    assert read_master_key_file(tmp_path / "master.json", "a-long-passphrase").derive("audit")
    _ok(
        runner,
        "keys",
        "master-new",
        "--out",
        tmp_path / "master.json",
        "--passphrase-env",
        "OFFICER_PASS",
        code=4,
    )


def _audited_workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.open(tmp_path / "ws")
    engine = demo_engine(ws)
    with engine.step(DEMO_USERS["data_processor"], Role.DATA_PROCESSOR, "validate") as step:
        step.counts(rows_in=10)
    with engine.step(DEMO_USERS["researcher"], Role.RESEARCHER, "analyse", analysis="equity_audit"):
        pass
    with pytest.raises(PolicyRefused), engine.step(DEMO_USERS["researcher"], Role.DATA_PROCESSOR, "link"):
        pass
    return ws


def test_audit_show_filters_and_formats(runner: CliRunner, tmp_path: Path) -> None:
    ws = _audited_workspace(tmp_path)
    rows = json.loads(_ok(runner, "audit", "show", "-w", ws.root, "--format", "json"))
    assert [r["decision"] for r in rows] == ["allowed", "allowed", "refused"]
    rows = json.loads(
        _ok(runner, "audit", "show", "-w", ws.root, "--format", "json", "--decision", "refused")
    )
    assert [r["rule"] for r in rows] == ["user_not_in_role"]
    rows = json.loads(
        _ok(runner, "audit", "show", "-w", ws.root, "--format", "json", "--actor", "demo-processor")
    )
    assert [r["action"] for r in rows] == ["validate"]
    rows = json.loads(
        _ok(runner, "audit", "show", "-w", ws.root, "--format", "json", "--since", "2999-01-01")
    )
    assert rows == []
    text = _ok(
        runner,
        "audit",
        "show",
        "-w",
        ws.root,
        "--format",
        "csv",
        "--action",
        "validate",
        "--policy",
        "ehl-lcr-demo",
    )
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 1 and json.loads(table[0]["counts"]) == {"rows_in": 10}
    assert "3 audit entries" in _ok(runner, "audit", "show", "-w", ws.root)
    _ok(runner, "audit", "show", "-w", ws.root, "--since", "yesterday", code=EXIT_BAD_INPUT)


def test_audit_verify_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    ws = _audited_workspace(tmp_path)
    out = _ok(runner, "audit", "verify", "-w", ws.root)
    assert "intact: 3 entries" in out
    anchor = out.strip().rsplit(" ", 1)[1]
    _ok(runner, "audit", "verify", "-w", ws.root, "--anchor", anchor)
    log = ws.audit / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0] + lines[2])
    out = _ok(runner, "audit", "verify", "-w", ws.root, code=EXIT_TAMPERED)
    assert "entry #2 deleted" in out


def test_retention_enforce_command(runner: CliRunner, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    (ws.linked / "links.parquet").write_text("x")
    args = ["retention", "enforce", "-w", ws.root, "-p", DEMO_POLICY, "--trust-store", DEMO_TRUST_STORE]
    out = _ok(runner, *args, "--dry-run")
    assert ("not reached" in out or "would delete" in out) and (ws.linked / "links.parquet").exists()
    no_officer = write_demo_policy(
        tmp_path / "no-officer.yaml", {"users": [{"name": "demo-researcher", "role": "researcher"}]}
    )
    out = _ok(runner, *args[:4], "-p", no_officer, *args[6:], code=EXIT_REFUSED)
    assert "user_not_in_role" in out
    # nobody can choose who they act as: the option to type a name is gone
    _ok(runner, *args, "--user", "demo-ig-officer", code=2)
