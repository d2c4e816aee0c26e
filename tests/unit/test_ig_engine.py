"""Policy engine: every refusal path (each audited), allowed and failed steps, retention, canaries."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from ig_policies.audit import AuditLog
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS, demo_engine, write_demo_policy
from ig_policies.engine import PolicyEngine, Role
from ig_policies.errors import ConfigError, PolicyRefused
from ig_policies.master_secret import MasterSecret
from ig_policies.retention import enforce_retention
from ig_policies.signing import create_officer_key, policy_file_hash, signature_path
from ig_policies.workspace import Workspace, content_hash, write_text

PROCESSOR, RESEARCHER, OFFICER = (
    DEMO_USERS["data_processor"],
    DEMO_USERS["researcher"],
    DEMO_USERS["ig_officer"],
)
pytestmark = pytest.mark.usefixtures("master_secret_env")


def _entries(ws: Workspace) -> list[dict]:
    log = AuditLog.for_workspace(ws)
    assert log.verify().ok
    return log.entries()


def _load_refusal(
    ws: Workspace, policy: Path, trust_store=DEMO_TRUST_STORE, today=dt.date(2027, 1, 1), deployment=None
) -> str:
    with pytest.raises(PolicyRefused) as err:
        PolicyEngine.load(
            policy, ws, trust_store=trust_store, today=today, actor="someone", deployment=deployment
        )
    last = _entries(ws)[-1]
    assert (last["action"], last["decision"], last["rule"]) == ("load_policy", "refused", err.value.rule)
    assert last["actor"] == "someone"
    assert err.value.hint  # every refusal says what to do
    return err.value.rule


# ---- loading ---------------------------------------------------------------------------------


def test_demo_policy_loads(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    assert engine.policy.project.id == "ehl-lcr-demo"
    assert engine.policy_hash == policy_file_hash(DEMO_POLICY)
    assert engine.signature.officer == "demo-ig-officer"
    assert _entries(workspace) == []  # loading writes nothing until a step runs


def test_only_the_deployed_trust_store_is_used(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trust store of one's own (the attack: trust your own key, sign a lax policy) is refused by
    name, whether passed as an option or in $EHL_TRUST_STORE; without one, the deployed store is used."""
    from ig_policies.signing import add_trusted_key

    mine = create_officer_key(tmp_path / "mine.pem", tmp_path / "mine.pub", "passphrase-mine")
    add_trusted_key(tmp_path / "own.yaml", mine.public_key, OFFICER)
    assert (
        _load_refusal(workspace, DEMO_POLICY, trust_store=tmp_path / "own.yaml") == "trust_store_not_deployed"
    )
    monkeypatch.setenv("EHL_TRUST_STORE", str(tmp_path / "own.yaml"))
    assert _load_refusal(workspace, DEMO_POLICY, trust_store=None) == "trust_store_not_deployed"
    monkeypatch.delenv("EHL_TRUST_STORE")
    engine = PolicyEngine.load(DEMO_POLICY, workspace, today=dt.date(2027, 1, 1))
    assert engine.trust_store.path.resolve() == DEMO_TRUST_STORE.resolve()


def test_a_real_deployment_fixes_the_policy_and_its_version(workspace: Workspace, tmp_path: Path) -> None:
    from tests.deployment_files import real_deployment

    policy = write_demo_policy(tmp_path / "approved.yaml")
    deployment = real_deployment(
        tmp_path / "etc", trust_store=DEMO_TRUST_STORE, policy=policy, workspace=workspace.root
    )
    lax = write_demo_policy(tmp_path / "lax.yaml", {"outputs.min_cell_count": 1})
    assert _load_refusal(workspace, lax, deployment=deployment) == "policy_not_deployed"
    assert PolicyEngine.load(None, workspace, today=dt.date(2027, 1, 1), deployment=deployment)
    write_demo_policy(policy, {"outputs.min_cell_count": 1})  # re-signed in place, not re-pinned
    assert _load_refusal(workspace, policy, deployment=deployment) == "policy_not_pinned"


