"""Audit log: every kind of tampering is detected and named without an anchor being passed; entries
are signed by the writer (a real service on a real Unix socket, or in-process); concurrent appends
keep one chain; a killed step shows as started and never finished."""

from __future__ import annotations

import json
import multiprocessing
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ig_policies.audit import AuditLog, AuditSettings, create_demo_audit, filter_entries, redact
from ig_policies.errors import AuditUnavailable, ConfigError, TamperedError
from ig_policies.workspace import Workspace

ME = pwd.getpwuid(os.getuid()).pw_name


def _open(tmp_path: Path) -> AuditLog:
    return AuditLog.open(Workspace.open(tmp_path / "ws"), create_demo_audit(tmp_path / "audit-writer"))


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = _open(tmp_path)
    for i in range(n):
        log.append(
            actor=f"user{i % 2}",
            role="data_processor",
            action=f"step{i}",
            decision="allowed",
            counts={"rows": i},
        )
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def _kinds(log: AuditLog) -> list[tuple[str, int | None]]:
    report = log.verify()
    assert not report.ok
    return [(p.kind, p.seq) for p in report.problems]


def test_intact_log_verifies(tmp_path: Path) -> None:
    log = _log(tmp_path)
    report = log.verify()
    assert report.ok and report.entries == 5
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert report.head_hash == entries[-1]["hash"]
    assert log.verify_or_raise(anchor=(3, entries[2]["hash"])).ok


def test_edited_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[2] = lines[2].replace('"rows": 2', '"rows": 200')
    log.path.write_text("".join(lines))
    assert _kinds(log) == [("edited", 3)]
    assert "entry #3 was edited" in log.verify().summary()


