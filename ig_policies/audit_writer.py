"""The audit writer: the one holder of the audit signing key, appending signed entries for everyone else.

In production it runs as its own OS account (``ehl audit serve``) and listens on a Unix socket whose
group is the role groups (mode 0660): researchers, IG officers and processors can ask it to record an
entry but cannot read its key, its state directory or write the log themselves. Each connection
carries one JSON request:

- ``{"request": "append", "entry": {...}}``: the writer identifies the caller by the socket's peer
  credentials (``SO_PEERCRED``, uid -> account name) and stamps ``account`` into the entry (the
  caller cannot choose it), assigns ``seq``, ``time`` and ``prev``, signs, appends, fsyncs and updates
  the signed anchor (last seq + hash) in its own state directory; the reply carries the entry.
- ``{"request": "anchor"}``: the signed anchor, read-only.

Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "hint": ..., "kind": ...}``.

In demo mode and tests ``AuditLog`` runs this same ``AuditWriter`` in-process with a key file, and
the account is the process's own uid. Either way the writer fails closed: it will not start a new
chain where the anchor says entries existed or where the workspace already has history (a stage
ledger, pending or released outputs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import socket
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock

from ig_policies.audit import (
    ENTRY_FORMAT,
    ENTRY_LABEL,
    GENESIS,
    LOG_NAME,
    anchor_payload,
    authentic,
    canonical,
    entry_hash,
    prepare_content,
    read_anchor,
    write_public_file,
)
from ig_policies.errors import AuditUnavailable, EhlError, TamperedError
from ig_policies.unix_socket import peer_credentials, serve_unix_socket

MAX_REQUEST = 1 << 20  # one entry is a few kB; anything this large is not a request
REQUEST_TIMEOUT = 10.0  # a silent client holds the writer up for at most this long

_VERIFY_HINT = "run 'ehl audit verify' to see what changed; nothing runs until the log is restored"


def account_name(uid: int) -> str:
    """The OS account name of ``uid`` (``uid <n>`` if the system has no name for it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def local_account() -> str:
    """The account running this process: what the in-process (demo) writer stamps."""
    return account_name(os.getuid())


class AuditWriter:
    """Signs and appends entries to one workspace's log and keeps its anchor. Holds the private key."""

    def __init__(
        self,
        workspace_root: str | os.PathLike[str],
        audit_directory: str | os.PathLike[str],
        signing_key: Ed25519PrivateKey,
        anchor_path: str | os.PathLike[str],
    ):
        self.workspace_root = Path(workspace_root)
        self.directory = Path(audit_directory)
        self.path = self.directory / LOG_NAME
        self.anchor_path = Path(anchor_path)
        self._key = signing_key
        self.public_key = signing_key.public_key()
        self._lock = FileLock(str(self.anchor_path.with_name(self.anchor_path.name + ".lock")), timeout=120)

    # ---- the end of the chain --------------------------------------------------------------

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

    def history(self) -> list[str]:
        """What in the workspace shows it already has a past (so its log cannot start afresh).

        A zone the writer's account may not read is passed over: in a deployment with role
        groups the writer cannot see the processors' ledger or the officers' outputs, and there the
        anchor, which only the writer's account can change, is what refuses a new chain.
        """
        found = []
        # the processing stages' ledger and the analyses' (``flows.stage_ledger``)
        for ledger in (".state/stages.json", "research/stages.json"):
            try:
                if _governed_stages(self.workspace_root / ledger):
                    found.append(f"a stage ledger ({ledger})")
            except PermissionError:
                continue
        for zone in ("outputs/pending", "outputs/released"):
            folder = self.workspace_root / zone
            try:
                if folder.is_dir() and any(folder.iterdir()):
                    found.append(f"outputs in {zone}/")
            except PermissionError:
                continue
        return found

    def tip(self) -> tuple[int, str]:
        """Sequence number and hash of the last entry, checked against the anchor; refuses a new chain."""
        anchor = read_anchor(self.anchor_path, self.public_key)
        line = self._last_line()
        if line is None:
            if anchor is not None and anchor.seq > 0:
                raise TamperedError(
                    f"Refused by rule 'no_new_chain_after_entries': the audit log {self.path} is missing or "
                    f"empty, but the audit writer's anchor records {anchor.seq} entries.",
                    hint="restore the log from backup; the writer will not start a new chain over a deleted one",
                )
            history = self.history()
            if history:
                raise TamperedError(
                    f"Refused by rule 'no_new_chain_with_history': the audit log {self.path} is missing or "
                    f"empty, but the workspace already has {' and '.join(history)}.",
                    hint="restore the audit log from backup; a workspace with a past cannot start a new audit "
                    "trail (start a new, empty workspace instead)",
                )
            return 0, GENESIS
        try:
            last = json.loads(line)
        except ValueError:
            last = {}
        if not isinstance(last, dict) or not authentic(last, self.public_key):
            raise TamperedError(
                f"The last entry of the audit log {self.path} is not signed by the audit writer.",
                hint=_VERIFY_HINT,
            )
        seq, last_hash = int(last["seq"]), str(last["hash"])
        if anchor is None:
            raise TamperedError(
                f"The audit writer's anchor {self.anchor_path} is missing but the log has entries.",
                hint=_VERIFY_HINT,
            )
        if (seq, last_hash) == (anchor.seq, anchor.hash):
            return seq, last_hash
        # An append interrupted between writing the entry and the anchor leaves the anchor exactly
        # one signed entry behind; anything else is tampering.
        if seq == anchor.seq + 1 and last.get("prev") == anchor.hash:
            return seq, last_hash
        raise TamperedError(
            f"The audit log {self.path} does not match the audit writer's anchor (log ends at #{seq}, "
            f"anchor records #{anchor.seq}).",
            hint=_VERIFY_HINT,
        )

    def _write_anchor(self, seq: int, digest: str) -> None:
        signature = self._key.sign(anchor_payload(seq, digest)).hex()
        doc = {"seq": seq, "hash": digest, "signature": signature}
        write_public_file(self.anchor_path, (json.dumps(doc, sort_keys=True) + "\n").encode())

    def anchor_document(self) -> dict[str, Any] | None:
        """The signed anchor as stored (None before the first entry)."""
        if not self.anchor_path.exists():
            return None
        read_anchor(self.anchor_path, self.public_key)  # refuses a forged one
        return json.loads(self.anchor_path.read_text(encoding="utf-8"))

    # ---- appending -------------------------------------------------------------------------

    def append(self, fields: dict[str, Any], account: str) -> dict[str, Any]:
        """Sign and append one entry for ``account``; fsync the log, then update the anchor."""
        content = prepare_content(fields)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            seq, prev = self.tip()
            body = {
                **content,
                "format": ENTRY_FORMAT,
                "seq": seq + 1,
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                "account": account,
                "prev": prev,
            }
            digest = entry_hash(body)
            signature = self._key.sign(ENTRY_LABEL + canonical(body)).hex()
            entry = {**body, "hash": digest, "signature": signature}
            line = (json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(28, "short write to the audit log")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_anchor(entry["seq"], digest)
        return entry


# --------------------------------------------------------------------------------------------
# The service


def _reply(conn: socket.socket, payload: dict[str, Any]) -> None:
    conn.sendall((json.dumps(payload, sort_keys=True, default=str) + "\n").encode("utf-8"))


def _read_request(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    request = json.loads(data.decode("utf-8"))
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    return request


def handle(writer: AuditWriter, conn: socket.socket) -> None:
    """Answer one connection: one request, one reply."""
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        account = account_name(peer_credentials(conn)[0])
        request = _read_request(conn)
        kind = request.get("request")
        if kind == "append":
            entry = request.get("entry")
            if not isinstance(entry, dict):
                raise ValueError("an append request carries an 'entry' object")
            _reply(conn, {"ok": True, "entry": writer.append(entry, account=account)})
        elif kind == "anchor":
            _reply(conn, {"ok": True, "anchor": writer.anchor_document()})
        else:
            raise ValueError(f"unknown request {kind!r} (known: append, anchor)")
    except TamperedError as exc:
        _reply(conn, {"ok": False, "kind": "tampered", "error": exc.message, "hint": exc.hint})
    except EhlError as exc:
        _reply(conn, {"ok": False, "kind": "unavailable", "error": exc.message, "hint": exc.hint})
    except (ValueError, TypeError) as exc:
        _reply(conn, {"ok": False, "kind": "bad_request", "error": str(exc), "hint": None})
    except TimeoutError:
        with contextlib.suppress(OSError):
            _reply(
                conn,
                {"ok": False, "kind": "bad_request", "error": "no request arrived in time", "hint": None},
            )
    except OSError as exc:
        with contextlib.suppress(OSError):
            _reply(
                conn,
                {
                    "ok": False,
                    "kind": "unavailable",
                    "error": f"the audit writer could not write the log ({exc.strerror or exc})",
                    "hint": "the TRE administrator checks the audit writer's disk and folder permissions",
                },
            )


def serve(
    writer: AuditWriter,
    socket_path: str | os.PathLike[str],
    group: str | None = None,
    ready: Any = None,
) -> None:
    """Listen on ``socket_path`` (mode 0660, group ``group``) until SIGTERM/SIGINT, one request at a time.

    Checks the log against the anchor before listening, so a writer never starts over a deleted,
    truncated or rolled-back log. ``ready`` (a callable) is called once the socket accepts connections.
    """
    writer.tip()  # fail closed before anyone can connect
    serve_unix_socket(
        socket_path,
        lambda conn: handle(writer, conn),
        socket_name="audit socket",
        group=group,
        group_hint="create the role group (or pass the group that holds the role accounts) with --group",
        ready=ready,
    )


# --------------------------------------------------------------------------------------------
# The client


def request(socket_path: str | os.PathLike[str], payload: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the writer service and return its reply; fails closed with a plain message."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(REQUEST_TIMEOUT)
            conn.connect(str(socket_path))
            conn.sendall((json.dumps(payload, sort_keys=True, default=str) + "\n").encode("utf-8"))
            conn.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        reply = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditUnavailable(
            f"The audit writer at {socket_path} cannot be reached ({getattr(exc, 'strerror', None) or exc}); "
            "nothing was done, because no step runs without its audit entry.",
            hint="ask the TRE administrator to start the audit writer ('make audit-writer' locally), and "
            "check that your account is in the group that may use its socket",
        ) from None
    if not reply.get("ok"):
        cls = TamperedError if reply.get("kind") == "tampered" else AuditUnavailable
        raise cls(f"The audit writer refused: {reply.get('error')}", hint=reply.get("hint"))
    return reply


#: Ledger entries that are not steps under a policy: making the synthetic region (demo, tests)
#: writes no audit entry, so it is no sign of a past audit trail.
_UNGOVERNED_STAGES = frozenset({"synth"})


def _governed_stages(ledger: Path) -> list[str]:
    """The stages a workspace's ledger records that ran under a policy (and so were audited).

    ``PermissionError`` goes to the caller (a zone this account may not read); a ledger that cannot
    be parsed counts as history (fail closed: it may hide audited stages).
    """
    if not ledger.exists():
        return []
    try:
        recorded = json.loads(ledger.read_text(encoding="utf-8"))
    except PermissionError:
        raise
    except (OSError, ValueError):
        return ["(an unreadable stage ledger)"]
    if not isinstance(recorded, dict):
        return ["(an unreadable stage ledger)"]
    return [name for name in recorded if name not in _UNGOVERNED_STAGES]
