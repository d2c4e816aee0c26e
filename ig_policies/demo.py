"""The synthetic demo's policy, DEMO-ONLY officer key and trust store, and variants of them.

DEMO ONLY. The demo officer key's passphrase is published here on purpose, so that the demo and the
tests can sign variants of the demo policy (a lower cell threshold, an extra field, an expired
window...) and check that the engine and disclosure control react. Nothing here may be used to
govern real data: a real deployment has its own policy, officer keys and trust store.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ig_policies.engine import PolicyEngine
from ig_policies.identity import DEMO_PERSONAS
from ig_policies.master_secret import MasterSecret
from ig_policies.policy import read_policy_document
from ig_policies.signing import sign_policy
from ig_policies.workspace import Workspace, write_text

DEMO_DIR = Path(__file__).resolve().parent / "configs" / "demo"
DEMO_POLICY = DEMO_DIR / "policy.yaml"
DEMO_TRUST_STORE = DEMO_DIR / "trust_store.yaml"
DEMO_OFFICER_KEY = DEMO_DIR / "DEMO_ONLY_officer_key.pem"
DEMO_PASSPHRASE = "demo-only-passphrase-not-secret"  # DEMO ONLY: public on purpose
#: A day inside the demo policy's validity window, for reproducible tests.
DEMO_TODAY = dt.date(2027, 1, 1)
#: The demo policy's user per role (the names a DEMO deployment's one account acts under).
DEMO_USERS = {role.value: name for role, name in DEMO_PERSONAS.items()}


#: Pass as a value in ``changes`` to remove a key.
DELETE = object()


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = doc
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


def write_demo_policy(
    path: str | os.PathLike[str],
    changes: Mapping[str, Any] | None = None,
    sign: bool = True,
) -> Path:
    """Write a variant of the demo policy to ``path`` and (by default) sign it with the DEMO-ONLY key.

    ``changes`` maps dotted keys to new values, e.g. ``{"outputs.min_cell_count": 5,
    "datasets.ways_to_work.fields": [...], "validity.expiry": date(2026, 6, 30)}``; use ``DELETE``
    as a value to remove a key.
    """
    doc = read_policy_document(DEMO_POLICY)
    for dotted, value in (changes or {}).items():
        _set(doc, dotted, value)
    out = write_text(
        path, "# DEMO ONLY variant of the synthetic demo policy\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    if sign:
        sign_policy(out, DEMO_OFFICER_KEY, DEMO_PASSPHRASE, signer="demo-ig-officer (DEMO ONLY)")
    return out


def demo_engine(
    workspace: Workspace,
    policy_path: str | os.PathLike[str] | None = None,
    today: dt.date | None = DEMO_TODAY,
    master_secret: MasterSecret | None = None,
) -> PolicyEngine:
    """A policy engine on the demo policy (or a variant from ``write_demo_policy``) and demo trust store."""
    return PolicyEngine.load(
        policy_path or DEMO_POLICY,
        workspace,
        trust_store=DEMO_TRUST_STORE,
        today=today,
        master_secret=master_secret,
    )
