"""The pipeline's stages as plain functions: what each reads, what it writes, how to run it.

Each ``run_<stage>`` takes a :class:`PipelineContext`, skips the stage when the stage ledger says
its inputs and outputs are unchanged since it last completed, and otherwise opens the policy engine
as the right user and calls the one library function of the stage. The Prefect flows in
``flows/pipeline.py`` wrap these functions as tasks; keeping them free of Prefect means they are
tested directly, and the flows stay a list of stages.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.settings import Settings
from flows.stage_ledger import StageLedger
from ig_policies.workspace import Workspace

#: The analyses the approved flow runs, in order, when the policy permits them.
ANALYSES: tuple[str, ...] = (
    "natural_experiment",
    "equity_audit",
    "success_factors",
    "concordance",
    "area_profile",
)
DATASET_CONFIGS = Path(__file__).resolve().parent.parent / "linkage" / "datasets"


@dataclass
class PipelineContext:
    """Everything a stage needs besides data: where, under which policy, as whom, how."""

    workspace: Workspace
    policy_path: Path
    settings: Settings = field(default_factory=Settings)
    processor: str = "data-processor"
    researcher: str = "researcher"
    trust_store: Path | None = None
    today: dt.date | None = None
    _spark: Any = field(default=None, repr=False)

    def engine(self, actor: str):
        from ig_policies.engine import PolicyEngine

        return PolicyEngine.load(
            self.policy_path, self.workspace, trust_store=self.trust_store, today=self.today, actor=actor
        )

    def spark(self):
        """The pipeline's Spark session, started on first use (stages that need none never pay for it)."""
        if self._spark is None:
            from flows.spark_session import build_spark_session

            self._spark = build_spark_session(self.settings.spark)
        return self._spark


@dataclass(frozen=True)
class StageOutcome:
    """One stage's result as the flow reports it: counts and paths only, never data."""

    stage: str
    skipped: bool
    seconds: float
    summary: Mapping[str, Any]
    outputs: tuple[str, ...] = ()

    def line(self) -> str:
        what = "unchanged, skipped" if self.skipped else f"{self.seconds:.1f} s"
        counts = ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in self.summary.items() if isinstance(v, int)
        )
        return f"{self.stage}: {what}" + (f" ({counts})" if counts else "")


def _files_under(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    excluded = [e.resolve() for e in exclude]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not any(p.resolve().is_relative_to(e) for e in excluded)
    )


def _run(
    ctx: PipelineContext,
    stage: str,
    actor: str,
    inputs: Iterable[Path],
    params: Mapping[str, Any],
    run: Callable[[Any], tuple[Mapping[str, Any], Iterable[Path]]],
) -> StageOutcome:
    """Skip if up to date; else run ``run(engine) -> (summary, outputs)`` and record it in the ledger."""
    ledger = StageLedger(ctx.workspace)
    started = time.perf_counter()
    engine = ctx.engine(actor)  # every stage starts with the policy check, even a skipped one
    plan = ledger.plan(stage, inputs, {**params, "policy_hash": engine.policy_hash})
    if plan.up_to_date:
        return StageOutcome(stage, True, time.perf_counter() - started, ledger.summary(stage))
    summary, outputs = run(engine)
    outputs = [Path(p) for p in outputs]
    ledger.complete(plan, outputs, summary)
    return StageOutcome(
        stage, False, time.perf_counter() - started, dict(summary), tuple(str(p) for p in outputs)
    )


# ---- data processor stages -------------------------------------------------------------------


def run_validate(ctx: PipelineContext) -> StageOutcome:
    from linkage.identifiable.validation import validate_extracts
    from linkage.identifiable.validation.stage import data_docs_dir

    ws = ctx.workspace
    inputs = [*_files_under(ws.landing, exclude=[ws.landing / "validated"]), *_files_under(DATASET_CONFIGS)]

    def run(engine):
        result = validate_extracts(ws, engine, ctx.processor, ctx.spark())
        summary = {
            "rows_in": result.rows_in,
            "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_in - result.rows_accepted,
        }
        return summary, [ws.landing / "validated", ws.quarantine, data_docs_dir(ws)]

    return _run(ctx, "validate", ctx.processor, inputs, {}, run)