def test_a_deployment_file_others_can_change_is_refused(tmp_path: Path) -> None:
    from ig_policies.deployment import load_deployment
    from tests.deployment_files import write_real_deployment

    path = write_real_deployment(
        tmp_path / "etc", trust_store=DEMO_TRUST_STORE, policy=DEMO_POLICY, workspace=tmp_path / "ws"
    )
    path.chmod(0o664)
    with pytest.raises(PolicyRefused) as err:
        load_deployment(path)
    assert err.value.rule == "deployment_writable"
    path.chmod(0o644)
    os.chown(path, 12345, 0)
    with pytest.raises(PolicyRefused) as err:
        load_deployment(path)
    assert err.value.rule == "deployment_not_root_owned"


def test_a_demo_deployment_only_with_the_demo_keys_and_never_beside_a_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ig_policies.deployment as deployment_module
    from ig_policies.deployment import load_deployment, write_demo_deployment

    demo = write_demo_deployment(tmp_path / "demo", None)
    assert load_deployment(demo).demo
    demo.write_text(demo.read_text().replace(str(DEMO_TRUST_STORE), str(tmp_path / "own.yaml")))
    with pytest.raises(PolicyRefused) as err:
        load_deployment(demo)
    assert err.value.rule == "demo_trust_store"
    real = tmp_path / "etc" / "deployment.yaml"
    real.parent.mkdir()
    real.write_text("demo: false\n")
    monkeypatch.setattr(deployment_module, "DEFAULT_DEPLOYMENT", real)
    with pytest.raises(PolicyRefused) as err:
        load_deployment(write_demo_deployment(tmp_path / "demo2", None))
    assert err.value.rule == "demo_on_real_deployment"
    with pytest.raises(PolicyRefused) as err:
        load_deployment(tmp_path / "absent.yaml")
    assert err.value.rule == "no_deployment" and "ehl demo" in err.value.hint


def test_outside_demo_the_actor_is_the_logged_in_account(workspace: Workspace, tmp_path: Path) -> None:
    """A typed name is refused; the account must be named in the policy and be in the role's group."""
    from ig_policies.identity import current_identity
    from tests.deployment_files import real_deployment

    me = current_identity().account
    policy = write_demo_policy(
        tmp_path / "p.yaml",
        {"users": [{"name": me, "role": "researcher"}, {"name": OFFICER, "role": "ig_officer"}]},
    )
    groups = {"data_processor": "root", "researcher": "root", "ig_officer": "root"}
    engine = PolicyEngine.load(
        None,
        workspace,
        today=dt.date(2027, 1, 1),
        deployment=real_deployment(
            tmp_path / "etc",
            trust_store=DEMO_TRUST_STORE,
            policy=policy,
            workspace=workspace.root,
            groups=groups,
        ),
    )
    assert engine.actor_for(Role.IG_OFFICER) == me
    assert _step_refusal(engine, OFFICER, Role.IG_OFFICER, "output_release") == "not_authenticated_account"
    assert _step_refusal(engine, me, Role.IG_OFFICER, "output_release") == "user_not_in_role"
    with engine.step(me, Role.RESEARCHER, "output_request"):
        pass
    assert _entries(workspace)[-1]["decision"] == "allowed" and "mode" not in _entries(workspace)[-1]
    engine = PolicyEngine.load(
        None,
        workspace,
        today=dt.date(2027, 1, 1),
        deployment=real_deployment(
            tmp_path / "etc2",
            trust_store=DEMO_TRUST_STORE,
            policy=policy,
            workspace=workspace.root,
            groups={**groups, "researcher": "nogroup"},
        ),
    )
    assert _step_refusal(engine, me, Role.RESEARCHER, "output_request") == "not_in_role_group"


def test_unsigned_policy_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    assert _load_refusal(workspace, write_demo_policy(tmp_path / "p.yaml", sign=False)) == "unsigned"


def test_untrusted_key_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    from ig_policies.signing import add_trusted_key
    from tests.deployment_files import real_deployment

    other = create_officer_key(tmp_path / "o.pem", tmp_path / "o.pub", "passphrase-o")
    add_trusted_key(tmp_path / "other_store.yaml", other.public_key, "someone-else")
    deployment = real_deployment(
        tmp_path / "etc",
        trust_store=tmp_path / "other_store.yaml",
        policy=DEMO_POLICY,
        workspace=workspace.root,
    )
    assert _load_refusal(workspace, DEMO_POLICY, trust_store=None, deployment=deployment) == "untrusted_key"


