"""The ``ehl`` command line. Each area of the pipeline has its own module here; all are thin.

Heavy libraries (Spark, Prefect, Splink, Great Expectations) are imported inside commands, so
``ehl --help`` stays instant.
"""

from __future__ import annotations

import typer

from flows.cli import (
    analyse,
    audit,
    gate,
    keys,
    link,
    outputs,
    policy,
    pseudonymise,
    research_dataset,
    retention,
    run,
    synth,
    validate,
)

app = typer.Typer(
    name="ehl",
    help=(
        "Link employment-support records to NHS health records inside a trusted research "
        "environment: governed, pseudonymised, disclosure-controlled."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _start() -> None:
    """Every command writes under umask 027 (see ``ig_policies.workspace.restrict_umask``)."""
    from ig_policies.workspace import restrict_umask

    restrict_umask()


app.add_typer(synth.app, name="synth")
app.add_typer(keys.app, name="keys")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(gate.app, name="gate")
app.add_typer(retention.app, name="retention")
app.add_typer(validate.app, name="validate")
app.add_typer(pseudonymise.app, name="pseudonymise")
app.add_typer(link.app, name="link")
app.add_typer(research_dataset.app, name="research-dataset")
app.add_typer(analyse.app, name="analyse")
app.add_typer(outputs.app, name="outputs")
app.add_typer(run.app, name="run")
app.command("demo")(run.demo)


def main() -> None:
    from ig_policies.workspace import restrict_umask

    restrict_umask()  # before anything, even option parsing, can write
    app()
