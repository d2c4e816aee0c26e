"""Training the model (u by random sampling, the prior, m by EM) and counting blocked comparisons.

u probabilities are counted on a seeded random sample drawn by pseudonym, so both backends draw
the same records and the trained model is the same file on DuckDB and Spark.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkage.linkage_config import LinkageConfig
from linkage.splink_model.comparisons import (
    DETERMINISTIC_RECALL,
    DETERMINISTIC_RULES,
    EM_BLOCKING_RULES,
    model_settings,
)
from linkage.splink_model.model_file import normalised_model
from linkage.splink_model.tables import hex_sample_filter, load_table, table_rows

#: No trained m or u probability goes below this (see ``smoothed``).
PROBABILITY_FLOOR = 1e-5


@dataclass(frozen=True)
class BlockingCount:
    rule: str
    comparisons: int
    cumulative: int


def count_comparisons(linker: Any) -> list[BlockingCount]:
    """Exact number of comparisons each prediction blocking rule adds (reported before predicting)."""
    records = linker.blocking_analysis.count_comparisons_from_blocking_rules(record_sample_proportion=1.0)
    return [
        BlockingCount(
            rule=str(r["blocking_rule"]),
            comparisons=int(r["marginal_comparison_count"]),
            cumulative=int(r["cumulative_comparison_count"]),
        )
        for r in records
    ]


def count_blocked_pairs(linker: Any, blocked: Any) -> list[BlockingCount]:
    """Comparisons per prediction blocking rule, counted on the already blocked pairs.

    Each pair carries the index of the first rule that generated it (Splink's ``match_key``),
    so these are the same marginal counts as ``count_comparisons`` without a second blocking
    pass over the data.
    """
    rows = linker.misc.query_sql(
        f"select match_key, count(*) as n from {blocked.physical_name} group by match_key",
        output_type="pandas",
    )
    per_rule = {int(k): int(n) for k, n in zip(rows["match_key"], rows["n"], strict=True)}
    rules = linker._settings_obj._blocking_rules_to_generate_predictions
    out, cumulative = [], 0
    for index, rule in enumerate(rules):
        marginal = per_rule.get(index, 0)
        cumulative += marginal
        out.append(
            BlockingCount(rule=str(rule.blocking_rule_sql), comparisons=marginal, cumulative=cumulative)
        )
    return out


def train_model(
    db_api: Any,
    root: Path,
    config: LinkageConfig,
    left: Any,
    right: Any,
    *,
    seed: int,
    comparisons: list[dict[str, Any]] | None = None,
    bloom_words: int | None = None,
) -> dict[str, Any]:
    """Estimate the model and return it as a (normalised) settings dictionary.

    u probabilities are counted on every pair of a seeded random sample of both tables (sampled
    by pseudonym so both backends draw the same records); the prior comes from near-certain
    deterministic rules; m probabilities come from EM over ``EM_BLOCKING_RULES``.
    """
    from splink import Linker

    settings = model_settings(config, comparisons=comparisons)
    n_left = table_rows(root, config.left)
    n_right = table_rows(root, config.right)
    fraction = min(1.0, (config.u_max_pairs / max(1, n_left * n_right)) ** 0.5)
    sample_left = load_table(
        db_api,
        root,
        config.left,
        "u_sample_left",
        where=hex_sample_filter(config.left.id_column, fraction, seed),
        bloom_words=bloom_words,
    )
    sample_right = load_table(
        db_api,
        root,
        config.right,
        "u_sample_right",
        where=hex_sample_filter(config.right.id_column, fraction, seed),
        bloom_words=bloom_words,
    )
    u_linker = Linker([sample_left, sample_right], copy.deepcopy(settings), log_level=None)
    # every pair of the two samples, in one chunk: no engine-specific hashing decides anything
    u_linker.training.estimate_u_using_random_sampling(
        max_pairs=float(n_left * n_right) * 4 + 1, seed=seed, min_count_per_level=None, num_chunks=1
    )
    with_u = u_linker.misc.save_model_to_json()
    for sample in (sample_left, sample_right):
        sample.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)

    trained = new_linker(left, right, with_u)
    trained.training.estimate_probability_two_random_records_match(
        list(DETERMINISTIC_RULES), recall=DETERMINISTIC_RECALL
    )
    for rule in EM_BLOCKING_RULES:
        # EM iterates on the counts of each agreement pattern (a few hundred rows) instead of
        # every blocked pair: one cheap query per iteration, which matters most on Spark.
        # Term-frequency adjustments still apply when scoring.
        trained.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    return normalised_model(smoothed(trained.misc.save_model_to_json()))


def smoothed(model: dict[str, Any], floor: float = PROBABILITY_FLOOR) -> dict[str, Any]:
    """Raise every m and u probability to at least ``floor`` and renormalise each comparison.

    EM gives an m of practically zero to a level it never saw among matches (an NHS number
    mistyped on one form in a small extract), which would veto a pair on any other evidence
    (-60 bits). The floor caps one disagreement's penalty at about -17 bits.
    """
    out = copy.deepcopy(model)
    for comparison in out["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for key in ("m_probability", "u_probability"):
            values = [max(float(lv.get(key) or 0.0), floor) for lv in levels]
            total = sum(values)
            for lv, value in zip(levels, values, strict=True):
                lv[key] = value / total
    return out


def new_linker(left: Any, right: Any, model: dict[str, Any]) -> Any:
    from splink import Linker

    return Linker([left, right], copy.deepcopy(model), log_level=None)
