"""The approved pipeline end to end on a real local Spark session and a real (ephemeral) Prefect API."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.stage_ledger import StageLedger
from ig_policies.audit import AuditLog
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.master_secret import load_master_secret
from tests.integration.conftest import PIPELINE_ANALYSES, PipelineRun

pytestmark = [pytest.mark.spark, pytest.mark.integration]

STAGES = [
    "validate",
    "pseudonymise",
    "link",
    "research_dataset",
    *(f"analysis:{a}" for a in PIPELINE_ANALYSES),
]


def _files(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    ]


def _scan(files: list[Path], needles: list[str]) -> list[str]:
    """Every (file, needle) where a needle occurs, in any case, in the file's bytes."""
    found = []
    lowered = [n.lower().encode() for n in needles]
    for f in files:
        data = f.read_bytes().lower()
        found += [f"{f}: {n.decode()}" for n in lowered if n in data]
    return found


def test_every_stage_runs_and_outputs_wait_for_ig_review(pipeline_run: PipelineRun) -> None:
    ws = pipeline_run.workspace
    assert [r["stage"] for r in pipeline_run.results] == STAGES
    assert not any(r["skipped"] for r in pipeline_run.results)
    by_stage = {r["stage"]: r for r in pipeline_run.results}
    assert (
        by_stage["validate"]["rows_in"]
        == by_stage["validate"]["rows_accepted"] + by_stage["validate"]["rows_quarantined"]
    )
    assert by_stage["link"]["matched"] > 0.8 * by_stage["link"]["clients"]
    requests = [json.loads(p.read_text()) for p in ws.pending.glob("*/request.json")]
    assert requests and all(r["status"] in ("pending", "blocked") for r in requests)
    assert not any(ws.released.iterdir())  # nothing leaves without an IG officer

    report = AuditLog.for_workspace(ws).verify()
    assert report.ok, report.summary()
    actions = {json.loads(line)["action"] for line in (ws.audit / "audit.jsonl").read_text().splitlines()}
    assert {"validate", "pseudonymise", "link", "build_research_dataset", "output_request"} <= actions


def test_rerun_with_unchanged_inputs_does_no_work(pipeline_run: PipelineRun) -> None:
    from flows.pipeline import approved_linkage_flow

    ws = pipeline_run.workspace
    before = sorted(p.name for p in ws.pending.iterdir())
    results = approved_linkage_flow(
        workspace=str(ws.root),
        policy=str(DEMO_POLICY),
        trust_store=str(DEMO_TRUST_STORE),
        analyses=PIPELINE_ANALYSES,
    )
    assert [r["stage"] for r in results] == STAGES
    assert all(r["skipped"] for r in results)
    assert sorted(p.name for p in ws.pending.iterdir()) == before  # no duplicate output requests
    assert set(StageLedger(ws).completed_stages()) == set(STAGES)


def test_no_identifier_or_key_in_any_artefact_or_prefect_record(pipeline_run: PipelineRun) -> None:
    """Canaries planted in the landing extracts must appear nowhere past pseudonymisation."""
    ws = pipeline_run.workspace
    secret = load_master_secret()
    policy_id = "ehl-lcr-demo"
    keys = [secret.derive(purpose, policy_id, 1).hex() for purpose in ("match-tokens", "research-pseudonym")]
    needles = [*pipeline_run.canaries.strings, *keys, secret.derive("audit").hex()]
    artefacts = _files(ws.root, skip=("landing", "truth"))
    assert len(artefacts) > 20
    assert _scan(artefacts, needles) == []
    prefect_files = _files(pipeline_run.prefect_home)
    assert _scan(prefect_files, needles) == []


def test_matching_tokens_never_leave_the_pseudonymised_zone(pipeline_run: PipelineRun) -> None:
    ws = pipeline_run.workspace
    tokens = pd.read_parquet(ws.pseudonymised / "employment_support", columns=["t_surname", "t_dob"])
    sample = [t for t in pd.concat([tokens["t_surname"], tokens["t_dob"]]).dropna().unique()[:50]]
    assert sample
    downstream = [
        p for zone in (ws.linked, ws.analysis, ws.zone("pending"), ws.reports, ws.audit) for p in _files(zone)
    ]
    assert _scan(downstream, sample) == []


def test_a_tampered_policy_stops_the_flow_before_any_stage(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    from flows.pipeline import approved_linkage_flow
    from ig_policies.errors import PolicyRefused

    edited = tmp_path / "policy.yaml"
    edited.write_text(DEMO_POLICY.read_text().replace("min_cell_count: 10", "min_cell_count: 3"))
    (tmp_path / "policy.yaml.sig").write_text((DEMO_POLICY.parent / "policy.yaml.sig").read_text())
    with pytest.raises(PolicyRefused) as refused:
        approved_linkage_flow(
            workspace=str(pipeline_run.workspace.root),
            policy=str(edited),
            trust_store=str(DEMO_TRUST_STORE),
            analyses=[],
        )
    assert refused.value.rule == "edited_after_signing"