def run_pseudonymise(ctx: PipelineContext) -> StageOutcome:
    from linkage.identifiable.pseudonymise import pseudonymise_extracts

    ws = ctx.workspace
    inputs = [
        ws.landing / "validated",
        ws.reference / "postcode_lookup.csv",
        ws.landing / "health" / "opt_out.csv",
    ]

    def run(engine):
        result = pseudonymise_extracts(
            ws,
            engine,
            ctx.processor,
            ctx.spark(),
            today=ctx.today,
            bloom_settings=ctx.settings.pseudonymisation.bloom,
        )
        summary = {"rows_in": result.rows_in, "rows_out": result.rows_out, "key_version": result.key_version}
        return summary, list(result.outputs.values())

    # the encoding parameters are part of what the stage computes: a change must re-run it
    params = {"bloom": ctx.settings.pseudonymisation.bloom.metadata()}
    return _run(ctx, "pseudonymise", ctx.processor, inputs, params, run)


def run_link(ctx: PipelineContext, model_path: Path | None = None) -> StageOutcome:
    from linkage.link import link_records
    from linkage.link_backend import db_api_for_run
    from linkage.linkage_config import load_linkage_config
    from linkage.quality import write_report

    ws = ctx.workspace
    inputs = [ws.pseudonymised / "employment_support", ws.pseudonymised / "health_demographics"]
    if model_path is not None:
        inputs.append(Path(model_path))
    settings = ctx.settings.linkage

    def run(engine):
        config = load_linkage_config(None)
        backend, db_api = db_api_for_run(
            ws.root,
            config,
            settings.backend,
            settings.duckdb_max_comparisons_records,
            spark_factory=ctx.spark,
            duckdb_memory_limit=settings.duckdb_memory_limit,
        )
        result = link_records(
            ws, engine, ctx.processor, db_api, model_path=model_path, config=config, seed=settings.seed
        )
        report = write_report(ws)
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
        return summary, outputs

    return _run(ctx, "link", ctx.processor, inputs, {"backend": settings.backend, "seed": settings.seed}, run)


def run_research_dataset(ctx: PipelineContext) -> StageOutcome:
    from analysis.research_dataset import build_research_dataset

    ws = ctx.workspace
    inputs = [
        ws.linked / "links.parquet",
        *(
            ws.pseudonymised / name
            for name in ("employment_support", "health_demographics", "health_conditions", "health_activity")
        ),
        ws.reference / "lsoa_lookup.csv",
    ]

    def run(engine):
        result = build_research_dataset(ws, engine, ctx.processor)
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
        ]
        return summary, outputs

    return _run(ctx, "research_dataset", ctx.processor, inputs, {}, run)


# ---- researcher stages -----------------------------------------------------------------------


def _analysis_function(name: str) -> Callable[..., Any]:
    if name == "natural_experiment":
        from analysis.natural_experiment import run_natural_experiment

        return run_natural_experiment
    if name == "equity_audit":
        from analysis.equity import run_equity_audit

        return run_equity_audit
    if name == "success_factors":
        from analysis.success import run_success_factors

        return run_success_factors
    if name == "concordance":
        from analysis.concordance import run_concordance

        return run_concordance
    if name == "area_profile":
        from analysis.area_profile import run_area_profile

        return run_area_profile
    raise ValueError(f"unknown analysis {name!r}; analyses are: {', '.join(ANALYSES)}")


def run_analysis(ctx: PipelineContext, name: str) -> StageOutcome:
    ws = ctx.workspace
    analyse = _analysis_function(name)
    inputs = [
        ws.analysis / "clients.parquet",
        ws.analysis / "panel.parquet",
        ws.analysis / "comparison_people.parquet",
        ws.analysis / "comparison_pool.parquet",
        ws.linked / "match_rates.parquet",
        *_files_under(ws.reference),
    ]

    def run(engine):
        result = analyse(ws, engine, ctx.researcher)
        statuses = [status for _, _, status in result.requests]
        summary = {
            "outputs_requested": len(result.requests),
            "outputs_blocked": sum(s == "blocked" for s in statuses),
        }
        return summary, list(result.pending)

    return _run(ctx, f"analysis:{name}", ctx.researcher, inputs, {}, run)


def permitted_analyses(ctx: PipelineContext) -> list[str]:
    """The analyses of ``ANALYSES`` that the policy permits, in pipeline order."""
    permitted = {str(getattr(a, "value", a)) for a in ctx.engine(ctx.researcher).policy.analyses}
    return [a for a in ANALYSES if a in permitted]
