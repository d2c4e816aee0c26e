"""The output gate: the one writer of ``outputs/pending/``, running apart from the researcher.

A researcher who can write files could otherwise forge a request with any check report, so
requests are checked and written by the gate under its own OS account (``ehl gate serve``):

1. The researcher's side (``request_output``) saves the output in the ``save_output`` format and
   sends the files' *bytes* (never a path for the gate to open) with the output's name and
   justification, in one frame over the gate's Unix socket (``encode_frame``; at most
   ``MAX_OUTPUT_BYTES``).
2. The gate learns the caller's account from the kernel (``SO_PEERCRED``), loads the deployed
   policy with that account as the actor (the engine accepts such a peer identity only in the
   gate's own process), checks it is a researcher, runs disclosure control, writes
   ``pending/<id>/`` as its own account and signs the request (``ig_policies.gate_keys``: the
   request's fields and its output's content hash). The audit entry names the researcher as the
   actor; the audit writer stamps the gate's account as who wrote it.
3. The reply carries the id, the status and the check report, which the researcher cannot read in
   ``pending/`` (the officers' zone).

In demo mode and tests the same ``OutputGate`` runs in-process with a DEMO key (as the audit log's
DEMO writer does): ``GateSettings.signing_key`` instead of ``socket``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from analysis.disclosure.ledger import read_ledger
from analysis.disclosure.outputs import DisclosureOutput, kind_of, load_output, save_output
from analysis.disclosure.protection import check_output
from analysis.disclosure.report import Outcome
from ig_policies.errors import (
    AuditUnavailable,
    ConfigError,
    DisclosureBlocked,
    EhlError,
    InputError,
    PolicyRefused,
    TamperedError,
)
from ig_policies.gate_keys import SIGNATURE_NAME, sign_request, verify_request
from ig_policies.policy import OutputRules, Role
from ig_policies.unix_socket import serve_unix_socket
from ig_policies.workspace import Workspace, atomic_directory, content_hash, write_json, write_text

#: The largest output the gate takes (all its files together): tables of aggregates and a PNG are
#: far smaller; anything this large is row-level data or not an output at all.
MAX_OUTPUT_BYTES = 64 << 20
MAX_HEADER_BYTES = 64 << 10
MAGIC = b"EHLGATE1"
_PREFIX = struct.Struct(">IQ")  # header length, body length
TIMEOUT = 30.0
#: the files ``save_output`` writes: no folder but a figure's ``table/``, no hidden names
_FILE_NAME = re.compile(r"^(?:table/)?[a-z][a-z_]*\.(?:json|parquet|png)$")


class FrameError(ValueError):
    """A frame that is not a well-formed request to the gate (wrong magic, too large, bad JSON)."""


# --------------------------------------------------------------------------------------------
# Framing: one request and one reply per connection, each ``MAGIC | lengths | JSON header | body``


def encode_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, sort_keys=True, default=str).encode("utf-8")
    return MAGIC + _PREFIX.pack(len(head), len(body)) + head + body


def _read_exactly(conn: socket.socket, n: int, deadline: float | None = None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the request did not arrive in time")
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise FrameError("the connection closed before the whole request arrived")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(
    conn: socket.socket, max_body: int = MAX_OUTPUT_BYTES, deadline: float | None = None
) -> tuple[dict[str, Any], bytes]:
    """One frame from ``conn``; ``FrameError`` before reading a body larger than ``max_body``.

    ``deadline`` (``time.monotonic()``) bounds the whole frame, so a caller trickling bytes cannot
    hold the gate (which answers one request at a time) for longer.
    """
    prefix = _read_exactly(conn, len(MAGIC) + _PREFIX.size, deadline)
    if prefix[: len(MAGIC)] != MAGIC:
        raise FrameError("this is not a request to the output gate")
    head_length, body_length = _PREFIX.unpack(prefix[len(MAGIC) :])
    if head_length > MAX_HEADER_BYTES:
        raise FrameError(f"the request's header is larger than {MAX_HEADER_BYTES} bytes")
    if body_length > max_body:
        raise FrameError(
            f"the output is {body_length / 2**20:.1f} MiB; the output gate takes at most "
            f"{max_body / 2**20:.0f} MiB (an output of aggregates is far smaller)"
        )
    try:
        header = json.loads(_read_exactly(conn, head_length, deadline).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError("the request's header is not JSON") from None
    if not isinstance(header, dict):
        raise FrameError("the request's header is not a JSON object")
    return header, _read_exactly(conn, body_length, deadline)


# --------------------------------------------------------------------------------------------
# An output as bytes: the ``save_output`` files, listed by name and size, then concatenated


def pack_output(output: DisclosureOutput) -> tuple[list[dict[str, Any]], bytes]:
    """The files ``save_output`` writes for ``output``, as (name and size of each, their bytes)."""
    with tempfile.TemporaryDirectory(prefix="ehl-output-") as tmp:
        folder = save_output(output, Path(tmp) / "output")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        listing, parts = [], []
        for path in files:
            data = path.read_bytes()
            listing.append({"name": path.relative_to(folder).as_posix(), "size": len(data)})
            parts.append(data)
    body = b"".join(parts)
    if len(body) > MAX_OUTPUT_BYTES:
        raise InputError(
            "output",
            f"the output is {len(body) / 2**20:.1f} MiB, more than the output gate takes "
            f"({MAX_OUTPUT_BYTES / 2**20:.0f} MiB)",
            "request aggregates (counts, estimates, a chart), never row-level data",
        )
    return listing, body


def unpack_output(listing: Any, body: bytes, directory: Path) -> DisclosureOutput:
    """Write the listed files of ``body`` under ``directory`` (names checked) and load the output."""
    if not isinstance(listing, list) or not listing:
        raise FrameError("the request lists no output files")
    total, seen = 0, set()
    for item in listing:
        name, size = (item.get("name"), item.get("size")) if isinstance(item, dict) else (None, None)
        if not isinstance(name, str) or not _FILE_NAME.match(name) or name in seen:
            raise FrameError(f"the request names an output file the gate does not take: {name!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FrameError(f"the request gives no valid size for {name}")
        seen.add(name)
        total += size
    if total != len(body):
        raise FrameError("the output files' sizes do not add up to the bytes sent")
    offset = 0
    for item in listing:
        target = directory / item["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body[offset : offset + item["size"]])
        offset += item["size"]
    if "output.json" not in seen:
        raise FrameError("the request has no output.json")
    try:
        return load_output(directory)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise FrameError(f"the output files cannot be read as an output ({type(exc).__name__})") from None


# --------------------------------------------------------------------------------------------
# The gate itself


@dataclass(frozen=True)
class GateReceipt:
    """What the gate tells the researcher about a request it stored."""

    request_id: str
    name: str
    status: str
    outcome: str
    summary: str
    report_text: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReceipt:
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


class OutputGate:
    """Checks outputs and writes signed requests to ``pending/``. Holds the gate's private key."""

    def __init__(self, workspace: Workspace, signing_key: Ed25519PrivateKey):
        self.workspace = workspace
        self._key = signing_key

    def accept(
        self, engine: Any, actor: str, output: DisclosureOutput, name: str, justification: str
    ) -> GateReceipt:
        """Check ``output`` and store it as a signed request in ``pending/<id>/`` (a researcher step).

        The request is recorded whatever the outcome, so the researcher can read the report; an
        output that fails is marked ``blocked`` and cannot be released until it is changed and
        requested again.
        """
        from analysis.disclosure.workflow import (
            BLOCKED,
            PENDING,
            OutputRequest,
            _check_name,
            _drawn,
            _new_request_id,
            _now,
            _write_preview,
        )

        _check_name(name)
        kind = kind_of(output)
        rules: OutputRules = engine.policy.outputs
        workspace = self.workspace
        with engine.step(actor, Role.RESEARCHER, "output_request") as step:
            try:
                earlier = read_ledger(workspace, output.source)
            except PermissionError:
                # The release ledger (true counts) is the officers' alone: the request is checked on
                # its own here, and against every earlier release when an officer releases it.
                earlier = ()
            report = check_output(output, rules, earlier)
            request_id = _new_request_id(workspace, name)
            final = workspace.pending / request_id
            status = BLOCKED if report.outcome is Outcome.FAIL else PENDING
            staged = step.stage(final)  # put in place only after the audit entry (see PolicyEngine.step)
            with atomic_directory(staged) as tmp:
                save_output(_drawn(output, rules, report), tmp / "output")
                write_json(tmp / "check_report.json", report.to_dict())
                write_text(tmp / "check_report.txt", report.to_text())
                _write_preview(tmp / "preview", name, report)
                request = OutputRequest(
                    request_id=request_id,
                    name=name,
                    kind=kind,
                    title=output.title,
                    source=output.source,
                    status=status,
                    outcome=report.outcome.value,
                    summary=report.summary(),
                    requested_by=actor,
                    requested_at=_now(),
                    justification=justification.strip(),
                )
                output_sha256 = content_hash(tmp / "output")
                self._store(tmp, request.to_dict(), output_sha256)
            step.counts(items_withheld=len({f.key for f in report.withheld}))
            step.detail(request_id=request_id, kind=kind, source=output.source, outcome=report.outcome.value)
            # What release re-checks the pending files against: a file swapped later is refused.
            step.detail(output_sha256=output_sha256)
        return GateReceipt(request_id, name, status, report.outcome.value, report.summary(), report.to_text())

    def justify(self, engine: Any, actor: str, id_or_name: str, justification: str) -> GateReceipt:
        """Replace the justification of the caller's own open request, and sign it again."""
        from analysis.disclosure.workflow import BLOCKED, PENDING, _find_request

        request = _find_request(self.workspace, id_or_name)
        with engine.step(actor, Role.RESEARCHER, "output_justify") as step:
            if request.requested_by != actor:
                raise PolicyRefused(
                    "own_request_only",
                    f"Request {request.request_id} was made by '{request.requested_by}', not by '{actor}'.",
                    hint="only the researcher who requested an output can change its justification",
                )
            if request.status not in (PENDING, BLOCKED):
                raise InputError(
                    request.request_id, f"the request is already {request.status}", "request the output again"
                )
            fields, output_sha256 = verify_request(
                self._key.public_key(), request.directory, request.request_id
            )
            # a new copy, put in place only after the audit entry (see PolicyEngine.step)
            staged = step.stage(request.directory)
            shutil.copytree(request.directory, staged)
            self._store(staged, fields | {"justification": justification.strip()}, output_sha256)
            step.detail(request_id=request.request_id)
        return GateReceipt(request.request_id, request.name, request.status, request.outcome, request.summary)

    def _store(self, directory: Path, fields: dict[str, Any], output_sha256: str) -> None:
        write_json(directory / SIGNATURE_NAME, sign_request(self._key, fields, output_sha256))
        write_json(directory / "request.json", fields)


