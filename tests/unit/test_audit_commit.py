"""The audit log fails closed: a stage's outputs are put in place only after its closing audit entry.

The failure is real: the moment a step is about to write its closing entry, the audit log file is
made immutable (``chattr +i``, which even root cannot write through), so the real writer's append
fails with the operating system's error. Each stage must then end with exit 4 naming the rule,
leave nothing new in the workspace (no final output, no staging folder), leave the stage ledger as
it was, and succeed when run again once the log is writable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import stages
from flows.cli import app
from flows.stage_ledger import StageLedger
from ig_policies.audit import AuditLog, unfinished_steps
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS
from ig_policies.engine import PolicyEngine
from ig_policies.errors import EXIT_BAD_INPUT, AuditUnavailable, exit_code_for
from ig_policies.policy import Role
from ig_policies.workspace import Workspace, content_hash, remove_stale_staging, write_text
from tests.unit.test_stages import _context, _settings_file

PROCESSOR = DEMO_USERS["data_processor"]

needs_chattr = pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr (e2fsprogs)")


def _set_immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def audit_log_fails_when_closing(action: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """While open: just before step ``action`` writes its closing entry, its log becomes immutable.

    Only the trigger is added; the append itself is the real one and fails on the real file.
    The flag is lifted when the block ends, whatever happens.
    """
    frozen: list[Path] = []
    real_append = AuditLog.append

    def append(self: AuditLog, **fields):
        if fields.get("action") == action and fields.get("decision") in ("allowed", "failed"):
            probe = subprocess.run(["chattr", "+i", str(self.path)], capture_output=True)
            if probe.returncode != 0:
                pytest.skip(f"this filesystem does not support immutable files: {probe.stderr!r}")
            frozen.append(self.path)
        return real_append(self, **fields)

    with monkeypatch.context() as patch:
        patch.setattr(AuditLog, "append", append)
        try:
            yield frozen
        finally:
            for path in frozen:
                _set_immutable(path, False)


def _snapshot(ws: Workspace) -> dict[str, str]:
    """Every file in the workspace but the audit log and the ledger (hidden ones included), and
    every staging folder (empty or not)."""
    out = {}
    for path in sorted(ws.root.rglob("*")):
        rel = path.relative_to(ws.root).as_posix()
        if rel.startswith(("audit/", ".state/")):
            continue
        if path.is_file():
            out[rel] = content_hash(path)
        elif path.name.startswith(".staging-"):
            out[rel] = "staging folder"
    return out


def _ledger_record(ws: Workspace, stage: str):
    return StageLedger(ws)._read().get(stage)


def assert_fails_closed(ws: Workspace, stage: str, action: str, run, monkeypatch, finals: list[Path]):
    """Run ``run()`` with the closing entry failing; check nothing was kept; run again for real."""
    before, ledger_before = _snapshot(ws), _ledger_record(ws, stage)
    log = AuditLog.for_workspace(ws)
    open_before = [e["seq"] for e in unfinished_steps(log.entries())]
    with (
        audit_log_fails_when_closing(action, monkeypatch) as frozen,
        pytest.raises(AuditUnavailable) as caught,
    ):
        run()
    assert frozen, f"the step '{action}' never tried to close"
    assert exit_code_for(caught.value) == EXIT_BAD_INPUT == 4
    text = str(caught.value)
    assert "audit_before_commit" in text and f"'{action}'" in text and "What to do:" in text
    assert _snapshot(ws) == before  # no final output, no staging folder, nothing changed
    for final in finals:
        assert not final.exists(), final
    assert _ledger_record(ws, stage) == ledger_before  # the ledger claims nothing
    assert log.verify().ok
    unfinished = [e["action"] for e in unfinished_steps(log.entries()) if e["seq"] not in open_before]
    assert unfinished == [action]  # shown as started and never finished

    outcome = run()  # the audit log is back: the same command now succeeds
    assert not outcome.skipped
    for final in finals:
        assert final.exists(), final
    assert _ledger_record(ws, stage) is not None
    assert log.verify().ok
    closing = [e for e in log.entries() if e["action"] == action and e["decision"] == "allowed"]
    outputs = {o["path"]: o["sha256"] for o in closing[-1]["outputs"]}
    for final in finals:  # the entry hashes what was put in place
        label = final.relative_to(ws.root).as_posix()
        if label in outputs:
            assert outputs[label] == content_hash(final)
    assert not [p for p in ws.root.rglob(".staging-*")]
    return outcome


# ---- each stage ------------------------------------------------------------------------------


@needs_chattr
@pytest.mark.spark
def test_validate_and_pseudonymise_commit_nothing_when_their_closing_entry_fails(
    spark, workspace: Workspace, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_validation_data import employment_people, ways_to_work_rows, write_ways_to_work

    write_ways_to_work(workspace.landing, ways_to_work_rows(employment_people(30, seed=5)))
    settings = stages.Settings().with_overrides({"validation": {"datasets": ["ways_to_work"]}})
    ctx = _context(workspace, settings, spark_factory=lambda _settings: spark, resume=False)
    validated = workspace.landing / "validated" / "ways_to_work.parquet"
    finals = [
        validated,
        workspace.quarantine / "ways_to_work.parquet",
        workspace.quarantine / "ways_to_work.csv",
    ]
    done = assert_fails_closed(
        workspace, "validate", "validate", lambda: stages.run_validate(ctx), monkeypatch, finals
    )
    assert done.summary["rows_in"] == 30 == done.summary["rows_accepted"] + done.summary["rows_quarantined"]


@needs_chattr
@pytest.mark.spark
def test_pseudonymise_commits_nothing_when_its_closing_entry_fails(
    spark, tmp_path: Path, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_pseudonymise import make_workspace

    ws = make_workspace(tmp_path / "ws")
    ctx = _context(ws, spark_factory=lambda _settings: spark, resume=False)
    finals = [ws.pseudonymised / "employment_support"]
    done = assert_fails_closed(
        ws, "pseudonymise", "pseudonymise", lambda: stages.run_pseudonymise(ctx), monkeypatch, finals
    )
    assert done.summary["rows_in"] >= done.summary["rows_out"] > 0
    assert {Path(p).name for p in done.outputs} >= {"employment_support"}


@needs_chattr
def test_link_commits_nothing_when_its_closing_entry_fails(
    tmp_path: Path, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from tests.unit.test_link_stage import _workspace as linkable_workspace

    logging.getLogger("splink").setLevel(logging.ERROR)
    ws = linkable_workspace(tmp_path / "ws")
    (tmp_path / "link.yaml").write_text("u_max_pairs: 20000\n")
    settings = _settings_file(tmp_path, f"linkage:\n  backend: duckdb\n  config: {tmp_path / 'link.yaml'}\n")
    ctx = _context(ws, settings, resume=False)
    names = [
        "links.parquet",
        "model.json",
        "clerical_review.parquet",
        "match_rates.parquet",
        "link_summary.json",
    ]
    finals = [ws.linked / n for n in names] + [ws.reports / "linkage" / "report.md"]
    assert_fails_closed(ws, "link", "link", lambda: stages.run_link(ctx), monkeypatch, finals)

    # the report written again by the command 'ehl link report', a governed step of its own
    report = ws.reports / "linkage" / "report.md"
    before = report.read_bytes()
    report.unlink()
    command = ["link", "report", "--workspace", str(ws.root), "--policy", str(DEMO_POLICY)]
    command += ["--trust-store", str(DEMO_TRUST_STORE)]
    with audit_log_fails_when_closing("link_report", monkeypatch):
        refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 4, refused.output
    assert "audit_before_commit" in refused.output and "What to do" in refused.output
    assert "Traceback" not in refused.output
    assert not report.exists() and not list(ws.root.rglob(".staging-*"))
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert report.read_bytes() == before


@needs_chattr
def test_research_dataset_and_an_analysis_commit_nothing_when_their_closing_entry_fails(
    tmp_path: Path, workspace: Workspace, master_secret_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.natural_experiment.simulation import simulate_region
    from ig_policies.workspace import write_parquet
    from tests.unit.test_research_dataset import _write_inputs as write_research_inputs

    write_research_inputs(workspace)
    settings = _settings_file(
        tmp_path,
        "research_dataset: {months_before: 6, pool_size: 10}\n"
        "analyses:\n  natural_experiment: {measures: [gp_appointments], placebo_shift: 0}\n",
    )
    ctx = _context(workspace, settings, resume=False)
    names = ["clients.parquet", "panel.parquet", "comparison_people.parquet", "comparison_pool.parquet"]
    finals = [workspace.analysis / n for n in names]
    built = assert_fails_closed(
        workspace,
        "research_dataset",
        "build_research_dataset",
        lambda: stages.run_research_dataset(ctx),
        monkeypatch,
        finals,
    )
    assert built.summary["enrolments"] == 4

    region = simulate_region(n_clients=400, n_pool=10, seed=8, effects={}, measures=("gp_appointments",))
    write_parquet(region.panel, workspace.analysis / "panel.parquet")
    # the analysis's own output requests are inner steps: their entries are written, but their
    # folders in outputs/pending/ are put in place only with the analysis's closing entry
    analysed = assert_fails_closed(
        workspace,
        "analysis:natural_experiment",
        "natural_experiment",
        lambda: stages.run_analysis(ctx, "natural_experiment"),
        monkeypatch,
        [],
    )
    pending = [p for p in workspace.pending.iterdir() if not p.name.startswith(".")]
    assert len(pending) == len(analysed.result.requests) > 0
    assert {p.name for p in pending} == {request_id for _, request_id, _ in analysed.result.requests}


# ---- the step itself ---------------------------------------------------------------------------


def _engine(ws: Workspace) -> PolicyEngine:
    return PolicyEngine.load(DEMO_POLICY, ws, trust_store=DEMO_TRUST_STORE, actor=PROCESSOR)


def test_a_failing_step_keeps_only_what_it_marked_and_leaves_no_staging(workspace: Workspace) -> None:
    engine = _engine(workspace)
    kept, dropped = workspace.quarantine / "why.csv", workspace.pseudonymised / "table.csv"
    with (
        pytest.raises(RuntimeError, match="stopped"),
        engine.step(PROCESSOR, Role.DATA_PROCESSOR, "validate") as step,
    ):
        write_text(step.stage(kept, keep_on_failure=True), "row,reason\n")
        staged = step.stage(dropped)
        write_text(staged, "token\n")
        assert staged.parent.name.startswith(".staging-") and staged.parent.parent == dropped.parent
        assert (staged.parent.stat().st_mode & 0o777) == 0o700  # inside its zone, owner only
        assert not dropped.exists() and engine.staged(dropped) == staged
        raise RuntimeError("stopped")
    assert kept.read_text() == "row,reason\n" and not dropped.exists()
    assert not list(workspace.root.rglob(".staging-*"))
    failed = AuditLog.for_workspace(workspace).entries()[-1]
    assert failed["decision"] == "failed" and {o["path"] for o in failed["outputs"]} == {
        "quarantine/why.csv",
        "pseudonymised/table.csv",
    }


def test_an_output_is_renamed_into_place_after_the_allowed_entry(workspace: Workspace) -> None:
    engine = _engine(workspace)
    final = workspace.analysis / "table.csv"
    write_text(final, "old\n")
    seen: list[str] = []
    real_append = engine.audit.append

    def watching(**fields):  # what is at the final path when each entry is written
        seen.append(f"{fields['decision']}:{final.read_text().strip()}")
        return real_append(**fields)

    engine.audit.append = watching  # type: ignore[method-assign]
    with engine.step(PROCESSOR, Role.DATA_PROCESSOR, "build_research_dataset") as step:
        write_text(step.stage(final), "new\n")
    assert seen == ["started:old", "allowed:old"] and final.read_text() == "new\n"
    assert oct(final.stat().st_mode & 0o777) == oct(0o640)  # the zone's file mode, not staging's 0600
    allowed = AuditLog.for_workspace(workspace).entries()[-1]
    assert allowed["outputs"] == [{"path": "analysis/table.csv", "sha256": content_hash(final)}]


def test_a_dead_runs_step_staging_is_swept_at_start_up(workspace: Workspace) -> None:
    proc = subprocess.Popen(["true"])  # a pid that has exited
    proc.wait()
    leftover = workspace.linked / f".staging-{proc.pid}-0a1b2c3d"
    leftover.mkdir()
    (leftover / "links.parquet").write_text("half")
    mine = workspace.linked / f".staging-{os.getpid()}-ffff0000"
    mine.mkdir()
    assert remove_stale_staging(workspace) == [leftover]
    assert not leftover.exists() and mine.exists()


@needs_chattr
def test_retention_deletes_nothing_when_its_closing_entry_fails(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting is an action too: the data goes only once the audit log has recorded it."""
    import datetime as dt

    from ig_policies.retention import enforce_retention

    write_text(workspace.linked / "links.parquet", "x" * 100)
    write_text(workspace.analysis / "panel.parquet" / "part-0", "y" * 50)
    officer = DEMO_USERS["ig_officer"]
    late = PolicyEngine.load(
        DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, today=dt.date(2029, 7, 1),
        allow_expired=True, actor=officer,
    )  # fmt: skip
    before = _snapshot(workspace)
    with (
        audit_log_fails_when_closing("retention_enforce", monkeypatch) as frozen,
        pytest.raises(AuditUnavailable, match="audit_before_commit"),
    ):
        enforce_retention(late, officer)
    assert frozen
    assert _snapshot(workspace) == before  # everything back where it was, no staging left
    log = AuditLog.for_workspace(workspace)
    assert [e["action"] for e in unfinished_steps(log.entries())] == ["retention_enforce"]

    done = enforce_retention(late, officer)  # the log is writable again: now it is deleted
    assert (
        done.files == 2
        and list(workspace.linked.iterdir()) == []
        and list(workspace.analysis.iterdir()) == []
    )
    assert log.entries()[-1]["details"]["deleted"] is True and log.verify().ok
