"""`ehl validate` on the command line: plain messages and exit codes, outputs listed at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from ig_policies.workspace import Workspace
from tests.unit.test_validation_data import (
    DEMO,
    employment_people,
    files_under,
    ways_to_work_rows,
    write_delimited,
)

pytestmark = pytest.mark.spark


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, master_secret_env: str) -> list[str]:
    """Settings that match the shared test Spark session, and the demo policy and trust store."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("spark: {master: 'local[2]', driver_memory: 2g, shuffle_partitions: 2}\n")
    monkeypatch.setenv("EHL_SETTINGS", str(settings))
    return [
        "--policy",
        str(DEMO / "policy.yaml"),
        "--trust-store",
        str(DEMO / "trust_store.yaml"),
        "-u",
        "demo-processor",
    ]


def test_broken_input_exits_4_naming_the_file_without_a_traceback(
    spark, workspace: Workspace, tmp_path: Path, cli_env: list[str]
) -> None:
    broken = write_delimited(tmp_path / "june.csv", ways_to_work_rows(employment_people(5, seed=2)))
    broken.write_bytes(broken.read_bytes()[:-25])
    result = CliRunner().invoke(
        app,
        [
            "validate",
            "-w",
            str(workspace.root),
            *cli_env,
            "--input",
            str(broken),
            "--dataset",
            "ways_to_work",
        ],
    )
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 4, output
    assert "june.csv" in output and "cut short" in output and "What to do:" in output
    assert "Traceback" not in output
    assert files_under(workspace.landing / "validated") == [] and files_under(workspace.quarantine) == []


def test_input_without_a_single_dataset_is_a_usage_error(
    workspace: Workspace, tmp_path: Path, cli_env
) -> None:
    result = CliRunner().invoke(
        app, ["validate", "-w", str(workspace.root), *cli_env, "--input", str(tmp_path)]
    )
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 4 and "--input needs exactly one --dataset" in output


def test_good_extract_reports_counts_and_where_outputs_went(spark, workspace: Workspace, cli_env) -> None:
    write_delimited(
        workspace.landing / "employment" / "ways_to_work.csv",
        ways_to_work_rows(employment_people(20, seed=3)),
    )
    result = CliRunner().invoke(app, ["validate", "-w", str(workspace.root), *cli_env, "-d", "ways_to_work"])
    assert result.exit_code == 0, result.output
    assert "ways_to_work: 20 rows in, 20 accepted, 0 quarantined" in result.output
    assert "columns dropped: Keyworker Notes, Telephone" in result.output
    assert "Data Docs:" in result.output and "Validated ways_to_work:" in result.output
