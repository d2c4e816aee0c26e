"""`ehl run ...` and `ehl demo`: the whole approved pipeline as Prefect flow runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import (
    PolicyOption,
    SettingsOption,
    TrustStoreOption,
    WorkspaceOption,
    console,
    err_console,
    handle_errors,
    open_workspace,
    policy_path,
    print_outputs,
    progress,
)
from ig_policies.errors import EXIT_USAGE
from ig_policies.policy import Role
from ig_policies.workspace import Workspace

if TYPE_CHECKING:
    from flows.pipeline import ApprovedPlan

app = typer.Typer(
    no_args_is_help=True, help="Run the approved pipeline (or its release step) as Prefect flows."
)


def _run_approved(
    workspace: Path,
    policy: Path | None,
    settings: Path | None,
    trust_store: Path | None,
    analyses: list[str] | None,
) -> tuple[ApprovedPlan, list[dict]]:
    """Run ``approved_linkage_flow`` with a progress bar fed by the flow's stage events.

    The stages are those of the roles the account holds (``pipeline.plan_approved_run``); what
    another role must run next is printed at the end.
    """
    from flows import pipeline
    from flows.settings import load_settings

    run_settings = load_settings(settings)  # an invalid file stops here, naming the key (exit 4)
    if run_settings.prefect.api_url:
        import os

        os.environ["PREFECT_API_URL"] = run_settings.prefect.api_url

    def text(path: Path | None) -> str | None:
        return str(path) if path else None

    plan = pipeline.approved_plan(str(workspace), text(policy), text(settings), text(trust_store), analyses)
    if plan.roles == (Role.RESEARCHER,):
        console.print(
            "Approved pipeline as a researcher: the analyses, on the research dataset in analysis/."
        )
    with progress("Approved pipeline: starting (policy check)", total=len(plan.stages)) as advance:

        def on_stage(outcome) -> None:
            advance(1, description=f"Approved pipeline: {outcome.stage} done")
            console.print(f"  [green]✓[/] {outcome.line()}")

        pipeline.stage_listeners.append(on_stage)
        try:
            results = pipeline.approved_linkage_flow(
                workspace=str(workspace),
                policy=text(policy),
                settings=text(settings),
                trust_store=text(trust_store),
                analyses=analyses,
            )
        finally:
            pipeline.stage_listeners.remove(on_stage)
    if plan.next_step:
        console.print(plan.next_step, soft_wrap=True)
    return plan, results


@app.command("approved")
@handle_errors
def approved(
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    settings: SettingsOption = None,
    trust_store: TrustStoreOption = None,
    analysis: Annotated[
        list[str] | None,
        typer.Option(
            "--analysis", help="Run only these analyses, by policy name (default: all the policy permits)."
        ),
    ] = None,
) -> None:
    """Validate, pseudonymise, link, build the research dataset and run the permitted analyses.

    Every option of the single-stage commands is a key of the settings file (--settings), in
    the sections validation, pseudonymisation, linkage, research_dataset and analyses.NAME.
    The stages act as the account running the command, and it runs those of the roles it holds
    (the policy names it and it is in the role's OS group): a data processor's run ends with the
    research dataset and says what a researcher runs next; a researcher's runs only the analyses,
    once the research dataset is there. An account in neither role is refused (no_role_for_any_stage).
    """
    ws = open_workspace(workspace)
    plan, _ = _run_approved(ws.root, policy_path(policy), settings, trust_store, analysis)
    written = []
    if Role.DATA_PROCESSOR in plan.roles:
        written += [
            ("Research dataset", ws.analysis),
            ("Linkage report", ws.reports / "linkage"),
            ("Data Docs", ws.reports / "data_docs"),
        ]
    if Role.RESEARCHER in plan.roles:
        written.append(("Outputs waiting for IG review", ws.pending))
    print_outputs([*written, ("Audit log", ws.audit)])


@app.command("release")
@handle_errors
def release(
    workspace: WorkspaceOption = None,
    policy: PolicyOption = None,
    trust_store: TrustStoreOption = None,
    timeout_hours: Annotated[float, typer.Option(help="How long the run waits for the officer.")] = 72.0,
) -> None:
    """Start a release run that pauses until an IG officer decides (needs a Prefect server)."""
    import os

    from flows import pipeline

    if not os.environ.get("PREFECT_API_URL"):
        err_console.print(
            "A paused release run needs a Prefect server (set PREFECT_API_URL); without one, "
            "review with 'ehl outputs review' and 'ehl outputs release ID'."
        )
        raise typer.Exit(EXIT_USAGE)
    ws = open_workspace(workspace)
    result = pipeline.output_release_flow(
        workspace=str(ws.root),
        policy=str(policy_path(policy)) if policy_path(policy) else None,
        trust_store=str(trust_store) if trust_store else None,
        timeout_hours=timeout_hours,
    )
    console.print(f"Released {len(result['released'])}, rejected {len(result['rejected'])}.")
    print_outputs([("Released outputs", ws.released)])


@handle_errors
def demo(
    workspace: WorkspaceOption = None,
    people: Annotated[int, typer.Option(help="Synthetic residents to generate.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic region.")] = 1,
    settings: SettingsOption = None,
) -> None:
    """The whole pipeline on a synthetic city region, ending with a released, re-checked bundle.

    DEMO ONLY: uses the DEMO-ONLY IG officer key and policy in ig_policies/configs/demo/.
    """
    from analysis.disclosure.workflow import verify_all_releases
    from flows.demo import (
        ensure_demo_deployment,
        ensure_demo_master_secret,
        ensure_synthetic_region,
        review_as_demo_officer,
    )
    from flows.stages import PipelineContext
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
    from ig_policies.errors import EhlError, TamperedError

    started = time.perf_counter()
    ws = Workspace.open(workspace)  # the DEMO deployment for it is made next
    ensure_demo_master_secret(ws)
    deployment = ensure_demo_deployment(ws)
    console.print(f"[bold]ehl demo[/] — synthetic region of {people:,} people in {ws.root} (DEMO-ONLY keys)")
    console.print(
        f"  DEMO deployment {deployment}: the local account acts in all three roles; never for real data"
    )
    with progress(f"Synthetic region: {people:,} people") as advance:
        made = ensure_synthetic_region(ws, people, seed)
        advance(description="Synthetic region ready")
    console.print(f"  [green]✓[/] synthetic region: {'generated' if made else 'unchanged, skipped'}")

    _run_approved(ws.root, DEMO_POLICY, settings, DEMO_TRUST_STORE, None)
    review = review_as_demo_officer(ws)
    console.print(
        f"  [green]✓[/] demo IG officer: released {len(review.released)}, rejected {len(review.rejected)}, "
        f"left {len(review.left_for_review)} for a human reviewer"
    )
    engine = PipelineContext(ws, DEMO_POLICY, trust_store=DEMO_TRUST_STORE).engine()
    reports = verify_all_releases(ws, engine.policy.outputs, engine)
    if not all(r.ok for r in reports):
        raise EhlError(
            "The independent re-check found a problem in a released output:\n"
            + "".join(r.to_text() for r in reports if not r.ok)
        )
    audit = AuditLog.for_workspace(ws).verify()
    if not audit.ok:
        raise TamperedError(audit.summary())
    console.print(f"  [green]✓[/] independent re-check of {len(reports)} released outputs: all pass")
    console.print(f"  [green]✓[/] {audit.summary()}")
    console.print(f"Demo finished in {time.perf_counter() - started:.0f} s.")
    print_outputs(
        [
            ("Released outputs", ws.released),
            ("Outputs still pending review", ws.pending),
            ("Linkage report", ws.reports / "linkage"),
            ("Data Docs", ws.reports / "data_docs" / "index.html"),
            ("Audit log (verified)", ws.audit / "audit.jsonl"),
            (f"DEMO deployment (export EHL_DEPLOYMENT={deployment} to run single commands)", deployment),
        ]
    )
