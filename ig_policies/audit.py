"""The audit log: append-only, hash-chained, authenticated JSON lines in ``<workspace>/audit/``.

Every step the policy engine allows, refuses or sees fail becomes one line of ``audit.jsonl``. Each
entry carries a sequence number, the hash of the previous entry and an HMAC made with a key derived
from the service's master secret, so an entry cannot be edited, inserted, deleted or moved without
``verify`` noticing. A separate, also authenticated checkpoint file ``audit.head`` records how many
entries there are and the hash of the last one, so cutting entries off the end is noticed too.
Appends from several processes are serialised by a file lock, so they always form one chain.

The log never holds identifiers: entries carry ids of people acting, actions, content hashes and
counts. As a last line of defence, text that looks like an NHS number or a postcode is redacted
before it is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from ig_policies.errors import ConfigError, TamperedError
from ig_policies.master_secret import MasterSecret, MasterSecretError, load_master_secret
from ig_policies.workspace import Workspace, write_text

LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head"
LOCK_NAME = "audit.lock"
GENESIS = "0" * 64
ENTRY_FORMAT = 1
DECISIONS = ("allowed", "refused", "failed")
REDACTED = "[redacted]"

# Identifier-like text (NHS numbers: 10 digits, optionally spaced 3-3-4; UK postcodes).
_NHS_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
_POSTCODE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,2}\d[A-Za-z\d]?\s*\d[A-Za-z]{2}(?![0-9A-Za-z])")


def redact(text: str) -> tuple[str, int]:
    """Replace NHS-number-like and postcode-like substrings; returns the text and how many were replaced."""
    text, n1 = _NHS_NUMBER.subn(REDACTED, text)
    text, n2 = _POSTCODE.subn(REDACTED, text)
    return text, n1 + n2


def _redact_tree(value: Any) -> tuple[Any, int]:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out, total = {}, 0
        for k, v in value.items():
            key, n_key = redact(str(k))
            out[key], n = _redact_tree(v)
            total += n + n_key
        return out, total
    if isinstance(value, list | tuple):
        items = [_redact_tree(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode(
        "utf-8"
    )


def audit_key(master_secret: MasterSecret | None = None) -> bytes:
    """The audit HMAC key; fails closed (ConfigError) when no master secret is available."""
    try:
        secret = master_secret if master_secret is not None else load_master_secret()
    except MasterSecretError as exc:
        raise ConfigError(
            f"The audit log cannot be written or checked without the service's master secret. {exc}",
            hint="the data processor provides the master secret; nothing runs without an audit trail",
        ) from None
    return secret.derive("audit")


@dataclass(frozen=True)
class Problem:
    """One finding of ``verify``: what kind of tampering, where, in plain English."""

    kind: str  # edited | inserted | deleted | reordered | truncated | checkpoint | rolled_back
    message: str
    line: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    problems: tuple[Problem, ...]
    head_hash: str
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"The audit log is intact: {self.entries} entries, last entry hash {self.head_hash}."
        lines = [f"The audit log has been tampered with ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p.message}" for p in self.problems]
        return "\n".join(lines)


class AuditLog:
    """The audit log of one workspace. Construct with ``AuditLog.for_workspace``."""

    def __init__(self, directory: str | os.PathLike[str], key: bytes):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / LOG_NAME
        self.head_path = self.directory / HEAD_NAME
        self._key = key
        self._lock = FileLock(str(self.directory / LOCK_NAME), timeout=120)

    def __repr__(self) -> str:
        return f"AuditLog({self.directory})"

    @classmethod
    def for_workspace(cls, workspace: Workspace, master_secret: MasterSecret | None = None) -> AuditLog:
        return cls(workspace.audit, audit_key(master_secret))

    # ---- authentication --------------------------------------------------------------------

    def _mac(self, label: bytes, data: bytes) -> str:
        return hmac.new(self._key, label + b"\n" + data, hashlib.sha256).hexdigest()

    def _seal(self, body: dict[str, Any]) -> dict[str, Any]:
        data = _canonical(body)
        return {**body, "hash": hashlib.sha256(data).hexdigest(), "mac": self._mac(b"entry", data)}

    def _authentic(self, entry: dict[str, Any]) -> bool:
        body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
        data = _canonical(body)
        return (
            entry.get("hash") == hashlib.sha256(data).hexdigest()
            and isinstance(entry.get("mac"), str)
            and hmac.compare_digest(entry["mac"], self._mac(b"entry", data))
        )

    def _head_mac(self, count: int, last_hash: str) -> str:
        return self._mac(b"head", f"{count}:{last_hash}".encode())

    def _read_head(self) -> tuple[int, str] | None:
        """(count, last_hash) from the checkpoint; None if absent; TamperedError if not authentic."""
        if not self.head_path.exists():
            return None
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
            count, last = int(head["count"]), str(head["last_hash"])
            mac = str(head["mac"])
        except (OSError, ValueError, KeyError, TypeError):
            raise TamperedError(
                f"The audit checkpoint {self.head_path} is unreadable.",
                hint="run 'ehl audit verify' and report it",
            ) from None
        if not hmac.compare_digest(mac, self._head_mac(count, last)):
            raise TamperedError(
                f"The audit checkpoint {self.head_path} was altered.",
                hint="run 'ehl audit verify' and report it",
            )
        return count, last

    def _write_head(self, count: int, last_hash: str) -> None:
        head = {"count": count, "last_hash": last_hash, "mac": self._head_mac(count, last_hash)}
        write_text(self.head_path, json.dumps(head, sort_keys=True) + "\n")

    # ---- appending -------------------------------------------------------------------------

    def _last_line(self) -> str | None:
        if not self.path.exists():
            return None
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            if end == 0:
                return None
            block, pos, tail = 1 << 16, end, b""
            while pos > 0:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                tail = fh.read(step) + tail
                stripped = tail.rstrip(b"\n")
                if b"\n" in stripped:
                    return stripped.rsplit(b"\n", 1)[1].decode("utf-8")
            return tail.rstrip(b"\n").decode("utf-8")

    def _tip(self) -> tuple[int, str]:
        """Sequence number and hash of the last entry, cross-checked against the checkpoint."""
        head = self._read_head()
        line = self._last_line()
        if line is None:
            if head is not None and head[0] > 0:
                raise TamperedError(
                    f"The audit log {self.path} is missing or empty but its checkpoint records {head[0]} entries.",
                    hint="run 'ehl audit verify'; restore the log from backup before running anything",
                )
            return 0, GENESIS
        try:
            last = json.loads(line)
        except ValueError:
            last = {}
        if not isinstance(last, dict) or not self._authentic(last):
            raise TamperedError(
                f"The last entry of the audit log {self.path} is not authentic.",
                hint="run 'ehl audit verify' to see what changed; nothing runs until the log is restored",
            )
        seq, last_hash = int(last["seq"]), str(last["hash"])
        if head is None:
            raise TamperedError(
                f"The audit checkpoint {self.head_path} is missing.",
                hint="run 'ehl audit verify' and report it",
            )
        if (seq, last_hash) == head:
            return seq, last_hash
        # An append that was interrupted between writing the entry and the checkpoint leaves the
        # checkpoint exactly one authentic entry behind; anything else is tampering.
        if seq == head[0] + 1 and last.get("prev") == head[1]:
            return seq, last_hash
        raise TamperedError(
            f"The audit log {self.path} does not match its checkpoint.",
            hint="run 'ehl audit verify' to see what changed; nothing runs until the log is restored",
        )

    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one entry (under the file lock) and return it as written.

        ``fields`` are the entry's content (actor, role, action, decision, ...); ``seq``, ``time``,
        ``prev``, ``hash`` and ``mac`` are added here.
        """
        decision = fields.get("decision")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
        content, redactions = _redact_tree(fields)
        if redactions:
            content["redactions"] = redactions
        with self._lock:
            seq, prev = self._tip()
            body = {
                "format": ENTRY_FORMAT,
                "seq": seq + 1,
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                **content,
                "prev": prev,
            }
            entry = self._seal(body)
            line = (json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(entry["seq"], entry["hash"])
        return entry

    # ---- reading and verifying -------------------------------------------------------------

    def _lines(self) -> Iterator[tuple[int, str]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line

    def entries(self) -> list[dict[str, Any]]:
        """All entries in file order (unverified; run ``verify`` to trust them)."""
        out = []
        for number, line in self._lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise TamperedError(
                    f"{self.path}, line {number}: not a valid audit entry", hint="run 'ehl audit verify'"
                ) from None
        return out

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Check every entry, the chain and the checkpoint; say exactly what was tampered with.

        ``anchor`` is an ``(entry number, hash)`` pair noted outside the TRE after an earlier verify;
        it detects a roll-back of the log *and* its checkpoint to an older state.
        """
        problems: list[Problem] = []
        notes: list[str] = []
        parsed: list[tuple[int, dict[str, Any] | None, bool]] = []
        for number, line in self._lines():
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError
            except ValueError:
                parsed.append((number, None, False))
                continue
            parsed.append((number, entry, self._authentic(entry)))

        authentic = [(n, e) for n, e, ok in parsed if ok and e is not None]
        by_seq: dict[int, tuple[int, dict[str, Any]]] = {}
        for number, entry in authentic:
            seq = int(entry["seq"])
            if seq in by_seq:
                problems.append(
                    Problem(
                        "inserted", f"line {number}: a second copy of entry #{seq} was inserted", number, seq
                    )
                )
                continue
            by_seq[seq] = (number, entry)

        # Lines that are not authentic: an edited entry keeps its place in the chain (the next entry
        # still points at its original hash); anything else was inserted.
        # hashes that authentic entries point at but that no authentic entry has: left by edits
        claimed_hashes = {e.get("prev") for _, e in authentic} - {e.get("hash") for _, e in authentic}
        try:
            head = self._read_head()
            head_error = None
        except TamperedError as exc:
            head, head_error = None, exc.message
        known_end = max([*by_seq, head[0] if head else 0, 0])
        for number, entry, ok in parsed:
            if ok:
                continue
            if entry is None:
                problems.append(
                    Problem("edited", f"line {number} is not a valid entry (edited or corrupted)", number)
                )
                continue
            seq = entry.get("seq")
            seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
            in_place = (
                seq is not None
                and seq not in by_seq
                and (entry.get("hash") in claimed_hashes or 0 < seq <= known_end)
            )
            if in_place:
                problems.append(
                    Problem(
                        "edited", f"line {number}: entry #{seq} was edited after it was written", number, seq
                    )
                )
                by_seq[seq] = (number, {})  # accounted for: not also reported as deleted
            else:
                problems.append(
                    Problem(
                        "inserted",
                        f"line {number}: an entry not written by the service was inserted",
                        number,
                        seq,
                    )
                )

        # Order: authentic entries must appear in increasing sequence.
        highest = 0
        for number, entry in authentic:
            seq = int(entry["seq"])
            if by_seq.get(seq, (None,))[0] != number:
                continue  # a duplicate, already reported
            if seq < highest:
                problems.append(
                    Problem(
                        "reordered",
                        f"line {number}: entry #{seq} appears after entry #{highest} (entries were reordered)",
                        number,
                        seq,
                    )
                )
            highest = max(highest, seq)

        # Chain: each authentic entry must point at the hash of its predecessor.
        for seq, (number, entry) in sorted(by_seq.items()):
            if not entry:
                continue
            expected = GENESIS if seq == 1 else (by_seq.get(seq - 1, (None, {}))[1].get("hash"))
            if expected is not None and entry.get("prev") != expected:
                problems.append(
                    Problem(
                        "edited", f"line {number}: entry #{seq} does not follow entry #{seq - 1}", number, seq
                    )
                )

        last_seq = max(by_seq) if by_seq else 0
        missing = [s for s in range(1, last_seq + 1) if s not in by_seq]
        for first, last in _runs(missing):
            which = f"entry #{first}" if first == last else f"entries #{first}-#{last}"
            problems.append(Problem("deleted", f"{which} deleted (the chain jumps over them)", None, first))

        # Checkpoint: detects entries cut off the end.
        head_hash = by_seq[last_seq][1].get("hash", "") if by_seq else GENESIS
        if head_error is not None:
            problems.append(Problem("checkpoint", head_error))
        elif head is None and parsed:
            problems.append(Problem("checkpoint", f"the checkpoint file {HEAD_NAME} is missing"))
        if head is not None:
            count, last_hash = head
            if count > last_seq:
                which = f"entry #{count}" if count == last_seq + 1 else f"entries #{last_seq + 1}-#{count}"
                problems.append(
                    Problem(
                        "truncated",
                        f"the log was truncated: {which} missing from the end",
                        None,
                        last_seq + 1,
                    )
                )
            elif (
                count == last_seq
                and by_seq
                and by_seq[last_seq][1]
                and by_seq[last_seq][1].get("hash") != last_hash
            ):
                problems.append(
                    Problem(
                        "checkpoint", f"the last entry #{count} does not match the checkpoint", None, count
                    )
                )
            elif count == last_seq - 1 and by_seq.get(last_seq, (None, {}))[1].get("prev") == last_hash:
                notes.append(
                    "the last append was interrupted before its checkpoint; the next append completes it"
                )
            elif count < last_seq:
                problems.append(
                    Problem(
                        "inserted",
                        f"the log has entries after the checkpoint's last entry #{count}",
                        None,
                        count + 1,
                    )
                )
            head_hash = last_hash if count == last_seq else head_hash
        if anchor is not None:
            seq, digest = anchor
            found = by_seq.get(seq, (None, {}))[1]
            if found.get("hash") != digest:
                problems.append(
                    Problem(
                        "rolled_back",
                        f"entry #{seq}, noted earlier as an anchor, is gone or different",
                        None,
                        seq,
                    )
                )
        return VerifyReport(len(parsed), tuple(problems), head_hash, tuple(notes))

    def verify_or_raise(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        report = self.verify(anchor)
        if not report.ok:
            raise TamperedError(report.summary(), hint="keep the file as evidence and inform the IG officer")
        return report


def _runs(numbers: list[int]) -> Iterable[tuple[int, int]]:
    if not numbers:
        return []
    runs, start, prev = [], numbers[0], numbers[0]
    for n in numbers[1:]:
        if n != prev + 1:
            runs.append((start, prev))
            start = n
        prev = n
    runs.append((start, prev))
    return runs


# --------------------------------------------------------------------------------------------
# Showing


SHOW_COLUMNS = ("seq", "time", "actor", "role", "action", "decision", "rule", "policy_id", "reason")


def filter_entries(
    entries: Iterable[dict[str, Any]],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    policy: str | None = None,
    decision: str | None = None,
) -> list[dict[str, Any]]:
    """Entries matching every given filter. ``policy`` matches the policy id or a hash prefix."""

    def _aware(t: dt.datetime) -> dt.datetime:
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

    out = []
    for e in entries:
        when = dt.datetime.fromisoformat(str(e.get("time")))
        if since is not None and when < _aware(since):
            continue
        if until is not None and when > _aware(until):
            continue
        if actor is not None and e.get("actor") != actor:
            continue
        if action is not None and e.get("action") != action:
            continue
        if decision is not None and e.get("decision") != decision:
            continue
        if (
            policy is not None
            and e.get("policy_id") != policy
            and not str(e.get("policy_hash") or "").startswith(policy)
        ):
            continue
        out.append(e)
    return out


def entries_to_csv(entries: Iterable[dict[str, Any]]) -> str:
    """CSV with the summary columns plus counts/inputs/outputs/details as JSON text."""
    buf = io.StringIO()
    columns = [*SHOW_COLUMNS, "policy_hash", "counts", "inputs", "outputs", "details", "hash"]
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for e in entries:
        row = {c: e.get(c) for c in columns}
        for c in ("counts", "inputs", "outputs", "details"):
            row[c] = json.dumps(e.get(c) or {}, sort_keys=True) if e.get(c) else ""
        writer.writerow(row)
    return buf.getvalue()
