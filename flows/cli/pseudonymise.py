"""`ehl pseudonymise`: validated extracts -> tokens and research pseudonyms in pseudonymised/.

A data-processor step. The master secret comes from the environment (``EHL_MASTER_SECRET``, or
``EHL_MASTER_KEY_FILE`` with ``EHL_MASTER_KEY_PASSPHRASE``) and is never printed or written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import acting, console, handle_errors, print_outputs, progress

if TYPE_CHECKING:
    from flows.stages import PipelineContext

app = typer.Typer(
    help="Standardise identifiers and replace them with keyed tokens and research pseudonyms "
    "(reads landing/validated/, writes pseudonymised/).",
)


@app.callback(invoke_without_command=True)
@handle_errors
@acting(settings=True)
def pseudonymise(
    context: PipelineContext,
    key_version: Annotated[
        int | None,
        typer.Option(
            "--key-version",
            min=1,
            help="Key version to derive the project keys with (default: the policy's linkage.key_version). "
            "A new version re-pseudonymises everything: a key rotation.",
        ),
    ] = None,
) -> None:
    """Pseudonymise every validated extract (data processor); audited with row and flag counts."""
    from flows.stages import run_pseudonymise

    configured = context.with_overrides({"pseudonymisation": {"key_version": key_version}})
    with progress("Pseudonymising the validated extracts"):
        result = run_pseudonymise(configured).result
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
