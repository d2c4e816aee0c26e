"""`ehl link`: link clients to patients on tokens; `ehl link report`; `ehl link evaluate`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    PolicyOption,
    UserOption,
    WorkspaceOption,
    console,
    current_user,
    handle_errors,
    load_engine,
    load_run_settings,
    open_workspace,
    print_outputs,
    progress,
    start_spark,
)
from flows.cli.policy import TrustStoreOption

app = typer.Typer(
    no_args_is_help=False,
    help="Link employment-support clients to health records on matching tokens (Splink), then report.",
)

ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model", help="Re-use this approved model JSON (e.g. a previous linked/model.json): no training."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Linkage config YAML: which tables and token columns to link (default: the demo's)."
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option("--settings", help="Runtime settings YAML (default: $EHL_SETTINGS or built-in defaults)."),
]
BackendOption = Annotated[
    str | None,
    typer.Option("--backend", help="auto, spark or duckdb (overrides linkage.backend in settings)."),
]


def _quiet_libraries() -> None:
    for name in ("splink", "py4j"):
        logging.getLogger(name).setLevel(logging.ERROR)


@app.callback(invoke_without_command=True)
@handle_errors
def link(
    ctx: typer.Context,
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    settings: SettingsOption = None,
    backend: BackendOption = None,
) -> None:
    """Link pseudonymised clients to patients (audited) and write linked/ and the linkage report."""
    if ctx.invoked_subcommand is not None:
        return
    from linkage import quality
    from linkage.link import link_records
    from linkage.link_backend import db_api_for_run
    from linkage.linkage_config import load_linkage_config
    from linkage.splink_model import table_rows

    _quiet_libraries()
    ws = open_workspace(workspace)
    actor = current_user(user)
    run_settings = load_run_settings(settings)
    engine = load_engine(ws, policy, trust_store, actor)
    link_config = load_linkage_config(config)

    chosen, db_api = db_api_for_run(
        ws.root,
        link_config,
        backend or run_settings.linkage.backend,
        run_settings.linkage.duckdb_max_comparisons_records,
        spark_factory=lambda: start_spark(run_settings),
        duckdb_memory_limit=run_settings.linkage.duckdb_memory_limit,
    )
    records = table_rows(ws.root, link_config.left) + table_rows(ws.root, link_config.right)
    with progress(f"Linking {records:,} records on {chosen}") as advance:
        result = link_records(
            ws, engine, actor, db_api, model_path=model, config=link_config, seed=run_settings.linkage.seed
        )
        advance(description="Writing the linkage report")
        report = quality.write_report(ws)
    console.print(
        f"Linked {result.matched:,} of {result.clients:,} client records "
        f"({result.ambiguous:,} ambiguous, {result.unmatched:,} unmatched) from {result.comparisons:,} comparisons"
        f" on {chosen}; model {'trained' if result.trained else 're-used'} (sha256 {result.model_sha256[:12]})."
    )
    print_outputs(
        [
            ("links", result.links_path),
            ("model", result.model_path),
            ("clerical review", result.clerical_path),
            ("match rates", result.match_rates_path),
            ("report", report),
        ]
    )


@app.command("report")
@handle_errors
def report(workspace: WorkspaceOption = None) -> None:
    """Write the linkage report (match rates by group, weights, parameters) from linked/."""
    import json

    import pandas as pd

    from linkage import quality

    ws = open_workspace(workspace)
    path = quality.write_report(ws)
    summary = json.loads((ws.linked / "link_summary.json").read_text())
    for sentence in quality.verdict(summary, pd.read_parquet(ws.linked / "match_rates.parquet")):
        console.print(sentence, soft_wrap=True)
    print_outputs([("report", path)])


@app.command("evaluate")
@handle_errors
def evaluate(
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    user: UserOption = None,
    trust_store: TrustStoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Precision, recall and F1 of linked/ against truth/ (synthetic workspaces only)."""
    from ig_policies.errors import EhlError, InputError
    from ig_policies.master_secret import MasterSecretError, load_master_secret
    from ig_policies.policy import Role
    from linkage import quality
    from linkage.linkage_config import load_linkage_config

    ws = open_workspace(workspace)
    if not (ws.truth / "record_links.parquet").exists():
        raise InputError(
            str(ws.truth / "record_links.parquet"),
            "this workspace has no ground truth, so linkage accuracy cannot be measured",
            hint="'ehl link evaluate' works only on synthetic workspaces made by 'ehl synth'",
        )
    actor = current_user(user)
    engine = load_engine(ws, policy, trust_store, actor)
    try:
        secret = load_master_secret()
    except MasterSecretError as exc:
        raise EhlError(str(exc)) from None
    key = secret.derive("research-pseudonym", engine.policy.project.id, engine.policy.linkage.key_version)
    with engine.step(actor, Role.DATA_PROCESSOR, "link_evaluate", reads_linked_data=True) as step:
        result = quality.evaluate(ws, key, load_linkage_config(config))
        step.inputs(ws.linked / "links.parquet")
        step.outputs(result.report_path)
        step.detail(
            precision=round(result.precision, 4), recall=round(result.recall, 4), f1=round(result.f1, 4)
        )
    console.print(f"Precision: {result.precision:.3f}")
    console.print(f"Recall: {result.recall:.3f}")
    console.print(f"F1: {result.f1:.3f}")
    print_outputs([("evaluation", result.report_path)])
