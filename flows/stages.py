"""The pipeline's stages as plain functions: what each reads, what it writes, how to run it.

This module is the only caller of the stage library functions (validation, pseudonymisation,
linkage and its report and evaluation, the research dataset, each analysis of
``analysis.registry``). Each ``run_<stage>`` takes one frozen :class:`PipelineContext` (where,
under which policy, as whom, and the validated ``Settings`` that hold every option of every stage),
opens the policy engine as the right user and calls the one library function of the stage.

Both front ends are adapters that build the context and call these functions: the ``ehl``
commands (``flows/cli/``), which turn their options into settings overrides, and the Prefect flows
(``flows/pipeline.py``), which read the settings file. The flows resume: a stage whose inputs,
outputs and parameters are unchanged since it last completed is skipped (``resume=True``); a single
command always does the work, and records it in the same ledger.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.registry import PIPELINE_ORDER, registered
from flows.settings import Settings
from flows.stage_ledger import StageLedger
from ig_policies.errors import ConfigError, InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace, remove_stale_staging

DATASET_CONFIGS = Path(__file__).resolve().parent.parent / "linkage" / "datasets"


@dataclass(frozen=True)
class PipelineContext:
    """Everything a stage needs besides data: where, under which policy, as whom, and how.

    ``settings`` holds every stage option (see ``flows.settings``). ``resume`` skips a stage whose
    inputs, outputs and parameters are unchanged since it last completed (the flows); without it
    the stage always runs (a single command), and is recorded either way. ``spark_factory`` builds
    the Spark session from the settings the first time a stage needs one (default:
    ``flows.spark_session.build_spark_session``); stages that need none never start a JVM.
    The context is frozen: a command derives a configured copy with ``with_overrides``.
    """

    workspace: Workspace
    policy_path: Path | None
    settings: Settings = field(default_factory=Settings)
    trust_store: Path | None = None
    today: dt.date | None = None
    resume: bool = True
    spark_factory: Callable[[Settings], Any] | None = field(default=None, repr=False, compare=False)
    _started: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def with_overrides(self, overrides: Mapping[str, Any]) -> PipelineContext:
        """This context with ``overrides`` applied to its settings (see ``Settings.with_overrides``)."""
        return replace(self, settings=self.settings.with_overrides(overrides), _started=self._started)

    def deployment(self):
        """This machine's deployment (``ig_policies.deployment``): read once per context."""
        if "deployment" not in self._started:
            from ig_policies.deployment import load_deployment

            self._started["deployment"] = load_deployment()
        return self._started["deployment"]

    def acting(self, role: Role | str) -> str:
        """The name this process acts under in ``role``: the authenticated OS account (or, in a
        DEMO deployment, the demo persona of the role). Never a typed name.

        The account is resolved once per context (a process does not change accounts); inside a
        stage the engine's own resolved identity is used (``engine.actor_for``).
        """
        if "identity" not in self._started:
            from ig_policies.identity import current_identity

            self._started["identity"] = current_identity(demo=self.deployment().demo)
        return self._started["identity"].name_for(role)

    def engine(self, **options: Any):
        """The policy engine: the deployed (or, in DEMO, the given) signed policy, verified.

        ``options`` go to ``PolicyEngine.load`` (e.g. ``allow_expired``).
        """
        from ig_policies.engine import PolicyEngine

        return PolicyEngine.load(
            self.policy_path,
            self.workspace,
            trust_store=self.trust_store,
            today=self.today,
            deployment=self.deployment(),
            **options,
        )

    def spark(self):
        """The pipeline's Spark session, started on first use."""
        if "spark" not in self._started:
            if self.spark_factory is not None:
                self._started["spark"] = self.spark_factory(self.settings)
            else:
                from flows.spark_session import build_spark_session

                self._started["spark"] = build_spark_session(self.settings.spark)
        return self._started["spark"]

    def master_secret(self):
        """The service's master secret from the environment (never printed, never written, never
        kept in the context, which Prefect sees as a task parameter)."""
        from ig_policies.master_secret import MasterSecretError, load_master_secret

        try:
            return load_master_secret()
        except MasterSecretError as exc:
            raise ConfigError(str(exc), hint="the data processor provides the master secret") from None


@dataclass(frozen=True)
class StageOutcome:
    """One stage's result as the flow reports it: counts and paths only, never data.

    ``result`` is the library function's own result, for a command to print from; it stays in the
    process (a flow task returns only the summary) and is None when the stage was skipped.
    """

    stage: str
    skipped: bool
    seconds: float
    summary: Mapping[str, Any]
    outputs: tuple[str, ...] = ()
    result: Any = field(default=None, repr=False, compare=False)
    #: Lines a person needs besides the counts (e.g. the first quarantined rows); never values.
    details: tuple[str, ...] = ()

    def line(self) -> str:
        what = "unchanged, skipped" if self.skipped else f"{self.seconds:.1f} s"
        counts = ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in self.summary.items() if isinstance(v, int)
        )
        return f"{self.stage}: {what}" + (f" ({counts})" if counts else "")


