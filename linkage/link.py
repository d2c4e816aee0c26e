"""The link stage: train (or re-use) the model, score candidate pairs, decide, cluster, write.

The database API is the caller's (DuckDB or Spark, see ``linkage.link_backend``). Everything
after scoring runs in pandas on the scored candidate pairs (bounded by the blocking rules), so
the decision rules are the same code on both backends and the two give the same links.

Decision, per client: the best-scoring patient is the link if its match probability reaches the
policy threshold; a second candidate within ``ambiguity_margin_bits`` of the best marks the link
``ambiguous`` (it stays in the table, flagged, and goes to clerical review). Clients whose best
candidate is the same patient are duplicate enrolments of one person and share a
``client_cluster``. Only rows with ``match_status == "matched"`` should be treated as linked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ig_policies.errors import InputError
from ig_policies.workspace import Workspace, write_json, write_parquet
from linkage import splink_model
from linkage.link_backend import linkage_query_settings
from linkage.linkage_config import LinkageConfig, default_linkage_config
from linkage.splink_model import LEFT_NAME, RIGHT_NAME, BlockingCount

DEFAULT_MATCH_THRESHOLD = 0.9
DEFAULT_CLERICAL_BAND = (0.5, 0.9)

MATCHED, AMBIGUOUS, UNMATCHED = "matched", "ambiguous", "unmatched"
LINK_COLUMNS = (
    "client_pseudonym",
    "programme",
    "patient_pseudonym",
    "match_probability",
    "match_weight",
    "match_status",
    "client_cluster",
)


@dataclass(frozen=True)
class LinkOutcome:
    """Everything the stage computed, before anything is written."""

    links: pd.DataFrame
    clerical: pd.DataFrame
    candidates: pd.DataFrame
    model: dict[str, Any]
    blocking_counts: list[BlockingCount]
    timings: dict[str, float]
    trained: bool


@dataclass(frozen=True)
class LinkResult:
    """What ``link_records`` wrote, and the headline counts."""

    links_path: Path
    model_path: Path
    clerical_path: Path
    match_rates_path: Path
    candidates_path: Path
    summary_path: Path
    model_sha256: str
    clients: int
    matched: int
    ambiguous: int
    unmatched: int
    comparisons: int
    trained: bool
    timings: dict[str, float] = field(default_factory=dict)
    #: ``reports/linkage/report.md`` when the step wrote the report too (``link_records(report=True)``)
    report_path: Path | None = None


# --------------------------------------------------------------------------------------------
# Scoring


def score_candidates(
    db_api: Any,
    root: Path,
    config: LinkageConfig,
    *,
    model: dict[str, Any] | None = None,
    seed: int = 42,
    comparisons: list[dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], list[BlockingCount], dict[str, float]]:
    """Train (unless ``model`` is given), count comparisons per blocking rule, and score pairs.

    Returns candidate pairs at or above ``config.prediction_floor`` with columns
    ``client_pseudonym``, ``patient_pseudonym``, ``match_weight``, ``match_probability`` and one
    ``gamma_<comparison>`` column per comparison (the agreeing level, not any value).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    words = splink_model.bloom_words(root, config)
    if model is not None and words is None and splink_model.uses_bloom(model):
        raise InputError(
            str(root / config.left.path),
            "the model compares Bloom-filter encodings but the tables do not both carry them",
            hint="pseudonymise again (it writes the encodings), or link with a token-only model",
        )
    if model is None and comparisons is None:
        comparisons = splink_model.default_comparisons(words)
    left = splink_model.load_table(db_api, root, config.left, LEFT_NAME, bloom_words=words)
    right = splink_model.load_table(db_api, root, config.right, RIGHT_NAME, bloom_words=words)
    timings["load"] = time.perf_counter() - t0

    if model is None:
        t0 = time.perf_counter()
        model = splink_model.train_model(
            db_api, root, config, left, right, seed=seed, comparisons=comparisons, bloom_words=words
        )
        timings["training"] = time.perf_counter() - t0
    linker = splink_model.new_linker(left, right, model)

    # Comparisons per blocking rule are reported before anything is scored. On Spark every pass
    # over the data is costly, so the candidate pairs are blocked once, counted, and scored from
    # Splink's cache (100k x 1M: 386 s -> 194 s for counting and scoring). DuckDB counts without
    # materialising the pairs and streams blocking into scoring: 10.7 s there against 14.9 s.
    t0 = time.perf_counter()
    blocked = None
    if splink_model.sql_dialect(db_api) == "spark":
        blocked = linker.inference.compute_blocked_pairs_for_predict()
        counts = splink_model.count_blocked_pairs(linker, blocked)
    else:
        counts = splink_model.count_comparisons(linker)
    timings["blocking_count"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=config.prediction_floor)
    if blocked is not None:
        blocked.drop_table_from_database_and_remove_from_cache()
    keep = ["source_dataset_l", "unique_id_l", "unique_id_r", "match_weight", "match_probability"]
    keep += [f"gamma_{name}" for name in splink_model.comparison_names(model)]
    scored = linker.misc.query_sql(
        f"select {', '.join(keep)} from {predictions.physical_name}", output_type="pandas"
    )
    predictions.drop_table_from_database_and_remove_from_cache()
    timings["predict"] = time.perf_counter() - t0
    return _orient(scored, splink_model.comparison_names(model)), model, counts, timings


