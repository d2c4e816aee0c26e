"""The audit log: append-only, hash-chained JSON lines in ``<workspace>/audit/``, signed with Ed25519.

Every step the policy engine starts, allows, refuses or sees fail becomes one line of
``audit.jsonl``. Each entry carries a sequence number, the hash of the previous entry, the OS account
that asked for it (stamped by the writer, never chosen by the caller) and an Ed25519 signature made by
the audit WRITER, the only holder of the private key. Checking the log needs only the public key, so
researchers, IG officers and processors can all run ``ehl audit show`` / ``verify`` without any secret,
and none of them can forge, edit or re-chain an entry.

Cutting entries off the end, deleting the log or rolling it back to an earlier copy is caught by the
*anchor*: a small file, signed by the writer and kept outside the workspace, recording the last
sequence number and hash. ``verify`` always compares the log with it.

The writer is either a service on a Unix socket (``ig_policies.audit_writer``, its own OS account) or,
in demo mode and tests, the same code run in-process with a key file. ``AuditSettings`` says which.

The log never holds identifiers: entries carry ids of people acting, actions, content hashes and
counts. As a last line of defence, text that looks like an NHS number or a postcode is redacted
before it is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, model_validator

from ig_policies.errors import AuditUnavailable, ConfigError, TamperedError
from ig_policies.workspace import Workspace

LOG_NAME = "audit.jsonl"
GENESIS = "0" * 64
ENTRY_FORMAT = 2
DECISIONS = ("started", "allowed", "refused", "failed")
REDACTED = "[redacted]"
#: Fields of an entry only the writer sets; a caller's values for them are dropped.
WRITER_FIELDS = frozenset({"format", "seq", "time", "account", "prev", "hash", "signature"})
ENTRY_LABEL = b"ehl-audit-entry\n"
ANCHOR_LABEL = b"ehl-audit-anchor\n"
#: Where the temporary demo writer lives, beside the workspace root (``<root>.audit-writer``).
DEMO_WRITER_SUFFIX = ".audit-writer"

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


def canonical(obj: Any) -> bytes:
    """The bytes an entry or anchor is hashed and signed over (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode(
        "utf-8"
    )


def prepare_content(fields: dict[str, Any]) -> dict[str, Any]:
    """Check the decision and redact identifier-like text: what a caller may ask the writer to record.

    The fields the writer sets (``WRITER_FIELDS``: ``account``, ``seq``, ``time``, ``prev``, ...) are
    removed: only the writer says who asked (from the socket's peer credentials or the process's own
    uid), when, and where in the chain.
    """
    decision = fields.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    content, redactions = _redact_tree({k: v for k, v in fields.items() if k not in WRITER_FIELDS})
    if redactions:
        content["redactions"] = redactions
    return content


# --------------------------------------------------------------------------------------------
# Where the writer is


class AuditSettings(BaseModel):
    """Where a workspace's audit writer is and how to check its entries.

    ``public_key`` (PEM) and ``anchor`` are readable by every role; ``anchor`` lives outside the
    workspace, in the writer's own state directory. Exactly one of ``socket`` (a running writer
    service, the production set-up) or ``signing_key`` (the private key, for an in-process writer in
    demo mode and tests; the file must be 0600) is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: Path
    anchor: Path
    socket: Path | None = None
    signing_key: Path | None = None

    @model_validator(mode="after")
    def _one_writer(self) -> AuditSettings:
        if (self.socket is None) == (self.signing_key is None):
            raise ValueError(
                "give exactly one of 'socket' (a running audit writer service) or 'signing_key' "
                "(an in-process writer, demo mode only)"
            )
        return self


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The writer's public key from a PEM file; ConfigError naming the file if it is not one."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: the audit writer's public key cannot be read ({exc}).",
            hint="the deployment names the audit writer's public key (audit.public_key); check that the file "
            "exists and is readable",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key.", hint="use the writer's public.pem")
    return key


def load_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The writer's private key; refused unless the file is readable by its owner only (0600)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise AuditUnavailable(
            f"The audit writer's signing key {path} cannot be read ({exc.strerror}).",
            hint="only the audit writer's account holds this key; start the writer as that account",
        ) from None
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the audit writer's signing key is readable by others (mode {mode:o}); refused by rule "
            "'signing_key_private'.",
            hint=f"run: chmod 600 {path}",
        )
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key.", hint="use the writer's signing.key")
    return key


def create_demo_audit(directory: str | os.PathLike[str]) -> AuditSettings:
    """A DEMO audit writer under ``directory``: key pair (``signing.key`` 0600, ``public.pem``) and anchor.

    Reuses the key pair if it is already there, so every command of a demo deployment signs with the
    same key. The in-process writer is for demos and tests only: whoever runs the command holds the key.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    private, public = directory / "signing.key", directory / "public.pem"
    with FileLock(str(directory / ".keys.lock"), timeout=60):  # two first commands make one pair
        if not (private.exists() and public.exists()):
            _write_key_pair(private, public)
    return AuditSettings(public_key=public, anchor=directory / "anchor.json", signing_key=private)


def _write_key_pair(private: Path, public: Path) -> None:
    """A fresh Ed25519 pair: the private key 0600 (created so, never wider), the public key 0644."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _tmp_name(private).unlink(missing_ok=True)  # left by a crashed run
    fd = os.open(_tmp_name(private), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(_tmp_name(private), private)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_public_file(public, public_pem)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_public_file(path: Path, data: bytes) -> None:
    """Write atomically (temporary file, fsync, rename), readable by every role (0644)."""
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def demo_writer_directory(workspace: Workspace) -> Path:
    """Where the temporary demo writer of a workspace lives: beside it, never inside it."""
    root = Path(workspace.root).resolve()
    return root.with_name(root.name + DEMO_WRITER_SUFFIX)


def entry_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("hash", "signature")}


def authentic(entry: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    """Whether an entry's hash matches its content and its signature is the writer's."""
    body = _body(entry)
    signature = entry.get("signature")
    if entry.get("hash") != entry_hash(body) or not isinstance(signature, str):
        return False
    try:
        public_key.verify(bytes.fromhex(signature), ENTRY_LABEL + canonical(body))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Anchor:
    """The writer's signed note of the log's end (last sequence number and hash), kept outside the workspace."""

    seq: int
    hash: str


def anchor_payload(seq: int, digest: str) -> bytes:
    return ANCHOR_LABEL + canonical({"seq": seq, "hash": digest})


def read_anchor(path: Path, public_key: Ed25519PublicKey) -> Anchor | None:
    """The anchor, None if the file does not exist, TamperedError if it is not the writer's."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        seq, digest, signature = int(doc["seq"]), str(doc["hash"]), bytes.fromhex(doc["signature"])
        public_key.verify(signature, anchor_payload(seq, digest))
    except (OSError, ValueError, KeyError, TypeError, InvalidSignature):
        raise TamperedError(
            f"The audit anchor {path} is unreadable or not signed by the audit writer.",
            hint="keep the file as evidence and inform the IG officer; run 'ehl audit verify'",
        ) from None
    return Anchor(seq, digest)


@dataclass(frozen=True)
class Problem:
    """One finding of ``verify``: what kind of tampering, where, in plain English."""

    kind: str  # edited | inserted | deleted | reordered | truncated | anchor | rolled_back | forged
    message: str
    line: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    problems: tuple[Problem, ...]
    head_hash: str
    notes: tuple[str, ...] = field(default=())
    #: sequence numbers of "started" entries with no finishing entry (a killed step, or one still running)
    unfinished: tuple[int, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"The audit log is intact: {self.entries} entries, last entry hash {self.head_hash}."
        lines = [f"The audit log has been tampered with ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p.message}" for p in self.problems]
        return "\n".join(lines)


def check_anchor_outside(workspace: Workspace, anchor: str | os.PathLike[str]) -> Path:
    """The workspace root, resolved; ConfigError (rule ``anchor_outside_workspace``) if the anchor is in it.

    Anyone who can replace the workspace could otherwise replace the anchor along with the log.
    """
    root = Path(workspace.root).resolve()
    where = Path(anchor).resolve()
    if where == root or root in where.parents:
        raise ConfigError(
            f"Refused by rule 'anchor_outside_workspace': the audit anchor {where} is inside the "
            f"workspace {root}.",
            hint="keep the anchor in the audit writer's own state directory, outside the workspace "
            "(audit.anchor in the deployment file)",
        )
    return root


class AuditLog:
    """The audit log of one workspace: read and verify it; ``append`` goes through its writer.

    Construct with ``AuditLog.open(workspace, settings)``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        settings: AuditSettings,
        workspace_root: str | os.PathLike[str] | None = None,
    ):
        self.directory = Path(directory)
        self.path = self.directory / LOG_NAME
        self.settings = settings
        self.anchor_path = Path(settings.anchor)
        self.workspace_root = Path(workspace_root) if workspace_root is not None else self.directory.parent
        self.public_key = load_public_key(settings.public_key)
        self._writer: Any = None

    def __repr__(self) -> str:
        return f"AuditLog({self.directory})"

    @classmethod
    def open(cls, workspace: Workspace, settings: AuditSettings) -> AuditLog:
        """The audit log of ``workspace`` as the deployment's ``settings`` describe it.

        Refused (rule ``anchor_outside_workspace``) if the anchor is inside the workspace.
        """
        root = check_anchor_outside(workspace, settings.anchor)
        return cls(workspace.audit, settings, workspace_root=root)

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> AuditLog:
        """The log with the workspace's DEMO writer (``<workspace root>.audit-writer/``).

        A stand-in until the deployment file names the writer: the key pair is made on first use.
        """
        return cls.open(workspace, create_demo_audit(demo_writer_directory(workspace)))

    # ---- appending -------------------------------------------------------------------------

    def append(self, **fields: Any) -> dict[str, Any]:
        """Have the writer append one entry and return it as written.

        ``fields`` are the entry's content (actor, role, action, decision, ...); the writer adds
        ``seq``, ``time``, ``account``, ``prev``, ``hash`` and ``signature``. Raises
        ``AuditUnavailable`` (or ``TamperedError``) if the entry could not be written: the caller
        must then not commit what it did.
        """
        content = prepare_content(fields)
        if self.settings.socket is not None:
            from ig_policies.audit_writer import request

            return request(self.settings.socket, {"request": "append", "entry": content})["entry"]
        if self._writer is None:
            from ig_policies.audit_writer import AuditWriter

            assert self.settings.signing_key is not None
            self._writer = AuditWriter(
                self.workspace_root,
                self.directory,
                load_signing_key(self.settings.signing_key),
                self.anchor_path,
            )
        from ig_policies.audit_writer import local_account

        try:
            return self._writer.append(content, account=local_account())
        except OSError as exc:
            raise AuditUnavailable(
                f"The audit entry could not be written to {self.path} ({exc.strerror or exc}).",
                hint="nothing was committed; make the audit folder writable by the audit writer, then run "
                "the command again",
            ) from None

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

    def anchor(self) -> Anchor | None:
        """The writer's signed anchor (None before the first entry)."""
        return read_anchor(self.anchor_path, self.public_key)

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Check every signature, the chain and the anchor; say exactly what was tampered with.

        The writer's anchor (outside the workspace) is always compared, so deleting, truncating or
        rolling back the log is reported. ``anchor`` is an extra ``(entry number, hash)`` pair noted
        outside the TRE after an earlier verify.
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
            parsed.append((number, entry, authentic(entry, self.public_key)))

        genuine = [(n, e) for n, e, ok in parsed if ok and e is not None]
        by_seq: dict[int, tuple[int, dict[str, Any]]] = {}
        for number, entry in genuine:
            seq = int(entry["seq"])
            if seq in by_seq:
                problems.append(
                    Problem(
                        "inserted", f"line {number}: a second copy of entry #{seq} was inserted", number, seq
                    )
                )
                continue
            by_seq[seq] = (number, entry)

        try:
            writer_anchor = self.anchor()
            anchor_error = None
        except TamperedError as exc:
            writer_anchor, anchor_error = None, exc.message

        # Lines that are not authentic: an edited entry keeps its place in the chain (the next entry
        # still points at its original hash); anything else was inserted (or forged with another key).
        claimed_hashes = {e.get("prev") for _, e in genuine} - {e.get("hash") for _, e in genuine}
        known_end = max([*by_seq, writer_anchor.seq if writer_anchor else 0, 0])
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
                        "edited",
                        f"line {number}: entry #{seq} was edited after it was written (its signature is "
                        "not the audit writer's)",
                        number,
                        seq,
                    )
                )
                by_seq[seq] = (number, {})  # accounted for: not also reported as deleted
            else:
                problems.append(
                    Problem(
                        "inserted",
                        f"line {number}: an entry not signed by the audit writer was inserted",
                        number,
                        seq,
                    )
                )

        highest = 0
        for number, entry in genuine:
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

        head_hash = by_seq[last_seq][1].get("hash", "") if by_seq else GENESIS
        last_entry = by_seq.get(last_seq, (None, {}))[1]
        if anchor_error is not None:
            problems.append(Problem("anchor", anchor_error))
        elif writer_anchor is None:
            if parsed:
                problems.append(
                    Problem(
                        "anchor",
                        f"the audit writer's anchor {self.anchor_path} is missing although the log has "
                        "entries, so a truncation or roll-back could not be seen",
                    )
                )
        else:
            count, last_hash = writer_anchor.seq, writer_anchor.hash
            if count > last_seq:
                which = f"entry #{count}" if count == last_seq + 1 else f"entries #{last_seq + 1}-#{count}"
                what = "deleted or emptied" if not parsed else "truncated or rolled back to an earlier copy"
                problems.append(
                    Problem(
                        "truncated",
                        f"the log was {what}: the audit writer's anchor records {count} entries, so {which} "
                        "are missing from the end",
                        None,
                        last_seq + 1,
                    )
                )
            elif count == last_seq and last_entry and last_entry.get("hash") != last_hash:
                problems.append(
                    Problem(
                        "rolled_back",
                        f"entry #{count} is not the one the audit writer's anchor records (the log was "
                        "replaced by another copy)",
                        None,
                        count,
                    )
                )
            elif count == last_seq - 1 and last_entry.get("prev") == last_hash:
                notes.append(
                    "the last append was interrupted before the anchor was updated; the next append completes it"
                )
            elif count < last_seq:
                problems.append(
                    Problem(
                        "inserted",
                        f"the log has entries after entry #{count}, the last one the audit writer's anchor "
                        "records",
                        None,
                        count + 1,
                    )
                )
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
        unfinished = unfinished_steps([e for _, e in genuine])
        for e in unfinished:
            notes.append(
                f"entry #{e['seq']} ({e.get('action')} by {e.get('actor')}, {e.get('time')}) started and "
                "never finished: the step was killed (or is still running)"
            )
        return VerifyReport(
            len(parsed), tuple(problems), head_hash, tuple(notes), tuple(int(e["seq"]) for e in unfinished)
        )

    def verify_or_raise(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        report = self.verify(anchor)
        if not report.ok:
            raise TamperedError(report.summary(), hint="keep the file as evidence and inform the IG officer")
        return report


def unfinished_steps(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The "started" entries that no "allowed"/"failed" entry names as its start (``started_seq``)."""
    entries = list(entries)
    finished = {e.get("started_seq") for e in entries if e.get("started_seq") is not None}
    return [e for e in entries if e.get("decision") == "started" and e.get("seq") not in finished]


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


SHOW_COLUMNS = (
    "seq",
    "time",
    "account",
    "actor",
    "role",
    "action",
    "decision",
    "rule",
    "policy_id",
    "reason",
)


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
