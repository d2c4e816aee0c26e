"""IG officer decisions on outputs: signed with the officer's own key, four eyes, two reviews,
release committed only after its audit entry, pending files and released bundles checked against
the audit log. Real engine, audit log, signed policies and Ed25519 keys throughout."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.disclosure import FrequencyTable, Outcome, list_requests, request_output
from analysis.disclosure.workflow import (
    OfficerSigner,
    decision_files,
    grant_exception,
    reject_output,
    release_output,
    request_changes,
    verify_all_releases,
)
from ig_policies.demo import DEMO_OFFICER_KEY, DEMO_PASSPHRASE, DEMO_TRUST_STORE, write_demo_policy
from ig_policies.engine import PolicyEngine
from ig_policies.errors import DisclosureBlocked, InputError, PolicyRefused, TamperedError
from ig_policies.identity import Identity
from ig_policies.review import Direction, diff_policies
from ig_policies.signing import add_trusted_key, create_officer_key
from ig_policies.workspace import Workspace, file_sha256

TODAY = dt.date(2026, 6, 1)
RESEARCHER, OFFICER, SECOND = "demo-researcher", "demo-ig-officer", "second-ig-officer"
PASSPHRASE = "second-officer-passphrase"
DEMO_SIGNER = OfficerSigner.from_file(DEMO_OFFICER_KEY, DEMO_PASSPHRASE)
USERS = [
    {"name": "demo-processor", "role": "data_processor"},
    {"name": RESEARCHER, "role": "researcher"},
    {"name": OFFICER, "role": "ig_officer"},
    {"name": SECOND, "role": "ig_officer"},
]


@pytest.fixture
def officers(tmp_path: Path) -> tuple[Path, OfficerSigner]:
    """A trust store with the demo officer's key and a second officer's key made here."""
    store = tmp_path / "trust_store.yaml"
    shutil.copy(DEMO_TRUST_STORE, store)
    keys = create_officer_key(tmp_path / "second.pem", tmp_path / "second.pub", PASSPHRASE)
    add_trusted_key(store, keys.public_key, SECOND)
    return store, OfficerSigner.from_file(keys.private_key, PASSPHRASE)


def resign(workspace: Workspace, rid: str, **changes: object) -> None:
    """Change a pending request as the output gate itself would (its DEMO key signs it again)."""
    from ig_policies.gate_keys import create_demo_gate, demo_gate_directory, load_gate_key, sign_request
    from ig_policies.workspace import content_hash, write_json

    folder = workspace.pending / rid
    fields = json.loads((folder / "request.json").read_text()) | changes
    key = load_gate_key(create_demo_gate(demo_gate_directory(workspace)).signing_key)
    write_json(folder / "request.sig", sign_request(key, fields, content_hash(folder / "output")))
    write_json(folder / "request.json", fields)


def engine_for(workspace: Workspace, tmp_path: Path, store: Path, **changes: object) -> PolicyEngine:
    """An engine on a signed demo-policy variant; a trust store other than the demo one needs a real
    (root-owned) deployment naming it, as a TRE administrator would write."""
    policy = write_demo_policy(tmp_path / f"policy-{len(changes)}.yaml", {"users": USERS, **changes})
    if store == DEMO_TRUST_STORE:
        return PolicyEngine.load(policy, workspace, trust_store=store, today=TODAY)
    from tests.deployment_files import real_deployment

    deployment = real_deployment(tmp_path / "etc", trust_store=store, policy=policy, workspace=workspace.root)
    engine = PolicyEngine.load(None, workspace, today=TODAY, deployment=deployment)
    # One test process plays two officers and a researcher: act under the policy's names, as in
    # DEMO mode (who is logged in is the identity layer's concern; here it is whose key signs).
    engine.identity = Identity(account="test", uid=os.getuid(), groups=frozenset(), demo=True)
    return engine


def age_table(counts: list[int]) -> FrequencyTable:
    df = pd.DataFrame({"age_band": ["16-24", "25-49", "50-64"], "count": counts})
    return FrequencyTable(df, ("age_band",), "analysis/clients", "Clients by age band", population="all")


def audit(ws: Workspace) -> list[dict]:
    return [json.loads(line) for f in sorted(ws.audit.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_a_decision_is_signed_by_the_deciding_officers_own_key(
    workspace: Workspace, tmp_path: Path, master_secret_env: str, officers: tuple[Path, OfficerSigner]
) -> None:
    store, second = officers
    engine = engine_for(workspace, tmp_path, store)
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    # A key trusted, but for another officer: the name typed does not match the key.
    with pytest.raises(PolicyRefused) as refused:
        release_output(workspace, engine, OFFICER, rid, second)
    assert refused.value.rule == "decision_key_not_officers"
    # A researcher typing the officer's name with a key of their own: not trusted.
    own = create_officer_key(tmp_path / "r.pem", tmp_path / "r.pub", "researcher-passphrase")
    with pytest.raises(PolicyRefused) as refused:
        release_output(
            workspace, engine, OFFICER, rid, OfficerSigner.from_file(own.private_key, "researcher-passphrase")
        )
    assert refused.value.rule == "decision_key_not_trusted"
    assert not (workspace.released / rid).exists() and list_requests(workspace)[0].status == "pending"

    release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
    [entry] = [e for e in audit(workspace) if e["action"] == "output_release" and e["decision"] == "allowed"]
    details = entry["details"]
    assert details["decision"] == "release" and len(details["signature"]) == 128
    [release_file] = [f for f in decision_files(workspace, rid) if f.name.endswith("-release.json")]
    assert release_file.parent == workspace.zone("decisions")  # the officers' zone, not pending/
    decision = json.loads(release_file.read_text())
    assert decision["statement_sha256"] == details["statement_sha256"]
    assert decision["statement"]["officer"] == OFFICER
    assert decision["statement"]["bundle_sha256"] == details["bundle_sha256"]
    assert all(r.ok for r in verify_all_releases(workspace, engine.policy.outputs, engine))


def test_two_reviews_need_two_different_officers_and_never_the_requester(
    workspace: Workspace, tmp_path: Path, master_secret_env: str, officers: tuple[Path, OfficerSigner]
) -> None:
    store, second = officers
    engine = engine_for(workspace, tmp_path, store, **{"outputs.reviews_required": 2})
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    first = release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
    assert not first.released and first.approvals_needed == 1
    assert not (workspace.released / rid).exists()
    with pytest.raises(PolicyRefused) as refused:  # the same officer twice is not two reviews
        release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
    assert refused.value.rule == "four_eyes"
    done = release_output(workspace, engine, SECOND, rid, second)
    assert done.released and (workspace.released / rid / "age.csv").exists()
    manifest = json.loads((workspace.released / rid / "manifest.json").read_text())
    assert manifest["approved_by"] == SECOND and manifest["earlier_approvals"] == [OFFICER]


def test_nobody_reviews_their_own_request_as_the_audit_log_records_it(
    workspace: Workspace, tmp_path: Path, master_secret_env: str, officers: tuple[Path, OfficerSigner]
) -> None:
    store, second = officers
    both = [*USERS, {"name": SECOND, "role": "researcher"}]
    engine = engine_for(workspace, tmp_path, store, users=both)
    rid = request_output(workspace, engine, SECOND, age_table([30, 300, 200]), "age", "j")
    # Rewriting request.json is tampering: the gate's signature no longer matches.
    path = workspace.pending / rid / "request.json"
    original = path.read_text()
    path.write_text(original.replace(f'"requested_by": "{SECOND}"', f'"requested_by": "{RESEARCHER}"'))
    with pytest.raises(TamperedError) as tampered:
        release_output(workspace, engine, SECOND, rid, second)
    assert "does not match the output gate's signature" in tampered.value.message
    path.write_text(original)
    # Even a request file the gate signed does not hide who requested: the audit entry says so.
    resign(workspace, rid, requested_by=RESEARCHER)
    for decide in (
        lambda: release_output(workspace, engine, SECOND, rid, second),
        lambda: reject_output(workspace, engine, SECOND, rid, "no", second),
        lambda: request_changes(workspace, engine, SECOND, rid, "change it", second),
    ):
        with pytest.raises(PolicyRefused) as refused:
            decide()
        assert refused.value.rule == "four_eyes"
    assert list_requests(workspace)[0].status == "pending"


def test_a_release_whose_audit_entry_fails_is_not_released(
    workspace: Workspace, tmp_path: Path, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(workspace, tmp_path, DEMO_TRUST_STORE, users=USERS[:3])
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    real_append = engine.audit.append

    def failing(**fields: object) -> dict:
        if fields.get("action") == "output_release":
            raise OSError("disk full")
        return real_append(**fields)

    monkeypatch.setattr(engine.audit, "append", failing)
    with pytest.raises(OSError):
        release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
    assert list(workspace.released.iterdir()) == []  # no bundle, and no half-built folder
    assert list_requests(workspace)[0].status == "pending"
    assert not decision_files(workspace, rid)
    monkeypatch.setattr(engine.audit, "append", real_append)
    assert release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER).released


def test_a_pending_file_swapped_after_the_request_is_refused(
    workspace: Workspace, tmp_path: Path, master_secret_env: str
) -> None:
    engine = engine_for(workspace, tmp_path, DEMO_TRUST_STORE, users=USERS[:3])
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    saved = sorted((workspace.pending / rid / "output").rglob("*"))
    victim = next(p for p in saved if p.is_file() and p.suffix in (".csv", ".parquet", ".json"))
    victim.write_bytes(victim.read_bytes() + b"\n")
    with pytest.raises(TamperedError) as tampered:
        release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
    assert (
        tampered.value.exit_code == 5
        and "changed since the output gate signed them" in tampered.value.message
    )
    assert not (workspace.released / rid).exists()


def test_verify_catches_an_edited_bundle_with_recomputed_checksums(
    workspace: Workspace, tmp_path: Path, master_secret_env: str
) -> None:
    engine = engine_for(workspace, tmp_path, DEMO_TRUST_STORE, users=USERS[:3])
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    bundle = release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER).directory
    csv = bundle / "age.csv"
    csv.write_text(csv.read_text().replace("300", "305"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["age.csv"] = file_sha256(csv)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    sums = [f"{file_sha256(bundle / n)}  {n}" for n in ("age.csv", "manifest.json")]
    (bundle / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    rules = engine.policy.outputs
    assert verify_all_releases(workspace, rules)[0].ok  # the files alone cannot tell
    [report] = verify_all_releases(workspace, rules, engine)
    assert not report.ok
    hit = {f.rule for f in report.findings if f.outcome is Outcome.FAIL}
    assert hit == {"release_audit", "release_decision"}
    assert rid in report.to_text() and "differ from those released" in report.to_text()


def test_request_changes_round_trip_and_cli(
    workspace: Workspace, tmp_path: Path, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.disclosure import stage_output
    from flows.cli import app

    policy = write_demo_policy(tmp_path / "policy.yaml", {"users": USERS[:3]})
    engine = PolicyEngine.load(policy, workspace, trust_store=DEMO_TRUST_STORE, today=TODAY)
    stage_output(workspace, age_table([30, 300, 200]), "age", engine.policy.outputs)
    common = [
        "--workspace",
        str(workspace.root),
        "--policy",
        str(policy),
        "--trust-store",
        str(DEMO_TRUST_STORE),
    ]
    runner = CliRunner()
    res = runner.invoke(app, ["outputs", "request", "age", "-j", "board", *common])
    assert res.exit_code == 0, res.output
    [req] = list_requests(workspace)
    monkeypatch.delenv("EHL_OFFICER_KEY", raising=False)
    res = runner.invoke(app, ["outputs", "release", req.request_id, *common])
    assert res.exit_code == 4 and "signed with your own key" in res.output  # no key, no decision
    monkeypatch.setenv("EHL_OFFICER_KEY_PASSPHRASE", DEMO_PASSPHRASE)
    args = ["outputs", "request-changes", req.request_id, "--comments", "merge the two oldest bands"]
    res = runner.invoke(app, [*args, *common, "--key", str(DEMO_OFFICER_KEY)])
    assert res.exit_code == 0, res.output
    [req] = list_requests(workspace)
    assert req.status == "changes_requested" and req.decision_reason == "merge the two oldest bands"
    res = runner.invoke(app, ["outputs", "list", "--workspace", str(workspace.root)], env={"COLUMNS": "300"})
    assert "merge the two oldest bands" in res.output
    res = runner.invoke(
        app,
        ["outputs", "release", req.request_id, *common, "--key", str(DEMO_OFFICER_KEY)],
    )
    assert res.exit_code == 6  # sent back: not releasable
    # The researcher resubmits; the new request is released, and verify passes.
    res = runner.invoke(app, ["outputs", "request", "age", "-j", "board, bands merged", *common])
    assert res.exit_code == 0, res.output
    new = next(r for r in list_requests(workspace) if r.status == "pending")
    monkeypatch.setenv("EHL_OFFICER_KEY", str(DEMO_OFFICER_KEY))
    res = runner.invoke(app, ["outputs", "release", new.request_id, *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["outputs", "verify", *common])
    assert res.exit_code == 0, res.output
    csv = workspace.released / new.request_id / "age.csv"
    csv.write_text(csv.read_text() + "\n")
    res = runner.invoke(app, ["outputs", "verify", *common])
    assert res.exit_code == 5 and new.request_id in res.output


def test_a_review_outcome_needs_a_signed_exception(
    workspace: Workspace, tmp_path: Path, master_secret_env: str
) -> None:
    engine = engine_for(workspace, tmp_path, DEMO_TRUST_STORE, users=USERS[:3])
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    with pytest.raises(InputError):  # a passing output needs no exception
        grant_exception(workspace, engine, OFFICER, rid, "safe", DEMO_SIGNER)
    resign(workspace, rid, outcome="review")
    grant_exception(workspace, engine, OFFICER, rid, "the model is of a whole population", DEMO_SIGNER)
    [req] = list_requests(workspace)
    assert req.exception and req.exception["officer"] == OFFICER
    assert [f.name.endswith("-grant_exception.json") for f in decision_files(workspace, rid)] == [True]
    assert any(
        e["action"] == "output_grant_exception" and e["decision"] == "allowed" for e in audit(workspace)
    )


def test_fewer_reviews_widens_the_policy(tmp_path: Path) -> None:
    from ig_policies.errors import ConfigError
    from ig_policies.policy import policy_from_document, read_policy_document

    def load(name: str, changes: dict) -> object:
        return policy_from_document(
            read_policy_document(write_demo_policy(tmp_path / name, changes, sign=False))
        )

    two, one = load("two.yaml", {"outputs.reviews_required": 2}), load("one.yaml", {})
    [change] = [c for c in diff_policies(two, one) if c.key == "outputs.reviews_required"]
    assert change.direction is Direction.WIDENS
    with pytest.raises(ConfigError, match="reviews_required"):
        load("three.yaml", {"outputs.reviews_required": 3})


def test_a_rejection_is_signed_and_its_reason_is_in_the_audit_log(
    workspace: Workspace, tmp_path: Path, master_secret_env: str
) -> None:
    engine = engine_for(workspace, tmp_path, DEMO_TRUST_STORE, users=USERS[:3])
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    reject_output(workspace, engine, OFFICER, rid, "cells too small", DEMO_SIGNER)
    [entry] = [e for e in audit(workspace) if e["action"] == "output_reject" and e["decision"] == "allowed"]
    assert entry["details"]["decision"] == "reject" and entry["details"]["key_id"]
    assert entry["details"]["text"] == "cells too small"  # the reason is in the audit log
    [reject_file] = decision_files(workspace, rid)
    signed = json.loads(reject_file.read_text())
    assert signed["statement"]["text"] == "cells too small"
    assert list_requests(workspace)[0].status == "rejected"
    with pytest.raises(DisclosureBlocked):
        release_output(workspace, engine, OFFICER, rid, DEMO_SIGNER)