# --------------------------------------------------------------------------------------------
# The service: ``ehl gate serve``

_REPLY_KINDS: list[tuple[type[EhlError], str]] = [
    (PolicyRefused, "refused"),
    (TamperedError, "tampered"),
    (DisclosureBlocked, "blocked"),
    (AuditUnavailable, "unavailable"),
    (InputError, "input"),
    (ConfigError, "input"),
]


def _error_reply(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, FrameError):
        return {"ok": False, "kind": "bad_request", "error": str(exc), "hint": None}
    if isinstance(exc, EhlError):
        kind = next((k for cls, k in _REPLY_KINDS if isinstance(exc, cls)), "input")
        return {
            "ok": False, "kind": kind, "error": exc.message, "hint": exc.hint,
            "rule": getattr(exc, "rule", None),
        }  # fmt: skip
    if isinstance(exc, TimeoutError):
        return {"ok": False, "kind": "bad_request", "error": "no whole request arrived in time", "hint": None}
    return {
        "ok": False,
        "kind": "unavailable",
        "error": f"the output gate failed ({type(exc).__name__}); nothing was stored",
        "hint": "the TRE administrator reads the gate's log",
    }


class GateService:
    """The gate as a service: each connection is one researcher's request, identified by the kernel."""

    def __init__(self, deployment: Any, workspace: Workspace, signing_key: Ed25519PrivateKey):
        self.deployment = deployment
        self.gate = OutputGate(workspace, signing_key)

    def handle(self, conn: socket.socket) -> None:
        from ig_policies.engine import PolicyEngine
        from ig_policies.identity import peer_identity

        try:
            conn.settimeout(TIMEOUT)
            peer = peer_identity(conn, demo=self.deployment.demo)
            header, body = read_frame(conn, deadline=time.monotonic() + 2 * TIMEOUT)
            kind = header.get("request")
            if kind not in ("output", "justify"):
                raise FrameError(f"unknown request {kind!r} (known: output, justify)")
            name, justification = header.get("name"), header.get("justification")
            if not isinstance(name, str) or not isinstance(justification, str):
                raise FrameError("a request carries a 'name' and a 'justification' (text)")
            engine = PolicyEngine.load(None, self.gate.workspace, deployment=self.deployment, identity=peer)
            actor = engine.actor_for(Role.RESEARCHER)
            if kind == "justify":
                receipt = self.gate.justify(engine, actor, name, justification)
            else:
                with tempfile.TemporaryDirectory(prefix="ehl-gate-") as tmp:
                    output = unpack_output(header.get("files"), body, Path(tmp) / "output")
                    receipt = self.gate.accept(engine, actor, output, name, justification)
            reply: dict[str, Any] = {"ok": True, "receipt": receipt.to_dict()}
        except Exception as exc:  # every failure is a reply: the gate keeps serving
            reply = _error_reply(exc)
        with contextlib.suppress(OSError):
            conn.sendall(encode_frame(reply))


