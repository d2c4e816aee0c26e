"""Prefect flows: one per stage, and ``approved_linkage_flow`` that runs the whole approved pipeline.

Flows are a list of stages; each task run calls one function of ``flows/stages.py``, which calls
one library function. Flow parameters are paths and options, never data or names (who acts is the OS account the
flow runs as), and task results are
counts and paths (not persisted), so Prefect's database and logs hold no identifiers. Tasks that
write to storage retry on unexpected errors (their writes are atomic, so a retry is safe); a policy
refusal or a bad input never retries: it ends the run with its plain-English message.

Runs on Prefect's ephemeral local API by default, or on a real server when ``PREFECT_API_URL`` (or
``prefect.api_url`` in the settings file) points at one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.offline import apply_offline_defaults

apply_offline_defaults()

from ig_policies.workspace import restrict_umask  # noqa: E402

restrict_umask()  # every file a flow writes: umask 027

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.flow_runs import pause_flow_run  # noqa: E402
from prefect.input import RunInput  # noqa: E402

from analysis.registry import registered  # noqa: E402
from flows import stages  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.stages import PipelineContext, StageOutcome  # noqa: E402
from ig_policies.errors import EhlError, InputError, PolicyRefused  # noqa: E402
from ig_policies.policy import Role  # noqa: E402
from ig_policies.workspace import Workspace  # noqa: E402

#: Called with each StageOutcome as it completes (the CLI draws its progress bar from these).
stage_listeners: list[Callable[[StageOutcome], None]] = []


def _retry_unexpected(task_: Any, task_run: Any, state: Any) -> bool:
    """Retry a storage hiccup, never a refusal or a bad input (those need a person, not a retry)."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, EhlError)


def _report(outcome: StageOutcome) -> dict[str, Any]:
    logger = get_run_logger()
    logger.info(outcome.line())
    for detail in outcome.details:
        logger.info(detail)
    for listener in list(stage_listeners):
        listener(outcome)
    return {
        "stage": outcome.stage,
        "skipped": outcome.skipped,
        "seconds": round(outcome.seconds, 2),
        **outcome.summary,
    }


#: The data processor's stages, in pipeline order; the analyses follow (``analysis.registry``).
PROCESSOR_STAGES: dict[str, Callable[[PipelineContext], StageOutcome]] = {
    "validate": stages.run_validate,
    "pseudonymise": stages.run_pseudonymise,
    "link": stages.run_link,
    "research_dataset": stages.run_research_dataset,
}


@task(
    name="stage",
    task_run_name="{stage}",
    cache_policy=NONE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=3,
    retry_condition_fn=_retry_unexpected,
)
def stage_task(ctx: PipelineContext, stage: str) -> dict[str, Any]:
    """One stage (a name of ``PROCESSOR_STAGES``, or ``analysis:<name>``); its writes are atomic,
    so a retry after an unexpected error is safe."""
    if stage.startswith("analysis:"):
        return _report(stages.run_analysis(ctx, stage.removeprefix("analysis:")))
    return _report(PROCESSOR_STAGES[stage](ctx))


def _run_stage(ctx: PipelineContext, stage: str) -> dict[str, Any]:
    """``stage_task`` under the stage's own task name (``validate`` ... ``analysis``) in the UI."""
    name = stage.split(":")[0].replace("_", "-")
    return stage_task.with_options(name=name)(ctx, stage)


@task(name="policy-check", cache_policy=NONE, persist_result=False)
def policy_check_task(ctx: PipelineContext, role: Role) -> str:
    """Fail closed before any stage: no valid signed policy, no run."""
    engine = ctx.engine(actor=ctx.acting(role))
    get_run_logger().info(f"policy {engine.policy.project.id} verified (hash {engine.policy_hash[:12]})")
    return engine.policy_hash


def _context(
    workspace: str,
    policy: str | None,
    settings: str | None,
    trust_store: str | None,
    overrides: dict[str, Any] | None = None,
) -> PipelineContext:
    run_settings = load_settings(settings)
    if overrides:
        run_settings = run_settings.with_overrides(overrides, source="flow parameters")
    from ig_policies.deployment import load_deployment

    deployment = load_deployment()
    return PipelineContext(
        workspace=deployment.open_workspace(Path(workspace)),
        policy_path=Path(policy) if policy else None,
        settings=run_settings,
        trust_store=Path(trust_store) if trust_store else None,
    )


#: The research dataset's tables: an analyses-only run starts only when they are all there.
RESEARCH_DATASET_TABLES = ("clients", "panel", "comparison_people", "comparison_pool")
#: The rules that mean "this account does not hold the role" (not: the policy cannot be used).
_NOT_IN_ROLE = frozenset({"user_not_in_role", "not_in_role_group", "not_authenticated_account"})


