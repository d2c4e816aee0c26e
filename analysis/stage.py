"""What every analysis stage shares: reading the research dataset and requesting its outputs.

Each analysis (natural experiment, equity audit, success factors, concordance, area profile) is a
stage function that runs as the researcher under the policy engine. They differ only in their
statistics. Reading an ``analysis/`` table (with a plain error when the research dataset has not
been built), handing every output to disclosure control, and reporting what was requested are
the same for all of them, so they live here: a change to that path is made once, and no analysis
can request an output some other way.

An analysis, or one part of it, that cannot be estimated on the data at hand (too few areas or
people for its model) raises ``NotEstimable``. That is not an error in the data: the analysis
records "not estimable here, because ..." as an output of its own (a ``Note``, checked and
released like any other, so the results pack can say why a table is missing) and the run goes
on. ``records_not_estimable`` does this for a whole analysis; an analysis with several parts
catches ``NotEstimable`` per part and passes the reasons to ``not_estimable_output``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import pandas as pd

from analysis.disclosure import DisclosureOutput, ModelResult, Note
from analysis.disclosure.workflow import submit_output
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


class NotEstimable(Exception):
    """An analysis, or one part of it, cannot be estimated on the data at hand.

    ``reason`` completes the sentence "not estimable here, because ..." in plain English (say
    what is too small and what would be needed; never quote an unrounded count of people);
    ``part`` names what cannot be estimated ("the unemployment model"), or the whole analysis.
    """

    def __init__(self, reason: str, part: str = "the whole analysis") -> None:
        self.reason = reason.strip().rstrip(".")
        self.part = part
        super().__init__(self.sentence)

    @property
    def sentence(self) -> str:
        """``<Part>: not estimable here, because <reason>.``"""
        return f"{self.part[:1].upper()}{self.part[1:]}: not estimable here, because {self.reason}."

    def for_part(self, part: str) -> NotEstimable:
        """The same reason, said of ``part``."""
        return NotEstimable(self.reason, part)


def not_estimable_output(analysis: str, source: str, reasons: Sequence[NotEstimable]) -> tuple[str, Note]:
    """The ``<analysis>-not-estimable`` note listing each part that could not be estimated, and why."""
    from analysis.vocabulary import ANALYSIS_TITLES

    title = ANALYSIS_TITLES.get(analysis, analysis.replace("_", " "))
    table = pd.DataFrame(
        {
            "part": [r.part for r in reasons],
            "reason": [f"not estimable here, because {r.reason}" for r in reasons],
        }
    )
    note = Note(
        reasons=table,
        source=source,
        title=f"{title}: what could not be estimated",
        description="\n".join(r.sentence for r in reasons),
    )
    return f"{analysis.replace('_', '-')}-not-estimable", note


P = ParamSpec("P")


def records_not_estimable(
    analysis: str, source: str
) -> Callable[[Callable[P, AnalysisOutputs]], Callable[P, AnalysisOutputs]]:
    """Make an analysis stage record ``NotEstimable`` as its note output instead of failing.

    The decorated stage takes ``workspace, engine, actor`` (and optionally ``justification``)
    like every analysis stage; when it raises ``NotEstimable`` the note is requested through
    disclosure control and the stage returns normally, so the flow goes on to the next analysis.
    """

    def decorate(run: Callable[P, AnalysisOutputs]) -> Callable[P, AnalysisOutputs]:
        signature = inspect.signature(run)

        @functools.wraps(run)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> AnalysisOutputs:
            try:
                return run(*args, **kwargs)
            except NotEstimable as exc:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                given = bound.arguments
                justification = str(
                    given.get("justification") or f"Why the {analysis} could not be estimated."
                )
                return record_not_estimable(
                    given["workspace"],
                    given["engine"],
                    given["actor"],
                    analysis,
                    source,
                    [exc],
                    justification,
                )

        return wrapper

    return decorate


def record_not_estimable(
    workspace: Workspace,
    engine: Any,
    actor: str,
    analysis: str,
    source: str,
    reasons: Sequence[NotEstimable],
    justification: str,
) -> AnalysisOutputs:
    """Request the note for an analysis none of whose parts could be estimated; its outputs."""
    requests, folders = request_outputs(
        workspace, engine, actor, [not_estimable_output(analysis, source, reasons)], justification
    )
    return AnalysisOutputs(analysis, requests, folders, tuple(r.sentence for r in reasons))


def request_outputs(
    workspace: Workspace,
    engine: Any,
    actor: str,
    outputs: Sequence[tuple[str, DisclosureOutput]],
    justification: str,
) -> tuple[tuple[Request, ...], tuple[Path, ...]]:
    """Request each output through the output gate; return (name, id, status) and the folders.

    The status comes from the gate's receipt: with role groups the researcher cannot read
    ``pending/`` (the officers' zone), and the gate alone writes it. The folders are those this
    account can read (the DEMO gate's, in this process), so the analysis step records and hashes
    them; a gate running as a service records its folders in its own audit entries, and the
    researcher's step names the request ids.
    """
    done, folders = [], []
    readable = os.access(workspace.pending, os.R_OK | os.X_OK)
    for name, output in outputs:
        receipt = submit_output(workspace, engine, actor, output, name, justification)
        done.append((name, receipt.request_id, receipt.status))
        if readable:
            folders.append(workspace.pending / receipt.request_id)
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
    "NotEstimable",
    "Request",
    "estimates_result",
    "not_estimable_output",
    "record_not_estimable",
    "records_not_estimable",
    "read_clients",
    "read_research_table",
    "request_outputs",
]
