"""The output gate's key and settings: who signed a pending request, and over what.

The output gate (``analysis.disclosure.gate``) is the only writer of ``outputs/pending/``. It runs
as its own OS account, takes a researcher's output over a Unix socket, runs disclosure control and
signs each request it stores (Ed25519) over the request's fields and the SHA-256 of the output's
files. A release checks that signature with the gate's public key (readable by every role) and the
pending files against the signed hash, so a request written by anyone else (a researcher who can
write files, root copying files in) or edited afterwards is refused as tampering.

``GateSettings`` in the deployment says where the gate is: a ``socket`` (the production set-up) or,
in demo mode and tests, a ``signing_key`` for a gate run in-process, like the audit log's DEMO
writer. Only this module knows the signed statement's layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, model_validator

from ig_policies.audit import _write_key_pair, canonical, load_public_key, load_signing_key
from ig_policies.errors import TamperedError
from ig_policies.workspace import Workspace

#: Domain separation: a gate signature never passes as an audit entry's or an officer's.
REQUEST_LABEL = b"ehl-output-gate-request-v1\n"
#: The file beside ``request.json`` holding the gate's signature.
SIGNATURE_NAME = "request.sig"
#: Where the temporary DEMO gate of a workspace keeps its key pair (``<root>.output-gate``).
DEMO_GATE_SUFFIX = ".output-gate"


class GateSettings(BaseModel):
    """Where the output gate is and how to check what it signed.

    ``public_key`` (PEM) is readable by every role. Exactly one of ``socket`` (a running gate
    service under its own ``account``) or ``signing_key`` (the private key, for an in-process gate
    in demo mode and tests; the file must be 0600) is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: Path
    socket: Path | None = None
    signing_key: Path | None = None
    #: the OS account the gate service runs as: the only one whose processes may act for a peer
    account: str | None = None

    @model_validator(mode="after")
    def _one_gate(self) -> GateSettings:
        if (self.socket is None) == (self.signing_key is None):
            raise ValueError(
                "give exactly one of 'socket' (a running output gate service) or 'signing_key' "
                "(an in-process gate, demo mode and tests only)"
            )
        if self.socket is not None and not self.account:
            raise ValueError("a gate service ('socket') needs the 'account' it runs as")
        return self

    def verifier(self) -> Ed25519PublicKey:
        return load_public_key(self.public_key)


def create_demo_gate(directory: str | os.PathLike[str]) -> GateSettings:
    """A DEMO gate key pair under ``directory`` (``signing.key`` 0600, ``public.pem``), made once."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    private, public = directory / "signing.key", directory / "public.pem"
    with FileLock(str(directory / ".keys.lock"), timeout=60):
        if not (private.exists() and public.exists()):
            _write_key_pair(private, public)
    return GateSettings(public_key=public, signing_key=private)


def demo_gate_directory(workspace: Workspace) -> Path:
    """Where the DEMO gate of a workspace lives: beside it, never inside it."""
    root = Path(workspace.root).resolve()
    return root.with_name(root.name + DEMO_GATE_SUFFIX)


def load_gate_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The gate's private key (refused unless the file is its owner's alone)."""
    return load_signing_key(path)


def _statement(fields: dict[str, Any], output_sha256: str) -> bytes:
    return REQUEST_LABEL + canonical({"request": fields, "output_sha256": output_sha256})


def sign_request(key: Ed25519PrivateKey, fields: dict[str, Any], output_sha256: str) -> dict[str, str]:
    """The gate's signature over a request's fields and its output's content hash (``request.sig``)."""
    return {"output_sha256": output_sha256, "signature": key.sign(_statement(fields, output_sha256)).hex()}


def verify_request(
    public_key: Ed25519PublicKey, directory: Path, request_id: str
) -> tuple[dict[str, Any], str]:
    """The fields of ``directory/request.json`` and the output hash the gate signed for them.

    ``TamperedError`` (exit 5) if the signature file is missing, unreadable, or not the gate's
    signature over exactly these fields: a request the gate did not write, or one edited since.
    """
    hint = (
        "do not release it: reject it with the reason, tell the IG lead that files were placed or "
        "changed in outputs/pending/, and ask the researcher to request the output again"
    )
    try:
        fields = json.loads((directory / "request.json").read_text(encoding="utf-8"))
        signed = json.loads((directory / SIGNATURE_NAME).read_text(encoding="utf-8"))
        digest, signature = str(signed["output_sha256"]), bytes.fromhex(signed["signature"])
    except FileNotFoundError:
        raise TamperedError(
            f"Request {request_id} is not signed by the output gate: it was not made through the gate "
            "(every real request carries the gate's signature).",
            hint=hint,
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise TamperedError(
            f"The output gate's signature of request {request_id} cannot be read.", hint=hint
        ) from None
    try:
        public_key.verify(signature, _statement(fields, digest))
    except InvalidSignature:
        raise TamperedError(
            f"Request {request_id} does not match the output gate's signature: its request file was "
            "changed after the gate wrote it, or it was signed by another key.",
            hint=hint,
        ) from None
    return fields, digest
