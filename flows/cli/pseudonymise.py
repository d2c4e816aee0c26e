"""`ehl pseudonymise`: validated extracts -> tokens and research pseudonyms in pseudonymised/.

A data-processor step. The master secret comes from the environment (``EHL_MASTER_SECRET``, or
``EHL_MASTER_KEY_FILE`` with ``EHL_MASTER_KEY_PASSPHRASE``) and is never printed or written.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import (
    PolicyOption,
    UserOption,
    WorkspaceOption,
    console,
    current_user,
    handle_errors,
    load_engine,
    load_run_settings,
    open_workspace,
    print_outputs,
    progress,
    require_master_secret,
    start_spark,
)
from flows.cli.policy import TrustStoreOption

app = typer.Typer(
    help="Standardise identifiers and replace them with keyed tokens and research pseudonyms "
    "(reads landing/validated/, writes pseudonymised/).",
)


@app.callback(invoke_without_command=True)
@handle_errors
def pseudonymise(
    key_version: Annotated[
        int | None,
        typer.Option(
            "--key-version",
            min=1,
            help="Key version to derive the project keys with (default: the policy's linkage.key_version). "
            "A new version re-pseudonymises everything: a key rotation.",
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Pseudonymise every validated extract (data processor); audited with row and flag counts."""
    from linkage.identifiable.pseudonymise import pseudonymise_extracts

    ws = open_workspace(workspace)
    actor = current_user(user)
    secret = require_master_secret()
    engine = load_engine(ws, policy, trust_store, actor, master_secret=secret)
    settings = load_run_settings()
    spark = start_spark(settings)
    with progress("Pseudonymising the validated extracts"):
        result = pseudonymise_extracts(
            ws,
            engine,
            actor,
            spark,
            master_secret=secret,
            key_version=key_version,
            bloom_settings=settings.pseudonymisation.bloom,
        )
    for extract in result.extracts:
        flags = extract.flags
        console.print(
            f"{extract.dataset}: {extract.rows_in:,} rows in, {extract.rows_opted_out:,} removed by the "
            f"National Data Opt-out, {extract.rows_out:,} written to {extract.table}"
            + (
                f"; NHS number invalid {flags.get('nhs_number_invalid', 0):,}, date of birth impossible "
                f"{flags.get('dob_impossible', 0):,}, postcode invalid {flags.get('postcode_invalid', 0):,}"
                if "dob_impossible" in flags
                else ""
            ),
            soft_wrap=True,
        )
    console.print(f"Project {result.project_id}, key version {result.key_version}.")
    print_outputs(sorted(result.outputs.items()))
