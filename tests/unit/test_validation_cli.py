"""`ehl validate` on the command line: plain messages and exit codes, outputs listed at the end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from flows.cli import app
from ig_policies.workspace import Workspace
from tests.unit.test_validation_data import (
    DEMO,
    REPO,
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


# --------------------------------------------------------------------------------------------
# The messages a processor needs, one per way a new provider's files go wrong


def _validate(workspace: Workspace, cli_env: list[str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", "-w", str(workspace.root), *cli_env, *args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output and "Unexpected error" not in output, output
    return result.exit_code, " ".join(output.split())  # rich may wrap long lines


def _refused_naming(workspace: Workspace, cli_env: list[str], path: Path) -> str:
    code, output = _validate(workspace, cli_env, "--input", str(path), "--dataset", "ways_to_work")
    assert code == 4, output
    assert path.name in output and "What to do:" in output, output
    assert files_under(workspace.landing / "validated") == [] and files_under(workspace.quarantine) == []
    return output


def test_wrong_delimiter_is_diagnosed_not_reported_as_every_column_missing(
    spark, workspace: Workspace, tmp_path: Path, cli_env: list[str]
) -> None:
    path = write_delimited(tmp_path / "june.csv", ways_to_work_rows(employment_people(5, seed=2)), ";")
    output = _refused_naming(workspace, cli_env, path)
    assert "all 23 required columns are missing" in output
    assert "looks semicolon-separated" in output and "set `delimiter: ';'` in the dataset config" in output


def test_oversized_field_is_reported_with_row_column_size_and_limit(
    spark, workspace: Workspace, tmp_path: Path, cli_env: list[str]
) -> None:
    rows = ways_to_work_rows(employment_people(5, seed=2))
    rows[2]["Keyworker Notes"] = "x" * 1_048_576
    output = _refused_naming(workspace, cli_env, write_delimited(tmp_path / "june.csv", rows))
    assert "row 3, column 'Keyworker Notes'" in output and "1,048,576 characters long" in output
    assert "limit of 131,072 characters" in output and "quote" not in output.split("What to do")[0]


def test_binary_file_is_not_a_text_file(
    spark, workspace: Workspace, tmp_path: Path, cli_env: list[str]
) -> None:
    path = tmp_path / "june.csv"
    path.write_bytes(bytes(range(1, 256)) * 64)  # no zero byte, no line break: binary all the same
    output = _refused_naming(workspace, cli_env, path)
    assert "not a text file" in output and "no data rows" not in output


def _xlsx_configs(tmp_path: Path, sheet: str | None) -> Path:
    folder = tmp_path / f"datasets-{sheet}"
    folder.mkdir()
    text = (REPO / "linkage" / "datasets" / "ways_to_work.yaml").read_text()
    text = text.replace('format: csv\nencoding: utf-8\ndelimiter: ","\n', "format: xlsx\n")
    text = text.replace("file: employment/ways_to_work.csv", "file: employment/ways_to_work.xlsx")
    (folder / "ways_to_work.yaml").write_text(text + (f"sheet: {sheet}\n" if sheet else ""))
    return folder


def test_two_sheet_workbook_names_the_sheet_read_and_the_config_can_choose_it(
    spark, workspace: Workspace, tmp_path: Path, cli_env: list[str]
) -> None:
    rows = ways_to_work_rows(employment_people(12, seed=4))
    wb = Workbook()
    wb.active.title = "Summary"
    for line in (["Ways to Work: June extract"], ["Clients", 12], ["Prepared", "2026-06-01"]):
        wb.active.append(line)
    clients = wb.create_sheet("Clients")
    clients.append(list(rows[0]))
    for row in rows:
        clients.append(list(row.values()))
    path = workspace.landing / "employment" / "ways_to_work.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)

    code, output = _validate(
        workspace, cli_env, "-d", "ways_to_work", "--datasets-dir", str(_xlsx_configs(tmp_path, None))
    )
    assert code == 4, output
    assert "Worksheet 'Summary' was read, but sheet 'Clients' has 23 of the 23 required columns" in output
    assert "set `sheet: Clients` in the dataset config" in output

    code, output = _validate(
        workspace, cli_env, "-d", "ways_to_work", "--datasets-dir", str(_xlsx_configs(tmp_path, "Clients"))
    )
    assert code == 0, output
    assert "ways_to_work: 12 rows in, 12 accepted" in output
    assert (
        "read worksheet 'Clients' of ways_to_work.xlsx; its other sheets were not read: 'Summary'" in output
    )


def test_first_five_quarantined_rows_are_shown_without_values(
    spark, workspace: Workspace, cli_env: list[str]
) -> None:
    rows = ways_to_work_rows(employment_people(150, seed=11))
    rows[4]["Client Ref"] = rows[2]["Client Ref"]
    rows[9]["Start Date"] = "31/02/2021"
    rows[14]["Start Date"] = "03/03/2020"
    rows[19]["Gender"] = "=cmd|' /C calc'!A0"
    rows[29]["Client Ref"] = ""
    rows[34]["DOB"] = "30/02/1980"
    write_delimited(workspace.landing / "employment" / "ways_to_work.csv", rows)

    code, output = _validate(workspace, cli_env, "-d", "ways_to_work")

    assert code == 0, output
    assert "first 5 quarantined rows of ways_to_work.csv (row, column, reason; no values shown):" in output
    assert (
        "row 5, column 'Client Ref': duplicate_key (the key repeats an earlier row) "
        "row 10, column 'Start Date': invalid_date (a date cannot be read in the agreed format) "
        "row 15, column 'Start Date': date_out_of_range" in output
    )
    assert "row 20, column 'Gender': invalid_code" in output and "row 30, column 'Client Ref'" in output
    assert "row 35" not in output  # the sixth is in the full list only
    report = workspace.quarantine / "ways_to_work.csv"
    assert f"full list (6 rows): {report}" in output
    for value in ("31/02/2021", "03/03/2020", "cmd", "30/02/1980", rows[2]["Client Ref"]):
        assert value not in output and value not in report.read_text()
    assert report.read_text().splitlines()[0] == "row,column,reason_code,reason"


@pytest.fixture
def immutable_folder():
    """Make a folder unwritable even for root (``chattr +i``); undone after the test."""
    made: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
        made.append(folder)
        return folder

    yield make
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_unwritable_output_folder_is_an_environment_problem_with_exit_4(
    spark, workspace: Workspace, cli_env: list[str], immutable_folder
) -> None:
    write_delimited(
        workspace.landing / "employment" / "ways_to_work.csv",
        ways_to_work_rows(employment_people(20, seed=3)),
    )
    locked = immutable_folder(workspace.quarantine)

    code, output = _validate(workspace, cli_env, "-d", "ways_to_work")

    assert code == 4, output
    # the folder named is the locked zone, or the step's staging folder inside it
    assert re.search(rf"{re.escape(str(locked))}(/\.staging-[0-9a-f-]+)?: permission denied", output), output
    assert "make the folder (or file) readable and writable by the" in output
    assert files_under(workspace.landing / "validated") == []  # nothing half-done passed on
