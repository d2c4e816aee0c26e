"""`ehl analyse ...`: run an analysis the policy permits; results go to outputs/pending/ via disclosure control."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="Run a permitted analysis on the research dataset. Results go to outputs/pending/ after disclosure checks.",
)

# The analysis commands register themselves on ``app``.
from flows.cli import analyse_natural_experiment, analyse_programme  # noqa: E402,F401
