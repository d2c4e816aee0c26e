"""What every analysis stage shares: reading the research dataset and requesting its outputs.

Each analysis (natural experiment, equity audit, success factors, concordance, area profile) is a
stage function that runs as the researcher under the policy engine. They differ only in their
statistics. Reading an ``analysis/`` table (with a plain error when the research dataset has not
been built), handing every output to disclosure control, and reporting what was requested are
the same for all of them, so they live here: a change to that path is made once, and no analysis
can request an output some other way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.disclosure import DisclosureOutput, ModelResult, OutputRequest, request_output
from ig_policies.errors import InputError
from ig_policies.workspace import Workspace

#: The ``source`` of every output drawn from the clients table (the release ledger groups by it).
CLIENTS_SOURCE = "analysis/clients"

#: One requested output: its name, the request id, and its status (``pending`` or ``blocked``).
Request = tuple[str, str, str]


def read_research_table(workspace: Workspace, name: str, required: Sequence[str] = ()) -> pd.DataFrame:
    """``analysis/<name>.parquet``, or a plain error saying which stage writes it or what is missing."""
    path = workspace.analysis / f"{name}.parquet"
    if not path.exists():
        raise InputError(
            str(path),
            "the research dataset has not been built yet",
            hint="a data processor runs 'ehl research-dataset' first.",
        )
    table = pd.read_parquet(path)
    for column in required:
        if column not in table.columns:
            raise InputError(
                str(path), "a required column is missing", column=column, hint="rebuild the research dataset."
            )
    return table


def read_clients(workspace: Workspace) -> pd.DataFrame:
    """``analysis/clients.parquet`` (one row per enrolment), checked for the columns every analysis uses."""
    return read_research_table(workspace, "clients", ("client_pseudonym", "programme"))


@dataclass(frozen=True)
class AnalysisOutputs:
    """What an analysis stage requested: (name, request id, status) per output, and its findings."""

    analysis: str
    requests: tuple[Request, ...]
    pending: tuple[Path, ...]
    sentences: tuple[str, ...] = ()

    @property
    def blocked(self) -> tuple[str, ...]:
        """The outputs disclosure control blocked (the others await an IG officer)."""
        return tuple(name for name, _, status in self.requests if status == "blocked")


def request_outputs(
    workspace: Workspace,
    engine: Any,
    actor: str,
    outputs: Sequence[tuple[str, DisclosureOutput]],
    justification: str,
) -> tuple[tuple[Request, ...], tuple[Path, ...]]:
    """Request each output through disclosure control; return (name, id, status) and the folders."""
    done, folders = [], []
    for name, output in outputs:
        request_id = request_output(workspace, engine, actor, output, name, justification)
        folder = workspace.pending / request_id
        done.append((name, request_id, OutputRequest.read(folder).status))
        folders.append(folder)
    return tuple(done), tuple(folders)


def estimates_result(
    rows: pd.DataFrame, title: str, source: str, description: str, n_people: int
) -> ModelResult:
    """A table of estimates (ratios, kappas, test statistics) as a disclosure-control model result."""
    return ModelResult(
        coefficients=rows.reset_index(drop=True),
        n_obs=int(n_people),
        n_people=int(n_people),
        source=source,
        title=title,
        kind="estimates",
        description=description,
    )


__all__ = [
    "CLIENTS_SOURCE",
    "AnalysisOutputs",
    "Request",
    "estimates_result",
    "read_clients",
    "read_research_table",
    "request_outputs",
]
