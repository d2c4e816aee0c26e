"""`ehl policy`: sign, verify, read and compare IG policies."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import TrustStoreOption, handle_errors, print_outputs
from flows.cli.keys import PassphraseEnvOption, read_passphrase, say

app = typer.Typer(no_args_is_help=True, help="Sign, verify, read and compare IG policies.")

PolicyArgument = Annotated[Path, typer.Argument(help="The policy YAML file.")]


@app.command("sign")
@handle_errors
def sign(
    policy: PolicyArgument,
    key: Annotated[Path, typer.Option("--key", help="Your encrypted private key (from 'ehl keys new').")],
    signer: Annotated[
        str | None, typer.Option("--signer", help="Your name, recorded in the signature.")
    ] = None,
    passphrase_env: PassphraseEnvOption = None,
) -> None:
    """Approve a policy: write its detached signature <policy>.sig. Read it with 'ehl policy show' first."""
    from ig_policies.policy import load_policy
    from ig_policies.signing import policy_file_hash, sign_policy

    model = load_policy(policy)  # an invalid policy is reported before the passphrase is asked for
    passphrase = read_passphrase(passphrase_env, "Passphrase of your private key", confirm=False)
    sig = sign_policy(policy, key, passphrase, signer=signer)
    say(
        f"Signed policy '{model.project.id}' version {model.policy_version} (in force "
        f"{model.validity.start} to {model.validity.expiry}), content hash {policy_file_hash(policy)}."
    )
    print_outputs([("signature", sig)])


@app.command("verify")
@handle_errors
def verify(policy: PolicyArgument, trust_store: TrustStoreOption = None) -> None:
    """Check a policy's signature, its schema and whether it is in force today (exit 3 if not usable)."""
    from ig_policies.errors import PolicyRefused
    from ig_policies.policy import load_policy
    from ig_policies.signing import resolve_trust_store, verify_policy_signature

    store = resolve_trust_store(trust_store)
    model = load_policy(policy)
    check = verify_policy_signature(policy, store)
    say(
        f"Signature: valid, by {check.officer} (key {check.key_id}), signed {check.signed_at or 'at an unrecorded time'}."
    )
    say(f"Policy content hash: {check.policy_hash}")
    today = dt.date.today()
    if today < model.validity.start:
        raise PolicyRefused(
            "not_yet_valid", f"The policy is signed but valid only from {model.validity.start}."
        )
    if today > model.validity.expiry:
        raise PolicyRefused(
            "expired",
            f"The policy is signed but expired on {model.validity.expiry}.",
            hint="ask the IG officer for a renewed, signed policy",
        )
    say(f"In force from {model.validity.start} to {model.validity.expiry}.")


@app.command("show")
@handle_errors
def show(policy: PolicyArgument, trust_store: TrustStoreOption = None) -> None:
    """A plain-English summary: who may do what with which fields until when."""
    from ig_policies.errors import PolicyRefused
    from ig_policies.policy import load_policy
    from ig_policies.review import describe_policy
    from ig_policies.signing import (
        TRUST_STORE_ENV,
        policy_file_hash,
        resolve_trust_store,
        verify_policy_signature,
    )

    model = load_policy(policy)
    say(describe_policy(model))
    say("")
    say(f"Content hash: {policy_file_hash(policy)}")
    if trust_store is None and not os.environ.get(TRUST_STORE_ENV):
        say("Signature: not checked (give --trust-store to check it).")
        return
    try:
        check = verify_policy_signature(policy, resolve_trust_store(trust_store))
    except PolicyRefused as exc:
        say(f"Signature: NOT VALID ({exc.rule}): {exc.message}")
        return
    say(f"Signature: valid, by {check.officer} (key {check.key_id}), signed {check.signed_at}.")


@app.command("diff")
@handle_errors
def diff(
    old: Annotated[Path, typer.Argument(help="The approved (older) version.")],
    new: Annotated[Path, typer.Argument(help="The proposed (newer) version.")],
) -> None:
    """What the new version widens or narrows compared with the old one (exit 0 either way)."""
    from ig_policies.policy import load_policy
    from ig_policies.review import diff_policies, format_diff

    say(format_diff(diff_policies(load_policy(old), load_policy(new))))