def _orient(scored: pd.DataFrame, comparisons: Sequence[str]) -> pd.DataFrame:
    """Pairs as (client, patient) whichever side Splink put each record on."""
    gammas = [f"gamma_{name}" for name in comparisons]
    if scored.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="string") for c in ("client_pseudonym", "patient_pseudonym")}
            | {"match_weight": pd.Series(dtype="float64"), "match_probability": pd.Series(dtype="float64")}
            | {g: pd.Series(dtype="int64") for g in gammas}
        )
    left_on_l = scored["source_dataset_l"].astype(str).eq(LEFT_NAME).to_numpy()
    out = pd.DataFrame(
        {
            "client_pseudonym": scored["unique_id_l"].where(left_on_l, scored["unique_id_r"]).astype(str),
            "patient_pseudonym": scored["unique_id_r"].where(left_on_l, scored["unique_id_l"]).astype(str),
            "match_weight": scored["match_weight"].astype("float64"),
            "match_probability": scored["match_probability"].astype("float64"),
        }
    )
    for g in gammas:
        out[g] = scored[g].astype("int64")
    return out.sort_values(
        ["client_pseudonym", "match_weight", "patient_pseudonym"],
        ascending=[True, False, True],
        kind="mergesort",
    ).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Decision


def decide(
    clients: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    match_threshold: float,
    clerical_band: tuple[float, float],
    ambiguity_margin_bits: float = 1.0,
    level_labels: Mapping[str, Mapping[int, str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One link per client (best candidate), statuses, duplicate-enrolment clusters, clerical rows.

    ``clients`` has ``client_pseudonym`` (and any carried columns such as ``programme``);
    ``candidates`` is the output of ``score_candidates``. Returns ``(links, clerical)``.
    """
    ranked = candidates.sort_values(
        ["client_pseudonym", "match_weight", "patient_pseudonym"],
        ascending=[True, False, True],
        kind="mergesort",
    ).copy()
    ranked["rank"] = ranked.groupby("client_pseudonym").cumcount() + 1
    best = ranked[ranked["rank"] == 1].set_index("client_pseudonym")
    second = ranked[ranked["rank"] == 2].set_index("client_pseudonym")["match_weight"]

    links = clients.copy()
    links["client_pseudonym"] = links["client_pseudonym"].astype(str)
    ids = links["client_pseudonym"]
    best_patient = ids.map(best["patient_pseudonym"])
    links["match_probability"] = ids.map(best["match_probability"]).astype("float64")
    links["match_weight"] = ids.map(best["match_weight"]).astype("float64")
    second_weight = ids.map(second).astype("float64")

    above = links["match_probability"].ge(match_threshold).fillna(False).to_numpy(dtype=bool)
    near_tie = (
        (second_weight >= links["match_weight"] - ambiguity_margin_bits).fillna(False).to_numpy(dtype=bool)
    )
    status = pd.Series(UNMATCHED, index=links.index)
    status[above] = MATCHED
    status[above & near_tie] = AMBIGUOUS
    links["match_status"] = status
    links["patient_pseudonym"] = best_patient.where(pd.Series(above, index=links.index))
    links["client_cluster"] = _clusters(links)
    for column in LINK_COLUMNS:
        if column not in links:
            links[column] = None
    links = links[list(LINK_COLUMNS) + [c for c in links.columns if c not in LINK_COLUMNS]]
    links = links.sort_values("client_pseudonym", kind="mergesort").reset_index(drop=True)

    low, high = clerical_band
    grey = links["match_probability"].ge(low) & links["match_probability"].lt(high)
    review = set(links.loc[grey | links["match_status"].eq(AMBIGUOUS), "client_pseudonym"])
    clerical = ranked[ranked["client_pseudonym"].isin(review) & (ranked["rank"] <= 3)]
    clerical = clerical[(clerical["rank"] == 1) | clerical["match_probability"].ge(low)].copy()
    clerical["reason"] = clerical["client_pseudonym"].map(
        links.set_index("client_pseudonym")["match_status"].map(
            lambda s: (
                "near tie between candidates" if s == AMBIGUOUS else "probability in the clerical review band"
            )
        )
    )
    clerical = _label_levels(clerical, level_labels or {})
    return links, clerical.reset_index(drop=True)


def _clusters(links: pd.DataFrame) -> pd.Series:
    """Clients sharing a linked patient are one person enrolled more than once: one cluster each."""
    cluster = links["client_pseudonym"].copy()
    linked = links.dropna(subset=["patient_pseudonym"])
    first = linked.groupby("patient_pseudonym")["client_pseudonym"].transform("min")
    cluster.loc[linked.index] = first
    return "K" + cluster.str[1:]


def _label_levels(pairs: pd.DataFrame, labels: Mapping[str, Mapping[int, str]]) -> pd.DataFrame:
    """Replace ``gamma_<comparison>`` codes by level labels ("exact", "day and month transposed")."""
    out = pairs.copy()
    for column in [c for c in out.columns if c.startswith("gamma_")]:
        name = column[len("gamma_") :]
        mapping = labels.get(name, {})
        out[name] = out[column].map(lambda g, m=mapping: m.get(int(g), str(g)))
        out = out.drop(columns=column)
    return out


# --------------------------------------------------------------------------------------------
# The stage


def read_clients(root: Path, config: LinkageConfig) -> pd.DataFrame:
    """The left table's identifiers and carried columns (no tokens)."""
    columns = [config.left.id_column, *config.left.carry]
    present = set(splink_model.table_columns(root, config.left))
    missing = [c for c in columns if c not in present]
    if missing:
        raise InputError(
            str(root / config.left.path), "a column the linkage config carries is missing", column=missing[0]
        )
    clients = pd.read_parquet(root / config.left.path, columns=columns)
    return clients.rename(columns={config.left.id_column: "client_pseudonym"})


def link_tables(
    db_api: Any,
    root: Path,
    config: LinkageConfig | None = None,
    *,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    clerical_band: tuple[float, float] = DEFAULT_CLERICAL_BAND,
    model: dict[str, Any] | None = None,
    seed: int = 42,
    comparisons: list[dict[str, Any]] | None = None,
) -> LinkOutcome:
    """Link the two tables of ``config`` under ``root`` and decide; writes nothing."""
    config = config or default_linkage_config()
    clients = read_clients(root, config)
    trained = model is None
    with linkage_query_settings(db_api):
        candidates, model, counts, timings = score_candidates(
            db_api, root, config, model=model, seed=seed, comparisons=comparisons
        )
    t0 = time.perf_counter()
    links, clerical = decide(
        clients,
        candidates,
        match_threshold=match_threshold,
        clerical_band=clerical_band,
        ambiguity_margin_bits=config.ambiguity_margin_bits,
        level_labels=splink_model.level_labels(model),
    )
    timings["decide_and_cluster"] = time.perf_counter() - t0
    return LinkOutcome(
        links=links,
        clerical=clerical,
        candidates=candidates,
        model=model,
        blocking_counts=counts,
        timings=timings,
        trained=trained,
    )


def write_linked(
    workspace: Workspace,
    outcome: LinkOutcome,
    config: LinkageConfig,
    place: Callable[[Path], Path] = lambda final: final,
) -> LinkResult:
    """Write the linked zone atomically: links, model, clerical review, match rates, summary.

    ``place(final)`` says where each file is written (the audited step's ``stage``: put in place
    after its audit entry); the result names the final paths.
    """
    from linkage import quality

    linked = workspace.linked
    links_path = linked / "links.parquet"
    write_parquet(outcome.links, place(links_path))
    model_path = linked / "model.json"
    model_sha = splink_model.save_model(outcome.model, place(model_path))
    clerical_path = linked / "clerical_review.parquet"
    write_parquet(outcome.clerical, place(clerical_path))
    candidates_path = linked / "candidate_pairs.parquet"
    write_parquet(outcome.candidates, place(candidates_path))
    groups = quality.client_groups(workspace, config)
    rates = quality.match_rates(outcome.links, groups)
    match_rates_path = linked / "match_rates.parquet"
    write_parquet(rates, place(match_rates_path))
    status = outcome.links["match_status"].value_counts()
    comparisons = outcome.blocking_counts[-1].cumulative if outcome.blocking_counts else 0
    summary = {
        "model_sha256": model_sha,
        "trained": outcome.trained,
        "clients": len(outcome.links),
        "matched": int(status.get(MATCHED, 0)),
        "ambiguous": int(status.get(AMBIGUOUS, 0)),
        "unmatched": int(status.get(UNMATCHED, 0)),
        "clerical_review_pairs": len(outcome.clerical),
        "comparisons": comparisons,
        "blocking_rules": [
            {"rule": c.rule, "comparisons": c.comparisons, "cumulative": c.cumulative}
            for c in outcome.blocking_counts
        ],
        "timings_seconds": {k: round(v, 3) for k, v in outcome.timings.items()},
    }
    summary_path = linked / "link_summary.json"
    write_json(place(summary_path), summary)
    return LinkResult(
        links_path=links_path,
        model_path=model_path,
        clerical_path=clerical_path,
        match_rates_path=match_rates_path,
        candidates_path=candidates_path,
        summary_path=summary_path,
        model_sha256=model_sha,
        clients=summary["clients"],
        matched=summary["matched"],
        ambiguous=summary["ambiguous"],
        unmatched=summary["unmatched"],
        comparisons=comparisons,
        trained=outcome.trained,
        timings=dict(outcome.timings),
    )


def link_records(
    workspace: Workspace,
    engine: Any,
    actor: str,
    db_api: Any,
    *,
    model_path: str | Path | None = None,
    config: LinkageConfig | None = None,
    seed: int = 42,
    report: bool = False,
) -> LinkResult:
    """The link stage, through the policy engine (audited): link clients to patients, write ``linked/``.

    The threshold and clerical review band come from the signed policy. With ``model_path`` an
    approved model is re-used as it is (no training); its hash is recorded either way. With
    ``report`` the linkage report (``reports/linkage/``) is written in the same step, from the
    staged tables, and put in place with them.
    """
    from ig_policies.policy import DatasetKind, Role

    config = config or default_linkage_config()
    rules = engine.policy.linkage
    datasets = [DatasetKind.EMPLOYMENT_SUPPORT.value, DatasetKind.HEALTH_DEMOGRAPHICS.value]
    root = workspace.root
    with engine.step(actor, Role.DATA_PROCESSOR, "link", datasets=datasets, reads_linked_data=True) as step:
        model = splink_model.load_model(model_path) if model_path is not None else None
        inputs = [root / config.left.path, root / config.right.path]
        if model_path is not None:
            inputs.append(Path(model_path))
        step.inputs(*inputs)
        outcome = link_tables(
            db_api,
            root,
            config,
            match_threshold=rules.match_threshold,
            clerical_band=tuple(rules.clerical_review_band),
            model=model,
            seed=seed,
        )
        result = write_linked(workspace, outcome, config, place=step.stage)
        if report:
            from linkage import quality

            written = quality.write_report(workspace, place=step.stage, read=step.staged)
            result = dataclasses.replace(result, report_path=written)
        step.counts(rows_in=result.clients, rows_accepted=result.matched)
        step.detail(
            model_sha256=result.model_sha256,
            model_trained=result.trained,
            ambiguous=result.ambiguous,
            unmatched=result.unmatched,
            comparisons=result.comparisons,
            match_threshold=rules.match_threshold,
        )
    return result
