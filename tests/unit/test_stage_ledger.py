"""Resumable stages: unchanged inputs skip, changed inputs or damaged outputs re-run."""

from __future__ import annotations

from flows.stage_ledger import StageLedger
from ig_policies.workspace import Workspace


def test_stage_is_skipped_only_while_inputs_and_outputs_are_unchanged(workspace: Workspace) -> None:
    ledger = StageLedger(workspace)
    src = workspace.landing / "in.csv"
    out = workspace.pseudonymised / "out.parquet"
    src.write_text("a\n1\n")

    plan = ledger.plan("pseudonymise", [src], {"key_version": 1})
    assert not plan.up_to_date
    out.write_text("tokens")
    ledger.complete(plan, [out], {"rows": 1})

    assert ledger.plan("pseudonymise", [src], {"key_version": 1}).up_to_date
    assert not ledger.plan("pseudonymise", [src], {"key_version": 2}).up_to_date  # parameters count

    out.write_text("tampered")
    assert not ledger.plan("pseudonymise", [src], {"key_version": 1}).up_to_date  # outputs must match

    out.write_text("tokens")
    src.write_text("a\n2\n")
    assert not ledger.plan("pseudonymise", [src], {"key_version": 1}).up_to_date  # inputs must match
    assert ledger.summary("pseudonymise") == {"rows": 1}


def test_a_damaged_ledger_means_rerun_not_skip(workspace: Workspace) -> None:
    ledger = StageLedger(workspace)
    ledger.path.write_text("{not json")
    assert not ledger.plan("link", [], {}).up_to_date


def test_a_copied_workspace_keeps_its_completed_stages(workspace: Workspace, tmp_path) -> None:
    import shutil

    src = workspace.landing / "in.csv"
    out = workspace.linked / "links.parquet"
    src.write_text("x\n")
    out.write_text("links")
    ledger = StageLedger(workspace)
    ledger.complete(ledger.plan("link", [src], {}), [out])

    copy = Workspace.open(shutil.copytree(workspace.root, tmp_path / "copy"))
    assert StageLedger(copy).plan("link", [copy.landing / "in.csv"], {}).up_to_date
