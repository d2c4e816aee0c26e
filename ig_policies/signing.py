"""Signing policies: IG officer keys, the trust store, the canonical form and detached signatures.

An IG officer approves a policy by signing its *canonical form*: the YAML is parsed and re-written
as JSON with sorted keys and no whitespace, so comments, indentation, quoting and key order do not
matter but every value does. The signature lives next to the policy in ``<policy>.sig`` and records
the signing key's id and the canonical hash, so "edited after signing" can be told apart from a
forged or corrupted signature. Which officers' keys count is decided by a separate trust store file,
chosen by whoever runs the service (``--trust-store`` / ``$EHL_TRUST_STORE``); there is no default.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ig_policies.config_file import load_config_file, read_config_file
from ig_policies.errors import ConfigError, PolicyRefused, TamperedError
from ig_policies.policy import policy_from_document, read_policy_document
from ig_policies.workspace import write_bytes, write_text

SIGNATURE_FORMAT = "ehl-policy-signature/1"
SIGNATURE_SUFFIX = ".sig"
TRUST_STORE_ENV = "EHL_TRUST_STORE"
MIN_PASSPHRASE = 8


# --------------------------------------------------------------------------------------------
# Canonical form


def _canonical_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: infinite or NaN numbers are not allowed in a policy")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(f"{where}: unsupported YAML value of type {type(value).__name__}")


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The canonical form of a parsed policy: sorted-key, whitespace-free UTF-8 JSON.

    Dates become ISO text, so ``2026-01-01`` and ``"2026-01-01"`` are the same value.
    """
    canon = _canonical_value(document, "policy")
    return json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(document)).hexdigest()


def policy_file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the canonical form of the policy file at ``path``."""
    return canonical_hash(read_policy_document(path))


def signature_path(policy_path: str | os.PathLike[str]) -> Path:
    p = Path(policy_path)
    return p.with_name(p.name + SIGNATURE_SUFFIX)


def _message(canonical: bytes) -> bytes:
    # Domain separation: a policy signature can never be replayed as a signature over anything else.
    return SIGNATURE_FORMAT.encode() + b"\n" + canonical


# --------------------------------------------------------------------------------------------
# Keys


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable id of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True)
class OfficerKeyFiles:
    private_key: Path
    public_key: Path
    key_id: str


def create_officer_key(
    private_path: str | os.PathLike[str], public_path: str | os.PathLike[str], passphrase: str
) -> OfficerKeyFiles:
    """A new Ed25519 key pair: private key as passphrase-encrypted PKCS#8 PEM, public key as PEM."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ConfigError(
            f"the passphrase must be at least {MIN_PASSPHRASE} characters long",
            hint="choose a longer passphrase; it protects the key that approves policies",
        )
    for target in (Path(private_path), Path(public_path)):
        if target.exists():
            raise ConfigError(
                f"{target} already exists", hint="choose another file name; keys are never overwritten"
            )
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    priv = write_bytes(private_path, pem, mode=0o600)
    pub = write_text(public_path, public_key_pem(private.public_key()))
    os.chmod(pub, 0o644)
    return OfficerKeyFiles(priv, pub, key_id(private.public_key()))