def test_edited_after_signing_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path / "p.yaml")
    path.write_text(path.read_text().replace("min_cell_count: 10", "min_cell_count: 2"))
    assert _load_refusal(workspace, path) == "edited_after_signing"


def test_bad_signature_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path / "p.yaml")
    record = json.loads(signature_path(path).read_text())
    record["signature"] = record["signature"][::-1]
    signature_path(path).write_text(json.dumps(record))
    assert _load_refusal(workspace, path) == "bad_signature"


def test_not_yet_valid_and_expired_are_refused(workspace: Workspace) -> None:
    assert _load_refusal(workspace, DEMO_POLICY, today=dt.date(2025, 12, 31)) == "not_yet_valid"
    assert _load_refusal(workspace, DEMO_POLICY, today=dt.date(2029, 1, 1)) == "expired"
    # the boundaries are inclusive
    assert demo_engine(workspace, today=dt.date(2026, 1, 1)) and demo_engine(
        workspace, today=dt.date(2028, 12, 31)
    )


def test_invalid_policy_is_refused_and_audited(workspace: Workspace, tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path / "p.yaml", {"outputs.min_cell_count": "lots"}, sign=False)
    with pytest.raises(ConfigError, match="outputs.min_cell_count"):
        PolicyEngine.load(path, workspace, trust_store=DEMO_TRUST_STORE)
    assert _entries(workspace)[-1]["rule"] == "invalid_policy"


def test_broken_trust_store_is_refused_and_audited(workspace: Workspace, tmp_path: Path) -> None:
    from tests.deployment_files import real_deployment

    (tmp_path / "store.yaml").write_text("keys: [{key_id: nope}]\n")
    deployment = real_deployment(
        tmp_path / "etc", trust_store=tmp_path / "store.yaml", policy=DEMO_POLICY, workspace=workspace.root
    )
    with pytest.raises(ConfigError, match="the trust store is not valid"):
        PolicyEngine.load(DEMO_POLICY, workspace, deployment=deployment)
    assert _entries(workspace)[-1]["rule"] == "invalid_trust_store"


def test_no_master_secret_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EHL_MASTER_SECRET")
    ws = Workspace.open(tmp_path / "ws2")
    with pytest.raises(ConfigError, match="master secret"):
        demo_engine(ws)
    assert list(ws.audit.iterdir()) == []


# ---- steps -----------------------------------------------------------------------------------


def _step_refusal(engine: PolicyEngine, *args, **kwargs) -> str:
    entered = False
    with pytest.raises(PolicyRefused) as err, engine.step(*args, **kwargs):
        entered = True
    assert not entered, "a refused step must not run"
    last = _entries(engine.workspace)[-1]
    assert (last["decision"], last["rule"], last["action"]) == ("refused", err.value.rule, args[2])
    return err.value.rule


def test_user_not_in_role(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    assert _step_refusal(engine, RESEARCHER, Role.DATA_PROCESSOR, "pseudonymise") == "user_not_in_role"
    assert _step_refusal(engine, "mallory", Role.RESEARCHER, "equity_audit") == "user_not_in_role"
    assert _step_refusal(engine, PROCESSOR, "root", "pseudonymise") == "unknown_role"


def test_dataset_not_permitted(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    rule = _step_refusal(
        engine, PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets=["ways_to_work", "benefits"]
    )
    assert rule == "dataset_not_permitted"
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "pseudonymise", datasets=["employment_support"]):
        pass  # a kind stands for all datasets of that kind
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets="health_activity", fields="month"):
        pass  # a single name is not taken letter by letter
    assert _entries(workspace)[-1]["datasets"] == ["health_activity"]