def test_edited_entry_with_recomputed_hash(tmp_path: Path) -> None:
    import hashlib

    log = _log(tmp_path)
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["actor"] = "someone-else"
    body = {k: v for k, v in entry.items() if k not in ("hash", "signature")}
    entry["hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    lines[1] = json.dumps(entry) + "\n"
    log.path.write_text("".join(lines))
    kinds = _kinds(log)
    assert ("edited", 2) in kinds
    assert not any(k == "deleted" for k, _ in kinds)


def test_last_entry_edited(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[-1] = lines[-1].replace('"decision": "allowed"', '"decision": "refused"')
    log.path.write_text("".join(lines))
    assert _kinds(log) == [("edited", 5)]


def test_deleted_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[1:3]
    log.path.write_text("".join(lines))
    assert _kinds(log) == [("deleted", 2)]
    assert "entries #2-#3 deleted" in log.verify().summary()


def test_inserted_forged_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    forged = json.loads(lines[1])
    forged.update(seq=99, actor="ghost")
    lines.insert(2, json.dumps(forged) + "\n")
    log.path.write_text("".join(lines))
    assert _kinds(log) == [("inserted", 99)]
    assert "line 3" in log.verify().summary()


def test_inserted_copy_of_a_real_entry(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines.insert(4, lines[1])  # a replayed, genuinely signed entry
    log.path.write_text("".join(lines))
    assert ("inserted", 2) in _kinds(log)


def test_forged_entry_from_another_key(tmp_path: Path) -> None:
    log = _log(tmp_path)
    forger = _open(tmp_path / "forger")
    forger.append(actor="ghost", role="ig_officer", action="release", decision="allowed")
    lines = _lines(log)
    log.path.write_text("".join(lines) + _lines(forger)[0])
    assert _kinds(log) == [("inserted", 1)]


def test_forged_continuation_signed_with_another_key_is_rejected(tmp_path: Path) -> None:
    """A perfect continuation of the chain (next seq, right prev, right hash) but the wrong signer."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ig_policies.audit import ENTRY_LABEL, canonical

    log = _log(tmp_path)
    last = log.entries()[-1]
    body = {k: v for k, v in last.items() if k not in ("hash", "signature")}
    body.update(seq=6, prev=last["hash"], actor="ghost", action="release", account=ME)
    forged = {
        **body,
        "hash": hashlib.sha256(canonical(body)).hexdigest(),
        "signature": Ed25519PrivateKey.generate().sign(ENTRY_LABEL + canonical(body)).hex(),
    }
    log.path.write_text(log.path.read_text() + json.dumps(forged) + "\n")
    assert _kinds(log) == [("inserted", 6)]
    with pytest.raises(TamperedError, match="not signed by the audit writer"):
        log.append(actor="x", role="researcher", action="y", decision="allowed")


def test_reordered_entries(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[1], lines[3] = lines[3], lines[1]
    log.path.write_text("".join(lines))
    kinds = _kinds(log)
    assert {k for k, _ in kinds} == {"reordered"}
    assert "reordered" in log.verify().summary()


def test_truncated_tail(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.path.write_text("".join(_lines(log)[:3]))
    assert _kinds(log) == [("truncated", 4)]
    assert "entries #4-#5 are missing from the end" in log.verify().summary()


def test_log_emptied_or_removed(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.path.write_text("")
    assert _kinds(log) == [("truncated", 1)]
    log.path.unlink()
    assert _kinds(log) == [("truncated", 1)]


def test_anchor_edited_or_missing(tmp_path: Path) -> None:
    log = _log(tmp_path)
    anchor = json.loads(log.anchor_path.read_text())
    anchor["seq"] = 3
    log.anchor_path.write_text(json.dumps(anchor))
    assert _kinds(log) == [("anchor", None)]
    log.anchor_path.unlink()
    assert _kinds(log) == [("anchor", None)]


def test_log_deleted_is_detected_and_no_new_chain_starts(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.path.unlink()
    report = log.verify()
    assert [(p.kind, p.seq) for p in report.problems] == [("truncated", 1)]
    assert "deleted or emptied" in report.summary()
    with pytest.raises(TamperedError, match="no_new_chain_after_entries"):
        log.append(actor="x", role="researcher", action="y", decision="allowed")
    assert not log.path.exists()


def test_rollback_to_an_earlier_copy_is_detected_without_an_anchor(tmp_path: Path) -> None:
    log = _log(tmp_path, n=2)
    old_log = log.path.read_text()
    log.append(actor="user0", role="researcher", action="release", decision="allowed")
    anchor = (3, log.entries()[-1]["hash"])
    log.path.write_text(old_log)
    assert _kinds(log) == [("truncated", 3)]  # the writer's anchor outside the workspace says 3
    with pytest.raises(TamperedError, match="anchor"):
        log.verify_or_raise(anchor=anchor)  # an anchor noted by hand is still checked as well
    with pytest.raises(TamperedError, match="does not match the audit writer's anchor"):
        log.append(actor="x", role="researcher", action="y", decision="allowed")


def test_rollback_then_fork_is_detected(tmp_path: Path) -> None:
    """The log rolled back and a different entry #3 written by the same writer in its place."""
    log = _log(tmp_path, n=2)
    two_entries, anchor_then = log.path.read_text(), log.anchor_path.read_text()
    log.append(actor="user0", role="researcher", action="release", decision="allowed")
    anchor_now = log.anchor_path.read_text()
    log.path.write_text(two_entries)
    log.anchor_path.write_text(anchor_then)  # (only the writer's account can do this)
    log.append(actor="user1", role="researcher", action="other", decision="allowed")
    log.anchor_path.write_text(anchor_now)
    assert _kinds(log) == [("rolled_back", 3)]


def test_anchor_inside_the_workspace_is_refused(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    demo = create_demo_audit(tmp_path / "writer")
    inside = AuditSettings(
        public_key=demo.public_key, signing_key=demo.signing_key, anchor=ws.root / "a.json"
    )
    with pytest.raises(ConfigError, match="anchor_outside_workspace"):
        AuditLog.open(ws, inside)


def test_settings_need_exactly_one_writer(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one"):
        AuditSettings(public_key=tmp_path / "p.pem", anchor=tmp_path / "a.json")
    with pytest.raises(ValidationError, match="exactly one"):
        AuditSettings(
            public_key=tmp_path / "p.pem",
            anchor=tmp_path / "a",
            socket=tmp_path / "s",
            signing_key=tmp_path / "k",
        )


def test_signing_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    demo = create_demo_audit(tmp_path / "writer")
    assert demo.signing_key is not None and demo.signing_key.stat().st_mode & 0o777 == 0o600
    demo.signing_key.chmod(0o644)
    log = AuditLog.open(Workspace.open(tmp_path / "ws"), demo)
    with pytest.raises(ConfigError, match="signing_key_private"):
        log.append(actor="a", role="researcher", action="b", decision="allowed")


def test_new_chain_refused_in_a_workspace_with_history(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    (ws.root / ".state").mkdir(exist_ok=True)
    (ws.root / ".state" / "stages.json").write_text('{"synth": {}, "validate": {}}')
    log = AuditLog.open(ws, create_demo_audit(tmp_path / "writer"))
    with pytest.raises(TamperedError, match="no_new_chain_with_history") as err:
        log.append(actor="a", role="researcher", action="b", decision="allowed")
    assert "stage ledger" in err.value.message and "restore the audit log" in (err.value.hint or "")
    (ws.root / ".state" / "stages.json").write_text("not json")  # unreadable: it may hide audited stages
    with pytest.raises(TamperedError, match="no_new_chain_with_history"):
        log.append(actor="a", role="researcher", action="b", decision="allowed")
    # the synthetic region is made before any policy step (demo, tests): no sign of an audit trail
    (ws.root / ".state" / "stages.json").write_text('{"synth": {}}')
    (ws.pending / "req-1").mkdir(parents=True)
    with pytest.raises(TamperedError, match="outputs in outputs/pending"):
        log.append(actor="a", role="researcher", action="b", decision="allowed")
    (ws.pending / "req-1").rmdir()
    assert log.append(actor="a", role="researcher", action="b", decision="allowed")["seq"] == 1


def test_account_is_stamped_by_the_writer_not_the_caller(tmp_path: Path) -> None:
    log = _open(tmp_path)
    entry = log.append(
        actor="a", role="researcher", action="b", decision="allowed", account="root-ish", seq=99, prev="x"
    )
    assert entry["account"] == ME and log.entries()[0]["account"] == ME
    assert entry["seq"] == 1 and entry["prev"] == "0" * 64 and log.verify().ok


def test_append_failure_raises_and_the_step_does_not_run(tmp_path: Path) -> None:
    from ig_policies.demo import demo_engine
    from ig_policies.policy import Role

    ws = Workspace.open(tmp_path / "ws")
    log = AuditLog.open(ws, create_demo_audit(tmp_path / "writer"))
    log.path.mkdir()  # the log cannot be opened for appending (holds for any account, root too)
    with pytest.raises(AuditUnavailable, match="could not be written"):
        log.append(actor="a", role="researcher", action="b", decision="allowed")
    engine = demo_engine(ws, audit=log)
    ran = False
    with pytest.raises(AuditUnavailable), engine.step("demo-researcher", Role.RESEARCHER, "analyse"):
        ran = True
    assert not ran


def test_writer_service_down_fails_closed(tmp_path: Path) -> None:
    demo = create_demo_audit(tmp_path / "writer")
    settings = AuditSettings(public_key=demo.public_key, anchor=demo.anchor, socket=tmp_path / "none.sock")
    log = AuditLog.open(Workspace.open(tmp_path / "ws"), settings)
    assert log.verify().ok  # reading needs only the public key and the anchor
    with pytest.raises(AuditUnavailable, match="cannot be reached"):
        log.append(actor="a", role="researcher", action="b", decision="allowed")


def test_append_refuses_to_extend_a_tampered_log(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.path.write_text("".join(_lines(log)[:-1]))
    with pytest.raises(TamperedError):
        log.append(actor="x", role="researcher", action="y", decision="allowed")
    log2 = _log(tmp_path / "b")
    log2.path.write_text(log2.path.read_text().replace('"rows": 4', '"rows": 40'))
    with pytest.raises(TamperedError):
        log2.append(actor="x", role="researcher", action="y", decision="allowed")


def test_interrupted_append_is_completed(tmp_path: Path) -> None:
    log = _log(tmp_path, n=2)
    stale_anchor = log.anchor_path.read_text()
    log.append(actor="user0", role="researcher", action="analyse", decision="allowed")
    log.anchor_path.write_text(stale_anchor)  # as if the writer died between the two writes
    report = log.verify()
    assert report.ok and report.notes
    log.append(actor="user0", role="researcher", action="analyse", decision="allowed")
    assert log.verify().ok and log.verify().entries == 4 and not log.verify().notes


def test_wrong_key_sees_every_entry_as_forged(tmp_path: Path) -> None:
    log = _log(tmp_path)
    other = create_demo_audit(tmp_path / "other-writer")
    wrong = AuditSettings(public_key=other.public_key, anchor=log.anchor_path, signing_key=other.signing_key)
    report = AuditLog.open(Workspace.open(tmp_path / "ws"), wrong).verify()
    assert not report.ok and {p.kind for p in report.problems} >= {"inserted", "anchor"}


def test_decision_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _open(tmp_path).append(actor="a", action="b", decision="maybe")


def test_redaction() -> None:
    assert redact("nhs 943 476 5919, 9434765919 and L8 1AB / l81ab") == (
        "nhs [redacted], [redacted] and [redacted] / [redacted]",
        4,
    )
    digest = "a1b2c3d4e5" + "1234567890" + "ab" * 22
    assert redact(f"sha256 {digest} at 2026-11-22T21:57:50.236474+00:00, E01006512") == (
        f"sha256 {digest} at 2026-11-22T21:57:50.236474+00:00, E01006512",
        0,
    )


def test_filter_entries(tmp_path: Path) -> None:
    import datetime as dt

    log = _log(tmp_path)
    entries = log.entries()
    assert [e["seq"] for e in filter_entries(entries, actor="user1")] == [2, 4]
    assert [e["seq"] for e in filter_entries(entries, action="step3")] == [4]
    assert filter_entries(entries, decision="refused") == []
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert filter_entries(entries, since=future) == [] and len(filter_entries(entries, until=future)) == 5


# ---- concurrency -----------------------------------------------------------------------------


def _append_many(directory: str, worker: int, n: int) -> None:
    log = _open(Path(directory))
    for i in range(n):
        log.append(
            actor=f"worker{worker}",
            role="data_processor",
            action="append",
            decision="allowed",
            counts={"i": i},
        )


def test_concurrent_appends_from_several_processes(tmp_path: Path) -> None:
    directory = str(tmp_path)
    _open(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    workers, per_worker = 4, 25
    procs = [ctx.Process(target=_append_many, args=(directory, w, per_worker)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    log = _open(tmp_path)
    report = log.verify()
    assert report.ok, report.summary()
    entries = log.entries()
    assert [e["seq"] for e in entries] == list(range(1, workers * per_worker + 1))
    per_actor = {
        f"worker{w}": sorted(e["counts"]["i"] for e in entries if e["actor"] == f"worker{w}")
        for w in range(workers)
    }
    assert all(v == list(range(per_worker)) for v in per_actor.values())


@settings(max_examples=30, deadline=None)
@given(
    position=st.floats(0, 1, exclude_max=True), replacement=st.characters(min_codepoint=32, max_codepoint=126)
)
def test_any_single_character_change_is_detected_or_harmless(
    tmp_path_factory: pytest.TempPathFactory, position: float, replacement: str
) -> None:
    """Property: changing one character either is reported, or left every entry's content unchanged
    (e.g. a space swapped inside the JSON layout)."""
    log = _log(tmp_path_factory.mktemp("prop"), n=3)
    before = log.entries()
    text = log.path.read_text()
    i = int(position * len(text))
    if text[i] == "\n" or text[i] == replacement:
        return
    log.path.write_text(text[:i] + replacement + text[i + 1 :])
    report = log.verify()
    if report.ok:
        assert log.entries() == before


# ---- the writer service and killed steps -----------------------------------------------------


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{what}: the process ended early (exit {proc.returncode}): {out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: timed out")
        time.sleep(0.05)


def test_writer_service_on_a_real_unix_socket(tmp_path: Path) -> None:
    """A real ``ehl audit serve`` process; the account comes from the kernel (SO_PEERCRED)."""
    from ig_policies.audit_writer import request
    from ig_policies.demo import demo_engine
    from ig_policies.policy import Role

    ws = Workspace.open(tmp_path / "ws")
    keys = create_demo_audit(tmp_path / "writer")
    sock = tmp_path / "writer" / "audit.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from flows.cli import main; main()", "audit", "serve", "--workspace",
         str(ws.root), "--key", str(keys.signing_key), "--anchor", str(keys.anchor), "--socket", str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(sock.exists, proc, "the audit writer's socket")
        assert sock.stat().st_mode & 0o777 == 0o660
        clients = AuditSettings(public_key=keys.public_key, anchor=keys.anchor, socket=sock)
        log = AuditLog.open(ws, clients)
        entry = log.append(actor="a", role="researcher", action="b", decision="allowed", account="someone")
        assert entry["seq"] == 1 and entry["account"] == ME
        engine = demo_engine(ws, audit=clients)
        with engine.step("demo-researcher", Role.RESEARCHER, "analyse"):
            pass
        report = log.verify()
        assert report.ok and report.entries == 3, report.summary()
        assert [e["account"] for e in log.entries()] == [ME] * 3
        anchor = request(sock, {"request": "anchor"})["anchor"]
        assert (anchor["seq"], anchor["hash"]) == (3, log.entries()[-1]["hash"])
        with pytest.raises(AuditUnavailable, match="unknown request"):
            request(sock, {"request": "rewrite"})
        log.path.write_text("".join(_lines(log)[:1]))  # truncated behind the writer's back
        with pytest.raises(TamperedError, match="does not match the audit writer's anchor"):
            log.append(actor="a", role="researcher", action="b", decision="allowed")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and not sock.exists()


def test_writer_service_refuses_to_start_over_a_deleted_log(tmp_path: Path) -> None:
    log = _log(tmp_path, n=2)
    log.path.unlink()
    keys = create_demo_audit(tmp_path / "audit-writer")
    result = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "audit", "serve", "--workspace",
         str(tmp_path / "ws"), "--key", str(keys.signing_key), "--anchor", str(keys.anchor), "--socket",
         str(tmp_path / "s.sock")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no_new_chain_after_entries" in result.stdout + result.stderr


KILLED_STEP = """
import sys, time
from ig_policies.demo import demo_engine
from ig_policies.policy import Role
from ig_policies.workspace import Workspace
engine = demo_engine(Workspace.open(sys.argv[1]))
with engine.step("demo-processor", Role.DATA_PROCESSOR, "pseudonymise"):
    print("inside", flush=True)
    time.sleep(300)
"""


def test_step_killed_by_sigkill_shows_as_started_and_never_finished(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws = Workspace.open(tmp_path / "ws")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_STEP, str(ws.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "inside", proc.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    log = AuditLog.for_workspace(ws)
    report = log.verify()
    assert report.ok, report.summary()  # a killed step is not tampering ...
    assert report.unfinished == (1,) and any("started and never finished" in n for n in report.notes)
    assert [e["decision"] for e in log.entries()] == ["started"]
    result = CliRunner().invoke(app, ["audit", "verify", "-w", str(ws.root)])
    assert result.exit_code == 0 and "started and never finished" in result.output
    shown = CliRunner().invoke(app, ["audit", "show", "-w", str(ws.root)], terminal_width=200)
    assert shown.exit_code == 0 and "started and never finished" in shown.output
    rows = json.loads(
        CliRunner().invoke(app, ["audit", "show", "-w", str(ws.root), "--format", "json"]).stdout
    )
    assert rows[0]["never_finished"] is True
    # ... and a step that does finish names the entry it started with
    from ig_policies.demo import demo_engine
    from ig_policies.policy import Role

    with demo_engine(ws).step("demo-processor", Role.DATA_PROCESSOR, "pseudonymise"):
        pass
    started, finished = log.entries()[-2:]
    assert finished["started_seq"] == started["seq"] and log.verify().unfinished == (1,)
