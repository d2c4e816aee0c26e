"""The stage functions of ``flows/stages.py`` driven directly: settings reach every stage, the ledger
skips only what is unchanged, and every error ends with the same exit code on every path."""

from __future__ import annotations

import ast
import errno
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.registry import ANALYSES, PIPELINE_ORDER, registered
from flows import stages
from flows.cli import app
from flows.settings import Settings, SettingsError, load_settings
from flows.stages import PipelineContext
from ig_policies.audit import AuditLog
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS, write_demo_policy
from ig_policies.errors import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    ConfigError,
    PolicyRefused,
    exit_code_for,
    expected_error,
)
from ig_policies.master_secret import MasterSecretError
from ig_policies.policy import Analysis
from ig_policies.workspace import Workspace
from tests.unit.test_link_stage import _workspace as linkable_workspace
from tests.unit.test_research_dataset import _write_inputs as write_research_inputs
from tests.unit.test_validation_data import employment_people, ways_to_work_rows, write_ways_to_work
from tests.unit.test_workspace_zones import assert_zones_sealed

PROCESSOR, RESEARCHER = DEMO_USERS["data_processor"], DEMO_USERS["researcher"]
FLOWS = Path(stages.__file__).resolve().parent


def _context(ws: Workspace, settings: Settings | None = None, **fields) -> PipelineContext:
    return PipelineContext(
        ws, DEMO_POLICY, settings=settings or Settings(), trust_store=DEMO_TRUST_STORE, **fields
    )


