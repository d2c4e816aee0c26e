"""The approved flow on a 20,000-person region (the README's quicker demo) finishes.

Such a region has about 30 LSOAs: too few for the area profile's model of ten conditions with
local-authority effects. That analysis must say "not estimable here, because ..." in an output
of its own, released like any other, and the flow must go on. One run serves every assertion.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.workspace import Workspace

pytestmark = [pytest.mark.spark, pytest.mark.integration]

PEOPLE = 20_000
SEED = 1  # the demo's seed: the region `PEOPLE=20000 make demo` makes


@dataclass(frozen=True)
class SmallRun:
    workspace: Workspace
    results: list[dict]
    seconds: float


@pytest.fixture(scope="module")
def small_region_run(tmp_path_factory, spark, prefect_harness, master_secret_session) -> SmallRun:
    """Generate the region and run the approved flow with every permitted analysis, as the demo does."""
    from flows.pipeline import approved_linkage_flow
    from synthetic import generate_region

    ws = Workspace.open(tmp_path_factory.mktemp("small-region") / "ws")
    generate_region(ws, people=PEOPLE, seed=SEED)
    started = time.monotonic()
    results = approved_linkage_flow(
        workspace=str(ws.root),
        policy=str(DEMO_POLICY),
        trust_store=str(DEMO_TRUST_STORE),
    )
    return SmallRun(ws, results, time.monotonic() - started)


def test_the_flow_finishes_with_every_analysis(small_region_run: SmallRun) -> None:
    stages = [r["stage"] for r in small_region_run.results]
    assert stages[:4] == ["validate", "pseudonymise", "link", "research_dataset"]
    assert {
        "analysis:natural_experiment",
        "analysis:equity_audit",
        "analysis:success_factors",
        "analysis:concordance",
        "analysis:area_profile",
    } <= set(stages)
    assert all(r.get("outputs_requested", 1) > 0 for r in small_region_run.results)


def test_area_profile_says_not_estimable_and_why_and_the_note_is_released(small_region_run: SmallRun) -> None:
    from flows.demo import review_as_demo_officer

    ws = small_region_run.workspace
    requests = [json.loads(p.read_text()) for p in ws.pending.glob("*/request.json")]
    notes = [r for r in requests if r["name"] == "area-profile-not-estimable"]
    assert len(notes) == 1 and notes[0]["status"] == "pending" and notes[0]["outcome"] == "pass"
    assert not [r for r in requests if r["name"].startswith("area-profile-inactive")]

    review = review_as_demo_officer(ws)
    assert notes[0]["request_id"] in review.released
    bundle = ws.released / notes[0]["request_id"]
    note = pd.read_csv(bundle / "area-profile-not-estimable.csv")
    assert list(note["part"]) == [
        "the model of the rate of economic inactivity through long-term sickness or disability",
        "the model of the unemployment rate",
    ]
    assert note["reason"].str.startswith("not estimable here, because").all()
    assert note["reason"].str.contains("LSOAs").all() and note["reason"].str.contains("more LSOAs").all()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "note" and "not estimable here, because" in manifest["description"]
