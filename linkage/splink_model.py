"""The Splink model for linking on matching tokens: comparisons, blocking, training, save and load.

Every comparison is an exact-match test on HMAC tokens, because equality is the only thing a
keyed hash preserves. Partial agreement is recovered from *derived* tokens computed before hashing
(canonical forename, phonetic codes, initials, date-of-birth parts, postcode sector and district),
so "Bob Smyth" and "Robert Smith" still share levels. When both tables carry keyed Bloom-filter
encodings (``linkage.bloom``), Dice-coefficient levels follow the exact-token levels and catch
typos that tokens cannot see. All SQL here is plain equality, ``IS NULL`` and integer
``bit_count`` arithmetic, valid unchanged on DuckDB and Spark: the same model JSON runs on either
backend.

The database API (``DuckDBAPI`` or ``SparkAPI``) is always a parameter: this module never builds
one, so tests run the model on DuckDB in seconds and production runs it on the cluster.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from ig_policies.errors import InputError
from ig_policies.workspace import write_text
from linkage import bloom
from linkage.linkage_config import LOGICAL_BLOOM, LOGICAL_FIELDS, LOGICAL_TOKENS, LinkageConfig, LinkageTable

UNIQUE_ID = "unique_id"
#: Tokens are compared on their first 16 hex characters (64 bits): a quarter of the memory and
#: faster joins than the full 64, and two of a million distinct values collide with probability
#: about 3e-8, far below the model's own error.
TOKEN_PREFIX_CHARS = 16
LEFT_NAME = "left"
RIGHT_NAME = "right"

#: Prediction blocking rules. Each is cheap on its own at 100k x 1M (a few million pairs at most)
#: and together they catch a true pair unless it disagrees on NHS number, full DOB, full name and
#: (postcode or surname) + birth year at once.
PREDICTION_BLOCKING_RULES: tuple[str, ...] = (
    "l.t_nhs_number = r.t_nhs_number",
    "l.t_dob = r.t_dob",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname",
    "l.t_surname = r.t_surname and l.t_dob_year = r.t_dob_year",
    "l.t_postcode = r.t_postcode and l.t_dob_year = r.t_dob_year",
)

#: EM rounds: the first estimates names, postcode, sex and NHS number among same-DOB pairs; the
#: second estimates DOB (and again postcode, sex, NHS number) among same-name pairs.
EM_BLOCKING_RULES: tuple[str, ...] = (
    "l.t_dob = r.t_dob",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname",
)

#: Near-certain matches, used to estimate how many clients have a health record at all.
DETERMINISTIC_RULES: tuple[str, ...] = (
    "l.t_nhs_number = r.t_nhs_number",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname and l.t_dob = r.t_dob",
)
DETERMINISTIC_RECALL = 0.8

#: Floats in the saved model are rounded to this many significant digits so that the two
#: backends, which may sum in a different order, write byte-identical model files.
MODEL_SIGNIFICANT_DIGITS = 10
#: No trained m or u probability goes below this (see ``smoothed``).
PROBABILITY_FLOOR = 1e-5


def _level(
    sql: str, label: str, *, m: float = 0.0, u: float = 0.0, null: bool = False, tf: str | None = None
) -> dict[str, Any]:
    """One comparison level; ``m``/``u`` are starting values that training replaces.

    They matter only for a level the data never shows (a rare level in a small extract): it then
    keeps a conservative prior instead of Splink's generic default.
    """
    level: dict[str, Any] = {"sql_condition": sql, "label_for_charts": label}
    if null:
        level["is_null_level"] = True
    else:
        level["m_probability"] = m
        level["u_probability"] = u
    if tf:
        level["tf_adjustment_column"] = tf
        level["tf_adjustment_weight"] = 1.0
    return level


def _eq(col: str) -> str:
    return f"{col}_l = {col}_r"


def _either_null(col: str) -> str:
    return f"({col}_l IS NULL OR {col}_r IS NULL)"


def token_comparisons() -> list[dict[str, Any]]:
    """The comparisons of the token model, in the order they appear in the model and reports."""
    name = {
        "output_column_name": "name",
        "comparison_description": "forename and surname tokens",
        "comparison_levels": [
            _level(f"{_either_null('t_forename')} AND {_either_null('t_surname')}", "missing", null=True),
            _level(f"{_eq('t_forename')} AND {_eq('t_surname')}", "exact", m=0.85, u=1e-5, tf="t_surname"),
            _level(
                "t_forename_l = t_surname_r AND t_surname_l = t_forename_r",
                "forename and surname swapped",
                m=0.01,
                u=1e-7,
            ),
            _level(
                f"{_eq('t_forename_canonical')} AND {_eq('t_surname')}",
                "canonical forename, surname",
                m=0.03,
                u=1e-5,
                tf="t_surname",
            ),
            _level(
                f"{_eq('t_forename_phonetic')} AND {_eq('t_surname_phonetic')}",
                "both sound alike",
                m=0.03,
                u=1e-4,
            ),
            _level(
                f"{_eq('t_forename_initial')} AND {_eq('t_surname')}",
                "initial and surname",
                m=0.02,
                u=1e-3,
                tf="t_surname",
            ),
            _level(f"{_eq('t_forename')} OR {_eq('t_forename_canonical')}", "forename only", m=0.03, u=0.02),
            _level(_eq("t_surname"), "surname only", m=0.02, u=0.005, tf="t_surname"),
            _level(
                "t_forename_l = t_surname_r OR t_surname_l = t_forename_r",
                "one name in the other's place",
                m=0.005,
                u=1e-4,
            ),
            _level("ELSE", "different", m=0.01, u=0.97),
        ],
    }
    dob = {
        "output_column_name": "date_of_birth",
        "comparison_description": "date of birth tokens and their parts",
        "comparison_levels": [
            _level(_either_null("t_dob"), "missing", null=True),
            _level(_eq("t_dob"), "exact", m=0.9, u=5e-5),
            _level(
                f"{_eq('t_dob_year')} AND t_dob_day_l = t_dob_month_r AND t_dob_month_l = t_dob_day_r",
                "day and month transposed",
                m=0.01,
                u=1e-6,
            ),
            _level(f"{_eq('t_dob_year')} AND {_eq('t_dob_month')}", "year and month", m=0.03, u=5e-4),
            # a slip in the month: year and day agree (the cleartext "one character different"
            # level sees it too; without this level it fell to "year")
            _level(f"{_eq('t_dob_year')} AND {_eq('t_dob_day')}", "year and day", m=0.01, u=6e-4),
            _level(f"{_eq('t_dob_month')} AND {_eq('t_dob_day')}", "day and month", m=0.02, u=3e-3),
            _level(_eq("t_dob_year"), "year", m=0.02, u=0.02),
            _level("ELSE", "different", m=0.02, u=0.97),
        ],
    }
    postcode = {
        "output_column_name": "postcode",
        "comparison_description": "postcode, sector and district tokens",
        "comparison_levels": [
            _level(_either_null("t_postcode"), "missing", null=True),
            _level(_eq("t_postcode"), "exact", m=0.85, u=1e-4),
            _level(_eq("t_postcode_sector"), "same sector", m=0.03, u=1e-3),
            _level(_eq("t_postcode_district"), "same district", m=0.03, u=0.02),
            _level("ELSE", "different", m=0.09, u=0.98),
        ],
    }
    nhs = {
        "output_column_name": "nhs_number",
        "comparison_description": "NHS number token",
        "comparison_levels": [
            _level(_either_null("t_nhs_number"), "missing", null=True),
            _level(_eq("t_nhs_number"), "exact", m=0.99, u=1e-6),
            _level("ELSE", "different", m=0.01, u=1.0),
        ],
    }
    sex = {
        "output_column_name": "sex",
        "comparison_description": "recorded sex",
        "comparison_levels": [
            _level(_either_null("sex"), "missing", null=True),
            _level(_eq("sex"), "same", m=0.98, u=0.5),
            _level("ELSE", "different", m=0.02, u=0.5),
        ],
    }
    return [nhs, name, dob, postcode, sex]


def default_comparisons(bloom_words: int | None) -> list[dict[str, Any]]:
    """The token comparisons, with Dice levels on the Bloom encodings when both tables carry them."""
    comparisons = token_comparisons()
    return bloom.with_dice_levels(comparisons, bloom_words) if bloom_words else comparisons


def uses_bloom(model: dict[str, Any]) -> bool:
    """Whether a (saved) model compares Bloom encodings, so the tables must carry them."""
    return any(
        f"{column}_w0_l" in str(level.get("sql_condition", ""))
        for comparison in model.get("comparisons", [])
        for level in comparison.get("comparison_levels", [])
        for column in LOGICAL_BLOOM
    )


def model_settings(
    config: LinkageConfig, *, comparisons: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Splink settings dictionary (untrained) for linking ``left`` records to ``right`` ones."""
    return {
        "link_type": "link_only",
        "unique_id_column_name": UNIQUE_ID,
        "comparisons": comparisons if comparisons is not None else token_comparisons(),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": rule, "sql_dialect": None} for rule in PREDICTION_BLOCKING_RULES
        ],
        # Splink keeps the gamma (level) codes only with the matching columns; the link stage
        # selects the codes and drops every token column before anything leaves the backend.
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": False,
        "max_iterations": config.max_em_iterations,
        "em_convergence": 0.0001,
        "probability_two_random_records_match": 0.0001,
    }