@dataclass(frozen=True)
class ApprovedPlan:
    """What ``ehl run approved`` does for the account running it.

    The processing stages are the data processor's and the analyses the researcher's; an account
    runs the stages of the roles it holds (the policy names it and it is in the role's OS group),
    and one acting in both (the DEMO) runs the whole pipeline. ``next_step`` says, in plain
    English, what another role must run next (or is None).
    """

    roles: tuple[Role, ...]
    stages: tuple[str, ...]
    next_step: str | None


def roles_held(
    ctx: PipelineContext, roles: tuple[Role, ...] = (Role.DATA_PROCESSOR, Role.RESEARCHER)
) -> tuple[Role, ...]:
    """The roles of ``roles`` this account may act in (checked as each stage will be; not audited)."""
    engine = ctx.engine()
    held = []
    for role in roles:
        try:
            engine.check(ctx.acting(role), role, "run_approved")
        except PolicyRefused as exc:
            if exc.rule not in _NOT_IN_ROLE:
                raise  # e.g. an expired policy: no role helps, and the refusal says why
            continue
        held.append(role)
    return tuple(held)


def plan_approved_run(ctx: PipelineContext, analyses: list[str] | None) -> ApprovedPlan:
    """The stages of the approved pipeline this account runs, or a refusal naming its rule.

    Refuses (audited, exit 3) an account that holds neither role; refuses (exit 4) an
    analyses-only run before the research dataset exists.
    """
    held = roles_held(ctx)
    account = ctx.acting(Role.DATA_PROCESSOR)
    if not held:
        engine = ctx.engine()
        refusal = PolicyRefused(
            "no_role_for_any_stage",
            f"The account '{account}' holds neither role of the approved pipeline: the processing "
            "(validate, pseudonymise, link, research dataset) is the data processor's and the analyses are "
            "the researchers'.",
            hint="run it from a data processor's or a researcher's account; the IG officer names accounts in "
            "the policy and the TRE administrator adds them to the role's OS group",
        )
        engine.record_refusal(account, None, "run_approved", refusal)
        raise refusal
    chosen = analyses if analyses is not None else stages.permitted_analyses(ctx)
    analysis_stages = [f"analysis:{registered(name).analysis.value}" for name in chosen]
    planned: list[str] = []
    next_step = None
    if Role.DATA_PROCESSOR in held:
        planned += PROCESSOR_STAGES
    if Role.RESEARCHER in held:
        if Role.DATA_PROCESSOR not in held:
            missing = [
                t for t in RESEARCH_DATASET_TABLES if not (ctx.workspace.analysis / f"{t}.parquet").exists()
            ]
            if missing:
                raise InputError(
                    str(ctx.workspace.analysis / f"{missing[0]}.parquet"),
                    "the research dataset has not been built yet, so the analyses have nothing to run on",
                    hint="a data processor runs 'ehl run approved' first (it builds the research dataset); "
                    "then run this command again",
                )
        planned += analysis_stages
    elif analysis_stages:
        next_step = (
            f"The analyses ({', '.join(chosen)}) are the researchers' work, and the account '{account}' is not "
            "a researcher, so they were not run. A researcher runs them on this research dataset with: "
            "ehl run approved"
        )
    return ApprovedPlan(held, tuple(planned), next_step)


def approved_plan(
    workspace: str,
    policy: str | None,
    settings: str | None,
    trust_store: str | None,
    analyses: list[str] | None,
) -> ApprovedPlan:
    """``plan_approved_run`` for these flow parameters (what a command shows before the flow runs)."""
    return plan_approved_run(_context(workspace, policy, settings, trust_store), analyses)


# ---- one stage as its own flow run (the deployments in prefect.yaml) --------------------------