def load_private_key(path: str | os.PathLike[str], passphrase: str) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError:
        raise ConfigError(
            f"{p}: cannot read the private key file", hint="check the path given to --key"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode())
    except (ValueError, TypeError):
        raise ConfigError(
            f"{p}: wrong passphrase, or not an encrypted private key",
            hint="check the passphrase; keys are made with 'ehl keys new'",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{p}: not an Ed25519 key", hint="make officer keys with 'ehl keys new'")
    return key


def load_public_key_pem(text: str, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ConfigError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{source}: not an Ed25519 public key")
    return key


# --------------------------------------------------------------------------------------------
# Trust store


class TrustedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    officer: str = Field(min_length=1)
    public_key: str
    note: str = ""


class _TrustStoreFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    trust_store_version: int = Field(1, ge=1, le=1)
    keys: tuple[TrustedKey, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> _TrustStoreFile:
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("a key_id is listed twice")
        return self


@dataclass(frozen=True)
class TrustStore:
    """The IG officer public keys this deployment accepts, by key id."""

    path: Path
    keys: dict[str, tuple[TrustedKey, Ed25519PublicKey]]

    def officer(self, kid: str) -> str | None:
        entry = self.keys.get(kid)
        return entry[0].officer if entry else None


def load_trust_store(path: str | os.PathLike[str]) -> TrustStore:
    p = Path(path)
    parsed = load_config_file(
        p,
        _TrustStoreFile,
        "the trust store",
        hint="add keys with 'ehl keys trust' rather than by hand",
        missing_hint=f"check --trust-store / {TRUST_STORE_ENV}",
    )
    keys: dict[str, tuple[TrustedKey, Ed25519PublicKey]] = {}
    for i, entry in enumerate(parsed.keys):
        public = load_public_key_pem(entry.public_key, f"{p}: keys[{i}].public_key")
        if key_id(public) != entry.key_id:
            raise ConfigError(
                f"{p}: keys[{i}].key_id does not match its public_key (it should be {key_id(public)})",
                hint="add keys with 'ehl keys trust' rather than by hand",
            )
        keys[entry.key_id] = (entry, public)
    return TrustStore(p, keys)


def resolve_trust_store(path: str | os.PathLike[str] | None) -> TrustStore:
    """The trust store from ``path`` or ``$EHL_TRUST_STORE``; refuses when neither is given (fail closed)."""
    chosen = path if path is not None else os.environ.get(TRUST_STORE_ENV) or None
    if chosen is None:
        raise PolicyRefused(
            "no_trust_store",
            "No trust store given, so no IG officer's signature can be trusted.",
            hint=f"pass --trust-store FILE or set {TRUST_STORE_ENV} (the demo uses ig_policies/configs/demo/trust_store.yaml)",
        )
    return load_trust_store(chosen)


def add_trusted_key(
    trust_store_path: str | os.PathLike[str],
    public_key_path: str | os.PathLike[str],
    officer: str,
    note: str = "",
) -> str:
    """Add an officer's public key to a trust store file (created if missing); returns the key id."""
    pub_path = Path(public_key_path)
    try:
        pem = pub_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{pub_path}: cannot read the public key file") from None
    public = load_public_key_pem(pem, str(pub_path))
    kid = key_id(public)
    store = Path(trust_store_path)
    existing: list[dict[str, Any]] = []
    if store.exists():
        load_trust_store(store)  # refuse to extend a broken store
        existing = list(read_config_file(store, "the trust store").get("keys", []))
    if any(k.get("key_id") == kid for k in existing):
        raise ConfigError(f"{store}: key {kid} is already trusted")
    entry: dict[str, Any] = {"key_id": kid, "officer": officer, "public_key": public_key_pem(public)}
    if note:
        entry["note"] = note
    existing.append(entry)
    header = (
        "# Trusted IG officer public keys. A policy is only used when signed by one of these keys.\n"
        "# Add keys with 'ehl keys trust'; remove a key by deleting its entry.\n"
    )
    out = write_text(
        store,
        header
        + yaml.dump({"trust_store_version": 1, "keys": existing}, Dumper=_BlockDumper, sort_keys=False),
    )
    os.chmod(out, 0o644)
    return kid


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PEM keys) as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


# --------------------------------------------------------------------------------------------
# Signatures


@dataclass(frozen=True)
class SignatureCheck:
    """A verified signature: which trusted officer signed which canonical content."""

    key_id: str
    officer: str
    policy_hash: str
    signed_at: str


def sign_policy(
    policy_path: str | os.PathLike[str],
    private_key_path: str | os.PathLike[str],
    passphrase: str,
    signer: str | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Validate the policy, then write its detached signature ``<policy>.sig``. Returns that path.

    An invalid policy is never signed: the schema errors are raised instead.
    """
    doc = read_policy_document(policy_path)
    policy_from_document(doc, source=str(policy_path))
    private = load_private_key(private_key_path, passphrase)
    canon = canonical_bytes(doc)
    signature = private.sign(_message(canon))
    record = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "Ed25519",
        "key_id": key_id(private.public_key()),
        "signer": signer or "",
        "signed_at": (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat(),
        "policy_sha256": hashlib.sha256(canon).hexdigest(),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    out = write_text(signature_path(policy_path), json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.chmod(out, 0o644)
    return out


def _read_signature(sig: Path) -> dict[str, Any]:
    try:
        record = json.loads(sig.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != SIGNATURE_FORMAT:
            raise ValueError
        for field in ("key_id", "policy_sha256", "signature"):
            if not isinstance(record.get(field), str):
                raise ValueError
        return record
    except (OSError, UnicodeDecodeError, ValueError):
        raise PolicyRefused(
            "bad_signature",
            f"{sig} is not a readable policy signature.",
            hint="have an IG officer sign the policy again with 'ehl policy sign'",
        ) from None


def verify_policy_signature(
    policy_path: str | os.PathLike[str], trust_store: TrustStore, document: dict[str, Any] | None = None
) -> SignatureCheck:
    """Check ``<policy>.sig`` against the policy's canonical form and the trust store.

    Pass the already parsed ``document`` to verify exactly the content that was validated (the file
    is then not read again, so it cannot change in between). Refuses (``PolicyRefused``) with rule
    ``unsigned``, ``untrusted_key``, ``edited_after_signing`` or ``bad_signature``.
    """
    sig = signature_path(policy_path)
    if not sig.exists():
        raise PolicyRefused(
            "unsigned",
            f"The policy {policy_path} has no signature ({sig.name} is missing), so nobody has approved it.",
            hint="ask an IG officer to review it ('ehl policy show') and sign it ('ehl policy sign')",
        )
    record = _read_signature(sig)
    trusted = trust_store.keys.get(record["key_id"])
    if trusted is None:
        raise PolicyRefused(
            "untrusted_key",
            f"The policy is signed by key {record['key_id']}, which is not in the trust store {trust_store.path}.",
            hint="have it signed by a trusted IG officer, or ask the TRE operator to add the officer's key "
            "('ehl keys trust') if that officer is authorised",
        )
    canon = canonical_bytes(document if document is not None else read_policy_document(policy_path))
    current_hash = hashlib.sha256(canon).hexdigest()
    if record["policy_sha256"] != current_hash:
        raise PolicyRefused(
            "edited_after_signing",
            f"The policy {policy_path} was changed after it was signed (its content no longer matches the signature).",
            hint="compare it with the approved version ('ehl policy diff OLD NEW') and have the new version signed",
        )
    try:
        signature = base64.b64decode(record["signature"], validate=True)
        trusted[1].verify(signature, _message(canon))
    except (InvalidSignature, binascii.Error, ValueError):
        raise PolicyRefused(
            "bad_signature",
            f"The signature in {sig.name} is not valid for this policy and key {record['key_id']}.",
            hint="the signature file was altered or damaged: have an IG officer sign the policy again",
        ) from None
    return SignatureCheck(
        record["key_id"], trusted[0].officer, current_hash, str(record.get("signed_at", ""))
    )


# --------------------------------------------------------------------------------------------
# Signed officer decisions on outputs (release, reject, request changes, exceptions)

DECISION_FORMAT = "ehl-output-decision-v1"


def _decision_message(statement: dict[str, Any]) -> bytes:
    # Domain separation: a decision signature can never pass as a policy signature, or the reverse.
    return DECISION_FORMAT.encode() + b"\n" + canonical_bytes(statement)


def statement_hash(statement: dict[str, Any]) -> str:
    """SHA-256 of a decision statement's canonical form (what the audit log records)."""
    return hashlib.sha256(_decision_message(statement)).hexdigest()


def sign_statement(private_key: Ed25519PrivateKey, statement: dict[str, Any]) -> tuple[str, str]:
    """Sign a decision statement with an officer's key; returns (key id, hex signature).

    Hex, not base64, so that the audit log's identifier redaction can never alter a signature.
    """
    signature = private_key.sign(_decision_message(statement))
    return key_id(private_key.public_key()), signature.hex()


def verify_statement(
    store: TrustStore, statement: dict[str, Any], kid: str, signature_hex: str, officer: str
) -> None:
    """Refuse unless ``kid`` is trusted, belongs to ``officer`` and signed exactly ``statement``."""
    entry = store.keys.get(kid)
    if entry is None:
        raise PolicyRefused(
            "decision_key_not_trusted",
            f"The key {kid} that signed this decision is not in the trust store {store.path}.",
            hint="sign with your own IG officer key (--key / EHL_OFFICER_KEY), the one you sign policies with",
        )
    if entry[0].officer != officer:
        raise PolicyRefused(
            "decision_key_not_officers",
            f"The key {kid} belongs to '{entry[0].officer}', not to '{officer}' who is deciding.",
            hint="each IG officer signs decisions with their own key; use yours (--key / EHL_OFFICER_KEY)",
        )
    try:
        entry[1].verify(bytes.fromhex(signature_hex), _decision_message(statement))
    except (InvalidSignature, ValueError, TypeError):
        raise TamperedError(
            f"The signature of the decision by '{officer}' does not match what it says.",
            hint="the decision file has been changed after it was signed; tell the IG officer",
        ) from None