# --------------------------------------------------------------------------------------------
# Reading the two pseudonymised tables into the backend


def sql_dialect(db_api: Any) -> str:
    """``spark`` or ``duckdb``: the SQL dialect of a Splink database API."""
    return db_api.sql_dialect.sql_dialect_str


def table_columns(root: Path, table: LinkageTable) -> list[str]:
    """The columns of a pseudonymised Parquet directory, or a clear error if it is not there."""
    path = root / table.path
    if not path.exists():
        raise InputError(
            str(path),
            "the pseudonymised table is missing",
            hint="run 'ehl pseudonymise' first (it writes this table)",
        )
    try:
        return list(pads.dataset(str(path), format="parquet").schema.names)
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"not a readable Parquet table ({exc})") from None


def table_rows(root: Path, table: LinkageTable) -> int:
    """Row count from the Parquet footers (no scan, same answer whichever backend links)."""
    table_columns(root, table)
    return int(pads.dataset(str(root / table.path), format="parquet").count_rows())


def bloom_words(root: Path, config: LinkageConfig) -> int | None:
    """Words per Bloom encoding when the Dice levels apply, else None.

    They apply when ``config.bloom_levels`` is on and both tables carry encodings; the two must
    have been written with the same length (and, which cannot be checked here, the same key).
    """
    if not config.bloom_levels:
        return None
    found = []
    for table in (config.left, config.right):
        present = set(table_columns(root, table))
        columns = [table.columns.get(f) for f in LOGICAL_BLOOM]
        columns = [c for c in columns if c and c in present]
        if not columns:
            return None
        found.append(bloom.table_words(root / table.path, columns))
    if found[0] is None or found[1] is None:
        return None
    if found[0] != found[1]:
        raise InputError(
            str(root / config.right.path),
            f"its Bloom encodings have {found[1]} words but those of {config.left.path} have {found[0]}",
            hint="pseudonymise both sides with the same Bloom settings and key version, or set "
            "bloom_levels: false in the linkage config",
        )
    return found[0]