def _one_stage(
    stage: str,
    workspace: str,
    policy: str | None,
    settings: str | None,
    trust_store: str | None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx = _context(workspace, policy, settings, trust_store, overrides)
    policy_check_task(ctx, stages.stage_role(stage))
    return _run_stage(ctx, stage)


@flow(name="validate", persist_result=False)
def validate_flow(
    workspace: str, policy: str | None = None, settings: str | None = None, trust_store: str | None = None
) -> dict[str, Any]:
    return _one_stage("validate", workspace, policy, settings, trust_store)


@flow(name="pseudonymise", persist_result=False)
def pseudonymise_flow(
    workspace: str, policy: str | None = None, settings: str | None = None, trust_store: str | None = None
) -> dict[str, Any]:
    return _one_stage("pseudonymise", workspace, policy, settings, trust_store)


@flow(name="link", persist_result=False)
def link_flow(
    workspace: str,
    policy: str | None = None,
    settings: str | None = None,
    trust_store: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Link as the account running the flow; ``model`` (an approved model JSON) overrides ``linkage.model``."""
    overrides = {"linkage": {"model": model}}
    return _one_stage("link", workspace, policy, settings, trust_store, overrides)


@flow(name="research-dataset", persist_result=False)
def research_dataset_flow(
    workspace: str, policy: str | None = None, settings: str | None = None, trust_store: str | None = None
) -> dict[str, Any]:
    return _one_stage("research_dataset", workspace, policy, settings, trust_store)


@flow(name="analysis", persist_result=False)
def analysis_flow(
    workspace: str,
    analysis: str,
    policy: str | None = None,
    settings: str | None = None,
    trust_store: str | None = None,
) -> dict[str, Any]:
    """One analysis of ``analysis.registry``, as the account running the flow; its options are ``analyses.<name>`` keys."""
    stage = f"analysis:{registered(analysis).analysis.value}"
    return _one_stage(stage, workspace, policy, settings, trust_store)


@flow(name="output-request", persist_result=False)
def output_request_flow(
    workspace: str, name: str, justification: str, policy: str | None = None, trust_store: str | None = None
) -> str:
    """A researcher asks for a staged analysis output to be checked and queued for IG review."""
    from analysis.disclosure.workflow import request_staged

    ctx = _context(workspace, policy, None, trust_store)
    actor = ctx.acting(Role.RESEARCHER)
    engine = ctx.engine(actor=actor)
    return request_staged(ctx.workspace, engine, actor, name, justification)


# ---- the whole approved pipeline -------------------------------------------------------------


@flow(name="approved-linkage", persist_result=False)
def approved_linkage_flow(
    workspace: str,
    policy: str | None = None,
    settings: str | None = None,
    trust_store: str | None = None,
    analyses: list[str] | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Validate, pseudonymise, link, build the research dataset and run the permitted analyses.

    Each stage runs only for an account that holds its role (``plan_approved_run``): a data
    processor's run stops after the research dataset and logs which command a researcher runs;
    a researcher's runs only the analyses, once the research dataset is there. Every stage option
    comes from the settings file (``model`` overrides ``linkage.model``).
    Outputs end in ``outputs/pending/`` for an IG officer (``output_release_flow`` or
    ``ehl outputs review``). Re-running resumes after the last completed stage and does no work
    when nothing changed.
    """
    ctx = _context(workspace, policy, settings, trust_store, {"linkage": {"model": model}})
    plan = plan_approved_run(ctx, analyses)
    policy_check_task(ctx, plan.roles[0])
    results = [_run_stage(ctx, stage) for stage in plan.stages]
    if plan.next_step:
        get_run_logger().info(plan.next_step)
    return results


# ---- release: waits for an IG officer --------------------------------------------------------


class ReleaseDecision(RunInput):
    """What the IG officer enters in the Prefect UI to resume a paused release run (the officer
    is the account the flow runs as, never a typed name)."""

    release: list[str] = []
    reject: dict[str, str] = {}


@flow(name="output-release", persist_result=False)
def output_release_flow(
    workspace: str, policy: str | None = None, trust_store: str | None = None, timeout_hours: float = 72.0
) -> dict[str, list[str]]:
    """List pending outputs with their checks, pause until an IG officer decides, then apply it.

    The officer resumes the run (Prefect UI or API) with a ``ReleaseDecision``; the policy engine
    checks that they are named as an IG officer in the policy before anything is released.
    """
    from analysis.disclosure.workflow import (
        OFFICER_KEY_ENV,
        OFFICER_KEY_PASSPHRASE_ENV,
        OfficerSigner,
        list_requests,
        reject_output,
        release_output,
    )

    ws = Workspace.open(workspace)
    logger = get_run_logger()
    pending = list_requests(ws, status="pending")
    if not pending:
        logger.info("no outputs are waiting for review")
        return {"released": [], "rejected": []}
    for req in pending:
        logger.info(f"pending {req.request_id}: {req.title} [{req.outcome}] {req.summary}")
    decision = pause_flow_run(wait_for_input=ReleaseDecision, timeout=int(timeout_hours * 3600))
    ctx = _context(workspace, policy, None, trust_store)
    officer = ctx.acting(Role.IG_OFFICER)
    engine = ctx.engine(actor=officer)
    # The officer's decisions are signed with their own key, read from the worker's environment.
    key, passphrase = os.environ.get(OFFICER_KEY_ENV), os.environ.get(OFFICER_KEY_PASSPHRASE_ENV)
    if not key or not passphrase:
        raise PolicyRefused(
            "no_officer_key",
            "A release needs the deciding officer's own signing key, and none is set.",
            hint=f"set {OFFICER_KEY_ENV} and {OFFICER_KEY_PASSPHRASE_ENV} where the run executes, "
            "or release with 'ehl outputs release ID --key FILE'",
        )
    signer = OfficerSigner.from_file(key, passphrase)
    released = [release_output(ws, engine, officer, rid, signer).request_id for rid in decision.release]
    for rid, reason in decision.reject.items():
        reject_output(ws, engine, officer, rid, reason, signer)
    return {"released": released, "rejected": list(decision.reject)}


def prefect_api_in_use() -> str:
    """Where flow runs are recorded: a server URL, or the ephemeral local API."""
    return os.environ.get("PREFECT_API_URL") or "ephemeral local API (no server)"
