"""One small synthetic region with planted canary identifiers, and the approved pipeline run on it.

Running the pipeline costs two to three minutes on 2 idle cores (validation and pseudonymisation on
Spark are most of it), so it happens once per test session; tests that need a fresh workspace copy
the raw region (``raw_region``) instead of regenerating it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.workspace import Workspace
from tests.conftest import TEST_MASTER_SECRET
from tests.integration.os_site import site  # noqa: F401  (one TRE of real OS accounts, for any test)

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 3000
SEED = 11
#: The area profile needs more LSOAs than a region this small has; it is tested on its own.
PIPELINE_ANALYSES = ["natural_experiment", "equity_audit", "success_factors", "concordance"]

#: Planted in one client's extract row and the same person's health record.
CANARY_FORENAME = "Quenthrax"
CANARY_SURNAME = "Vexborough"
CANARY_NHS_NUMBER = "9434765919"  # valid modulus-11


@dataclass(frozen=True)
class Canaries:
    strings: tuple[str, ...]


def _plant_canaries(ws: Workspace) -> Canaries:
    """Rename one linkable person in both sources to values that occur nowhere else."""
    truth = pd.read_parquet(ws.truth / "record_links.parquet")
    clients = truth[truth["dataset"] == "ways_to_work"]
    patients = truth[truth["dataset"] == "health_demographics"].set_index("person_id")["record_id"]
    person, client_ref = next(
        (p, r) for p, r in zip(clients["person_id"], clients["record_id"], strict=True) if p in patients.index
    )
    demo_path = ws.landing / "health" / "demographics.parquet"
    demo = pd.read_parquet(demo_path)
    hit = demo["patient_id"] == patients[person]
    demo.loc[hit, ["forename", "surname", "nhs_number"]] = [
        CANARY_FORENAME,
        CANARY_SURNAME,
        CANARY_NHS_NUMBER,
    ]
    demo.to_parquet(demo_path, index=False)

    csv_path = ws.landing / "employment" / "ways_to_work.csv"
    extract = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    row = extract["Client Ref"] == client_ref
    extract.loc[row, ["First Name", "Last Name", "NHS Number"]] = [
        CANARY_FORENAME,
        CANARY_SURNAME,
        CANARY_NHS_NUMBER,
    ]
    extract.to_csv(csv_path, index=False)
    dob = str(demo.loc[hit, "date_of_birth"].iloc[0])
    return Canaries((CANARY_FORENAME, CANARY_SURNAME, CANARY_NHS_NUMBER, dob, TEST_MASTER_SECRET))


@pytest.fixture(scope="session")
def master_secret_session():
    saved = {k: os.environ.get(k) for k in ("EHL_MASTER_SECRET", "EHL_MASTER_KEY_FILE")}
    os.environ["EHL_MASTER_SECRET"] = TEST_MASTER_SECRET
    os.environ.pop("EHL_MASTER_KEY_FILE", None)
    yield TEST_MASTER_SECRET
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def raw_region(tmp_path_factory: pytest.TempPathFactory, master_secret_session) -> tuple[Path, Canaries]:
    """A freshly generated region (landing, reference, truth) with canaries; copy it, don't modify it."""
    from synthetic import generate_region

    ws = Workspace.open(tmp_path_factory.mktemp("raw") / "ws")
    generate_region(ws, people=PEOPLE, seed=SEED)
    return ws.root, _plant_canaries(ws)


def copy_region(raw: Path, dest: Path) -> Workspace:
    """A copy of a workspace, with its (DEMO) audit writer's key and anchor, so its log goes on,
    and its DEMO output gate's key, so the requests it signed still verify."""
    from ig_policies.audit import demo_writer_directory
    from ig_policies.gate_keys import demo_gate_directory

    shutil.copytree(raw, dest)
    for beside in (demo_writer_directory, demo_gate_directory):
        kept = beside(Workspace(raw.resolve()))
        if kept.exists():
            shutil.copytree(kept, beside(Workspace(dest.resolve())))
    return Workspace.open(dest)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass(frozen=True)
class PipelineRun:
    workspace: Workspace
    canaries: Canaries
    results: list[dict]
    prefect_home: Path


@pytest.fixture(scope="session")
def pipeline_run(raw_region, tmp_path_factory, spark, prefect_harness) -> PipelineRun:
    """The approved flow run once, in-process, on the shared Spark session and a real Prefect API."""
    from flows.pipeline import approved_linkage_flow

    raw, canaries = raw_region
    ws = copy_region(raw, tmp_path_factory.mktemp("pipeline") / "ws")
    results = approved_linkage_flow(
        workspace=str(ws.root),
        policy=str(DEMO_POLICY),
        trust_store=str(DEMO_TRUST_STORE),
        analyses=PIPELINE_ANALYSES,
    )
    return PipelineRun(ws, canaries, results, Path(os.environ["PREFECT_HOME"]))


# ---- subprocess helpers for the tests that need real separate processes ----------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ehl_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EHL_MASTER_SECRET=TEST_MASTER_SECRET,
        EHL_TRUST_STORE=str(DEMO_TRUST_STORE),
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
    )
    env.pop("EHL_MASTER_KEY_FILE", None)
    env.update(extra)
    return env


def ehl(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ehl")), *args]


def run_approved_cmd(ws: Path, policy: Path = DEMO_POLICY, settings: Path | None = None) -> list[str]:
    cmd = ehl(
        "run", "approved", "--workspace", str(ws), "--policy", str(policy),
        "--trust-store", str(DEMO_TRUST_STORE),
    )  # fmt: skip
    for analysis in PIPELINE_ANALYSES:
        cmd += ["--analysis", analysis]
    if settings is not None:
        cmd += ["--settings", str(settings)]
    return cmd


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    """A real Prefect server on a free loopback port, with its own database."""
    port = free_port()
    env = ehl_env(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
         "--port", str(port), "--analytics-off"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for(healthy, 180, "the Prefect server to become healthy", interval=1)
    return proc, url
