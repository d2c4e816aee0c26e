"""Reading the two pseudonymised tables into the backend: only the identifier and the token columns.

The database API (``DuckDBAPI`` or ``SparkAPI``) is always a parameter: this module never builds
one. The same select list is written for both engines (only quoting and array indexing differ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from ig_policies.errors import InputError
from linkage import bloom
from linkage.linkage_config import LOGICAL_BLOOM, LOGICAL_FIELDS, LOGICAL_TOKENS, LinkageConfig, LinkageTable
from linkage.splink_model.comparisons import UNIQUE_ID

#: Tokens are compared on their first 16 hex characters (64 bits): a quarter of the memory and
#: faster joins than the full 64, and two of a million distinct values collide with probability
#: about 3e-8, far below the model's own error.
TOKEN_PREFIX_CHARS = 16
LEFT_NAME = "left"
RIGHT_NAME = "right"


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
