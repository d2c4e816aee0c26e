"""Audit log: every kind of tampering is detected and named; concurrent appends keep one chain."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ig_policies.audit import AuditLog, filter_entries, redact
from ig_policies.errors import ConfigError, TamperedError
from ig_policies.master_secret import MasterSecret

KEY = MasterSecret(bytes.fromhex("7e3f" * 16)).derive("audit")


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit", KEY)
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
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
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
    forger = AuditLog(tmp_path / "forger", b"x" * 32)
    forger.append(actor="ghost", role="ig_officer", action="release", decision="allowed")
    lines = _lines(log)
    log.path.write_text("".join(lines) + _lines(forger)[0])
    assert _kinds(log) == [("inserted", 1)]


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
    assert "entries #4-#5 missing from the end" in log.verify().summary()


def test_log_emptied_or_removed(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.path.write_text("")
    assert _kinds(log) == [("truncated", 1)]
    log.path.unlink()
    assert _kinds(log) == [("truncated", 1)]


def test_checkpoint_edited_or_missing(tmp_path: Path) -> None:
    log = _log(tmp_path)
    head = json.loads(log.head_path.read_text())
    head["count"] = 3
    log.head_path.write_text(json.dumps(head))
    assert _kinds(log) == [("checkpoint", None)]
    log.head_path.unlink()
    assert _kinds(log) == [("checkpoint", None)]


def test_rollback_of_log_and_checkpoint_is_caught_by_an_anchor(tmp_path: Path) -> None:
    log = _log(tmp_path, n=2)
    old_log, old_head = log.path.read_text(), log.head_path.read_text()
    log.append(actor="user0", role="researcher", action="release", decision="allowed")
    anchor = (3, log.entries()[-1]["hash"])
    log.path.write_text(old_log)
    log.head_path.write_text(old_head)
    assert log.verify().ok  # indistinguishable without an outside record...
    with pytest.raises(TamperedError, match="anchor"):
        log.verify_or_raise(anchor=anchor)  # ...which the anchor provides


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
    stale_head = log.head_path.read_text()
    log.append(actor="user0", role="researcher", action="analyse", decision="allowed")
    log.head_path.write_text(stale_head)  # as if the process died between the two writes
    report = log.verify()
    assert report.ok and report.notes
    log.append(actor="user0", role="researcher", action="analyse", decision="allowed")
    assert log.verify().ok and log.verify().entries == 4 and not log.verify().notes


def test_wrong_key_sees_every_entry_as_forged(tmp_path: Path) -> None:
    _log(tmp_path)
    other = AuditLog(tmp_path / "audit", b"y" * 32)
    assert not other.verify().ok


def test_no_master_secret_fails_closed(monkeypatch: pytest.MonkeyPatch, workspace) -> None:
    monkeypatch.delenv("EHL_MASTER_SECRET", raising=False)
    monkeypatch.delenv("EHL_MASTER_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="master secret"):
        AuditLog.for_workspace(workspace)


def test_decision_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AuditLog(tmp_path, KEY).append(actor="a", action="b", decision="maybe")


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
    log = AuditLog(directory, KEY)
    for i in range(n):
        log.append(
            actor=f"worker{worker}",
            role="data_processor",
            action="append",
            decision="allowed",
            counts={"i": i},
        )


def test_concurrent_appends_from_several_processes(tmp_path: Path) -> None:
    directory = str(tmp_path / "audit")
    AuditLog(directory, KEY)
    ctx = multiprocessing.get_context("spawn")
    workers, per_worker = 4, 25
    procs = [ctx.Process(target=_append_many, args=(directory, w, per_worker)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    log = AuditLog(directory, KEY)
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