def test_field_not_permitted(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    rule = _step_refusal(
        engine,
        PROCESSOR,
        Role.DATA_PROCESSOR,
        "validate",
        datasets=["ways_to_work"],
        fields=["forename", "telephone"],
    )
    assert rule == "field_not_permitted"
    rule = _step_refusal(
        engine, PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets=["health_activity"], fields=["forename"]
    )
    assert rule == "field_not_permitted"
    with engine.step(
        PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets=["ways_to_work"], fields=["forename"]
    ):
        pass


def test_analysis_not_permitted(workspace: Workspace, tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path / "p.yaml", {"analyses": ["equity_audit"]})
    engine = demo_engine(workspace, policy_path=path)
    assert _step_refusal(engine, RESEARCHER, Role.RESEARCHER, "analyse", analysis="natural_experiment") == (
        "analysis_not_permitted"
    )
    assert (
        _step_refusal(engine, RESEARCHER, Role.RESEARCHER, "analyse", analysis="astrology")
        == "analysis_not_permitted"
    )
    with engine.step(RESEARCHER, Role.RESEARCHER, "analyse", analysis="equity_audit"):
        pass
    assert _entries(workspace)[-1]["analysis"] == "equity_audit"


def test_retention_passed(workspace: Workspace, tmp_path: Path) -> None:
    path = write_demo_policy(tmp_path / "p.yaml", {"retention.linked_data_delete_by": dt.date(2027, 3, 1)})
    before = demo_engine(workspace, policy_path=path, today=dt.date(2027, 2, 28))
    with before.step(RESEARCHER, Role.RESEARCHER, "analyse", analysis="equity_audit", reads_linked_data=True):
        pass
    on_the_day = demo_engine(workspace, policy_path=path, today=dt.date(2027, 3, 1))
    rule = _step_refusal(
        on_the_day, RESEARCHER, Role.RESEARCHER, "analyse", analysis="equity_audit", reads_linked_data=True
    )
    assert rule == "retention_passed"
    with on_the_day.step(PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets=["ways_to_work"]):
        pass  # steps that do not read linked data are unaffected


def test_expired_policy_allows_only_retention(workspace: Workspace) -> None:
    engine = PolicyEngine.load(
        DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, today=dt.date(2029, 2, 1), allow_expired=True
    )
    assert _step_refusal(engine, PROCESSOR, Role.DATA_PROCESSOR, "validate") == "expired"
    with engine.step(OFFICER, Role.IG_OFFICER, "retention_enforce"):
        pass


def test_allowed_step_records_hashes_counts_and_details(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    src = write_text(workspace.landing / "employment" / "ways_to_work.csv", "client_ref\nA1\n")
    out = workspace.pseudonymised / "employment_support"
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "pseudonymise", datasets=["ways_to_work"]) as step:
        step.inputs(src)
        step.outputs(out)  # declared before it is written: hashed at the end
        out.mkdir()
        write_text(out / "part-0.parquet", "rows")
        step.counts(rows_in=1, rows_out=1)
        step.detail(dropped_columns=["notes"], key_version=1)
    entry = _entries(workspace)[-1]
    assert entry["decision"] == "allowed" and entry["rule"] is None
    assert entry["inputs"] == [{"path": "landing/employment/ways_to_work.csv", "sha256": content_hash(src)}]
    assert entry["outputs"] == [{"path": "pseudonymised/employment_support", "sha256": content_hash(out)}]
    assert entry["counts"] == {"rows_in": 1, "rows_out": 1}
    assert entry["details"] == {"dropped_columns": ["notes"], "key_version": 1}
    assert (entry["policy_id"], entry["policy_hash"]) == ("ehl-lcr-demo", engine.policy_hash)
    assert (entry["actor"], entry["role"], entry["datasets"]) == (
        PROCESSOR,
        "data_processor",
        ["ways_to_work"],
    )


def test_failed_step_is_audited_and_reraised(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    with (
        pytest.raises(ValueError, match="column count"),
        engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate") as s,
    ):
        s.counts(rows_in=5)
        raise ValueError("unexpected column count")
    entry = _entries(workspace)[-1]
    assert entry["decision"] == "failed"
    assert entry["reason"] == "ValueError: unexpected column count"
    assert entry["counts"] == {"rows_in": 5}


def test_details_must_be_json(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    with pytest.raises(TypeError), engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate") as step:
        step.detail(when=object())
    assert _entries(workspace)[-1]["decision"] == "failed"


def test_field_selection_for_ingest(workspace: Workspace) -> None:
    engine = demo_engine(workspace)
    sel = engine.field_selection(
        "health_activity", ["patient_id", "month", "free_text_notes", "count", "telephone"]
    )
    assert sel.kept == ("patient_id", "month", "count")
    assert sel.dropped == ("free_text_notes", "telephone")
    assert sel.missing == ("measure",)
    assert "sr_asthma" in engine.permitted_fields("employment_support")
    with pytest.raises(PolicyRefused, match="dataset_not_permitted|not permitted"):
        engine.permitted_fields("benefits")
    assert engine.opt_out_list_path() == workspace.root / "landing/health/opt_out.csv"


# ---- retention -------------------------------------------------------------------------------


def _fill_zones(ws: Workspace) -> None:
    write_text(ws.linked / "links.parquet", "x" * 100)
    (ws.analysis / "panel.parquet").mkdir()
    write_text(ws.analysis / "panel.parquet" / "part-0", "y" * 50)
    write_text(ws.pseudonymised / "keep.txt", "pseudonymised zone is not linked data")


def test_retention_enforce_deletes_only_when_due(workspace: Workspace, tmp_path: Path) -> None:
    _fill_zones(workspace)
    early = PolicyEngine.load(DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, today=dt.date(2028, 1, 1))
    result = enforce_retention(early, OFFICER)
    assert not result.due and (workspace.linked / "links.parquet").exists()

    late = PolicyEngine.load(
        DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, today=dt.date(2029, 7, 1), allow_expired=True
    )
    dry = enforce_retention(late, OFFICER, dry_run=True)
    assert dry.due and dry.files == 2 and dry.bytes == 150 and (workspace.linked / "links.parquet").exists()
    done = enforce_retention(late, OFFICER)
    assert done.files == 2
    assert list(workspace.linked.iterdir()) == [] and list(workspace.analysis.iterdir()) == []
    assert (workspace.pseudonymised / "keep.txt").exists()
    entry = _entries(workspace)[-1]
    assert entry["action"] == "retention_enforce" and entry["details"]["deleted"] is True
    assert entry["counts"] == {"entries": 2, "files": 2, "bytes": 150}
    with pytest.raises(PolicyRefused):
        enforce_retention(late, RESEARCHER)


# ---- canaries --------------------------------------------------------------------------------

CANARIES = (
    "9434765919",
    "943 476 5919",
    "L8 1AB",
    "Zebedee",
    "Quuxley-Fontaine",
    "1987-03-14",
    "CLIENT-CANARY-77",
)


def test_audit_log_never_contains_identifiers_keys_or_salts(workspace: Workspace, tmp_path: Path) -> None:
    secret = MasterSecret(bytes.fromhex("7e3f" * 16))
    engine = demo_engine(workspace, master_secret=secret)
    extract = write_text(
        workspace.landing / "employment" / "ways_to_work.csv",
        "client_ref,forename,surname,date_of_birth,postcode,nhs_number\n"
        "CLIENT-CANARY-77,Zebedee,Quuxley-Fontaine,1987-03-14,L8 1AB,9434765919\n",
    )
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate", datasets=["ways_to_work"]) as step:
        step.inputs(extract)
        step.counts(rows_in=1)
        step.detail(note="a careless caller wrote 943 476 5919 and L8 1AB here")
    with pytest.raises(KeyError), engine.step(PROCESSOR, Role.DATA_PROCESSOR, "pseudonymise"):
        raise KeyError("no token for 9434765919 at L8 1AB")
    with pytest.raises(PolicyRefused), engine.step("demo-processor", Role.RESEARCHER, "analyse"):
        pass
    forbidden = [
        *CANARIES[:3],
        "7e3f7e3f",  # the master secret
        secret.derive("audit").hex(),
        secret.derive("match-tokens", "ehl-lcr-demo", 1).hex(),
        secret.derive("research-pseudonym", "ehl-lcr-demo", 1).hex(),
    ]
    text = "".join(p.read_text() for p in workspace.audit.iterdir() if p.is_file())
    assert text.count("[redacted]") == 4
    for canary in forbidden:
        assert canary not in text, canary
    for canary in CANARIES[3:]:  # values that only ever lived inside input files
        assert canary not in text, canary
    assert AuditLog.for_workspace(workspace, secret).verify().ok


def test_workspace_paths_in_entries_are_relative(workspace: Workspace, tmp_path: Path) -> None:
    engine = demo_engine(workspace)
    outside = write_text(tmp_path / "elsewhere.txt", "x")
    shutil.copy(outside, workspace.reference / "r.txt")
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate") as step:
        step.inputs(workspace.reference / "r.txt", outside)
    paths = [i["path"] for i in _entries(workspace)[-1]["inputs"]]
    assert paths == ["reference/r.txt", str(outside.resolve())]