#: What a stage body returns: its summary, the paths it wrote, and the library result.
StageWork = tuple[Mapping[str, Any], Iterable[Path], Any]


def _files_under(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    excluded = [e.resolve() for e in exclude]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not any(p.resolve().is_relative_to(e) for e in excluded)
    )


def clear_dead_runs(workspace: Workspace) -> tuple[str, ...]:
    """Remove what runs that died left in the zones (staging folders, temporary writes); say so.

    Called as a stage begins, after its policy check (a refused person removes nothing). Returns
    the one line that reports it (also logged), or nothing when there was nothing to remove.
    """
    removed = remove_stale_staging(workspace)
    if not removed:
        return ()
    names = ", ".join(p.relative_to(workspace.root).as_posix() for p in removed)
    line = f"Removed {len(removed)} staging folder(s) left by runs that are no longer alive: {names}"
    logging.getLogger("ehl.workspace").warning(line)
    return (line,)


def stage_role(stage: str) -> Role:
    """The role a stage acts in: the analyses are researchers' work, the rest data processors'."""
    return Role.RESEARCHER if stage.startswith("analysis:") else Role.DATA_PROCESSOR


def _run(
    ctx: PipelineContext,
    stage: str,
    actor: str,
    inputs: Iterable[Path],
    params: Mapping[str, Any],
    run: Callable[[Any], StageWork],
) -> StageOutcome:
    """Skip if resuming and up to date; else run ``run(engine)`` and record it in the ledger."""
    ledger = StageLedger(ctx.workspace)
    started = time.perf_counter()
    engine = ctx.engine(actor=actor)  # every stage starts with the policy check, even a skipped one
    # the account must hold the stage's role before the stage reads its zones or its ledger
    engine.require(actor, stage_role(stage), stage)
    cleared = clear_dead_runs(ctx.workspace)
    plan = ledger.plan(stage, inputs, {**params, "policy_hash": engine.policy_hash})
    if ctx.resume and plan.up_to_date:
        return StageOutcome(
            stage, True, time.perf_counter() - started, ledger.summary(stage), details=cleared
        )
    summary, outputs, result = run(engine)
    outputs = [Path(p) for p in outputs]
    ledger.complete(plan, outputs, summary)
    return StageOutcome(
        stage,
        False,
        time.perf_counter() - started,
        dict(summary),
        tuple(str(p) for p in outputs),
        result,
        details=cleared,
    )


def _path_text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# ---- data processor stages -------------------------------------------------------------------


def run_validate(ctx: PipelineContext) -> StageOutcome:
    """Validate the extracts of ``settings.validation`` (default: all the policy permits)."""
    from linkage.dataset_config import load_dataset_configs
    from linkage.identifiable.validation import validate_extracts
    from linkage.identifiable.validation.stage import data_docs_dir

    ws, options = ctx.workspace, ctx.settings.validation
    configs = load_dataset_configs(options.datasets_dir)
    unknown = [name for name in options.inputs if name not in configs]
    if unknown:
        raise ConfigError(
            f"validation.inputs: {', '.join(unknown)} is not a dataset with a dataset config.",
            hint=f"name the dataset the file belongs to: {', '.join(configs)}",
        )
    inputs = [
        *_files_under(ws.landing, exclude=[ws.landing / "validated"]),
        *_files_under(options.datasets_dir or DATASET_CONFIGS),
        *options.inputs.values(),
    ]
    params = {
        "datasets": list(options.datasets) if options.datasets is not None else None,
        "inputs": {name: str(path) for name, path in sorted(options.inputs.items())},
        "datasets_dir": _path_text(options.datasets_dir),
    }

    def run(engine) -> StageWork:
        result = validate_extracts(
            ws,
            engine,
            engine.actor_for(Role.DATA_PROCESSOR),
            ctx.spark(),
            options.datasets,
            inputs=dict(options.inputs) or None,
            configs=configs,
        )
        summary = {
            "rows_in": result.rows_in,
            "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_in - result.rows_accepted,
        }
        return summary, [ws.landing / "validated", ws.quarantine, data_docs_dir(ws)], result

    outcome = _run(ctx, "validate", ctx.acting(Role.DATA_PROCESSOR), inputs, params, run)
    if outcome.result is None:
        return outcome
    from linkage.identifiable.validation import console_lines

    return dataclasses.replace(outcome, details=(*outcome.details, *console_lines(outcome.result)))


