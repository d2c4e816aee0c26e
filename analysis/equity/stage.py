"""The equity-audit stage: read the clients and the census, audit, request every output.

Runs as the researcher under the policy engine (the policy must permit ``equity_audit``); the
statistics are in ``audit`` and ``statistics``, the outputs in ``outputs``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.area_data import load_census_population_by_group, load_lsoa_lookup
from analysis.equity.audit import PopulationBasis, audit_programmes, describe_ratio, programme_label
from analysis.equity.outputs import equity_outputs
from analysis.equity.population import ComparisonPopulations
from analysis.stage import AnalysisOutputs, read_clients, request_outputs
from analysis.vocabulary import CHARACTERISTICS, POPULATION_BASES
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace


def client_local_authorities(clients: pd.DataFrame, lookup: pd.DataFrame) -> pd.Series:
    """Each client's local authority code: from their LSOA, else their recorded local authority."""
    by_lsoa = (
        clients["lsoa21cd"].map(lookup.set_index("lsoa21cd")["lad22cd"]) if "lsoa21cd" in clients else None
    )
    names = {str(n).strip().lower(): c for n, c in zip(lookup["lad22nm"], lookup["lad22cd"], strict=True)}
    names.update({str(c).strip().lower(): c for c in lookup["lad22cd"]})
    recorded = (
        clients["local_authority"].astype("string").str.strip().str.lower().map(names)
        if "local_authority" in clients
        else pd.Series(pd.NA, index=clients.index)
    )
    return (by_lsoa if by_lsoa is not None else recorded).fillna(recorded)


def run_equity_audit(
    workspace: Workspace,
    engine: Any,
    actor: str,
    basis: PopulationBasis = "out_of_work",
    justification: str = "Equity audit of the employment-support programmes for the programme board.",
    *,
    comparison: ComparisonPopulations = ComparisonPopulations(),  # noqa: B008 (frozen, so shared safely)
) -> AnalysisOutputs:
    """The equity-audit stage: read clients and census, audit, request every output (researcher).

    ``comparison`` is each programme's comparison population (from the settings file; default:
    aged 16-64, unemployed or economically inactive other than retired and students);
    ``basis="inactive_sick"`` narrows every programme's to those inactive through long-term
    sickness or disability, at the same ages.
    """
    if basis not in POPULATION_BASES:
        raise InputError(
            "--population",
            f"unknown population basis '{basis}'",
            hint=f"use one of {', '.join(POPULATION_BASES)}",
        )
    ref = workspace.reference
    paths = {
        "clients": workspace.analysis / "clients.parquet",
        "census": ref / "census_economic_activity_by_group.csv",
        "lookup": ref / "lsoa_lookup.csv",
        # copied from linked/ by the research dataset (researchers may not read linked/)
        "match_rates": workspace.analysis / "match_rates.parquet",
    }
    with engine.step(
        actor, Role.RESEARCHER, "equity_audit", analysis=Analysis.EQUITY_AUDIT, reads_linked_data=True
    ) as step:
        clients = read_clients(workspace)
        lookup = load_lsoa_lookup(paths["lookup"])
        census = load_census_population_by_group(paths["census"], lookup)
        match_rates = pd.read_parquet(paths["match_rates"]) if paths["match_rates"].exists() else None
        audit = audit_programmes(
            clients,
            census,
            basis,
            match_rates,
            client_local_authorities(clients, lookup),
            min_people=engine.policy.outputs.min_cell_count,
            comparison=comparison,
            census_source=str(paths["census"]),
        )
        outputs = equity_outputs(audit, engine.policy.outputs.min_cell_count)
        requests, folders = request_outputs(workspace, engine, actor, outputs, justification)
        step.inputs(*(p for p in paths.values() if p.exists()))
        step.outputs(*folders)
        step.counts(clients=len(clients), outputs_requested=len(requests))
        step.detail(
            basis=basis,
            comparison_populations={p: c.model_dump(mode="json") for p, c in audit.populations.items()},
            characteristics=sorted({a.characteristic for a in audit.characteristics}),
        )
    min_people = engine.policy.outputs.min_cell_count
    sentences = []
    for a in audit.characteristics:
        label = CHARACTERISTICS.get(a.characteristic, a.characteristic)
        sentences.append(f"{programme_label(a.programme)}, by {label} (compared with the {a.population}):")
        sentences.extend(
            "  "
            + describe_ratio(
                a.characteristic, r.category, r.ratio, r.ci_low, r.ci_high, a.population, a.programme
            )
            for r in a.ratios.itertuples()
            if r.clients >= min_people
        )
    if len(audit.linkage):
        sentences.extend(audit.linkage["sentence"])
    return AnalysisOutputs("equity_audit", requests, folders, tuple(sentences))


__all__ = ["client_local_authorities", "run_equity_audit"]