def serve(
    service: GateService,
    socket_path: str | os.PathLike[str],
    group: str | None = None,
    ready: Any = None,
) -> None:
    """Listen on ``socket_path`` (mode 0660, group ``group``) until SIGTERM/SIGINT, one request at a time."""
    serve_unix_socket(
        socket_path,
        service.handle,
        socket_name="output gate's socket",
        group=group,
        group_hint="create the group of the researcher accounts, or pass the right one with --group",
        ready=ready,
    )


# --------------------------------------------------------------------------------------------
# The researcher's side


def submit(socket_path: str | os.PathLike[str], header: dict[str, Any], body: bytes = b"") -> GateReceipt:
    """Send one request to the gate service; its receipt, or its refusal as the matching error."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(TIMEOUT * 4)  # the gate runs the checks before it replies
            conn.connect(str(socket_path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.sendall(encode_frame(header, body))  # a refused frame is answered, then closed
                conn.shutdown(socket.SHUT_WR)
            reply, _ = read_frame(conn, max_body=0)
    except (OSError, FrameError) as exc:
        raise AuditUnavailable(
            f"The output gate at {socket_path} cannot be reached ({getattr(exc, 'strerror', None) or exc}); "
            "nothing was requested.",
            hint="ask the TRE administrator to start the output gate ('make output-gate' locally), and "
            "check that your account is in the group that may use its socket",
        ) from None
    if reply.get("ok"):
        return GateReceipt.from_dict(reply.get("receipt") or {})
    message, hint = f"The output gate refused: {reply.get('error')}", reply.get("hint")
    kind = reply.get("kind")
    if kind == "refused":
        raise PolicyRefused(str(reply.get("rule") or "output_gate"), message, hint=hint)
    if kind == "tampered":
        raise TamperedError(message, hint=hint)
    if kind == "blocked":
        raise DisclosureBlocked(message, hint=hint)
    if kind == "input" or kind == "bad_request":
        raise InputError(
            "the output gate",
            str(reply.get("error")),
            hint or "request the output again ('ehl outputs request')",
        )
    raise AuditUnavailable(message, hint=hint)


__all__ = [
    "MAX_OUTPUT_BYTES",
    "FrameError",
    "GateReceipt",
    "GateService",
    "OutputGate",
    "encode_frame",
    "pack_output",
    "read_frame",
    "serve",
    "submit",
    "unpack_output",
]
