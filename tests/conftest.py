"""Shared fixtures: one small Spark session for the whole run, isolated workspaces under tmp_path.

The Spark session is session-scoped (starting one costs ~5 s): tests that need it take the
``spark`` fixture; everything else stays free of the JVM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import flows  # noqa: F401  (applies the offline defaults before any library is imported)
from ig_policies.workspace import Workspace

TEST_MASTER_SECRET = "7e3f" * 16  # 32 bytes, tests only


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """Keep Prefect's home and any settings of the developer's shell out of the tests, and run
    them under a DEMO deployment (any workspace, the demo trust store, personas per role) unless
    a test makes its own."""
    from ig_policies.deployment import DEPLOYMENT_ENV, write_demo_deployment

    home = tmp_path_factory.mktemp("prefect-home")
    names = ("PREFECT_HOME", "EHL_SETTINGS", "EHL_WORKSPACE", "PREFECT_API_URL", DEPLOYMENT_ENV, "EHL_POLICY")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["PREFECT_HOME"] = str(home)
    for k in ("EHL_SETTINGS", "EHL_WORKSPACE", "PREFECT_API_URL", "EHL_POLICY"):
        os.environ.pop(k, None)
    os.environ[DEPLOYMENT_ENV] = str(write_demo_deployment(tmp_path_factory.mktemp("deployment"), None))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session for the whole test run: 2 cores, tiny shuffles, no UI."""
    from flows.settings import SparkSettings
    from flows.spark_session import build_spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = SparkSettings(master="local[2]", driver_memory="2g", shuffle_partitions=2)
    session = build_spark_session(settings, scratch_dir=tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def master_secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """A test-only master secret in the environment, as a data processor would provide it."""
    monkeypatch.setenv("EHL_MASTER_SECRET", TEST_MASTER_SECRET)
    monkeypatch.delenv("EHL_MASTER_KEY_FILE", raising=False)
    return TEST_MASTER_SECRET
