"""Real separate processes: a Prefect server, a standalone Spark cluster, a crash, concurrent runs.

Each test starts what it needs on 127.0.0.1 and stops it; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ig_policies.audit import AuditLog
from ig_policies.demo import write_demo_policy
from tests.integration.conftest import (
    ROOT,
    PipelineRun,
    copy_region,
    ehl,
    ehl_env,
    run_approved_cmd,
    start_prefect_server,
    wait_for,
)

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def _table(path: Path, keys: list[str]) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(keys).reset_index(drop=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_flow_runs_on_a_real_prefect_server_and_release_waits_for_the_ig_officer(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ws = copy_region(pipeline_run.workspace.root, tmp_path / "ws")
    server, api_url = start_prefect_server(tmp_path / "prefect-home")
    env = ehl_env(PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp_path / "client-home"))
    try:
        # 1. the approved flow, recorded by the server (every stage is unchanged, so it is quick)
        done = subprocess.run(run_approved_cmd(ws.root), env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "unchanged, skipped" in done.stdout

        with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(limit=50, sort=FlowRunSort.START_TIME_DESC)
            approved = [r for r in runs if r.name and r.state_type == StateType.COMPLETED]
            assert approved, [(r.name, r.state_type) for r in runs]
            for run in runs:  # parameters are paths and options, never data, never who acts
                assert set(run.parameters) <= {
                        "workspace", "policy", "settings", "trust_store", "analyses", "model", "timeout_hours",
                    }  # fmt: skip

            # 2. the release flow pauses until an IG officer resumes it with a decision
            pending = [json.loads(p.read_text()) for p in sorted(ws.pending.glob("*/request.json"))]
            to_release = [
                r["request_id"] for r in pending if r["status"] == "pending" and r["outcome"] == "pass"
            ][:1]
            assert to_release, "the pipeline produced no output that passes every check"
            # The officer's decisions are signed with their key (DEMO ONLY key, in the demo).
            from ig_policies.demo import DEMO_OFFICER_KEY, DEMO_PASSPHRASE

            officer_env = {**env, "EHL_OFFICER_KEY": str(DEMO_OFFICER_KEY)}
            officer_env["EHL_OFFICER_KEY_PASSPHRASE"] = DEMO_PASSPHRASE
            release = subprocess.Popen(
                    ehl("run", "release", "--workspace", str(ws.root), "--policy", str(pipeline_run_policy())),
                    env=officer_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True,
                )  # fmt: skip
            try:
                paused = wait_for(
                    lambda: [
                        r
                        for r in client.read_flow_runs(limit=50, sort=FlowRunSort.START_TIME_DESC)
                        if r.state_type == StateType.PAUSED
                    ],
                    240,
                    "a paused release run",
                )
                assert not any(ws.released.iterdir())  # nothing released while waiting
                resume_flow_run(
                    paused[0].id,
                    run_input={"release": to_release, "reject": {}},
                )
                out, _ = release.communicate(timeout=300)
                assert release.returncode == 0, out
            finally:
                _stop(release)
        assert (ws.released / to_release[0] / "manifest.json").exists()
        assert AuditLog.for_workspace(ws).verify().ok
    finally:
        _stop(server)


def pipeline_run_policy() -> Path:
    from ig_policies.demo import DEMO_POLICY

    return DEMO_POLICY


def test_linkage_on_a_standalone_spark_cluster_matches_the_local_run(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    ws = copy_region(pipeline_run.workspace.root, tmp_path / "ws")
    run_dir = tmp_path / "spark-cluster"
    port = 17077
    cluster_env = ehl_env(
        EHL_SPARK_RUN_DIR=str(run_dir), SPARK_MASTER_PORT=str(port),
        SPARK_MASTER_WEBUI_PORT="18090", SPARK_WORKER_WEBUI_PORT="18091", SPARK_WORKER_MEMORY="2g",
    )  # fmt: skip
    script = ROOT / "infra" / "scripts" / "spark-cluster.sh"
    subprocess.run([str(script), "start"], env=cluster_env, check=True, timeout=180, capture_output=True)
    try:
        settings = tmp_path / "settings.yaml"
        settings.write_text(
            f"spark:\n  master: spark://127.0.0.1:{port}\n  driver_memory: 1g\n  executor_memory: 1g\n"
            "  shuffle_partitions: 4\nlinkage:\n  backend: spark\n"
        )
        done = subprocess.run(
            ehl("link", "--workspace", str(ws.root), "--policy", str(pipeline_run_policy()), "--settings", str(settings)),
            env=ehl_env(), capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "on spark" in done.stdout
    finally:
        subprocess.run([str(script), "stop"], env=cluster_env, timeout=120, capture_output=True)
    keys = ["client_pseudonym"]
    cluster = _table(ws.linked / "links.parquet", keys)
    local = _table(pipeline_run.workspace.linked / "links.parquet", keys)
    assert cluster[["client_pseudonym", "patient_pseudonym", "match_status"]].equals(
        local[["client_pseudonym", "patient_pseudonym", "match_status"]]
    )


def test_concurrent_runs_of_different_policies_stay_isolated_and_a_crashed_one_resumes_identically(
    pipeline_run: PipelineRun, raw_region, tmp_path: Path
) -> None:
    """Two runs of different projects at once, each its own process, workspace and Prefect home.
    Run a (the pipeline's policy) is killed once pseudonymisation is recorded, while b goes on; a
    is then resumed, skips what was done and ends with the in-process run's outputs. One pair of
    runs proves both requirements: each run from raw extracts costs minutes of Spark."""
    raw, _ = raw_region
    policy_b = write_demo_policy(tmp_path / "policy_b.yaml", {"project.id": "ehl-lcr-second-project"})
    ws_a, ws_b = copy_region(raw, tmp_path / "ws_a"), copy_region(raw, tmp_path / "ws_b")
    env_a = ehl_env(PREFECT_HOME=str(tmp_path / "prefect-a"))
    env_b = ehl_env(PREFECT_HOME=str(tmp_path / "prefect-b"))
    cmd_b = run_approved_cmd(ws_b.root, policy=policy_b)
    cmd_b = [*cmd_b[: cmd_b.index("--analysis")], "--analysis", "success_factors"]
    ledger = ws_a.root / ".state" / "stages.json"
    crashing = subprocess.Popen(
        run_approved_cmd(ws_a.root),
        env=env_a,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log_b = tmp_path / "run_b.log"
    with log_b.open("w") as out_b:
        other = subprocess.Popen(
            cmd_b, env=env_b, stdout=out_b, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_for(
                lambda: ledger.exists() and "pseudonymise" in json.loads(ledger.read_text()),
                900,
                "pseudonymisation",
            )
        finally:
            os.killpg(crashing.pid, signal.SIGKILL)  # the crash: no clean-up, no finally blocks
            crashing.wait()
        assert "link" not in json.loads(ledger.read_text())

        done = subprocess.run(
            run_approved_cmd(ws_a.root), env=env_a, capture_output=True, text=True, timeout=1200
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "validate: unchanged, skipped" in done.stdout
        assert "pseudonymise: unchanged, skipped" in done.stdout
        assert other.wait(timeout=1500) == 0, f"run b:\n{log_b.read_text()}"
    finally:
        _stop(other)

    # the resumed run gives what the uninterrupted in-process run gave
    reference = pipeline_run.workspace
    pd.testing.assert_frame_equal(
        _table(ws_a.linked / "links.parquet", ["client_pseudonym"]),
        _table(reference.linked / "links.parquet", ["client_pseudonym"]),
    )
    pd.testing.assert_frame_equal(
        _table(ws_a.analysis / "clients.parquet", ["client_pseudonym"]),
        _table(reference.analysis / "clients.parquet", ["client_pseudonym"]),
    )

    # each run's audit log is whole and names only its own project
    for ws, own, other_id in (
        (ws_a, "ehl-lcr-demo", "ehl-lcr-second-project"),
        (ws_b, "ehl-lcr-second-project", "ehl-lcr-demo"),
    ):
        entries = [json.loads(line) for line in (ws.audit / "audit.jsonl").read_text().splitlines()]
        assert {e["policy_id"] for e in entries if e.get("policy_id")} == {own}
        assert other_id not in (ws.audit / "audit.jsonl").read_text()
        assert AuditLog.for_workspace(ws).verify().ok

    # different projects: unrelated tokens and research pseudonyms for the same people
    tok_a = pd.read_parquet(
        ws_a.pseudonymised / "health_demographics", columns=["patient_pseudonym", "t_surname"]
    )
    tok_b = pd.read_parquet(
        ws_b.pseudonymised / "health_demographics", columns=["patient_pseudonym", "t_surname"]
    )
    assert len(tok_a) == len(tok_b)
    assert not set(tok_a["t_surname"].dropna()) & set(tok_b["t_surname"].dropna())
    assert not set(tok_a["patient_pseudonym"]) & set(tok_b["patient_pseudonym"])