def _select_list(root: Path, table: LinkageTable, quote: str, bloom_words: int | None = None) -> list[str]:
    present = set(table_columns(root, table))
    path = str(root / table.path)
    if table.id_column not in present:
        raise InputError(path, "the record identifier is missing", column=table.id_column)
    select = [f"CAST({quote}{table.id_column}{quote} AS STRING) AS {UNIQUE_ID}"]
    for field in LOGICAL_FIELDS:
        column = table.columns.get(field)
        if column is None:
            select.append(f"CAST(NULL AS STRING) AS {field}")
            continue
        if column not in present:
            raise InputError(
                path,
                "a column named in the linkage config is not in the table",
                column=column,
                hint=f"fix 'columns.{field}' in the linkage config, or remove it if the provider lacks it",
            )
        value = f"CAST({quote}{column}{quote} AS STRING)"
        if field in LOGICAL_TOKENS:
            value = f"substr({value}, 1, {TOKEN_PREFIX_CHARS})"
        select.append(f"{value} AS {field}")
    if bloom_words:
        dialect = "spark" if quote == "`" else "duckdb"
        for field in LOGICAL_BLOOM:
            column = table.columns.get(field)
            if column is None or column not in present:  # this side lacks it: always missing
                select += [f"CAST(NULL AS BIGINT) AS {w}" for w in bloom.word_columns(field, bloom_words)]
            else:
                select += bloom.word_select(f"{quote}{column}{quote}", field, bloom_words, dialect)
    return select