def run_pseudonymise(ctx: PipelineContext) -> StageOutcome:
    """Tokens and research pseudonyms for every validated extract (``settings.pseudonymisation``)."""
    from linkage.identifiable.pseudonymise import pseudonymise_extracts

    ws, options = ctx.workspace, ctx.settings.pseudonymisation
    inputs = [
        ws.landing / "validated",
        ws.reference / "postcode_lookup.csv",
        ws.landing / "health" / "opt_out.csv",
    ]

    def run(engine) -> StageWork:
        result = pseudonymise_extracts(
            ws,
            engine,
            engine.actor_for(Role.DATA_PROCESSOR),
            ctx.spark(),
            master_secret=ctx.master_secret(),
            key_version=options.key_version,
            today=ctx.today,
            bloom_settings=options.bloom,
        )
        summary = {"rows_in": result.rows_in, "rows_out": result.rows_out, "key_version": result.key_version}
        return summary, list(result.outputs.values()), result

    # the encoding parameters are part of what the stage computes: a change must re-run it
    params = {"bloom": options.bloom.metadata(), "key_version": options.key_version}
    return _run(ctx, "pseudonymise", ctx.acting(Role.DATA_PROCESSOR), inputs, params, run)


def run_link(ctx: PipelineContext) -> StageOutcome:
    """Link clients to patients (``settings.linkage``: config, model, backend) and write the report."""
    from linkage.link import link_records
    from linkage.link_backend import db_api_for_run
    from linkage.linkage_config import load_linkage_config

    ws, options = ctx.workspace, ctx.settings.linkage
    inputs = [ws.pseudonymised / "employment_support", ws.pseudonymised / "health_demographics"]
    inputs += [p for p in (options.config, options.model) if p is not None]
    params = {
        "backend": options.backend,
        "seed": options.seed,
        "config": _path_text(options.config),
        "model": _path_text(options.model),
    }

    def run(engine) -> StageWork:
        config = load_linkage_config(options.config)
        backend, db_api = db_api_for_run(
            ws.root,
            config,
            options.backend,
            options.duckdb_max_comparisons_records,
            spark_factory=ctx.spark,
            duckdb_memory_limit=options.duckdb_memory_limit,
        )
        result = link_records(
            ws,
            engine,
            engine.actor_for(Role.DATA_PROCESSOR),
            db_api,
            model_path=options.model,
            config=config,
            seed=options.seed,
            report=True,  # the report is staged and audited with the links it describes
        )
        report = result.report_path
        summary = {
            "clients": result.clients,
            "matched": result.matched,
            "ambiguous": result.ambiguous,
            "unmatched": result.unmatched,
            "comparisons": result.comparisons,
            "backend": backend,
        }
        outputs = [
            result.links_path,
            result.model_path,
            result.clerical_path,
            result.match_rates_path,
            report,
        ]
        return summary, outputs, result

    return _run(ctx, "link", ctx.acting(Role.DATA_PROCESSOR), inputs, params, run)


@dataclass(frozen=True)
class LinkReport:
    """The linkage report written from ``linked/`` and its plain-English verdict."""

    path: Path
    sentences: tuple[str, ...]


def run_link_report(ctx: PipelineContext) -> StageOutcome:
    """Write the linkage report from ``linked/`` again, as a data processor under the signed policy.

    ``linked/`` is a processors-only zone, so reading it is a governed step like any other: the
    policy is checked and the audit log records who wrote the report from which files.
    """
    import json

    import pandas as pd

    from linkage import quality

    ws = ctx.workspace
    started = time.perf_counter()
    engine = ctx.engine()
    actor = engine.actor_for(Role.DATA_PROCESSOR)
    engine.require(actor, Role.DATA_PROCESSOR, "link_report")  # before it looks into linked/
    cleared = clear_dead_runs(ws)
    summary_path, rates_path = ws.linked / "link_summary.json", ws.linked / "match_rates.parquet"
    for needed in (summary_path, rates_path):
        if not needed.exists():
            raise InputError(str(needed), "there is no linkage to report on", hint="run 'ehl link' first")
    with engine.step(actor, Role.DATA_PROCESSOR, "link_report", reads_linked_data=True) as step:
        step.inputs(summary_path, rates_path)
        path = quality.write_report(ws, place=step.stage)
        sentences = quality.verdict(json.loads(summary_path.read_text()), pd.read_parquet(rates_path))
    report = LinkReport(path, tuple(sentences))
    elapsed = time.perf_counter() - started
    return StageOutcome("link_report", False, elapsed, {}, (str(path),), report, details=cleared)


