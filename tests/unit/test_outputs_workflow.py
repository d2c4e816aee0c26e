"""The output workflow end to end, through the real policy engine, audit log and signed demo policy."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ig_policies
from analysis.disclosure import (
    Figure,
    FrequencyTable,
    MagnitudeTable,
    ModelResult,
    list_requests,
    reject_output,
    release_output,
    request_output,
    review_requests,
    stage_output,
    verify_all_releases,
    verify_release,
)
from analysis.disclosure.ledger import read_ledger
from analysis.disclosure.workflow import OfficerSigner
from ig_policies.demo import DEMO_OFFICER_KEY, DEMO_PASSPHRASE
from ig_policies.engine import PolicyEngine
from ig_policies.errors import DisclosureBlocked, InputError, PolicyRefused
from ig_policies.workspace import Workspace

DEMO = Path(ig_policies.__file__).parent / "configs" / "demo"
TODAY = dt.date(2026, 6, 1)
RESEARCHER, OFFICER = "demo-researcher", "demo-ig-officer"
SIGNER = OfficerSigner.from_file(DEMO_OFFICER_KEY, DEMO_PASSPHRASE)  # the DEMO ONLY officer key


@pytest.fixture
def engine(workspace: Workspace, master_secret_env: str) -> PolicyEngine:
    return PolicyEngine.load(
        DEMO / "policy.yaml", workspace, trust_store=DEMO / "trust_store.yaml", today=TODAY
    )


def age_table(counts: list[int], title: str = "Clients by age band") -> FrequencyTable:
    df = pd.DataFrame({"age_band": ["16-24", "25-49", "50-64"], "count": counts})
    return FrequencyTable(df, ("age_band",), "analysis/clients", title, population="all clients")


def audit_entries(ws: Workspace) -> list[dict]:
    return [json.loads(line) for f in sorted(ws.audit.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_request_review_release_and_verify(workspace: Workspace, engine: PolicyEngine) -> None:
    rid = request_output(workspace, engine, RESEARCHER, age_table([3, 300, 200]), "age", "board report")
    pending = workspace.pending / rid
    assert {p.name for p in pending.iterdir()} >= {
        "request.json",
        "check_report.txt",
        "check_report.json",
        "preview",
    }
    assert "fewer than 10 people" in (pending / "check_report.txt").read_text()
    [item] = review_requests(workspace, engine, OFFICER)
    assert item.request.request_id == rid and item.combinable_with == ()

    result = release_output(workspace, engine, OFFICER, rid, SIGNER)
    bundle = workspace.released / rid
    assert {p.name for p in bundle.iterdir()} == {"age.csv", "manifest.json", "SHA256SUMS"}
    released = pd.read_csv(bundle / "age.csv")
    assert list(released.columns) == ["age_band", "count_people_rounded", "note"]
    assert released["count_people_rounded"].isna().sum() == 2  # the 3 and one protecting cell
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["approved_by"] == OFFICER and manifest["requested_by"] == RESEARCHER
    assert manifest["policy"]["policy_hash"] == engine.policy_hash
    assert manifest["policy"]["output_rules"]["min_cell_count"] == 10
    assert manifest["checks"]["items_suppressed"] == 2
    assert all(
        f["action"] != "withheld" for f in manifest["checks"]["findings"]
    )  # which cell was small: not told
    assert "count_people_rounded" in manifest["columns"]
    assert verify_release(result.directory, engine.policy.outputs).ok
    with pytest.raises(DisclosureBlocked, match="is released"):
        release_output(workspace, engine, OFFICER, rid, SIGNER)
    [entry] = read_ledger(workspace, "analysis/clients")
    assert entry.request_id == rid and len(entry.hidden) == 2  # what readers could not see
    assert [r.status for r in list_requests(workspace)] == ["released"]
    actions = [(e["action"], e["decision"]) for e in audit_entries(workspace)]
    assert ("output_request", "allowed") in actions and ("output_release", "allowed") in actions


def test_only_an_ig_officer_named_in_the_policy_can_release(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "board report")
    with pytest.raises(
        PolicyRefused, match="not named in the policy as a ig officer|not named in the policy"
    ):
        release_output(workspace, engine, RESEARCHER, rid, SIGNER)
    with pytest.raises(PolicyRefused):
        release_output(workspace, engine, "someone-else", rid, SIGNER)
    assert not (workspace.released / rid).exists()
    refused = [e for e in audit_entries(workspace) if e["action"] == "output_release"]
    assert [e["decision"] for e in refused] == ["refused", "refused"]
    with pytest.raises(PolicyRefused):
        request_output(
            workspace, engine, OFFICER, age_table([30, 300, 200]), "age2", "officers do not request"
        )


def test_a_blocked_request_cannot_be_released_and_can_be_rejected(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    coefs = pd.DataFrame(
        {
            "term": ["x"],
            "estimate": [1.0],
            "ci_lower": [0.5],
            "ci_upper": [1.5],
            "p_value": [0.01],
            "n_people": [12],
        }
    )
    model = ModelResult(
        coefs, n_obs=12, n_people=12, source="analysis/clients", title="tiny model", residual_df=5
    )
    rid = request_output(workspace, engine, RESEARCHER, model, "tiny", "please")
    [req] = list_requests(workspace)
    assert req.status == "blocked" and "residual_df" in req.summary
    with pytest.raises(DisclosureBlocked, match="blocked"):
        release_output(workspace, engine, OFFICER, rid, SIGNER)
    with pytest.raises(InputError, match="needs a reason"):
        reject_output(workspace, engine, OFFICER, rid, " ", SIGNER)
    reject_output(workspace, engine, OFFICER, rid, "too few observations for a model", SIGNER)
    [req] = list_requests(workspace)
    assert req.status == "rejected" and req.decision_reason == "too few observations for a model"
    assert not (workspace.released / rid).exists()


def test_differencing_against_earlier_releases_blocks_at_request_and_at_release(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    first = request_output(workspace, engine, RESEARCHER, age_table([120, 300, 200]), "all", "j")
    # Requested while the first is still pending: it passes now ...
    second = request_output(
        workspace, engine, RESEARCHER, age_table([117, 300, 200], "Outside LA X"), "other", "j"
    )
    assert [r.status for r in list_requests(workspace)] == ["pending", "pending"]
    release_output(workspace, engine, OFFICER, first, SIGNER)
    # ... the officer's review now shows that it could be subtracted from the release ...
    [item] = review_requests(workspace, engine, OFFICER)
    assert [e.request_id for e in item.combinable_with] == [first]
    assert any(f.item == "table total" for f in item.differencing)
    # ... and the re-check at release refuses it.
    with pytest.raises(DisclosureBlocked, match="differ"):
        release_output(workspace, engine, OFFICER, second, SIGNER)
    third = request_output(workspace, engine, RESEARCHER, age_table([118, 300, 200], "Again"), "again", "j")
    assert (workspace.pending / third / "request.json").exists()
    assert list_requests(workspace, "blocked")[0].request_id == third


def test_verify_release_catches_edited_bundles(workspace: Workspace, engine: PolicyEngine) -> None:
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    bundle = release_output(workspace, engine, OFFICER, rid, SIGNER).directory
    rules = engine.policy.outputs
    assert verify_release(bundle, rules).ok
    csv = bundle / "age.csv"
    csv.write_text(csv.read_text().replace("30,", "3,"))
    report = verify_release(bundle, rules)
    assert not report.ok
    assert {f.rule for f in report.findings} >= {"checksums", "threshold"}
    (bundle / "people.csv").write_text("client_pseudonym,count_people_rounded\nC0123456789abcdef0123,10\n")
    rules_hit = {f.rule for f in verify_release(bundle, rules).findings}
    assert {"manifest", "row_level"} <= rules_hit
    assert not verify_all_releases(workspace, rules)[0].ok


def _bar_chart(table: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    shown = table[table["age_band"] != "Total"]
    ax.bar(shown["age_band"], shown["count_people_rounded"].fillna(0).astype(float))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_figures_are_released_as_png_with_their_protected_table(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    figure = Figure(age_table([3, 300, 200]), "Clients by age band", render=_bar_chart)
    stage_output(workspace, figure, "age_chart", engine.policy.outputs)
    from analysis.disclosure import request_staged

    rid = request_staged(workspace, engine, RESEARCHER, "age_chart", "chart for the report")
    result = release_output(workspace, engine, OFFICER, rid, SIGNER)
    names = {p.name for p in result.files}
    assert names == {"age_chart.csv", "age_chart.png", "manifest.json", "SHA256SUMS"}
    assert (result.directory / "age_chart.png").read_bytes().startswith(b"\x89PNG")
    assert verify_release(result.directory, engine.policy.outputs).ok


def test_cli_request_review_release_list_verify(
    workspace: Workspace, engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    stage_output(workspace, age_table([30, 300, 200]), "age", engine.policy.outputs)
    common = ["--workspace", str(workspace.root), "--policy", str(DEMO / "policy.yaml")]
    common += ["--trust-store", str(DEMO / "trust_store.yaml")]
    runner = CliRunner()
    monkeypatch.setenv("EHL_OFFICER_KEY", str(DEMO_OFFICER_KEY))
    monkeypatch.setenv("EHL_OFFICER_KEY_PASSPHRASE", DEMO_PASSPHRASE)

    # The real date is used by the CLI; the demo policy is valid then, as the engine fixture checks.
    res = runner.invoke(app, ["outputs", "request", "age", "-j", "board report", *common])
    assert res.exit_code == 0, res.output
    assert "Outcome: PASS" in res.output
    [req] = list_requests(workspace)
    res = runner.invoke(app, ["outputs", "review", *common])
    assert res.exit_code == 0 and req.request_id in res.output and "board report" in res.output
    res = runner.invoke(app, ["outputs", "release", req.request_id, *common, "--user", OFFICER])
    assert res.exit_code == 2, res.output  # nobody types who they are: there is no such option
    res = runner.invoke(app, ["outputs", "release", req.request_id, *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["outputs", "list", "--workspace", str(workspace.root)])
    assert res.exit_code == 0 and "released" in res.output
    res = runner.invoke(app, ["outputs", "verify", *common])
    assert res.exit_code == 0 and "pass the independent re-check" in res.output
    res = runner.invoke(app, ["outputs", "request", "nothing", "-j", "x", *common])
    assert res.exit_code == 4 and "Traceback" not in res.output


def test_nobody_releases_their_own_request(workspace: Workspace, engine: PolicyEngine) -> None:
    rid = request_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "j")
    # As if the officer had also been named a researcher in the policy and made the request (the
    # gate's own signature over it, so only four eyes can refuse it).
    from ig_policies.gate_keys import create_demo_gate, demo_gate_directory, load_gate_key, sign_request
    from ig_policies.workspace import content_hash, write_json

    folder = workspace.pending / rid
    fields = json.loads((folder / "request.json").read_text()) | {"requested_by": OFFICER}
    key = load_gate_key(create_demo_gate(demo_gate_directory(workspace)).signing_key)
    write_json(folder / "request.sig", sign_request(key, fields, content_hash(folder / "output")))
    write_json(folder / "request.json", fields)
    with pytest.raises(PolicyRefused) as refused:
        release_output(workspace, engine, OFFICER, rid, SIGNER)
    assert refused.value.rule == "four_eyes"
    assert not (workspace.released / rid).exists()


def test_cli_request_attaches_a_justification_to_an_analysis_request(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    from flows.cli import app

    rid = request_output(
        workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "default from analysis"
    )
    common = ["--workspace", str(workspace.root), "--policy", str(DEMO / "policy.yaml")]
    common += ["--trust-store", str(DEMO / "trust_store.yaml")]
    res = CliRunner().invoke(app, ["outputs", "request", "age", "-j", "for the board", *common])
    assert res.exit_code == 0, res.output
    [req] = list_requests(workspace)
    assert req.request_id == rid and req.justification == "for the board"


def test_model_and_magnitude_bundles_pass_the_independent_recheck(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    coefs = pd.DataFrame(
        {
            "term": ["e-1", "e0", "e1"],
            "event_time": [-1, 0, 1],
            "estimate": [0.1, 0.4, 0.5],
            "ci_lower": [0.0, 0.2, 0.3],
            "ci_upper": [0.2, 0.6, 0.7],
            "p_value": [0.3, 0.01, 0.01],
            "n_people": [240, 7, 180],
            "n_comparison_people": [float("nan"), 400.0, 350.0],
        }
    )
    model = ModelResult(
        coefs, n_obs=9000, n_people=250, source="analysis/panel", title="es", kind="event_study"
    )
    magnitude = MagnitudeTable(
        pd.DataFrame({"sex": ["F"] * 12 + ["M"] * 12, "visits": [3] * 12 + [2] * 11 + [400]}),
        ("sex",),
        "visits",
        "analysis/panel",
        "GP visits by sex",
    )
    for name, output in (("es", model), ("visits", magnitude)):
        rid = request_output(workspace, engine, RESEARCHER, output, name, "j")
        result = release_output(workspace, engine, OFFICER, rid, SIGNER)
        assert verify_release(result.directory, engine.policy.outputs).ok
    es = pd.read_csv(workspace.released / list_requests(workspace, "released")[0].request_id / "es.csv")
    assert es["estimate"].isna().tolist() == [False, True, False]  # event time 0 rests on 7 people
    assert {"n_people_rounded", "n_comparison_people_rounded"} <= set(es.columns)
    visits = pd.read_csv(
        workspace.released / list_requests(workspace, "released")[1].request_id / "visits.csv"
    )
    assert visits.set_index("sex")["sum_visits"].isna().to_dict() == {"F": False, "M": True}  # M is dominated


def test_a_pending_figure_swapped_for_another_picture_is_not_released(
    workspace: Workspace, engine: PolicyEngine
) -> None:
    from ig_policies.errors import TamperedError

    figure = Figure(age_table([3, 300, 200]), "Clients by age band", render=_bar_chart)
    stage_output(workspace, figure, "age_chart", engine.policy.outputs)
    from analysis.disclosure import request_staged

    rid = request_staged(workspace, engine, RESEARCHER, "age_chart", "chart for the report")
    [png] = list((workspace.pending / rid / "output").rglob("*.png"))
    raw = pd.DataFrame({"age_band": ["16-24", "25-49", "50-64"], "count_people_rounded": [3, 300, 200]})
    png.write_bytes(_bar_chart(raw))  # the unprotected counts, 3 included
    with pytest.raises(TamperedError) as tampered:
        release_output(workspace, engine, OFFICER, rid, SIGNER)
    assert tampered.value.exit_code == 5
    assert not (workspace.released / rid).exists()
    assert list_requests(workspace)[0].status == "pending"