def _settings_file(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return load_settings(path)


# ---- the stages ------------------------------------------------------------------------------


@pytest.mark.spark
def test_validate_stage_takes_its_datasets_from_the_settings_and_resumes(
    spark, workspace: Workspace, master_secret_env: str
) -> None:
    write_ways_to_work(workspace.landing, ways_to_work_rows(employment_people(30, seed=5)))
    settings = Settings().with_overrides({"validation": {"datasets": ["ways_to_work"]}})
    ctx = _context(workspace, settings, spark_factory=lambda _settings: spark)

    first = stages.run_validate(ctx)
    assert not first.skipped and first.summary["rows_in"] == 30
    assert first.summary["rows_in"] == first.summary["rows_accepted"] + first.summary["rows_quarantined"]
    assert [d.dataset for d in first.result.datasets] == ["ways_to_work"]
    assert_zones_sealed(workspace)  # validated rows and quarantine owner-only; staging gone

    assert stages.run_validate(ctx).skipped  # a flow re-run with nothing changed does no work
    with pytest.raises(ConfigError, match="validation.inputs"):
        stages.run_validate(ctx.with_overrides({"validation": {"inputs": {"no_such_dataset": "x.csv"}}}))


def test_link_stage_reads_config_and_model_from_the_settings(tmp_path: Path, master_secret_env: str) -> None:
    logging.getLogger("splink").setLevel(logging.ERROR)
    ws = linkable_workspace(tmp_path / "ws")
    (tmp_path / "link.yaml").write_text("u_max_pairs: 20000\n")
    settings = _settings_file(tmp_path, f"linkage:\n  backend: duckdb\n  config: {tmp_path / 'link.yaml'}\n")
    ctx = _context(ws, settings)

    linked = stages.run_link(ctx)
    assert linked.summary["backend"] == "duckdb" and linked.result.trained
    assert linked.summary["matched"] > 0.85 * linked.summary["clients"]
    assert_zones_sealed(ws, written=("linked", "reports"))  # pseudonymised/ was filled by the test
    assert stages.run_link(ctx).skipped

    approved = tmp_path / "approved_model.json"
    approved.write_bytes(linked.result.model_path.read_bytes())
    again = stages.run_link(ctx.with_overrides({"linkage": {"model": approved}}))
    assert not again.skipped and not again.result.trained  # a new option is a new run, re-using the model
    assert again.result.model_sha256 == linked.result.model_sha256

    no_processor = write_demo_policy(
        tmp_path / "no-processor.yaml", {"users": [{"name": RESEARCHER, "role": "researcher"}]}
    )
    with pytest.raises(PolicyRefused, match="user_not_in_role"):  # only a data processor may link
        stages.run_link(replace(_context(ws, settings, resume=False), policy_path=no_processor))


def test_research_dataset_and_analysis_stages_take_their_options_from_the_settings(
    tmp_path: Path, workspace: Workspace, master_secret_env: str
) -> None:
    from analysis.natural_experiment.simulation import simulate_region
    from ig_policies.workspace import write_parquet

    write_research_inputs(workspace)
    settings = _settings_file(
        tmp_path,
        "research_dataset: {months_before: 6, pool_size: 10}\n"
        "analyses:\n  natural_experiment: {measures: [gp_appointments], placebo_shift: 0}\n",
    )
    ctx = _context(workspace, settings)
    built = stages.run_research_dataset(ctx)
    assert built.summary["enrolments"] == 4 and built.summary["linked"] == 3
    assert pd.read_parquet(workspace.analysis / "panel.parquet")["event_time"].min() >= -6
    assert stages.run_research_dataset(ctx).skipped
    assert not stages.run_research_dataset(
        _context(workspace, settings, resume=False)
    ).skipped  # a command runs

    region = simulate_region(n_clients=400, n_pool=10, seed=8, effects={}, measures=("gp_appointments",))
    write_parquet(region.panel, workspace.analysis / "panel.parquet")
    analysed = stages.run_analysis(ctx, "natural_experiment")
    assert {e.outcome for e in analysed.result.results.estimates} == {"gp_appointments"}
    assert analysed.summary["outputs_requested"] == len(analysed.result.requests) > 0
    assert stages.run_analysis(ctx, Analysis.NATURAL_EXPERIMENT).skipped
    assert AuditLog.for_workspace(workspace).verify().ok

    no_researcher = write_demo_policy(
        tmp_path / "no-researcher.yaml", {"users": [{"name": PROCESSOR, "role": "data_processor"}]}
    )
    with pytest.raises(PolicyRefused, match="user_not_in_role"):  # only a researcher may analyse
        stages.run_analysis(
            replace(_context(workspace, settings, resume=False), policy_path=no_researcher), "concordance"
        )


def test_the_approved_run_runs_the_stages_of_the_roles_the_account_holds(tmp_path: Path) -> None:
    from flows.pipeline import PROCESSOR_STAGES, plan_approved_run
    from ig_policies.errors import InputError

    ws = Workspace.open(tmp_path / "ws")
    analyses = ["equity_audit", "concordance"]
    every = plan_approved_run(_context(ws), analyses)  # the DEMO: one account in every role
    assert every.stages == (*PROCESSOR_STAGES, "analysis:equity_audit", "analysis:concordance")
    assert every.next_step is None

    def as_only(role: str, name: str) -> PipelineContext:
        policy = write_demo_policy(tmp_path / f"{role}.yaml", {"users": [{"name": name, "role": role}]})
        return replace(_context(ws), policy_path=policy)

    processing = plan_approved_run(as_only("data_processor", PROCESSOR), analyses)
    assert processing.stages == tuple(PROCESSOR_STAGES)
    assert "researchers' work" in processing.next_step and "ehl run approved" in processing.next_step

    researcher = as_only("researcher", RESEARCHER)
    with pytest.raises(InputError, match="research dataset has not been built"):
        plan_approved_run(researcher, analyses)
    for table in ("clients", "panel", "comparison_people", "comparison_pool"):
        (ws.analysis / f"{table}.parquet").write_bytes(b"")
    assert plan_approved_run(researcher, analyses).stages == ("analysis:equity_audit", "analysis:concordance")

    with pytest.raises(PolicyRefused, match="no_role_for_any_stage"):
        plan_approved_run(as_only("ig_officer", DEMO_USERS["ig_officer"]), analyses)
    refusal = AuditLog.for_workspace(ws).entries()[-1]
    assert (refusal["action"], refusal["decision"], refusal["rule"]) == (
        "run_approved",
        "refused",
        "no_role_for_any_stage",
    )


# ---- one list of analyses ------------------------------------------------------------------


def test_the_registry_lists_every_analysis_once_and_everything_else_reads_it() -> None:
    from flows.cli.analyse import COMMANDS
    from flows.cli.analyse import app as analyse_app

    assert set(ANALYSES) == set(Analysis) and len(PIPELINE_ORDER) == len(Analysis)
    assert set(COMMANDS) == set(Analysis)
    assert {c.name for c in analyse_app.registered_commands} == {a.command for a in ANALYSES.values()}
    for analysis, entry in ANALYSES.items():
        assert callable(entry.run_function())
        assert isinstance(Settings().analysis_options(analysis), entry.options)
    with pytest.raises(ConfigError, match="natural_experiment"):
        registered("astrology")


def test_cli_modules_reach_identifiers_and_analyses_only_through_the_stages() -> None:
    for module in sorted((FLOWS / "cli").glob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith("linkage.identifiable")}, module.name
        assert "flows.cli.analyse" not in imported or module.name == "__init__.py", module.name


# ---- one mapping from error to exit code -------------------------------------------------------


def test_environment_problems_name_the_path_and_say_what_to_do(tmp_path: Path) -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "gone.csv"))
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "linked"))
    for exc in (missing, full, PermissionError(errno.EACCES, "Permission denied", "/srv/tre")):
        known = expected_error(exc)
        assert known is not None and exit_code_for(exc) == EXIT_BAD_INPUT
        assert exc.filename in str(known) and "What to do:" in str(known)
    assert "free disk space" in str(expected_error(full))
    assert exit_code_for(MasterSecretError("No master secret")) == EXIT_BAD_INPUT
    assert exit_code_for(SettingsError("settings.yaml: invalid settings")) == EXIT_BAD_INPUT
    assert exit_code_for(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code_for(ZeroDivisionError()) == EXIT_ERROR and expected_error(ZeroDivisionError()) is None


def test_a_bad_settings_file_exits_4_naming_the_key_on_every_path(
    tmp_path: Path, master_secret_env: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("research_dataset:\n  months_before: 0\n")
    ws = [
        "--workspace",
        str(tmp_path / "ws"),
        "--policy",
        str(DEMO_POLICY),
        "--trust-store",
        str(DEMO_TRUST_STORE),
    ]
    runner = CliRunner()
    for command in (
        ["run", "approved"],
        ["research-dataset"],
        ["link"],
    ):
        result = runner.invoke(app, [*command, *ws, "--settings", str(bad)])
        assert result.exit_code == EXIT_BAD_INPUT, (command, result.output)
        assert "research_dataset.months_before" in result.output and "Unexpected error" not in result.output

    wrong = runner.invoke(app, ["analyse", "equity", *ws, "--population", "everyone"])
    assert wrong.exit_code == EXIT_BAD_INPUT and "analyses.equity_audit.population" in wrong.output


def test_an_unusable_workspace_is_an_environment_problem_not_a_crash(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "workspace"
    not_a_folder.write_text("a file where the workspace should be\n")
    result = CliRunner().invoke(app, ["outputs", "list", "--workspace", str(not_a_folder)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert str(not_a_folder) in result.output and "What to do:" in result.output
    assert "Unexpected error" not in result.output


# Every option of a stage command and the settings key it overrides: `ehl run approved --settings`
# reaches all of them. A new option must be added here, with its key.
OPTION_KEYS = {
    ("validate",): {
        "dataset": "validation.datasets",
        "input_file": "validation.inputs",
        "datasets_dir": "validation.datasets_dir",
    },
    ("pseudonymise",): {"key_version": "pseudonymisation.key_version"},
    ("link",): {"model": "linkage.model", "config": "linkage.config", "backend": "linkage.backend"},
    ("research-dataset",): {
        name: f"research_dataset.{name}"
        for name in ("months_before", "months_after", "pool_size", "study_start", "study_end")
    },
    ("analyse", "natural-experiment"): {
        "measure": "analyses.natural_experiment.measures",
        **{
            name: f"analyses.natural_experiment.{name}"
            for name in ("months_before", "months_after", "anticipation", "placebo_shift")
        },
    },
    ("analyse", "equity"): {"population": "analyses.equity_audit.population"},
    ("analyse", "success"): {
        "outcome": "analyses.success_factors.outcome",
        "config": "analyses.success_factors.config",
    },
    ("analyse", "concordance"): {},
    ("analyse", "area-profile"): {},
    ("analyse", "area-targeting"): {},
    ("analyse", "service-use"): {"months_before": "analyses.service_use.months_before"},
}


def test_every_stage_command_option_is_a_settings_key() -> None:
    import typer

    root = typer.main.get_command(app)
    defaults = Settings().model_dump()
    for path, keys in OPTION_KEYS.items():
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        options = {p.name for p in command.params} - {
            "workspace",
            "policy",
            "user",
            "trust_store",
            "settings",
        }
        assert options == set(keys), path
        for key in keys.values():
            section = defaults
            for part in key.split("."):
                assert part in section, key
                section = section[part]
    analyse = {name for (group, *name) in OPTION_KEYS if group == "analyse" for name in name}
    assert analyse == {entry.command for entry in ANALYSES.values()}
