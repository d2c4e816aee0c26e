"""The Splink model for linking on matching tokens, in four parts along its seams.

* ``comparisons``: what the model compares (exact-token levels, Dice levels on Bloom encodings),
  the blocking rules and the Splink settings;
* ``tables``: reading the two pseudonymised tables into the backend (identifier and tokens only);
* ``training``: u by random sampling, the prior from deterministic rules, m by EM;
* ``model_file``: the trained model normalised, saved, hashed and loaded again.

The same model JSON runs on DuckDB or Spark. The database API (``DuckDBAPI`` or ``SparkAPI``) is
always a parameter: nothing here builds one, so tests run the model on DuckDB in seconds and
production runs it on the cluster. The names below are the public API; callers use
``splink_model.<name>`` and need not know which part holds it.
"""

from linkage.splink_model.comparisons import (
    DETERMINISTIC_RECALL,
    DETERMINISTIC_RULES,
    EM_BLOCKING_RULES,
    PREDICTION_BLOCKING_RULES,
    UNIQUE_ID,
    Comparison,
    comparison_names,
    default_comparisons,
    level_labels,
    model_settings,
    token_comparisons,
    uses_bloom,
    with_dice_levels,
)
from linkage.splink_model.model_file import (
    MODEL_SIGNIFICANT_DIGITS,
    load_model,
    model_hash,
    model_json,
    normalised_model,
    save_model,
)
from linkage.splink_model.tables import (
    LEFT_NAME,
    RIGHT_NAME,
    TOKEN_PREFIX_CHARS,
    bloom_words,
    hex_sample_filter,
    load_table,
    sql_dialect,
    table_columns,
    table_rows,
)
from linkage.splink_model.training import (
    PROBABILITY_FLOOR,
    BlockingCount,
    count_blocked_pairs,
    count_comparisons,
    new_linker,
    smoothed,
    train_model,
)

__all__ = [
    "DETERMINISTIC_RECALL",
    "DETERMINISTIC_RULES",
    "EM_BLOCKING_RULES",
    "LEFT_NAME",
    "MODEL_SIGNIFICANT_DIGITS",
    "PREDICTION_BLOCKING_RULES",
    "PROBABILITY_FLOOR",
    "RIGHT_NAME",
    "TOKEN_PREFIX_CHARS",
    "UNIQUE_ID",
    "BlockingCount",
    "Comparison",
    "bloom_words",
    "comparison_names",
    "count_blocked_pairs",
    "count_comparisons",
    "default_comparisons",
    "hex_sample_filter",
    "level_labels",
    "load_model",
    "load_table",
    "model_hash",
    "model_json",
    "model_settings",
    "new_linker",
    "normalised_model",
    "save_model",
    "smoothed",
    "sql_dialect",
    "table_columns",
    "table_rows",
    "token_comparisons",
    "train_model",
    "uses_bloom",
    "with_dice_levels",
]