def run_link_evaluate(ctx: PipelineContext) -> StageOutcome:
    """Precision, recall and F1 of ``linked/`` against ``truth/`` (synthetic workspaces only)."""
    from linkage import quality
    from linkage.linkage_config import load_linkage_config

    ws = ctx.workspace
    started = time.perf_counter()
    engine = ctx.engine()
    actor = engine.actor_for(Role.DATA_PROCESSOR)
    engine.require(actor, Role.DATA_PROCESSOR, "link_evaluate")  # before it looks into truth/ or linked/
    truth = ws.truth / "record_links.parquet"
    if not truth.exists():
        raise InputError(
            str(truth),
            "this workspace has no ground truth, so linkage accuracy cannot be measured",
            hint="'ehl link evaluate' works only on synthetic workspaces made by 'ehl synth'",
        )
    cleared = clear_dead_runs(ws)
    policy = engine.policy
    key = ctx.master_secret().derive("research-pseudonym", policy.project.id, policy.linkage.key_version)
    with engine.step(actor, Role.DATA_PROCESSOR, "link_evaluate", reads_linked_data=True) as step:
        from linkage.identifiable.truth import pseudonymised_truth

        truth_pairs = pseudonymised_truth(ws, key, quality.linked_programmes(ws))
        config = load_linkage_config(ctx.settings.linkage.config)
        result = quality.evaluate(ws, truth_pairs, config, place=step.stage)
        step.inputs(ws.linked / "links.parquet")
        step.detail(
            precision=round(result.precision, 4), recall=round(result.recall, 4), f1=round(result.f1, 4)
        )
    summary = {"precision": result.precision, "recall": result.recall, "f1": result.f1}
    outputs = (str(result.report_path),) if result.report_path is not None else ()
    elapsed = time.perf_counter() - started
    return StageOutcome("link_evaluate", False, elapsed, summary, outputs, result, details=cleared)


def run_research_dataset(ctx: PipelineContext) -> StageOutcome:
    """The analysis tables (``settings.research_dataset``: panel window, comparison pool, study dates)."""
    from analysis.research_dataset import build_research_dataset

    ws, options = ctx.workspace, ctx.settings.research_dataset
    inputs = [
        ws.linked / "links.parquet",
        *(
            ws.pseudonymised / name
            for name in ("employment_support", "health_demographics", "health_conditions", "health_activity")
        ),
        ws.reference / "lsoa_lookup.csv",
        ws.linked / "match_rates.parquet",
    ]
    params = options.model_dump()

    def run(engine) -> StageWork:
        result = build_research_dataset(ws, engine, engine.actor_for(Role.DATA_PROCESSOR), **params)
        summary = {
            "enrolments": result.n_enrolments,
            "linked": result.n_linked,
            "panel_people": result.n_panel_people,
            "panel_months": result.n_panel_months,
        }
        outputs = [
            result.clients_path,
            result.panel_path,
            result.comparison_people_path,
            result.comparison_pool_path,
            *([result.match_rates_path] if result.match_rates_path is not None else []),
        ]
        return summary, outputs, result

    return _run(ctx, "research_dataset", ctx.acting(Role.DATA_PROCESSOR), inputs, params, run)


# ---- researcher stages -----------------------------------------------------------------------


def run_analysis(ctx: PipelineContext, name: str | Analysis) -> StageOutcome:
    """Run analysis ``name`` of the registry with its options (``settings.analyses.<name>``)."""
    entry = registered(name)
    options = ctx.settings.analysis_options(entry.analysis)
    ws = ctx.workspace
    inputs = [
        ws.analysis / "clients.parquet",
        ws.analysis / "panel.parquet",
        ws.analysis / "comparison_people.parquet",
        ws.analysis / "comparison_pool.parquet",
        ws.analysis / "match_rates.parquet",
        *_files_under(ws.reference),
        *entry.input_files(options),
    ]

    def run(engine) -> StageWork:
        analyse = entry.run_function()
        result = analyse(ws, engine, engine.actor_for(Role.RESEARCHER), **options.keyword_arguments())
        statuses = [status for _, _, status in result.requests]
        summary = {
            "outputs_requested": len(result.requests),
            "outputs_blocked": sum(s == "blocked" for s in statuses),
        }
        return summary, list(result.pending), result

    params = options.model_dump(mode="json")
    return _run(ctx, f"analysis:{entry.analysis.value}", ctx.acting(Role.RESEARCHER), inputs, params, run)


def permitted_analyses(ctx: PipelineContext) -> list[str]:
    """The analyses the policy permits, in the registry's pipeline order."""
    permitted = {str(getattr(a, "value", a)) for a in ctx.engine().policy.analyses}
    return [a.value for a in PIPELINE_ORDER if a.value in permitted]