def load_table(
    db_api: Any,
    root: Path,
    table: LinkageTable,
    display_name: str,
    *,
    where: str | None = None,
    bloom_words: int | None = None,
) -> Any:
    """Register one side's logical columns with the backend and return the SplinkDataFrame.

    Only the identifier and the logical token fields are loaded: nothing else reaches Splink.
    ``where`` is an optional SQL filter on the *source* columns (valid on both backends).
    ``bloom_words`` adds the Bloom encodings as word columns (``bf_forename_w0`` ...).
    """
    path = root / table.path
    if sql_dialect(db_api) == "spark":
        select = _select_list(root, table, "`", bloom_words)
        df = db_api.spark.read.parquet(str(path))
        if where:
            df = df.where(where)
        df = df.selectExpr(*select)
        return db_api.register(df, dataset_display_name=display_name)
    select = _select_list(root, table, '"', bloom_words)
    physical = f"ehl_{display_name}"
    source = f"read_parquet('{(path / '**' / '*.parquet').as_posix()}', hive_partitioning = false)"
    filter_sql = f" WHERE {where}" if where else ""
    db_api.duckdb_con.execute(
        f"CREATE OR REPLACE TABLE {physical} AS SELECT {', '.join(select)} FROM {source}{filter_sql}"
    )
    return db_api.register(physical, dataset_display_name=display_name)


def hex_sample_filter(id_column: str, fraction: float, seed: int) -> str | None:
    """A SQL filter keeping about ``fraction`` of records, chosen by their pseudonym's hex digits.

    Research pseudonyms are a letter followed by HMAC hex digits, so their characters are uniform
    and a lexicographic window on them is a random sample that both backends select identically
    (unlike the engines' own hash functions, which differ). The seed moves the window.
    """
    if fraction >= 1:
        return None
    width = 16**6
    start = (seed * 2654435761) % width
    end = start + max(1, int(fraction * width))
    digits = f"lower(substr(CAST({id_column} AS STRING), 2, 6))"
    if end <= width:
        return f"{digits} >= '{start:06x}' AND {digits} < '{end:06x}'"
    return f"({digits} >= '{start:06x}' OR {digits} < '{end - width:06x}')"


# --------------------------------------------------------------------------------------------
# Training, saving and loading


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


def _round_floats(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{MODEL_SIGNIFICANT_DIGITS}g}")
    if isinstance(obj, dict):
        return {k: _round_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round_floats(v) for v in obj]
    return obj


def normalised_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model without run-specific fields (random linker id, SQL dialect), floats rounded.

    This is what is saved and hashed: the same data and seed give the same file on either backend.
    """
    out = copy.deepcopy(model)
    out.pop("linker_uid", None)
    out.pop("sql_dialect", None)
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict):
            rule.pop("sql_dialect", None)
    return _round_floats(out)


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


def model_json(model: dict[str, Any]) -> str:
    return json.dumps(normalised_model(model), indent=2, sort_keys=True) + "\n"


def save_model(model: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write the model atomically; returns its SHA-256 (recorded in the audit entry)."""
    text = model_json(model)
    write_text(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def load_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved, approved model; a file that is not a token model is refused with a reason."""
    p = Path(path)
    try:
        model = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(str(p), f"cannot read the model file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(str(p), f"not valid JSON ({exc.msg})", row=exc.lineno) from None
    if not isinstance(model, dict) or "comparisons" not in model:
        raise InputError(
            str(p), "not a Splink model file (no 'comparisons')", hint="pass the linked/model.json of a run"
        )
    untrained = [
        c.get("output_column_name", "?")
        for c in model["comparisons"]
        for level in c.get("comparison_levels", [])
        if not level.get("is_null_level") and ("m_probability" not in level or "u_probability" not in level)
    ]
    if untrained:
        raise InputError(
            str(p),
            f"the model is not trained for: {', '.join(sorted(set(untrained)))}",
            hint="re-use only a model written by a completed 'ehl link' run",
        )
    if model.get("link_type") != "link_only" or model.get("unique_id_column_name") != UNIQUE_ID:
        raise InputError(str(p), "the model was not built for linking two pseudonymised tables")
    return normalised_model(model)


def model_hash(model: dict[str, Any]) -> str:
    return hashlib.sha256(model_json(model).encode()).hexdigest()


def level_labels(model: dict[str, Any]) -> dict[str, dict[int, str]]:
    """comparison name -> {gamma value -> label}, for showing which levels agreed (never values)."""
    labels: dict[str, dict[int, str]] = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        n_non_null = sum(1 for level in levels if not level.get("is_null_level"))
        mapping: dict[int, str] = {}
        gamma = n_non_null - 1
        for level in levels:
            if level.get("is_null_level"):
                mapping[-1] = level.get("label_for_charts", "missing")
            else:
                mapping[gamma] = level.get("label_for_charts", str(gamma))
                gamma -= 1
        labels[comparison["output_column_name"]] = mapping
    return labels


def comparison_names(model: dict[str, Any]) -> Sequence[str]:
    return [c["output_column_name"] for c in model["comparisons"]]
