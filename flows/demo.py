"""The synthetic demo end to end: make a region, run the approved flow, review as the demo officer.

DEMO ONLY. The demo signs nothing new and trusts only the DEMO-ONLY officer key shipped in
``ig_policies/configs/demo/``. Its master secret is generated on first use into ``.demo-secrets/``
beside the workspace (never inside it, never in the repository), so every artefact the pipeline
writes can be scanned for key material.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flows.stage_ledger import StageLedger
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.master_secret import KEY_FILE_ENV, PASSPHRASE_FILE_ENV, create_master_key_file
from ig_policies.workspace import Workspace, write_text


def demo_secrets_dir(workspace: Workspace) -> Path:
    return workspace.root.parent / ".demo-secrets"


def ensure_demo_master_secret(workspace: Workspace) -> Path:
    """Create (once) the demo's encrypted master key and point the environment at it."""
    directory = demo_secrets_dir(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key_file, passphrase_file = directory / "master.key", directory / "passphrase"
    if not key_file.exists() or not passphrase_file.exists():
        passphrase = secrets.token_urlsafe(24)
        write_text(passphrase_file, passphrase + "\n")
        os.chmod(passphrase_file, 0o600)
        create_master_key_file(key_file, passphrase)
    os.environ[KEY_FILE_ENV] = str(key_file)
    os.environ[PASSPHRASE_FILE_ENV] = str(passphrase_file)
    os.environ.pop("EHL_MASTER_SECRET", None)
    os.environ.pop("EHL_MASTER_KEY_PASSPHRASE", None)
    return key_file


def ensure_demo_deployment(workspace: Workspace) -> Path:
    """Write the DEMO deployment for ``workspace`` under the demo folder (beside the workspace,
    never inside it) and point this process (and the flow runs it starts) at it."""
    from ig_policies.deployment import DEPLOYMENT_ENV, write_demo_deployment

    path = write_demo_deployment(demo_secrets_dir(workspace) / "deployment", workspace.root, DEMO_POLICY)
    os.environ[DEPLOYMENT_ENV] = str(path)
    return path


def ensure_synthetic_region(workspace: Workspace, people: int, seed: int) -> bool:
    """Generate the synthetic region unless this workspace already holds the same one. True if made."""
    from synthetic import generate_region

    ledger = StageLedger(workspace)
    outputs = [
        workspace.landing / "health",
        workspace.landing / "employment",
        workspace.reference,
        workspace.truth,
    ]
    plan = ledger.plan("synth", [], {"people": people, "seed": seed})
    if plan.up_to_date:
        return False
    result = generate_region(workspace, people=people, seed=seed)
    ledger.complete(
        plan, outputs, {"people": people, "seed": seed, **{k: int(v) for k, v in result.counts.items()}}
    )
    return True


@dataclass(frozen=True)
class DemoReview:
    released: tuple[str, ...]
    rejected: tuple[str, ...]
    left_for_review: tuple[str, ...]


def review_as_demo_officer(workspace: Workspace, trust_store: Path = DEMO_TRUST_STORE) -> DemoReview:
    """The demo IG officer releases what passed every check and rejects what failed.

    Outputs whose checks say *review* are left pending: a real officer must look at them
    (``ehl outputs review``); the demo does not pretend to judge them.
    """
    from analysis.disclosure.workflow import (
        BLOCKED,
        OfficerSigner,
        list_requests,
        reject_output,
        release_output,
    )
    from flows.stages import PipelineContext
    from ig_policies.demo import DEMO_OFFICER_KEY, DEMO_PASSPHRASE
    from ig_policies.errors import DisclosureBlocked
    from ig_policies.policy import Role

    context = PipelineContext(workspace, DEMO_POLICY, trust_store=trust_store)
    officer = context.acting(Role.IG_OFFICER)
    engine = context.engine(actor=officer)
    signer = OfficerSigner.from_file(DEMO_OFFICER_KEY, DEMO_PASSPHRASE)  # DEMO ONLY key
    released, rejected, left = [], [], []
    for req in list_requests(workspace):
        if req.status == "pending" and req.outcome == "pass":
            try:
                release_output(workspace, engine, officer, req.request_id, signer)
            except DisclosureBlocked as exc:  # the release-time re-check sees earlier releases too
                reject_output(
                    workspace, engine, officer, req.request_id,
                    f"Re-check at release failed: {exc.message}", signer,
                )  # fmt: skip
                rejected.append(req.request_id)
                continue
            released.append(req.request_id)
        elif req.status in ("pending", BLOCKED) and req.outcome == "fail":
            reject_output(
                workspace, engine, officer, req.request_id,
                f"Automatic disclosure checks failed: {req.summary}", signer,
            )  # fmt: skip
            rejected.append(req.request_id)
        elif req.status == "pending":
            left.append(req.request_id)
    return DemoReview(tuple(released), tuple(rejected), tuple(left))
