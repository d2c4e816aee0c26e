"""The service's master secret, and the keys derived from it.

One secret, held by the data processor inside the TRE, is the root of every keyed operation:
matching tokens, research pseudonyms, Bloom-filter encodings and the audit log's authentication.
It is never stored in the repository or written to any output; it comes from the environment or
from a key file encrypted with a passphrase. Purpose-specific keys are derived with HKDF so that a
token key for one project (or key version) says nothing about another project's tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ig_policies.workspace import write_text

SECRET_ENV = "EHL_MASTER_SECRET"
KEY_FILE_ENV = "EHL_MASTER_KEY_FILE"
PASSPHRASE_ENV = "EHL_MASTER_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "EHL_MASTER_KEY_PASSPHRASE_FILE"  # a mounted secret file, as in containers
KEY_FILE_FORMAT = "ehl-master-key/1"
MIN_SECRET_BYTES = 32


class MasterSecretError(RuntimeError):
    """The master secret is missing or unusable; the message says how to provide it."""


@dataclass(frozen=True, repr=False)
class MasterSecret:
    """Opaque holder: its repr never shows the bytes, so it cannot leak through logs or tracebacks."""

    _value: bytes

    def __repr__(self) -> str:
        return "MasterSecret(<redacted>)"

    def derive(self, purpose: str, project_id: str = "*", version: int = 1, length: int = 32) -> bytes:
        """A key for one purpose, project and key version (HKDF-SHA256).

        Changing any of the three gives an unrelated key; this is what makes tokens of different
        projects unlinkable and lets a key rotation re-pseudonymise under a new version.
        """
        info = f"ehl-linkage/v1/{purpose}/{project_id}/{version}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(self._value)


def _decode_secret(text: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            value = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(value) >= MIN_SECRET_BYTES:
            return value
    raise MasterSecretError(
        f"{SECRET_ENV} must hold at least {MIN_SECRET_BYTES} random bytes as hex or base64. "
        "Generate one with: ehl keys master-new --out FILE"
    )


def _kek(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def create_master_key_file(path: str | os.PathLike[str], passphrase: str) -> Path:
    """Write a new random master secret, encrypted (scrypt + AES-256-GCM) with ``passphrase``."""
    if len(passphrase) < 8:
        raise MasterSecretError("the passphrase must be at least 8 characters long")
    secret = secrets.token_bytes(32)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    ciphertext = AESGCM(_kek(passphrase, salt)).encrypt(nonce, secret, KEY_FILE_FORMAT.encode())
    doc = {
        "format": KEY_FILE_FORMAT,
        "kdf": {"name": "scrypt", "n": 2**15, "r": 8, "p": 1, "salt": salt.hex()},
        "cipher": "AES-256-GCM",
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
    }
    out = write_text(path, json.dumps(doc, indent=2) + "\n", mode=0o600)
    return out


def read_master_key_file(path: str | os.PathLike[str], passphrase: str) -> MasterSecret:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        if doc.get("format") != KEY_FILE_FORMAT:
            raise ValueError
        salt = bytes.fromhex(doc["kdf"]["salt"])
        nonce = bytes.fromhex(doc["nonce"])
        ciphertext = bytes.fromhex(doc["ciphertext"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MasterSecretError(f"{p} is not a readable {KEY_FILE_FORMAT} key file") from exc
    try:
        return MasterSecret(
            AESGCM(_kek(passphrase, salt)).decrypt(nonce, ciphertext, KEY_FILE_FORMAT.encode())
        )
    except InvalidTag:
        raise MasterSecretError(f"wrong passphrase for the master key file {p}") from None


def load_master_secret(environ: os._Environ[str] | dict[str, str] | None = None) -> MasterSecret:
    """The master secret from ``$EHL_MASTER_SECRET`` or ``$EHL_MASTER_KEY_FILE`` + passphrase.

    Fails closed with a message that says exactly what to set; never falls back to a default key.
    """
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV):
        return MasterSecret(_decode_secret(env[SECRET_ENV]))
    if env.get(KEY_FILE_ENV):
        passphrase = env.get(PASSPHRASE_ENV)
        if not passphrase and env.get(PASSPHRASE_FILE_ENV):
            try:
                passphrase = Path(env[PASSPHRASE_FILE_ENV]).read_text().rstrip("\n")
            except OSError as exc:
                raise MasterSecretError(
                    f"cannot read the passphrase file named by {PASSPHRASE_FILE_ENV} ({exc.strerror})"
                ) from None
        if not passphrase:
            raise MasterSecretError(
                f"{KEY_FILE_ENV} is set but neither {PASSPHRASE_ENV} nor {PASSPHRASE_FILE_ENV} is: "
                "provide the passphrase of the key file."
            )
        return read_master_key_file(env[KEY_FILE_ENV], passphrase)
    raise MasterSecretError(
        f"No master secret: set {KEY_FILE_ENV} (an encrypted key file made by 'ehl keys master-new') "
        f"and {PASSPHRASE_ENV}, or {SECRET_ENV}. The data processor holds this secret; it is never "
        "kept in the repository."
    )
