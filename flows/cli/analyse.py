"""`ehl analyse ...`: run an analysis the policy permits; results go to outputs/pending/ via disclosure control.

One command per analysis of ``analysis.registry``, named by the registry; the command functions
live in the two modules imported here (which import nothing from this one).
"""

from __future__ import annotations

import typer

from analysis.registry import ANALYSES
from flows.cli.analyse_natural_experiment import natural_experiment
from flows.cli.analyse_programme import (
    area_profile,
    area_targeting,
    concordance,
    equity,
    service_use,
    success,
)
from ig_policies.policy import Analysis

app = typer.Typer(
    no_args_is_help=True,
    help="Run a permitted analysis on the research dataset. Results go to outputs/pending/ after disclosure checks.",
)

COMMANDS = {
    Analysis.NATURAL_EXPERIMENT: natural_experiment,
    Analysis.EQUITY_AUDIT: equity,
    Analysis.SUCCESS_FACTORS: success,
    Analysis.CONCORDANCE: concordance,
    Analysis.AREA_PROFILE: area_profile,
    Analysis.SERVICE_USE: service_use,
    Analysis.AREA_TARGETING: area_targeting,
}

for _analysis, _entry in ANALYSES.items():
    app.command(_entry.command)(COMMANDS[_analysis])
